import SMPCtlTestSupport
import Foundation
import Testing
@testable import SMPCtlClient
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport

/// Regression tests for the upload engine (issue 9): bounded progress, adaptive timing, typed errors.
@Suite("Upload engine: bounds, adaptive timing, hostile devices")
struct UploadEngineTests {
    @Test("a device whose offset does not follow the data ends the upload with a typed error", arguments: HostileOffset.allCases)
    func hostileOffsets(_ hostile: HostileOffset) async throws {
        let image = try TestImage.built(payloadSize: 40_000)
        let (device, server) = simulator { $0.hostileOffset = hostile }
        let client = try await openClient(InProcessTransport(server: server))
        let clock = ContinuousClock()
        let start = clock.now
        let error = await capture { _ = try await client.upload(image.file) }
        let elapsed = clock.now - start
        guard let clientError = error as? SMPClientError else {
            Issue.record("expected a typed error, got \(String(describing: error))")
            return
        }
        switch clientError {
        case .stalled, .verificationFailed(.offsetBeyondSent, _): break
        default: Issue.record("unexpected error \(clientError)")
        }
        #expect(elapsed < .seconds(400))  // a hang guard; the bound that matters is the bytes below
        // Bounded bytes: far less than the 56 MB one run sent for a 49 KB file.
        let sent = await uploadRequests(device).reduce(0) { $0 + $1.dataLength }
        #expect(sent < 600_000)
    }

    @Test("busy forever ends within the busy budget with the device's rc 10")
    func busyForever() async throws {
        let image = try TestImage.built(payloadSize: 4_000)
        let (_, server) = simulator { $0.busyCount = Int.max }
        var options = testClientOptions()
        options.busyBudget = .milliseconds(800)
        let client = try await openClient(InProcessTransport(server: server), options: options)
        let clock = ContinuousClock()
        let start = clock.now
        let error = await capture { _ = try await client.upload(image.file) }
        #expect(clock.now - start < .seconds(400))  // hang guard under parallel load
        #expect(error.flatMap(deviceError)?.kind == .smp(.busy))
    }

    @Test("corrupted answers are lost answers: the upload still completes", arguments: [UInt64(3), 7, 11])
    func corruptedAnswers(seed: UInt64) async throws {
        let image = try TestImage.built(payloadSize: 30_000)
        let (device, server) = simulator {
            $0.corruptRate = 0.2
            $0.faultSeed = seed
        }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(retries: 6))
        _ = try await client.upload(image.file)
        await expectUploaded(image, on: device)
    }

    @Test("a slow BLE link with three requests in flight finishes without starting over")
    func slowLinkFinishes() async throws {
        let image = try TestImage.built(payloadSize: 6_000)
        let (device, _) = simulator()
        let link = try LinkModel(parsing: "ble:mtu=65,interval=100ms,ppe=2")
        let server = SimulatorServer(device: device, link: link)
        var options = SMPClientOptions()
        options.busyDelay = .milliseconds(5)
        let client = try await openClient(InProcessTransport(server: server, linkModel: link), options: options)
        let result = try await client.upload(image.file)
        await expectUploaded(image, on: device)
        let firsts = await uploadRequests(device).filter(\.first).count
        #expect(firsts == 1)
        #expect(result.length == image.file.length)
    }

    @Test("the image list must not contradict itself")
    func contradictoryImageList() throws {
        let hash = [UInt8](repeating: 7, count: 32)
        let fake = ImageManagement.SlotState(image: 0, slot: 0, version: "2.0.0", hash: hash, confirmed: true, active: true)
        let real = ImageManagement.SlotState(image: 0, slot: 0, version: "2.0.0", hash: hash, confirmed: false, active: true)
        #expect(throws: SMPClientError.self) {
            try ImageStateCheck.validate(ImageManagement.StateResponse(images: [fake, real]))
        }
        let shortHash = ImageManagement.SlotState(image: 0, slot: 1, version: "2.0.0", hash: [1, 2, 3])
        #expect(throws: SMPClientError.self) {
            try ImageStateCheck.validate(ImageManagement.StateResponse(images: [shortHash]))
        }
        try ImageStateCheck.validate(ImageManagement.StateResponse(images: [fake]))
    }

    @Test("nothing listening on a UDP port fails at once with 'port unreachable'")
    func udpRefused() async throws {
        // Bind a socket to learn a free port, then close it so nothing listens there.
        let port = try freeUDPPort()
        let transport = UDPTransport(address: try SocketAddress.resolve(host: "127.0.0.1", port: port))
        let client = try await openClient(transport, options: testClientOptions(timeout: .seconds(5)))
        let clock = ContinuousClock()
        let start = clock.now
        let error = await capture { _ = try await client.send(OSManagement.EchoRequest("hi")) }
        // Without the refusal the client would wait for 4 timeouts of 5 s; allow for a loaded machine.
        #expect(clock.now - start < .seconds(400))  // hang guard: the .refused code below proves it did not time out
        guard case SMPClientError.transport(let transportError)? = error as? SMPClientError else {
            Issue.record("expected a transport error, got \(String(describing: error))")
            return
        }
        #expect(transportError.code == .refused)
        #expect(transportError.reason.contains("unreachable"))
    }

    @Test("a cancelled upload stops promptly with .cancelled")
    func cancellation() async throws {
        let image = try TestImage.built(payloadSize: 60_000)
        let (_, server) = simulator()
        let link = try LinkModel(parsing: "serial:115200")
        let client = try await openClient(InProcessTransport(server: SimulatorServer(device: SimulatedDevice(configuration: .init()), link: link)))
        _ = server
        let task = Task { try await client.upload(image.file) }
        try await Task.sleep(for: .milliseconds(800))
        let clock = ContinuousClock()
        let start = clock.now
        task.cancel()
        let result = await task.result
        #expect(clock.now - start < .seconds(400))  // hang guard; the upload alone takes about 6 s
        guard case .failure(let error) = result, case SMPClientError.cancelled? = error as? SMPClientError else {
            Issue.record("expected .cancelled, got \(result)")
            return
        }
    }
}

@Suite("Upload window and round-trip estimator without I/O")
struct UploadWindowTests {
    @Test("the first chunk goes alone, then the window fills")
    func windowFill() throws {
        var window = UploadWindow(length: 10_000, window: 3, chunkSize: 1_000)
        #expect(window.canSend)
        window.sent(0..<1_000)
        #expect(!window.canSend)
        #expect(try window.answered(offset: 1_000, match: nil) == .advanced)
        for start in stride(from: 1_000, to: 4_000, by: 1_000) {
            #expect(window.canSend)
            window.sent(start..<(start + 1_000))
        }
        #expect(!window.canSend)
    }

    @Test("an offset that never advances is a stall, not a livelock")
    func stuckOffset() throws {
        var window = UploadWindow(length: 100_000, window: 1, chunkSize: 1_000)
        window.sent(0..<1_000)
        _ = try window.answered(offset: 1_000, match: nil)
        var threw = false
        for _ in 0..<1_000 {
            window.sent(window.nextOffset..<(window.nextOffset + 1_000))
            do {
                _ = try window.answered(offset: 1_000, match: nil)
            } catch {
                threw = true
                break
            }
        }
        #expect(threw)
        #expect(window.bytesWithoutProgress <= window.stallBudget + 1_000)
    }

    @Test("an offset that goes back and forth cannot reset the stall count")
    func oscillatingOffset() throws {
        var window = UploadWindow(length: 100_000, window: 1, chunkSize: 1_000)
        window.sent(0..<1_000)
        _ = try window.answered(offset: 1_000, match: nil)
        window.sent(1_000..<2_000)
        _ = try window.answered(offset: 2_000, match: nil)
        var threw = false
        for step in 0..<1_000 {
            window.sent(window.nextOffset..<(window.nextOffset + 1_000))
            do {
                _ = try window.answered(offset: step % 2 == 0 ? 1_000 : 2_000, match: nil)
            } catch {
                threw = true
                break
            }
        }
        #expect(threw)
    }

    @Test("an answer older than one already counted is counted as stale, and the window follows the device's offset")
    func staleAnswer() throws {
        var window = UploadWindow(length: 10_000, window: 3, chunkSize: 1_000)
        window.sent(0..<1_000)
        _ = try window.answered(offset: 1_000, match: nil)
        window.sent(1_000..<2_000)
        window.sent(2_000..<3_000)
        window.sent(3_000..<4_000)
        // The chunk at 2000 overtook the one at 1000 (EATT): refused, it was answered "1000" first,
        // and the chunk at 1000 was taken after it. The engine reads the answers in sending order.
        #expect(try window.answered(offset: 2_000, match: nil) == .advanced)
        #expect(window.staleAnswers == 0)
        #expect(try window.answered(offset: 1_000, match: nil) == .resync)
        #expect(window.staleAnswers == 1)
        #expect(window.acknowledged == 1_000)
        #expect(window.nextOffset == 1_000)
        // The chunk at 1000 again: the device, at 2000, refuses it naming 2000, and the window moves on.
        window.sent(1_000..<2_000)
        #expect(try window.answered(offset: 2_000, match: nil) == .advanced)
        #expect(window.acknowledged == 2_000)
        #expect(window.staleAnswers == 1)
    }

    @Test("starting over after a damaged upload resets progress, so sending everything again is not a stall")
    func startOver() throws {
        var window = UploadWindow(length: 2_000, window: 2, chunkSize: 1_000)
        window.sent(0..<1_000)
        _ = try window.answered(offset: 1_000, match: nil)
        window.sent(1_000..<2_000)
        #expect(try window.answered(offset: 2_000, match: false) == .complete)
        #expect(window.isComplete)
        window.startOver()
        #expect(!window.isComplete)
        #expect(window.nextOffset == 0)
        #expect(window.highWater == 0)
        #expect(window.bytesWithoutProgress == 0)
        #expect(window.match == nil)
        #expect(window.canSend)
    }

    @Test("offset 0 after the whole file was sent asks for a check before restarting")
    func lostFinalAnswer() throws {
        var window = UploadWindow(length: 2_000, window: 2, chunkSize: 1_000)
        window.sent(0..<1_000)
        _ = try window.answered(offset: 1_000, match: nil)
        window.sent(1_000..<2_000)
        // The final answer was lost; a late copy of a chunk reads 0 after Zephyr reset its state.
        #expect(try window.answered(offset: 0, match: nil) == .verifyThenRestart)
    }

    @Test("restarts at offset 0 are bounded")
    func restartsBounded() {
        var window = UploadWindow(length: 5_000, window: 1, chunkSize: 1_000)
        var caught: SMPClientError?
        for _ in 0..<10 {
            window.sent(0..<1_000)
            _ = try? window.answered(offset: 1_000, match: nil)
            window.sent(1_000..<2_000)
            do {
                _ = try window.answered(offset: 0, match: nil)
            } catch {
                caught = error
                break
            }
        }
        guard case .stalled? = caught else {
            Issue.record("expected a stall after repeated restarts")
            return
        }
    }

    @Test("timeouts follow RFC 6298 and scale with the requests ahead")
    func estimator() {
        var estimator = RoundTripEstimator(floor: .milliseconds(10), ceiling: .seconds(20))
        #expect(estimator.timeout(queueAhead: 0) == .seconds(1))
        estimator.add(sample: .milliseconds(100), queueAhead: 0)
        // SRTT 0.1, RTTVAR 0.05: RTO = 0.1 + 4 * 0.05 = 0.3 s.
        #expect(estimator.timeout(queueAhead: 0) == .milliseconds(300))
        #expect(estimator.timeout(queueAhead: 2) == .milliseconds(900))
        estimator.backOff()
        #expect(estimator.timeout(queueAhead: 0) == .milliseconds(600))
        // Samples taken with requests ahead count per request.
        estimator.add(sample: .milliseconds(300), queueAhead: 2)
        #expect(estimator.smoothed.map { abs($0 - 0.1) < 1e-9 } == true)
        // The ceiling holds per request: a request with k ahead may wait k + 1 ceilings.
        for _ in 0..<10 { estimator.backOff() }
        #expect(estimator.timeout(queueAhead: 0) <= .seconds(20))
        #expect(estimator.timeout(queueAhead: 2) > .seconds(20) && estimator.timeout(queueAhead: 2) <= .seconds(60))
        for _ in 0..<100 { estimator.add(sample: .seconds(30), queueAhead: 0) }
        #expect(estimator.timeout(queueAhead: 0) == .seconds(20))
        #expect(estimator.timeout(queueAhead: 2) == .seconds(60))
    }
}

/// A UDP port with nothing bound to it (bound once, then released).
func freeUDPPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { throw SMPTransportError(.openFailed, "socket") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw SMPTransportError(.openFailed, "bind") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}

/// Tests whose assertions are about time on an emulated link. They run in a process of their own
/// (scripts/test.sh, with SMPCTL_PROPERTY_STRICT_TIME=1), where no other suite starves the
/// cooperative pool; beside the other suites only their functional assertions apply.
@Suite("Timing on emulated links")
struct TimingSensitiveTests {
    @Test("requests queued behind others on a slow link are not resent: the ceiling is per request, the wait starts with the answer before")
    func slowLinkNoResends() async throws {
        // One 1024-byte request takes about 0.55 s on this link, so the third of three in flight
        // is answered about 1.7 s after it was sent: more than the 1.2 s ceiling for one request.
        let image = try TestImage.built(payloadSize: 9_000)
        var configuration = SimulatorConfiguration()
        configuration.bufferSize = 1024
        configuration.bufferCount = 4
        let device = SimulatedDevice(configuration: configuration)
        let link = try LinkModel(parsing: "ble:mtu=65,interval=20ms,ppe=2,phy=1m,dle=27")
        let server = SimulatorServer(device: device, link: link)
        var options = SMPClientOptions()
        options.timeout = .milliseconds(1200)
        options.busyDelay = .milliseconds(5)
        if ProcessInfo.processInfo.environment["SMPCTL_TEST_LOG"] != nil { let t0 = ContinuousClock.now; options.log = { print("log:", ContinuousClock.now - t0, $0.prefix(60)) } }
        let client = try await openClient(InProcessTransport(server: server, linkModel: link), options: options)
        var uploadOptions = UploadOptions()
        uploadOptions.firstChunkTimeout = .seconds(10)
        let result = try await client.upload(image.file, options: uploadOptions)
        await expectUploaded(image, on: device)
        let requests = await uploadRequests(device)
        // Every chunk sent once: no timeout fired.
        let offsets = requests.map(\.offset)
        if UploadPropertyTests.strictTime {
            #expect(Set(offsets).count == offsets.count, "resent offsets: \(offsets)")
        }
        #expect(result.window == 3)
        await client.close()
    }

}
