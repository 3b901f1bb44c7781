import SMPCtlTestSupport
import Foundation
import SMPCtlLocking
import Testing
@testable import SMPCtlBlueZ
import SMPCtlClient
import SMPCtlDBus
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport

let testImagePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/test-image.bin").path

/// A private bus with the fake bluetoothd and a simulator behind it.
struct FakeBluetoothSetup {
    let bus: PrivateBus
    let fake: FakeBlueZ
    let device: SimulatedDevice

    static func run(
        options: FakeBlueZOptions = FakeBlueZOptions(), simulator: (inout SimulatorConfiguration) -> Void = { _ in },
        _ body: (FakeBluetoothSetup) async throws -> Void
    ) async throws {
        try await withPrivateBus { bus in
            var configuration = SimulatorConfiguration()
            simulator(&configuration)
            let device = SimulatedDevice(configuration: configuration)
            let fake = try await FakeBlueZ.start(
                address: bus.address, server: SimulatorServer(device: device, bootTime: .milliseconds(50)),
                options: options)
            do {
                try await body(FakeBluetoothSetup(bus: bus, fake: fake, device: device))
            } catch {
                await fake.stop()
                throw error
            }
            await fake.stop()
        }
    }

    func transport(target: String = "smp-sim", acquire: Bool = true, discoveryTimeout: Duration = .seconds(2))
        -> BLETransport
    {
        var configuration = BLETransport.Configuration(target: target, busAddress: bus.address)
        configuration.preferAcquiredSockets = acquire
        configuration.discoveryTimeout = discoveryTimeout
        configuration.connectTimeout = .seconds(2)
        return BLETransport(configuration: configuration)
    }
}

func testClientOptions() -> SMPClientOptions {
    var options = SMPClientOptions()
    options.timeout = .milliseconds(500)
    options.retries = 3
    options.busyDelay = .milliseconds(5)
    if ProcessInfo.processInfo.environment["SMPCTL_TEST_LOG"] != nil { options.log = { print("LOG", $0) } }
    return options
}

func testUpdateOptions() -> FirmwareUpdateOptions {
    var options = FirmwareUpdateOptions(mode: .testAndConfirm)
    options.reconnectTimeout = .seconds(5)
    options.resetGrace = .milliseconds(50)
    options.upload.firstChunkTimeout = .seconds(1)
    return options
}

/// Opens the transport with an event sink, and expects it to fail with a message containing `text`.
func expectOpenFailure(_ transport: BLETransport, containing text: String) async {
    let (_, continuation) = AsyncStream<SMPTransportEvent>.makeStream()
    do {
        try await transport.open(events: continuation)
        Issue.record("open succeeded; expected a failure mentioning \"\(text)\"")
        await transport.close()
    } catch {
        #expect(error.reason.contains(text), "\(error.reason)")
    }
}

enum WriteRoute: String, CaseIterable, Sendable {
    case socket = "AcquireWrite/AcquireNotify"
    case dbus = "WriteValue/StartNotify"
}

@Suite("BLE transport against a fake bluetoothd", .serialized, .timeLimit(.minutes(1)))
struct BLETransportTests {
    @Test("a full dfu of test-image.bin", arguments: [23, 65, 247], WriteRoute.allCases)
    func dfu(mtu: Int, route: WriteRoute) async throws {
        var options = FakeBlueZOptions()
        options.mtu = mtu
        try await FakeBluetoothSetup.run(options: options) { setup in
            // Bounds, not expectations: the reconnect after the reset rescans, and under a loaded
            // parallel test run one 2-second discovery was once not enough.
            let transport = setup.transport(acquire: route == .socket, discoveryTimeout: .seconds(6))
            let client = SMPClient(transport: transport, options: testClientOptions())
            try await client.open()
            let file = try FirmwareFile(path: testImagePath)
            let identity = try FirmwareImageIdentity(file: file)
            var updateOptions = testUpdateOptions()
            updateOptions.reconnectTimeout = .seconds(20)
            let report = try await client.update(file, imageHash: identity.hash, options: updateOptions)
            await client.close()
            #expect(report.running)
            #expect(report.confirmed)
            #expect(await transport.mtu == mtu)
            let expectedPath: BLETransport.DataPath = route == .socket ? .socket : .dbus
            #expect(await transport.writePath == expectedPath)
            #expect(await transport.notifyPath == expectedPath)
            #expect(await transport.largestWrite <= mtu - 3)
            #expect(await setup.fake.oversizeWrites == 0)
            #expect(await setup.fake.largestWrite <= mtu - 3)
            #expect(await setup.fake.largestNotification <= mtu - 3)
            // Packets were split across writes because the simulator reassembles (buf_size 2048).
            #expect(await setup.fake.writes > file.length / (mtu - 3))
            // Reconnected after the reset.
            #expect(await setup.fake.connectCount >= 2)
        }
    }

    @Test("a Connect after the reset that bluetoothd never answers ends the dfu within the reconnect budget")
    func unansweredConnectAfterReset() async throws {
        var options = FakeBlueZOptions()
        options.unansweredConnects = Set(2...100)
        try await FakeBluetoothSetup.run(options: options) { setup in
            var configuration = BLETransport.Configuration(target: "smp-sim", busAddress: setup.bus.address)
            configuration.discoveryTimeout = .seconds(6)
            configuration.connectTimeout = .seconds(30)  // the default; the reconnect budget is far less
            let transport = BLETransport(configuration: configuration)
            let client = SMPClient(transport: transport, options: testClientOptions())
            try await client.open()
            let file = try FirmwareFile(path: testImagePath)
            let identity = try FirmwareImageIdentity(file: file)
            var updateOptions = testUpdateOptions()
            updateOptions.reconnectTimeout = .seconds(6)
            let resetAt = LockedValue<ContinuousClock.Instant?>(nil)
            do {
                _ = try await client.update(file, imageHash: identity.hash, options: updateOptions) { event in
                    if case .resetting = event { resetAt.withLock { $0 = ContinuousClock.now } }
                }
                Issue.record("the update succeeded though no Connect after the reset was answered")
            } catch {
                guard case .verificationFailed(.noAnswerAfterReset, _)? = error as? SMPClientError else {
                    Issue.record("unexpected error \(error)")
                    return
                }
            }
            let afterReset = try #require(resetAt.withLock { $0 }).duration(to: ContinuousClock.now)
            await client.close()
            // Each Connect is given up after its share of the 6 s; before, the first one alone
            // waited out the transport's 30 s.
            #expect(afterReset < .seconds(12), "\(afterReset)")
            #expect(await setup.fake.connectCount >= 2)
        }
    }

    @Test("writes are MTU - 3 and never over 510 bytes; packets may span writes")
    func framingReportsWriteSize() async throws {
        try await FakeBluetoothSetup.run { setup in
            let transport = setup.transport()
            let (_, continuation) = AsyncStream<SMPTransportEvent>.makeStream()
            try await transport.open(events: continuation)
            let framing = await transport.framing
            #expect(framing.maximumWrite == 62)
            #expect(framing.splitsAcrossWrites)
            await #expect(throws: SMPTransportError.self) { try await transport.send([UInt8](repeating: 0, count: 65_544)) }
            await transport.close()
        }
        #expect(BLETransport.largestWrite == 510)
    }

    @Test("closing does not wait out bluetoothd's 2-second Disconnect, and the link is still released")
    func closeWithoutDisconnectTail() async throws {
        var options = FakeBlueZOptions()
        options.disconnectDelay = .seconds(2)
        try await FakeBluetoothSetup.run(options: options) { setup in
            let transport = setup.transport()
            let client = SMPClient(transport: transport, options: testClientOptions())
            try await client.open()
            _ = try await client.send(OSManagement.EchoRequest("hi"))
            let clock = ContinuousClock()
            let start = clock.now
            await client.close()
            let closing = clock.now - start
            #expect(closing < .seconds(1), "close took \(closing)")
            // bluetoothd still got the Disconnect and drops the link when its timer runs out.
            let deadline = clock.now + .seconds(10)
            while await setup.fake.connected, clock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(await setup.fake.disconnectCalls == 1)
            #expect(await setup.fake.connected == false)
        }
    }

    @Test("the next command waits out a disconnect the last one asked for, instead of losing the link mid-command")
    func nextCommandAfterClose() async throws {
        var options = FakeBlueZOptions()
        options.disconnectDelay = .seconds(2)
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run(options: options) { setup in
                let first = SMPClient(transport: setup.transport(), options: testClientOptions())
                try await first.open()
                _ = try await first.send(OSManagement.EchoRequest("one"))
                await first.close()
                // A new transport, as the next smpctl process would have: the device still looks
                // connected until bluetoothd's disconnect timer runs out.
                let second = SMPClient(transport: setup.transport(), options: testClientOptions())
                try await second.open()
                _ = try await second.send(OSManagement.EchoRequest("two"))
                try await Task.sleep(for: .milliseconds(2_500))
                #expect(try await second.send(OSManagement.EchoRequest("three")).text == "three")
                await second.close()
                #expect(await setup.fake.connectCount >= 2)
            }
        }
    }

    @Test("a disconnect in the middle of the upload resumes after reconnecting", arguments: WriteRoute.allCases)
    func disconnectMidUpload(route: WriteRoute) async throws {
        try await FakeBluetoothSetup.run(simulator: { $0.disconnectAfterBytes = 2500 }) { setup in
            let transport = setup.transport(acquire: route == .socket)
            let client = SMPClient(transport: transport, options: testClientOptions())
            try await client.open()
            let file = try FirmwareFile(path: testImagePath)
            let identity = try FirmwareImageIdentity(file: file)
            let report = try await client.update(file, imageHash: identity.hash, options: testUpdateOptions())
            await client.close()
            #expect(report.confirmed)
            // First connect, the reconnect after the drop, and the one after the reset.
            #expect(await setup.fake.connectCount >= 3)
        }
    }

    @Test(
        "writes that overtake each other (EATT): from the first sign every request fits one write, and the upload verifies",
        arguments: WriteRoute.allCases)
    func reorderedWrites(route: WriteRoute) async throws {
        var options = FakeBlueZOptions()
        options.mtu = 247
        options.reorderEvery = 7
        try await FakeBluetoothSetup.run(options: options) { setup in
            let (result, notices, _) = try await uploadTestImage(setup.transport(acquire: route == .socket))
            #expect(result.match == true, "the device's hash of the slot must match the file")
            #expect(await setup.fake.reorderedWrites > 0)
            #expect(notices.contains(.reordering(writeLimit: 244)), "\(notices)")
            // After the switch every request is one write of at most MTU − 3 bytes.
            #expect(await setup.fake.trailingOneWritePackets >= 20)
            #expect(await setup.fake.largestWrite <= 244)
        }
    }

    @Test("bluetoothd's [GATT] Channels: 3 unless set, clamped to 1–5, other sections and comments ignored")
    func gattChannelsParsing() {
        #expect(BLETransport.gattChannels(configuration: "") == 3)
        #expect(BLETransport.gattChannels(configuration: "[General]\nChannels = 1\n") == 3)
        #expect(BLETransport.gattChannels(configuration: "[GATT]\n#Channels = 1\n") == 3)
        #expect(BLETransport.gattChannels(configuration: "[GATT]\nExchangeMTU = 517\nChannels = 1\n") == 1)
        #expect(BLETransport.gattChannels(configuration: "[GATT]\r\n  Channels=2  \r\n[Policy]\n") == 2)
        #expect(BLETransport.gattChannels(configuration: "[GATT]\nChannels = 99\n") == 5)
        #expect(BLETransport.gattChannels(configuration: "[GATT]\nChannels = 0\n") == 1)
        #expect(BLETransport.gattChannels(configuration: "[GATT]\nChannels = many\n") == 3)
    }

    @Test("a bluetoothd configuration that is not a regular file counts as the default, without blocking")
    func gattChannelsFromFIFO() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-main-\(UUID().uuidString).conf").path
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        let start = ContinuousClock.now
        #expect(BLETransport.localChannels(path: path) == 3)
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(BLETransport.localChannels(path: path + ".missing") == 3)
    }

    @Test(
        "a device that offers EATT, with bluetoothd opening several channels: one write per request, or write requests one at a time that keep their order",
        arguments: [
            (3, BLETransport.WriteMode.command, true), (3, .request, true), (1, .command, false), (1, .request, false),
        ])
    func eattWriteModes(channels: Int, mode: BLETransport.WriteMode, expectEATT: Bool) async throws {
        var options = FakeBlueZOptions()
        options.mtu = 247
        options.offersEATT = true
        // Write commands overtake each other as on an EATT link; write requests cannot.
        options.reorderEvery = expectEATT ? 5 : 0
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-eatt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let conf = folder.appendingPathComponent("main.conf")
        try "[GATT]\nChannels = \(channels)\n".write(to: conf, atomically: true, encoding: .utf8)
        try await FakeBluetoothSetup.run(options: options) { setup in
            var configuration = BLETransport.Configuration(target: "smp-sim", busAddress: setup.bus.address)
            configuration.bluetoothConfigurationPath = conf.path
            configuration.writeMode = mode
            let transport = BLETransport(configuration: configuration)
            let (result, notices, _) = try await uploadTestImage(transport)
            #expect(await transport.multipleBearers == expectEATT)
            #expect(result.match == true)
            let ordered = mode == .request
            #expect(await transport.orderedWrites == ordered)
            if ordered {
                // Every piece a write request through WriteValue (bluetoothd refuses WriteValue
                // once AcquireWrite took the write side), each answered before the next: the
                // requests span several writes again and none was overtaken.
                #expect(await transport.writePath == .dbus)
                #expect(await setup.fake.writeRequests == setup.fake.writes)
                #expect(await setup.fake.reorderedWrites == 0)
                #expect(result.chunkSize > 244, "requests span several writes: \(result.chunkSize)")
                #expect(!notices.contains { if case .reordering = $0 { true } else { false } })
            } else if expectEATT {
                #expect(await setup.fake.writeRequests == 0)
                #expect(result.chunkSize <= 244 - 8, "one write per request: \(result.chunkSize)")
            } else {
                #expect(await setup.fake.writeRequests == 0)
                #expect(result.chunkSize > 244, "requests span several writes: \(result.chunkSize)")
            }
        }
    }

    @Test("writes kept in order: requests stay larger than one write and nothing reports reordering")
    func inOrderWritesKeepLargeRequests() async throws {
        var options = FakeBlueZOptions()
        options.mtu = 247
        try await FakeBluetoothSetup.run(options: options) { setup in
            let (result, notices, overtaking) = try await uploadTestImage(setup.transport(acquire: true))
            #expect(result.match == true)
            #expect(result.chunkSize > 244, "requests span several writes when the device reassembles")
            #expect(!notices.contains { if case .reordering = $0 { true } else { false } })
            #expect(overtaking == 0)
        }
    }

    @Test("a characteristic that needs pairing gives a pairing error", arguments: WriteRoute.allCases)
    func pairingRequired(route: WriteRoute) async throws {
        var options = FakeBlueZOptions()
        options.requiresPairing = true
        try await FakeBluetoothSetup.run(options: options) { setup in
            await expectOpenFailure(setup.transport(acquire: route == .socket), containing: "bluetoothctl pair")
        }
    }

    @Test("no org.bluez on the bus: bluetoothd is not running")
    func bluetoothdMissing() async throws {
        try await withPrivateBus { bus in
            let transport = BLETransport(configuration: BLETransport.Configuration(target: "x", busAddress: bus.address))
            await expectOpenFailure(transport, containing: "bluetoothd is not running")
            await expectOpenFailure(transport, containing: "systemctl start bluetooth")
        }
    }

    @Test("an open cancelled while discovering still stops the discovery")
    func cancelledDiscoveryStops() async throws {
        try await FakeBluetoothSetup.run { setup in
            let transport = setup.transport(target: "no-such-device", discoveryTimeout: .seconds(20))
            let opening = Task {
                let (_, continuation) = AsyncStream<SMPTransportEvent>.makeStream()
                try await transport.open(events: continuation)
            }
            let clock = ContinuousClock()
            let started = clock.now
            while await !setup.fake.discovering, clock.now - started < .seconds(5) {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(await setup.fake.discovering, "discovery never started")
            try await Task.sleep(for: .milliseconds(200))
            let cancelled = clock.now
            opening.cancel()
            _ = await opening.result
            #expect(clock.now - cancelled < .seconds(3))
            #expect(await setup.fake.discovering == false, "the cancelled open left discovery on")
            await transport.close()
        }
    }

    @Test("an unknown device is not found before the timeout")
    func deviceNotFound() async throws {
        try await FakeBluetoothSetup.run { setup in
            await expectOpenFailure(
                setup.transport(target: "no-such-device", discoveryTimeout: .milliseconds(300)),
                containing: "no device named or addressed \"no-such-device\"")
        }
    }

    @Test("an advertising report lost in one scan is found by scanning again, within the discovery timeout")
    func rescanAfterLostReport() async throws {
        var options = FakeBlueZOptions()
        options.lostScans = 2
        try await FakeBluetoothSetup.run(options: options) { setup in
            var configuration = BLETransport.Configuration(target: "smp-sim", busAddress: setup.bus.address)
            configuration.discoveryTimeout = .seconds(10)
            configuration.rescanInterval = .milliseconds(300)
            configuration.connectTimeout = .seconds(2)
            let transport = BLETransport(configuration: configuration)
            let (_, continuation) = AsyncStream<SMPTransportEvent>.makeStream()
            let start = ContinuousClock.now
            try await transport.open(events: continuation)
            #expect(ContinuousClock.now - start < .seconds(5))
            await transport.close()
            #expect(await setup.fake.discoveryStarts == 3)
        }
        // A device that never appears still ends at the discovery timeout, after several scans.
        options.lostScans = 1000
        try await FakeBluetoothSetup.run(options: options) { setup in
            var configuration = BLETransport.Configuration(target: "smp-sim", busAddress: setup.bus.address)
            configuration.discoveryTimeout = .seconds(1)
            configuration.rescanInterval = .milliseconds(300)
            let start = ContinuousClock.now
            await expectOpenFailure(BLETransport(configuration: configuration), containing: "was found on")
            #expect(ContinuousClock.now - start < .seconds(4))
            #expect(await setup.fake.discoveryStarts >= 3)
        }
    }

    @Test("a powered-off adapter is reported")
    func adapterPoweredOff() async throws {
        var options = FakeBlueZOptions()
        options.adapterPowered = false
        try await FakeBluetoothSetup.run(options: options) { setup in
            await expectOpenFailure(setup.transport(), containing: "bluetoothctl power on")
        }
    }

    @Test("an unknown adapter is reported with the ones available")
    func unknownAdapter() async throws {
        try await FakeBluetoothSetup.run { setup in
            var configuration = BLETransport.Configuration(target: "smp-sim", adapter: "hci7", busAddress: setup.bus.address)
            configuration.discoveryTimeout = .milliseconds(300)
            await expectOpenFailure(BLETransport(configuration: configuration), containing: "available: hci0")
        }
    }

    @Test("the device is found by address too")
    func byAddress() async throws {
        try await FakeBluetoothSetup.run { setup in
            let transport = setup.transport(target: "00:aa:01:00:00:00")
            let client = SMPClient(transport: transport, options: testClientOptions())
            try await client.open()
            let echo = try await client.send(OSManagement.EchoRequest("over ble"))
            #expect(echo.text == "over ble")
            await client.close()
        }
    }

    @Test("the fake's WriteValue refuses more than MTU-3 bytes")
    func writeValueLimit() async throws {
        var options = FakeBlueZOptions()
        options.mtu = 23
        try await FakeBluetoothSetup.run(options: options) { setup in
            let transport = setup.transport(acquire: false)
            let (_, continuation) = AsyncStream<SMPTransportEvent>.makeStream()
            try await transport.open(events: continuation)
            let bus = try await BusConnection.connect(address: setup.bus.address)
            let characteristic = BlueZCharacteristicProxy(bus: bus, path: await setup.fake.characteristicPath)
            let error = await #expect(throws: DBusError.self) {
                try await characteristic.writeCommand([UInt8](repeating: 0, count: 21))
            }
            #expect(error?.name == .bluezFailed)
            await bus.close()
            await transport.close()
        }
    }

    @Test("the scanner lists the SMP device with its address, type and RSSI")
    func scan() async throws {
        try await FakeBluetoothSetup.run { setup in
            let scanner = BlueZScanner(busAddress: setup.bus.address)
            let devices = try await scanner.scan(for: .milliseconds(300))
            #expect(devices.count == 1)
            #expect(devices.first?.name == "smp-sim")
            #expect(devices.first?.address == "00:AA:01:00:00:00")
            #expect(devices.first?.addressType == "random")
            #expect(devices.first?.rssi == -52)
        }
    }

    @Test("a scan whose advertising report is lost scans again within its duration and lists the device")
    func scanAgain() async throws {
        var options = FakeBlueZOptions()
        options.lostScans = 2
        try await FakeBluetoothSetup.run(options: options) { setup in
            var scanner = BlueZScanner(busAddress: setup.bus.address)
            scanner.rescanInterval = .milliseconds(300)
            let devices = try await scanner.scan(for: .seconds(3))
            #expect(devices.map(\.name) == ["smp-sim"], "two lost scans, then the third finds it")
        }
        // Without scanning again, the lost report is lost for the whole scan.
        var lost = FakeBlueZOptions()
        lost.lostScans = 1
        try await FakeBluetoothSetup.run(options: lost) { setup in
            var scanner = BlueZScanner(busAddress: setup.bus.address)
            scanner.rescanInterval = .seconds(60)
            let devices = try await scanner.scan(for: .seconds(1))
            #expect(devices.isEmpty)
        }
    }
}

/// Runs `body` with XDG_RUNTIME_DIR set to a fresh folder, so disconnect markers of other runs do not count.
func withTemporaryRuntimeFolder(_ body: () async throws -> Void) async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-runtime-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let previous = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"]
    setenv("XDG_RUNTIME_DIR", folder.path, 1)
    defer {
        if let previous { setenv("XDG_RUNTIME_DIR", previous, 1) } else { unsetenv("XDG_RUNTIME_DIR") }
        try? FileManager.default.removeItem(at: folder)
    }
    try await body()
}

/// Uploads the test image through `transport` and returns the result, the client's notices and
/// how many answers overtook earlier ones.
func uploadTestImage(_ transport: BLETransport) async throws -> (UploadResult, [SMPClientNotice], Int) {
    let notices = LockedValue<[SMPClientNotice]>([])
    var clientOptions = testClientOptions()
    clientOptions.notice = { notice in notices.withLock { $0.append(notice) } }
    let client = SMPClient(transport: transport, options: clientOptions)
    try await client.open()
    var uploadOptions = UploadOptions()
    uploadOptions.firstChunkTimeout = .seconds(1)
    let result = try await client.upload(try FirmwareFile(path: testImagePath), options: uploadOptions)
    let overtaking = await client.overtakingAnswers
    await client.close()
    return (result, notices.withLock { $0 }, overtaking)
}
