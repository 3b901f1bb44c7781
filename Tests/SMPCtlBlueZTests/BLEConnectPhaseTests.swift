import Foundation
import Testing
@testable import SMPCtlBlueZ
import SMPCtlClient
import SMPCtlProtocol
import SMPCtlTransport

/// One way a connect phase can go wrong in the fake bluetoothd, and what the transport must say.
struct PhaseFault: Sendable, CustomStringConvertible {
    var description: String
    var hang: Set<String> = []
    var dropDuring: String?
    var acquire = true
    var mtuProperty = true
    var phase: BLEConnectPhase
    /// Text the message must contain, besides the phase.
    var text: String

    var drops: Bool { dropDuring != nil }

    static let all: [PhaseFault] = [
        PhaseFault(description: "StartDiscovery hangs", hang: ["StartDiscovery"], phase: .discovery,
            text: "StartDiscovery on hci0 did not answer within 1 s"),
        PhaseFault(description: "Connect hangs", hang: ["Connect"], phase: .connect,
            text: "Connect to 00:AA:01:00:00:00 did not answer within 2 s"),
        PhaseFault(description: "the link drops during Connect", dropDuring: "Connect", phase: .connect,
            text: "Device1.Connected turned false"),
        PhaseFault(description: "ServicesResolved never comes", hang: ["ServicesResolved"], phase: .servicesResolved,
            text: "its GATT services were not resolved within 2 s"),
        PhaseFault(description: "the link drops before ServicesResolved", dropDuring: "ServicesResolved",
            phase: .servicesResolved, text: "Device1.Connected turned false"),
        PhaseFault(description: "StartNotify hangs", hang: ["StartNotify"], acquire: false,
            phase: .notificationSubscription, text: "but StartNotify did not answer within 1 s"),
        PhaseFault(description: "the link drops during StartNotify", dropDuring: "StartNotify", acquire: false,
            phase: .notificationSubscription, text: "Device1.Connected turned false"),
        PhaseFault(description: "AcquireNotify hangs", hang: ["AcquireNotify"], phase: .notificationSubscription,
            text: "but AcquireNotify did not answer within 1 s"),
        PhaseFault(description: "AcquireWrite hangs", hang: ["AcquireWrite"], phase: .writeAccess,
            text: "but AcquireWrite did not answer within 1 s"),
        PhaseFault(description: "the link drops during AcquireWrite", dropDuring: "AcquireWrite", phase: .writeAccess,
            text: "Device1.Connected turned false"),
        PhaseFault(description: "the MTU read hangs", hang: ["MTU"], acquire: false, mtuProperty: false,
            phase: .mtuRead, text: "reading its MTU did not answer within 1 s"),
    ]
}

@Suite("BLE connect phases: each bounded, a dropped link noticed at once", .serialized, .timeLimit(.minutes(2)))
struct BLEConnectPhaseTests {
    @Test("the error names the phase and arrives within its bound", arguments: PhaseFault.all)
    func phaseFault(_ fault: PhaseFault) async throws {
        var options = FakeBlueZOptions()
        options.hang = fault.hang
        options.dropLinkDuring = fault.dropDuring
        options.mtuProperty = fault.mtuProperty
        try await FakeBluetoothSetup.run(options: options) { setup in
            var configuration = BLETransport.Configuration(target: "smp-sim", busAddress: setup.bus.address)
            configuration.preferAcquiredSockets = fault.acquire
            configuration.discoveryTimeout = .seconds(5)
            // A dropped link must end the phase long before its bound.
            configuration.connectTimeout = fault.drops ? .seconds(30) : .seconds(2)
            configuration.gattTimeout = fault.drops ? .seconds(30) : .seconds(1)
            let transport = BLETransport(configuration: configuration)
            let (_, continuation) = AsyncStream<SMPTransportEvent>.makeStream()
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: SMPTransportError.self) { try await transport.open(events: continuation) }
            let elapsed = clock.now - start
            let error = try #require(await transport.lastOpenError)
            #expect(error.phase == fault.phase, "\(error)")
            #expect(error.message.contains(fault.text), "\(error.message)")
            #expect(error.message.contains(fault.phase.rawValue), "\(error.message)")
            if fault.drops {
                #expect(error.code == .disconnected)
                // Far below the 30 s bound; the margin is for a loaded machine.
                #expect(elapsed < .seconds(10), "a dropped link took \(elapsed) to notice")
            } else {
                #expect(error.code == .stalled)
                let bound: Duration = fault.phase == .connect || fault.phase == .servicesResolved ? .seconds(2) : .seconds(1)
                #expect(elapsed >= bound - .milliseconds(50), "gave up after \(elapsed), before the bound \(bound)")
                // The bound, plus connecting to the bus and reading the objects on a loaded machine.
                #expect(elapsed < bound + .seconds(6), "took \(elapsed) for a bound of \(bound)")
            }
            await transport.close()
        }
    }

    @Test("a link that bluetoothd brings up without PropertiesChanged is found by reading its properties again")
    func silentLinkSignals() async throws {
        var options = FakeBlueZOptions()
        options.silentLinkSignals = true
        try await FakeBluetoothSetup.run(options: options) { setup in
            var configuration = BLETransport.Configuration(target: "smp-sim", busAddress: setup.bus.address)
            configuration.connectTimeout = .seconds(20)
            configuration.propertyResyncInterval = .milliseconds(300)
            let transport = BLETransport(configuration: configuration)
            let client = SMPClient(transport: transport, options: testClientOptions())
            let clock = ContinuousClock()
            let start = clock.now
            try await client.open()
            let elapsed = clock.now - start
            #expect(try await client.send(OSManagement.EchoRequest("silent")).text == "silent")
            await client.close()
            // Without the re-read, the open waits out the 20 s bound and fails (as it did in the VM).
            #expect(elapsed < .seconds(8), "the open took \(elapsed)")
        }
    }

    @Test("after a stalled phase the next open works when bluetoothd answers again")
    func recoversAfterStall() async throws {
        try await FakeBluetoothSetup.run { setup in
            var configuration = BLETransport.Configuration(target: "smp-sim", busAddress: setup.bus.address)
            configuration.gattTimeout = .seconds(1)
            configuration.connectTimeout = .seconds(2)
            let transport = BLETransport(configuration: configuration)
            let client = SMPClient(transport: transport, options: testClientOptions())
            try await client.open()
            #expect(try await client.send(OSManagement.EchoRequest("phases")).text == "phases")
            await client.close()
            #expect(await transport.lastOpenError == nil)
        }
    }
}
