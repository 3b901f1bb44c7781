import Foundation
import SMPCtlLocking
import Testing
@testable import SMPCtlClient
import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport

/// Holds the answers to upload chunks and releases each batch in reverse order, so the client
/// sees out-of-order responses and must have had a whole batch in flight.
final class ReversingServer: SMPPacketServer {
    private struct State {
        var held: [[UInt8]] = []
        var length = 0
        var maximumHeld = 0
    }

    let inner: SimulatorServer
    let batch: Int
    private let state = LockedValue(State())

    init(inner: SimulatorServer, batch: Int) {
        self.inner = inner
        self.batch = batch
    }

    /// The most answers held back at once (chunks that were in flight together).
    var maximumHeld: Int { state.withLock { $0.maximumHeld } }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        let reply = await inner.handle(packet)
        guard let header = try? SMPHeader(decoding: packet), header.group == .image, header.command == 1,
            let map = try? SMPResponseDecoder.map(from: Array(packet.dropFirst(SMPHeader.size))),
            let offset = map["off"]?.uint64, let data = map["data"]?.byteString
        else { return reply }
        return state.withLock { s in
            if let length = map["len"]?.uint64 {
                s.length = Int(length)
                return reply  // the first chunk is answered at once
            }
            s.held.append(contentsOf: reply.responses)
            s.maximumHeld = max(s.maximumHeld, s.held.count)
            let isLast = Int(offset) + data.count >= s.length
            guard s.held.count >= batch || isLast else { return SMPServerReply(responses: []) }
            defer { s.held.removeAll() }
            return SMPServerReply(responses: s.held.reversed())
        }
    }
}

/// Loses the request of one upload chunk (the device never sees it).
final class LostChunkServer: SMPPacketServer {
    let inner: SimulatorServer
    let lostOffset: Int
    private let lost = LockedValue(false)

    init(inner: SimulatorServer, lostOffset: Int) {
        self.inner = inner
        self.lostOffset = lostOffset
    }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        if let header = try? SMPHeader(decoding: packet), header.group == .image, header.command == 1,
            let map = try? SMPResponseDecoder.map(from: Array(packet.dropFirst(SMPHeader.size))),
            let offset = map["off"]?.uint64, Int(offset) >= lostOffset,
            lost.withLock({ done in defer { done = true }; return !done })
        {
            return SMPServerReply(responses: [])
        }
        return await inner.handle(packet)
    }
}

@Suite("Windowed upload")
struct WindowedUploadTests {
    @Test("the default window is the device's buffer count less one, and 1 without params")
    func defaultWindow() async throws {
        let image = try TestImage.built(payloadSize: 24 * 1024, seed: 31)
        let (_, server) = simulator { $0.bufferCount = 5 }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(1)))
        #expect(try await client.upload(image.file).window == 4)
        await client.close()

        let (_, plain) = simulator { $0.supportsParams = false }
        let legacy = try await openClient(InProcessTransport(server: plain), options: testClientOptions(timeout: .seconds(1)))
        #expect(try await legacy.upload(image.file).window == 1)
        await legacy.close()
    }

    @Test("answers arriving in reverse order are accepted without resending", arguments: [2, 3, 6])
    func outOfOrder(window: Int) async throws {
        let image = try TestImage.built(payloadSize: 40 * 1024, seed: 32)
        let (device, inner) = simulator { $0.bufferSize = 1024; $0.bufferCount = 8 }
        let server = ReversingServer(inner: inner, batch: window)
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(2)))
        var options = UploadOptions()
        options.window = window
        let result = try await client.upload(image.file, options: options)
        await expectUploaded(image, on: device)
        #expect(server.maximumHeld == window)
        let uploads = await uploadRequests(device)
        // Every chunk was sent once, in increasing offsets: nothing the device acknowledged went twice.
        #expect(uploads.count == result.chunks)
        #expect(zip(uploads, uploads.dropFirst()).allSatisfy { $0.offset + $0.dataLength == $1.offset })
        await client.close()
    }

    @Test("a lost chunk is resent from the device's offset and leaves no gap", arguments: [1, 3, 7])
    func lostChunk(window: Int) async throws {
        let image = try TestImage.built(payloadSize: 40 * 1024, seed: 33)
        let (device, inner) = simulator { $0.bufferSize = 1024; $0.bufferCount = 8 }
        let server = LostChunkServer(inner: inner, lostOffset: 10_000)
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(300)))
        var options = UploadOptions()
        options.window = window
        _ = try await client.upload(image.file, options: options)
        await expectUploaded(image, on: device)
        let uploads = await uploadRequests(device)
        // The device saw the bytes in order; after the loss the client went back to the device's
        // offset, never below it.
        let firstBeyond = try #require(uploads.firstIndex { $0.offset > 10_000 })
        let lostAt = uploads[firstBeyond - 1].offset + uploads[firstBeyond - 1].dataLength
        let resent = try #require(uploads.lastIndex { $0.offset == lostAt })
        #expect(uploads[resent...].allSatisfy { $0.offset >= lostAt })
        await client.close()
    }

    @Test("busy answers inside a window back off and resend", arguments: [1, 3])
    func busy(window: Int) async throws {
        let image = try TestImage.built(payloadSize: 30 * 1024, seed: 34)
        let (device, server) = simulator { $0.busyCount = 4; $0.bufferSize = 1024 }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(1)))
        var options = UploadOptions()
        options.window = window
        _ = try await client.upload(image.file, options: options)
        await expectUploaded(image, on: device)
        await client.close()
    }

    @Test("a lossy, reordering link with a window of 3 still uploads exactly", arguments: [UInt64(1), 2, 3, 4])
    func lossyLink(seed: UInt64) async throws {
        let image = try TestImage.built(payloadSize: 32 * 1024, seed: 35)
        let (device, server) = simulator { $0.bufferSize = 768 }
        var faults = LinkFaults()
        faults.drop = 0.05
        faults.duplicate = 0.05
        faults.reorder = 0.1
        faults.corrupt = 0.03
        faults.seed = seed
        let transport = FaultyTransport(InProcessTransport(server: server), faults: faults)
        let client = try await openClient(transport, options: testClientOptions(timeout: .milliseconds(300), retries: 10))
        var options = UploadOptions()
        options.window = 3
        options.firstChunkTimeout = .seconds(1)
        _ = try await client.upload(image.file, options: options)
        await expectUploaded(image, on: device)
        await client.close()
    }
}
