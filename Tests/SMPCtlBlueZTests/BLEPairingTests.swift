import SMPCtlTestSupport
import Foundation
import SMPCtlLocking
import Testing
@testable import SMPCtlBlueZ
import SMPCtlClient
@testable import SMPCtlDBus
import SMPCtlProtocol
import SMPCtlTransport

/// An agent responder with fixed answers that records what it was asked.
final class ScriptedResponder: BlueZAgentResponder {
    let capability: BlueZAgentCapability
    let answer: UInt32?
    let confirms: Bool
    private let asked = LockedValue<[String]>([])

    init(capability: BlueZAgentCapability = .keyboardDisplay, passkey: UInt32? = nil, confirms: Bool = true) {
        self.capability = capability
        answer = passkey
        self.confirms = confirms
    }

    var questions: [String] { asked.withLock { $0 } }

    func passkey(device: String) async -> UInt32? {
        asked.withLock { $0.append("passkey \(device)") }
        return answer
    }

    func confirm(passkey: UInt32?, device: String) async -> Bool {
        asked.withLock { $0.append("confirm \(passkey.map(String.init) ?? "-") \(device)") }
        return confirms
    }

    func display(passkey: UInt32, device: String) async {
        asked.withLock { $0.append("display \(passkey)") }
    }
}

/// A responder whose passkey question stays open until bluetoothd cancels it (or 10 s pass).
final class WaitingResponder: BlueZAgentResponder {
    let capability = BlueZAgentCapability.keyboardDisplay
    private let cancels = LockedValue(0)

    var cancelCount: Int { cancels.withLock { $0 } }

    func passkey(device: String) async -> UInt32? {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline {
            if cancelCount > 0 { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return 123_456
    }

    func confirm(passkey: UInt32?, device: String) async -> Bool { false }
    func display(passkey: UInt32, device: String) async {}
    func cancelled() async { cancels.withLock { $0 += 1 } }
}

extension FakeBluetoothSetup {
    func pairingTransport(responder: (any BlueZAgentResponder)? = nil, policy: BLEPairingPolicy = .whenRequired,
        acquire: Bool = true, pairingTimeout: Duration = .seconds(5)) -> BLETransport
    {
        var configuration = BLETransport.Configuration(target: "smp-sim", busAddress: bus.address)
        configuration.preferAcquiredSockets = acquire
        // Generous: the fake answers at once, and a loaded machine must not fail these tests.
        configuration.discoveryTimeout = .seconds(10)
        configuration.connectTimeout = .seconds(10)
        configuration.gattTimeout = .seconds(10)
        configuration.pairing = policy
        configuration.pairingTimeout = pairingTimeout
        configuration.agentResponder = responder
        return BLETransport(configuration: configuration)
    }
}

@Suite("BLE pairing with smpctl's agent, against a fake bluetoothd", .serialized, .timeLimit(.minutes(2)))
struct BLEPairingTests {
    @Test("Just Works with a NoInputNoOutput agent: paired, bonded, trusted; the agent registered and released")
    func justWorks() async throws {
        try await FakeBluetoothSetup.run { setup in
            let report = try await setup.pairingTransport().pair()
            #expect(report.paired && report.bonded && report.trusted)
            #expect(!report.alreadyPaired)
            #expect(report.agentRequests.isEmpty)
            #expect(await setup.fake.paired)
            #expect(await setup.fake.trusted)
            #expect(await setup.fake.pairCalls == 1)
            #expect(await setup.fake.agentCalls.isEmpty)
            // The caller's agent serves Device1.Pair: the desktop's default agent is left alone.
            #expect(await setup.fake.defaultAgentRequested == false)
            #expect(await setup.fake.agentUnregistered)
            // Pairing again finds the bond.
            let again = try await setup.pairingTransport().pair()
            #expect(again.alreadyPaired && again.paired)
        }
    }

    @Test("Just Works with an agent that can answer: RequestConfirmation reaches it")
    func justWorksConfirmation() async throws {
        try await FakeBluetoothSetup.run { setup in
            let responder = ScriptedResponder()
            let report = try await setup.pairingTransport(responder: responder).pair()
            #expect(report.paired)
            #expect(report.agentRequests == ["RequestConfirmation"])
            #expect(responder.questions == ["confirm 123456 00:AA:01:00:00:00"])
            #expect(await setup.fake.agentCalls == ["RequestConfirmation"])
        }
    }

    @Test("passkey entry: the agent is asked, and its answer reaches bluetoothd")
    func passkey() async throws {
        var options = FakeBlueZOptions()
        options.pairing = .passkey(654_321)
        try await FakeBluetoothSetup.run(options: options) { setup in
            let responder = ScriptedResponder(passkey: 654_321)
            let report = try await setup.pairingTransport(responder: responder).pair()
            #expect(report.paired && report.bonded)
            #expect(responder.questions == ["passkey 00:AA:01:00:00:00"])
            #expect(await setup.fake.receivedPasskey == 654_321)
            #expect(await setup.fake.agent == nil)
        }
    }

    @Test("a wrong passkey: a typed pairing error that says what to do, quickly")
    func wrongPasskey() async throws {
        var options = FakeBlueZOptions()
        options.pairing = .passkey(654_321)
        try await FakeBluetoothSetup.run(options: options) { setup in
            let start = ContinuousClock.now
            let error = await #expect(throws: BlueZError.self) {
                _ = try await setup.pairingTransport(responder: ScriptedResponder(passkey: 111_111)).pair()
            }
            // An answer, not a timeout: far below the 5 s pairing timeout on an idle machine.
            #expect(ContinuousClock.now - start < .seconds(10))
            #expect(error?.code == .pairingFailed)
            #expect(error?.phase == .pairing)
            #expect(error?.underlying?.name == .bluezAuthenticationFailed)
            #expect(error?.message.contains("smpctl pair ble:00:AA:01:00:00:00") == true, "\(String(describing: error))")
            #expect(await setup.fake.receivedPasskey == 111_111)
            #expect(await setup.fake.paired == false)
            #expect(await setup.fake.agentUnregistered)
        }
    }

    @Test("a passkey device and no terminal: the error says so")
    func passkeyWithoutTerminal() async throws {
        var options = FakeBlueZOptions()
        options.pairing = .passkey(1)
        try await FakeBluetoothSetup.run(options: options) { setup in
            let error = await #expect(throws: BlueZError.self) { _ = try await setup.pairingTransport().pair() }
            #expect(error?.code == .pairingFailed)
            #expect(error?.message.contains("NoInputNoOutput") == true)
        }
    }

    @Test("pairing cancelled by the device: AuthenticationCanceled, a typed error")
    func cancelled() async throws {
        var options = FakeBlueZOptions()
        options.pairingFailure = .bluezAuthenticationCanceled
        try await FakeBluetoothSetup.run(options: options) { setup in
            let error = await #expect(throws: BlueZError.self) { _ = try await setup.pairingTransport().pair() }
            #expect(error?.code == .pairingFailed)
            #expect(error?.underlying?.name == .bluezAuthenticationCanceled)
            #expect(error?.message.contains("was cancelled") == true)
        }
    }

    @Test("a Pair that never answers ends at the pairing timeout, naming the phase")
    func pairHangs() async throws {
        var options = FakeBlueZOptions()
        options.hang = ["Pair"]
        try await FakeBluetoothSetup.run(options: options) { setup in
            let start = ContinuousClock.now
            let error = await #expect(throws: BlueZError.self) {
                _ = try await setup.pairingTransport(pairingTimeout: .seconds(1)).pair()
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(950), "gave up after \(elapsed)")
            #expect(elapsed < .seconds(8), "took \(elapsed)")
            #expect(error?.code == .stalled)
            #expect(error?.phase == .pairing)
            #expect(error?.message.contains("did not finish within 1 s (pairing)") == true, "\(String(describing: error))")
        }
    }

    @Test("without permission to pair, a \"Not paired\" device gets an error that says how to pair", arguments: WriteRoute.allCases)
    func notAllowed(route: WriteRoute) async throws {
        var options = FakeBlueZOptions()
        options.requiresPairing = true
        try await FakeBluetoothSetup.run(options: options) { setup in
            let transport = setup.pairingTransport(policy: .never, acquire: route == .socket)
            await expectOpenFailure(transport, containing: "smpctl pair ble:00:AA:01:00:00:00")
            let error = try #require(await transport.lastOpenError)
            #expect(error.code == .authenticationRequired)
            #expect(error.phase == .notificationSubscription)
            #expect(error.message.contains("bluetoothctl pair"))
            #expect(error.message.contains("?pair=yes"))
            #expect(await setup.fake.pairCalls == 0)
        }
    }

    @Test("pair=yes turns a \"Not paired\" dfu into a successful one, pairing once", arguments: WriteRoute.allCases)
    func pairsWhenRequired(route: WriteRoute) async throws {
        var options = FakeBlueZOptions()
        options.requiresPairing = true
        try await FakeBluetoothSetup.run(options: options) { setup in
            let transport = setup.pairingTransport(acquire: route == .socket)
            let client = SMPClient(transport: transport, options: testClientOptions())
            try await client.open()
            let file = try FirmwareFile(path: testImagePath)
            let identity = try FirmwareImageIdentity(file: file)
            let report = try await client.update(file, imageHash: identity.hash, options: testUpdateOptions())
            await client.close()
            #expect(report.confirmed)
            #expect(await setup.fake.pairCalls == 1)
            #expect(await setup.fake.paired)
            #expect(await setup.fake.trusted)
            let expected: BLETransport.DataPath = route == .socket ? .socket : .dbus
            #expect(await transport.writePath == expected)
        }
    }

    @Test("a failed pairing during open is reported as the pairing phase and does not retry forever")
    func failedPairingDuringOpen() async throws {
        var options = FakeBlueZOptions()
        options.requiresPairing = true
        options.pairingFailure = .bluezAuthenticationFailed
        try await FakeBluetoothSetup.run(options: options) { setup in
            let transport = setup.pairingTransport()
            let start = ContinuousClock.now
            await expectOpenFailure(transport, containing: "pairing with 00:AA:01:00:00:00 failed")
            #expect(ContinuousClock.now - start < .seconds(10))
            #expect(await transport.lastOpenError?.phase == .pairing)
            #expect(await setup.fake.pairCalls == 1)
        }
    }

    @Test("flags that ask for encryption: pair=yes pairs before the first access, which then succeeds")
    func pairsBeforeAccessWhenFlagsSaySo() async throws {
        var options = FakeBlueZOptions()
        options.requiresPairing = true
        options.encryptFlags = true
        try await FakeBluetoothSetup.run(options: options) { setup in
            let transport = setup.pairingTransport()
            let client = SMPClient(transport: transport, options: testClientOptions())
            try await client.open()
            #expect(try await client.send(OSManagement.EchoRequest("encrypted")).text == "encrypted")
            await client.close()
            #expect(await setup.fake.pairCalls == 1)
            #expect(await setup.fake.notPairedRefusals == 0)
        }
    }

    @Test("the agent answers only bluetoothd, only about the device being paired, only valid passkeys")
    func agentRefusesStrangers() async throws {
        let device = "/org/bluez/hci0/dev_00_AA_01_00_00_00"
        func agent(passkey: UInt32?) -> BlueZAgentObject {
            BlueZAgentObject(
                responder: ScriptedResponder(passkey: passkey), devicePath: device, address: "00:AA:01:00:00:00",
                bluetoothd: ":1.5", requests: RequestLog())
        }
        func call(_ member: String, from sender: String = ":1.5", _ arguments: [DBusValue]) -> DBusMethodCall {
            DBusMethodCall(
                sender: sender, path: "/org/smpctl/agent", interface: BlueZ.agentInterface, member: member,
                arguments: arguments)
        }
        let good = try await agent(passkey: 42).handleMethodCall(call("RequestPasskey", [.objectPath(device)]))
        #expect(good == [.uint32(42)])
        for (object, request) in [
            (agent(passkey: 42), call("RequestPasskey", from: ":1.9", [.objectPath(device)])),
            (agent(passkey: 42), call("RequestPasskey", [.objectPath("/org/bluez/hci0/dev_11_22_33_44_55_66")])),
            (agent(passkey: 1_000_000), call("RequestPasskey", [.objectPath(device)])),
            (agent(passkey: nil), call("RequestPasskey", [.objectPath(device)])),
            (agent(passkey: 1), call("AuthorizeService", [.objectPath("/org/bluez/hci0/dev_11"), .string("x")])),
        ] {
            let error = await #expect(throws: DBusError.self) { _ = try await object.handleMethodCall(request) }
            #expect(error?.name == .bluezRejected)
        }
        let refused = ScriptedResponder(confirms: false)
        let confirming = BlueZAgentObject(
            responder: refused, devicePath: device, address: "00:AA:01:00:00:00", bluetoothd: ":1.5",
            requests: RequestLog())
        let error = await #expect(throws: DBusError.self) {
            _ = try await confirming.handleMethodCall(call("RequestConfirmation", [.objectPath(device), .uint32(7)]))
        }
        #expect(error?.name == .bluezRejected)
        #expect(refused.questions == ["confirm 7 00:AA:01:00:00:00"])
    }

    @Test("bluetoothd's Cancel reaches the agent while its passkey question is open, and the question is refused")
    func cancelWhileAsking() async throws {
        try await withPrivateBus { bus in
            let agentBus = try await BusConnection.connect(address: bus.address)
            let bluetoothd = try await BusConnection.connect(address: bus.address)
            let device = "/org/bluez/hci0/dev_00_AA_01_00_00_00"
            let responder = WaitingResponder()
            let agent = BlueZAgentObject(
                responder: responder, devicePath: device, address: "00:AA:01:00:00:00",
                bluetoothd: bluetoothd.uniqueName, requests: RequestLog())
            let path = "/org/smpctl/agent_test"
            try await agentBus.export(agent, at: path)
            func call(_ member: String, _ arguments: [DBusValue], timeout: Duration) async throws(DBusError) -> [DBusValue] {
                try await bluetoothd.call(
                    destination: agentBus.uniqueName, path: path, interface: BlueZ.agentInterface, member: member,
                    arguments: arguments, timeout: timeout)
            }
            let start = ContinuousClock.now
            let question = Task { () async throws(DBusError) -> [DBusValue] in
                try await call("RequestPasskey", [.objectPath(device)], timeout: .seconds(15))
            }
            try await Task.sleep(for: .milliseconds(200))
            // bluetoothd waits for Cancel's reply; it must not wait behind the question it cancels.
            _ = try await call("Cancel", [], timeout: .seconds(3))
            #expect(responder.cancelCount == 1)
            let result = await question.result
            guard case .failure(let failure) = result, let error = failure as? DBusError else {
                Issue.record("the cancelled question was not refused with a D-Bus error: \(result)")
                return
            }
            #expect(error.name == .bluezRejected)
            #expect(ContinuousClock.now - start < .seconds(5))
            await bluetoothd.close()
            await agentBus.close()
        }
    }
}
