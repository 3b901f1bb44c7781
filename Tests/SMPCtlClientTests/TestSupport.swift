import SMPCtlTestSupport
import Foundation
import SMPCtlLocking
import Testing
import SMPCtlCBOR
@testable import SMPCtlClient
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport

/// Locates fixtures and example images.
enum Fixture {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    static let testImagePath = testsDirectory.appendingPathComponent("Fixtures/test-image.bin").path
    static let blinkyPath = testsDirectory.deletingLastPathComponent()
        .appendingPathComponent("Examples/images/blinky-1.1.0.signed.bin").path
    static let testImageHash = "3f3476eb44ddd881d84d9129dc67a8e0a0cdf66892a153381a17ded173031d05"
}



/// An image file written to a temporary directory, with what the device will list for it.
struct TestImage: Sendable {
    let path: String
    let file: FirmwareFile
    let hash: [UInt8]
    let version: String
    let bytes: [UInt8]

    /// Opens an existing signed image.
    init(path: String) throws {
        self.path = path
        file = try FirmwareFile(path: path)
        let identity = try FirmwareImageIdentity(file: file)
        hash = identity.hash
        version = identity.version
        bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Builds a signed-like image (SHA-256 TLV) of about `payloadSize` bytes and writes it to a temporary file.
    static func built(payloadSize: Int, version: MCUbootImageVersion = MCUbootImageVersion(major: 2, minor: 0, revision: 0),
        seed: UInt64 = 1) throws -> TestImage
    {
        var generator = SplitMix64(seed: seed)
        var payload = [UInt8](repeating: 0, count: payloadSize)
        payload.withUnsafeMutableBytes { raw in
            var index = 0
            while index < raw.count {
                var word = generator.next()
                for _ in 0..<min(8, raw.count - index) {
                    raw[index] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    index += 1
                }
            }
        }
        let bytes = MCUbootImageBuilder(version: version, payload: payload).build()
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("smpctl-client-test-\(UUID().uuidString).bin")
        try Data(bytes).write(to: url)
        return try TestImage(path: url.path)
    }
}

/// Client options suited to tests: short timeouts, quick busy back-off.
func testClientOptions(timeout: Duration = .milliseconds(200), retries: Int = 3) -> SMPClientOptions {
    var options = SMPClientOptions()
    options.timeout = timeout
    options.retries = retries
    options.busyDelay = .milliseconds(5)
    return options
}

/// Opens a client on `transport`.
func openClient(_ transport: any SMPTransport, options: SMPClientOptions = testClientOptions()) async throws
    -> SMPClient
{
    let client = SMPClient(transport: transport, options: options)
    try await client.open()
    return client
}

/// Update options suited to tests.
func testUpdateOptions(_ mode: FirmwareUpdateMode = .testAndConfirm) -> FirmwareUpdateOptions {
    var options = FirmwareUpdateOptions(mode: mode)
    options.reconnectTimeout = .seconds(5)
    options.upload.firstChunkTimeout = .milliseconds(500)
    return options
}

/// A simulator device and its in-process transport.
func simulator(_ configure: (inout SimulatorConfiguration) -> Void = { _ in }) -> (SimulatedDevice, SimulatorServer) {
    var configuration = SimulatorConfiguration()
    configure(&configuration)
    let device = SimulatedDevice(configuration: configuration)
    return (device, SimulatorServer(device: device))
}

/// Checks that the secondary slot holds `image` and the device matched its SHA-256.
func expectUploaded(_ image: TestImage, on device: SimulatedDevice, sourceLocation: SourceLocation = #_sourceLocation)
    async
{
    let slot = await device.flashContents(slot: 1)
    #expect(Array(slot.prefix(image.bytes.count)) == image.bytes, sourceLocation: sourceLocation)
    let completed = await device.lastCompletedUpload
    #expect(completed?.match == true, sourceLocation: sourceLocation)
    #expect(completed?.validationError == nil, sourceLocation: sourceLocation)
    #expect(await device.slotStates.contains { $0.slot == 1 && $0.hash == image.hash }, sourceLocation: sourceLocation)
}

/// One upload request as the device received it.
struct LoggedUpload: Sendable, Hashable {
    var offset: Int
    var dataLength: Int
    var packetSize: Int
    var first: Bool
}

/// The upload requests in a device's request log, in order.
func uploadRequests(_ device: SimulatedDevice) async -> [LoggedUpload] {
    var uploads: [LoggedUpload] = []
    for record in await device.requestLog {
        guard let header = record.header, header.group == .image,
            header.command == ImageManagement.Command.upload.rawValue, header.operation == .write,
            let map = try? SMPResponseDecoder.map(from: Array(record.bytes.dropFirst(SMPHeader.size))),
            let offset = map["off"]?.uint64
        else { continue }
        uploads.append(LoggedUpload(
            offset: Int(offset), dataLength: map["data"]?.byteString?.count ?? 0, packetSize: record.bytes.count,
            first: map["len"] != nil))
    }
    return uploads
}

/// The device error inside a client error, if it is one.
func deviceError(_ error: any Error) -> SMPDeviceError? {
    if case SMPClientError.device(let deviceError)? = error as? SMPClientError { return deviceError }
    return nil
}

/// Runs `body` and returns the error it throws (recording an issue when it does not throw).
func capture(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> (any Error)? {
    do {
        try await body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// Builds a response packet to `request` with `body` as the CBOR map.
func responsePacket(to request: SMPHeader, version: SMPVersion? = nil, body: CBORMap) -> [UInt8] {
    var encoder = CBOREncoder()
    encoder.append(.map(body))
    let header = SMPHeader(
        operation: request.operation.response, version: version ?? request.version, length: 0, group: request.group,
        sequence: request.sequence, command: request.command)
    return SMPPacket(header: header, body: encoder.bytes).bytes
}

/// Seconds in a duration.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

// MARK: - Test doubles

/// A server that never answers.
final class SilentServer: SMPPacketServer {
    let received = LockedValue(0)
    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        received.withLock { $0 += 1 }
        return SMPServerReply(responses: [])
    }
}

/// A legacy device: rewrites every request to SMP v1 before the simulator sees it, so it answers in v1.
/// Records the version bits each request arrived with.
final class LegacyV1Server: SMPPacketServer {
    let inner: SimulatorServer
    let versions = LockedValue<[SMPVersion]>([])
    init(inner: SimulatorServer) { self.inner = inner }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        guard let header = try? SMPHeader(decoding: packet) else { return SMPServerReply(responses: []) }
        versions.withLock { $0.append(header.version) }
        var rewritten = packet
        rewritten[0] &= ~0b0001_1000
        return await inner.handle(rewritten)
    }
}

/// A device that only speaks v1: it answers every v2 request with `rc 13` (version too new),
/// in a header of `answerVersion`, and hands v1 requests to the simulator.
final class V1OnlyServer: SMPPacketServer {
    let inner: SimulatorServer
    let answerVersion: SMPVersion
    let versions = LockedValue<[SMPVersion]>([])
    init(inner: SimulatorServer, answerVersion: SMPVersion) {
        self.inner = inner
        self.answerVersion = answerVersion
    }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        guard let header = try? SMPHeader(decoding: packet) else { return SMPServerReply(responses: []) }
        versions.withLock { $0.append(header.version) }
        if header.version != .v1 {
            return SMPServerReply(responses: [
                responsePacket(to: header, version: answerVersion, body: CBORMap([.init(key: "rc", value: .unsigned(13))]))
            ])
        }
        return await inner.handle(packet)
    }
}

/// Hands requests to the simulator, but once answers the `badAnswerAt`-th non-first upload chunk
/// with an offset `jump` bytes beyond the one the device reported.
final class BadOffsetServer: SMPPacketServer {
    let inner: SimulatorServer
    let badAnswerAt: Int
    let jump: Int
    private let state = LockedValue((uploads: 0, badSequence: UInt8?.none, badOffset: Int?.none))

    init(inner: SimulatorServer, badAnswerAt: Int = 3, jump: Int = 5000) {
        self.inner = inner
        self.badAnswerAt = badAnswerAt
        self.jump = jump
    }

    /// The offset of the request that got the bad answer, once it was sent.
    var badlyAnsweredOffset: Int? { state.withLock { $0.badOffset } }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        var reply = await inner.handle(packet)
        guard let header = try? SMPHeader(decoding: packet), header.group == .image,
            header.command == ImageManagement.Command.upload.rawValue,
            let request = try? SMPResponseDecoder.map(from: Array(packet.dropFirst(SMPHeader.size))),
            request["len"] == nil, let requestOffset = request["off"]?.uint64
        else { return reply }
        let fire = state.withLock { s -> Bool in
            s.uploads += 1
            guard s.uploads == badAnswerAt else { return false }
            s.badOffset = Int(requestOffset)
            return true
        }
        guard fire, let response = reply.responses.first,
            let map = try? SMPResponseDecoder.map(from: Array(response.dropFirst(SMPHeader.size))),
            let off = map["off"]?.uint64
        else { return reply }
        var bad = map
        bad["off"] = .unsigned(off + UInt64(jump))
        reply.responses = [responsePacket(to: header, body: bad)]
        return reply
    }
}

/// What a ``FaultyTransport`` does to received packets, each with its own probability.
struct LinkFaults: Sendable, CustomStringConvertible {
    var drop = 0.0
    var duplicate = 0.0
    var delay = 0.0
    /// Longest delay; delayed packets overtake and are overtaken by others.
    var maximumDelay: Duration = .milliseconds(300)
    /// Hold a packet back and deliver it after the next one.
    var reorder = 0.0
    /// Flip one bit of the header's length or sequence field, so the packet does not decode or is not in flight.
    var corrupt = 0.0
    /// Also deliver a copy with a sequence number that is not in flight.
    var inject = 0.0
    var seed: UInt64 = 42

    var description: String {
        "drop \(drop) dup \(duplicate) delay \(delay) reorder \(reorder) corrupt \(corrupt) inject \(inject)"
    }
}

/// Wraps a real transport and damages what it receives: drops, duplicates, delays, reorders,
/// corrupts packets and injects stray responses. Sending is left alone.
final class FaultyTransport: SMPTransport {
    private struct State {
        var random: SplitMix64
        var held: [UInt8]?
        var pump: Task<Void, Never>?
        var counts: [String: Int] = [:]
    }

    let inner: any SMPTransport
    let faults: LinkFaults
    private let state: LockedValue<State>

    init(_ inner: any SMPTransport, faults: LinkFaults) {
        self.inner = inner
        self.faults = faults
        state = LockedValue(State(random: SplitMix64(seed: faults.seed)))
    }

    var description: String { "faulty \(inner.description)" }
    var framing: SMPFraming { get async { await inner.framing } }

    /// How often each fault fired.
    var counts: [String: Int] { state.withLock { $0.counts } }

    func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError) {
        let (innerEvents, innerContinuation) = AsyncStream<SMPTransportEvent>.makeStream()
        try await inner.open(events: innerContinuation)
        let pump = Task { [self] in
            for await event in innerEvents {
                if case .packet(let bytes) = event {
                    deliver(bytes, to: events)
                } else {
                    events.yield(event)
                }
            }
        }
        state.withLock {
            $0.pump?.cancel()
            $0.pump = pump
        }
    }

    private func chance(_ p: Double, _ random: inout SplitMix64) -> Bool {
        guard p > 0 else { return false }
        return Double(random.next() >> 11) / Double(UInt64(1) << 53) < p
    }

    private func deliver(_ bytes: [UInt8], to events: AsyncStream<SMPTransportEvent>.Continuation) {
        enum Action {
            case drop
            case deliver([[UInt8]])
            case delay([UInt8], Duration)
        }
        let action = state.withLock { s -> Action in
            func count(_ name: String) { s.counts[name, default: 0] += 1 }
            var packet = bytes
            if chance(faults.drop, &s.random) {
                count("drop")
                return .drop
            }
            if chance(faults.corrupt, &s.random), packet.count >= SMPHeader.size {
                count("corrupt")
                // Bytes 2–3 are the body length (the packet then does not decode), byte 6 the sequence.
                let byte = [2, 3, 6][Int(s.random.next() % 3)]
                packet[byte] ^= UInt8(1) << UInt8(s.random.next() % 8)
            }
            var out = [packet]
            if chance(faults.inject, &s.random), packet.count >= SMPHeader.size {
                count("inject")
                var stray = packet
                stray[6] &+= 128  // one request in flight at a time: this sequence is not in flight
                out.insert(stray, at: 0)
            }
            if chance(faults.duplicate, &s.random) {
                count("duplicate")
                out.append(packet)
            }
            if chance(faults.delay, &s.random) {
                count("delay")
                let limit = max(1, Int(faults.maximumDelay.components.seconds * 1000
                    + faults.maximumDelay.components.attoseconds / 1_000_000_000_000_000))
                return .delay(packet, .milliseconds(Int(s.random.next() % UInt64(limit))))
            }
            if let held = s.held {
                s.held = nil
                out.append(held)
            } else if chance(faults.reorder, &s.random) {
                count("reorder")
                s.held = packet
                out.removeAll { $0 == packet }
            }
            return .deliver(out)
        }
        switch action {
        case .drop: break
        case .deliver(let packets):
            for packet in packets { events.yield(.packet(packet)) }
        case .delay(let packet, let wait):
            Task {
                try? await Task.sleep(for: wait)
                events.yield(.packet(packet))
            }
        }
    }

    func send(_ packet: [UInt8]) async throws(SMPTransportError) {
        try await inner.send(packet)
    }

    func close() async {
        let pump = state.withLock { s in
            defer {
                s.pump = nil
                s.held = nil
            }
            return s.pump
        }
        pump?.cancel()
        await inner.close()
    }
}

/// Loses the first OS reset request on its way to the device, or the device's answer to it.
final class LossyResetServer: SMPPacketServer {
    enum Loss: String, Sendable, CaseIterable { case request, response }
    let inner: SimulatorServer
    let loss: Loss
    private let fired = LockedValue(false)
    init(inner: SimulatorServer, loss: Loss) {
        self.inner = inner
        self.loss = loss
    }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        guard let header = try? SMPHeader(decoding: packet), header.group == .os,
            header.command == OSManagement.Command.reset.rawValue,
            fired.withLock({ done in defer { done = true }; return !done })
        else { return await inner.handle(packet) }
        switch loss {
        case .request: return SMPServerReply(responses: [])
        case .response:
            var reply = await inner.handle(packet)
            reply.responses = []
            return reply
        }
    }
}

/// Loses the device's answer to the last upload chunk (the one carrying `match`), once.
final class LostFinalAnswerServer: SMPPacketServer {
    let inner: SimulatorServer
    private let fired = LockedValue(false)
    init(inner: SimulatorServer) { self.inner = inner }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        var reply = await inner.handle(packet)
        guard let response = reply.responses.first,
            let map = try? SMPResponseDecoder.map(from: Array(response.dropFirst(SMPHeader.size))), map["match"] != nil,
            fired.withLock({ done in defer { done = true }; return !done })
        else { return reply }
        reply.responses = []
        return reply
    }
}
