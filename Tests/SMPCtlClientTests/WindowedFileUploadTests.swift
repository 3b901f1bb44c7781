import SMPCtlTestSupport
import Foundation
import SMPCtlLocking
import Testing
@testable import SMPCtlClient
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport

/// `fs upload` with several chunks in flight, through the image upload's engine and window,
/// against the simulated fs_mgmt.c with lost, reordered and damaged packets.
@Suite("windowed file upload", .timeLimit(.minutes(2)))
struct WindowedFileUploadTests {
    /// The fs upload requests the device handled, as (offset, answered with FILE_OFFSET_NOT_VALID).
    static func uploadAnswers(_ device: SimulatedDevice) async -> [UInt64] {
        await device.requestLog.compactMap { record -> UInt64? in
            guard record.header?.group == .fs, record.header?.command == 0, record.header?.operation == .write,
                let body = try? SMPPacket(decoding: record.bytes).body, let map = try? SMPResponseDecoder.map(from: body)
            else { return nil }
            return map["off"]?.uint64
        }
    }

    @Test("lost requests: the chunks behind a lost one are refused with the device's length, the window rewinds there, the sha256 matches",
        arguments: [(SMPVersion.v2, UInt64(3)), (.v1, 5), (.v2, 11)])
    func lostRequests(version: SMPVersion, seed: UInt64) async throws {
        let (device, server) = simulator {
            $0.bufferSize = 512
            $0.requestLossRate = 0.12
            $0.faultSeed = seed
        }
        var options = testClientOptions(timeout: .milliseconds(150), retries: 6)
        options.forcedVersion = version
        let client = try await openClient(InProcessTransport(server: server), options: options)
        let bytes = FileTransferTests.contents(24_000, seed: seed)
        var transfer = FileTransferOptions()
        transfer.window = 3
        let result = try await client.uploadFile(try FileTransferTests.localFile(bytes), to: "/lfs/window.bin", options: transfer)
        await client.close()
        #expect(await device.lostRequestCount > 0)
        #expect(result.window == 3)
        #expect(result.rewinds > 0, "no chunk was refused at an unexpected offset")
        #expect(result.check == .matched(type: "sha256", hex: hexString(MCUbootImage.sha256(bytes))))
        #expect(await device.file("/lfs/window.bin") == bytes)
        // Chunks really were in flight together: some upload request was handled at an offset
        // beyond the device's length (refused), which one chunk at a time never sends.
        let offsets = await Self.uploadAnswers(device)
        #expect(offsets.count > result.chunks - result.rewinds)
    }

    @Test("reordered requests: a chunk handled before the one ahead of it is refused, and the upload ends verified")
    func reorderedRequests() async throws {
        let (device, server) = simulator {
            $0.bufferSize = 512
            $0.reorderRate = 0.2
            $0.faultSeed = 21
        }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(150), retries: 6))
        let bytes = FileTransferTests.contents(20_000, seed: 21)
        var transfer = FileTransferOptions()
        transfer.window = 4
        let result = try await client.uploadFile(try FileTransferTests.localFile(bytes), to: "/lfs/reorder.bin", options: transfer)
        await client.close()
        #expect(result.rewinds > 0)
        #expect(result.check.type == "sha256")
        #expect(await device.file("/lfs/reorder.bin") == bytes)
    }

    @Test("the default window is the device's buf_count less one; without faults no chunk is refused")
    func windowKeepsSeveralInFlight() async throws {
        let (device, server) = simulator { $0.bufferSize = 512; $0.responseDelay = .milliseconds(5) }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(2)))
        let bytes = FileTransferTests.contents(12_000, seed: 2)
        let file = try FileTransferTests.localFile(bytes)
        let result = try await client.uploadFile(file, to: "/lfs/w.bin")
        await client.close()
        // The default window is the device's buf_count (4) less one, as for images.
        #expect(result.window == 3)
        #expect(result.rewinds == 0)
        #expect(await device.file("/lfs/w.bin") == bytes)
    }

    @Test("a continued upload starts the window at the device's length, with no first chunk, and closes the file")
    func resumeWithWindow() async throws {
        let (device, server) = simulator { $0.bufferSize = 512 }
        let client = try await openClient(InProcessTransport(server: server))
        let bytes = FileTransferTests.contents(10_000, seed: 4)
        await device.setFile("/lfs/r.bin", Array(bytes[0..<3_000]))
        let result = try await client.uploadFile(try FileTransferTests.localFile(bytes), to: "/lfs/r.bin")
        await client.close()
        #expect(result.resumedFrom == 3_000)
        #expect(await device.file("/lfs/r.bin") == bytes)
        let offsets = await Self.uploadAnswers(device)
        #expect(offsets.first == 3_000)
        #expect(!offsets.contains(0))
        let closes = await device.requestLog.filter { $0.header?.group == .fs && $0.header?.command == 4 }.count
        #expect(closes == 1)
    }

    @Test("no fault schedule gives a false success: every run either fails with a typed error or leaves exactly the file on the device")
    func neverAFalseSuccess() async throws {
        var successes = 0
        for seed in UInt64(1)...UInt64(8) {
            let (device, server) = simulator {
                $0.bufferSize = 384
                $0.faultSeed = seed
                $0.requestLossRate = 0.08
                $0.reorderRate = 0.08
                $0.duplicateRate = 0.1
                $0.corruptRate = 0.05
                $0.truncateRate = 0.05
                $0.dropResponses = .random(probability: 0.08, seed: seed &* 31)
            }
            let client = try await openClient(
                InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(120), retries: 8))
            let bytes = FileTransferTests.contents(9_000, seed: seed)
            var transfer = FileTransferOptions()
            transfer.window = 3
            transfer.deadline = .seconds(20)
            do {
                let result = try await client.uploadFile(
                    try FileTransferTests.localFile(bytes), to: "/lfs/f.bin", options: transfer)
                successes += 1
                #expect(result.check == .matched(type: "sha256", hex: hexString(MCUbootImage.sha256(bytes))), "seed \(seed)")
                #expect(await device.file("/lfs/f.bin") == bytes, "seed \(seed): a success with other contents on the device")
            } catch {
                // A failure is allowed (and typed); a success that is not true is not.
            }
            await client.close()
        }
        // The faults are mild enough that most schedules finish: the check above ran.
        #expect(successes >= 5, "only \(successes) of 8 schedules finished")
    }

    @Test("without a hash command the file's length is still compared: a file cut short fails instead of passing")
    func truncatedWithoutHashes() async throws {
        let (device, server) = simulator { $0.bufferSize = 512; $0.fileHashTypes = [] }
        let truncating = FileChangingServer.truncating(inner: server, device: device, path: "/lfs/t.bin", afterChunks: 5)
        let client = try await openClient(InProcessTransport(server: truncating))
        let bytes = FileTransferTests.contents(12_000, seed: 10)
        let error = await capture {
            _ = try await client.uploadFile(try FileTransferTests.localFile(bytes), to: "/lfs/t.bin")
        }
        // Whole and untouched, the same upload passes with the check reported as not compared.
        let whole = try await client.uploadFile(try FileTransferTests.localFile(bytes), to: "/lfs/whole.bin")
        await client.close()
        #expect(whole.check == .unsupported)
        guard case .verificationFailed(.dataMismatch, let message)? = error as? SMPClientError else {
            Issue.record("expected a data mismatch, got \(String(describing: error))")
            return
        }
        #expect(message.contains("bytes, not the 12000 bytes"), "\(message)")
    }

    @Test("a device whose file changes behind the upload fails the final hash check instead of passing")
    func changedBehindTheUpload() async throws {
        let (device, server) = simulator { $0.bufferSize = 512 }
        let tampering = FileChangingServer.tampering(inner: server, device: device, path: "/lfs/t.bin", afterChunks: 6)
        let client = try await openClient(InProcessTransport(server: tampering))
        let bytes = FileTransferTests.contents(12_000, seed: 9)
        let error = await capture {
            _ = try await client.uploadFile(try FileTransferTests.localFile(bytes), to: "/lfs/t.bin")
        }
        await client.close()
        guard case .verificationFailed(.dataMismatch, _)? = error as? SMPClientError else {
            Issue.record("expected a data mismatch, got \(String(describing: error))")
            return
        }
    }
}

/// Changes a file of the simulated device behind the upload's back once some upload chunks have
/// arrived (the upload itself goes on undisturbed): `change` returns the new contents, or `nil`
/// to leave them.
final class FileChangingServer: SMPPacketServer {
    let inner: SimulatorServer
    let device: SimulatedDevice
    let path: String
    let afterChunks: Int
    let change: @Sendable ([UInt8]) -> [UInt8]?
    private let count = ManagedCounter()

    init(inner: SimulatorServer, device: SimulatedDevice, path: String, afterChunks: Int,
        change: @escaping @Sendable ([UInt8]) -> [UInt8]?)
    {
        self.inner = inner
        self.device = device
        self.path = path
        self.afterChunks = afterChunks
        self.change = change
    }

    /// Cuts the file back to its first 100 bytes, as a first chunk delivered late would
    /// (fs_mgmt.c truncates at `off` 0).
    static func truncating(inner: SimulatorServer, device: SimulatedDevice, path: String, afterChunks: Int) -> FileChangingServer {
        FileChangingServer(inner: inner, device: device, path: path, afterChunks: afterChunks) { contents in
            contents.count > 100 ? Array(contents.prefix(100)) : nil
        }
    }

    /// Flips one byte already written, as another writer (or a flash fault) would.
    static func tampering(inner: SimulatorServer, device: SimulatedDevice, path: String, afterChunks: Int) -> FileChangingServer {
        FileChangingServer(inner: inner, device: device, path: path, afterChunks: afterChunks) { contents in
            guard contents.count > 10 else { return nil }
            var changed = contents
            changed[10] ^= 0xFF
            return changed
        }
    }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        let reply = await inner.handle(packet)
        if let header = try? SMPHeader(decoding: packet), header.group == .fs, header.command == 0, header.operation == .write,
            count.increment() == afterChunks, let contents = await device.file(path), let changed = change(contents)
        {
            await device.setFile(path, changed)
        }
        return reply
    }
}

/// A thread-safe counter for test servers.
final class ManagedCounter: Sendable {
    private let value = LockedValue(0)
    func increment() -> Int { value.withLock { $0 += 1; return $0 } }
}
