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

/// `SMPClient.uploadFile` and `downloadFile` against the simulated file system, in-process,
/// over UDP and over a PTY.
@Suite("file upload and download")
struct FileTransferTests {
    static func localFile(_ bytes: [UInt8]) throws -> FirmwareFile {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-fs-\(UUID().uuidString).bin")
        try Data(bytes).write(to: url)
        return try FirmwareFile(path: url.path)
    }

    static func contents(_ count: Int, seed: UInt64 = 7) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }

    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-fs-dl-\(UUID().uuidString).bin").path
    }

    @Test("upload then download round trip, requests filling the device's buffer, sha256 compared", arguments: LinkKind.allCases)
    func roundTrip(link: LinkKind) async throws {
        let (device, server) = simulator { $0.bufferSize = 1024 }
        let served = try ServedDevice.serve(server, over: link)
        let client = try await openClient(served.transport, options: testClientOptions(timeout: .seconds(2)))
        let bytes = Self.contents(20_000)
        let file = try Self.localFile(bytes)
        let upload = try await client.uploadFile(file, to: "/lfs/data/blob.bin")
        #expect(upload.length == bytes.count && upload.resumedFrom == 0)
        #expect(upload.check == .matched(type: "sha256", hex: hexString(MCUbootImage.sha256(bytes))))
        #expect(await device.file("/lfs/data/blob.bin") == bytes)
        // Every upload request fits the device's buffer (serial framing takes 4 of its bytes),
        // and the largest fills what this link allows to the byte, or one byte short where
        // CBOR's length heads make it impossible.
        let limit = await client.maximumRequestSize()
        let sizes = await device.requestLog.filter { $0.header?.group == .fs && $0.header?.command == 0 }.map(\.bytes.count)
        #expect(!sizes.isEmpty)
        #expect(sizes.allSatisfy { $0 <= limit })
        #expect((limit - 1...limit).contains(sizes.max() ?? 0), "largest \(sizes.max() ?? 0) of \(limit)")

        let path = Self.temporaryPath()
        let download = try await client.downloadFile("/lfs/data/blob.bin", to: path)
        #expect(download.length == bytes.count)
        #expect(download.check.type == "sha256")
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == bytes)
        #expect(!FileManager.default.fileExists(atPath: path + ".part"))
        await client.close()
        await served.stop()
    }

    @Test("an upload continues after the part the device holds when its hash matches, and restarts when not")
    func resumeUpload() async throws {
        let (device, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        let bytes = Self.contents(9_000)
        let file = try Self.localFile(bytes)
        await device.setFile("/lfs/r.bin", Array(bytes[0..<4_000]))
        let resumed = try await client.uploadFile(file, to: "/lfs/r.bin")
        #expect(resumed.resumedFrom == 4_000)
        #expect(await device.file("/lfs/r.bin") == bytes)
        let offsets = await device.requestLog.compactMap { record -> UInt64? in
            guard record.header?.group == .fs, record.header?.command == 0, let body = try? SMPPacket(decoding: record.bytes).body,
                let map = try? SMPResponseDecoder.map(from: body) else { return nil }
            return map["off"]?.uint64
        }
        #expect(offsets.first == 4_000)

        var other = bytes
        other[10] ^= 0xFF
        await device.setFile("/lfs/r.bin", Array(other[0..<4_000]))
        let restarted = try await client.uploadFile(file, to: "/lfs/r.bin")
        #expect(restarted.resumedFrom == 0)
        #expect(await device.file("/lfs/r.bin") == bytes)

        // The same file again: nothing to send.
        let again = try await client.uploadFile(file, to: "/lfs/r.bin")
        #expect(again.resumedFrom == bytes.count && again.chunks == 0)
        await client.close()
    }

    @Test("lost answers: the copy sent again is refused with the file's length, and the upload continues there",
        arguments: [SMPVersion.v2, .v1])
    func lostAnswers(version: SMPVersion) async throws {
        let (device, server) = simulator { $0.dropResponses = .requests([4, 6]) }
        var options = testClientOptions(timeout: .milliseconds(100))
        options.forcedVersion = version
        let client = try await openClient(InProcessTransport(server: server), options: options)
        let bytes = Self.contents(6_000)
        // One chunk in flight, so each lost answer costs exactly one copy sent again
        // (WindowedFileUploadTests covers several in flight).
        var transfer = FileTransferOptions()
        transfer.window = 1
        let upload = try await client.uploadFile(try Self.localFile(bytes), to: "/lfs/lossy.bin", options: transfer)
        #expect(upload.check.type == "sha256")
        #expect(await device.file("/lfs/lossy.bin") == bytes)
        // Copies were sent again: more upload requests than the file needs.
        let sent = await device.requestLog.filter { $0.header?.group == .fs && $0.header?.command == 0 }.count
        #expect(sent == upload.chunks + 2, "\(sent) upload requests for \(upload.chunks) chunks")
        await client.close()
    }

    @Test("a download continues a .part that the device's hash confirms, and starts again otherwise")
    func resumeDownload() async throws {
        let (device, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        let bytes = Self.contents(5_000)
        await device.setFile("/lfs/d.bin", bytes)
        let path = Self.temporaryPath()
        try Data(bytes[0..<3_000]).write(to: URL(fileURLWithPath: path + ".part"))
        let resumed = try await client.downloadFile("/lfs/d.bin", to: path)
        #expect(resumed.resumedFrom == 3_000)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == bytes)

        try Data(repeating: 0, count: 3_000).write(to: URL(fileURLWithPath: path + ".part"))
        let restarted = try await client.downloadFile("/lfs/d.bin", to: path)
        #expect(restarted.resumedFrom == 0)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == bytes)
        await client.close()
    }

    @Test("crc32 when the device has no sha256; no check without the hash command; v1 works too")
    func hashTypes() async throws {
        let bytes = Self.contents(3_000)
        for (types, expected) in [(["crc32"], "crc32"), ([], nil)] as [([String], String?)] {
            let (_, server) = simulator { $0.fileHashTypes = types }
            var options = testClientOptions()
            options.forcedVersion = types.isEmpty ? .v1 : nil
            let client = try await openClient(InProcessTransport(server: server), options: options)
            let upload = try await client.uploadFile(try Self.localFile(bytes), to: "/lfs/h.bin")
            #expect(upload.check.type == expected)
            if expected == nil { #expect(upload.check == .unsupported) }
            let path = Self.temporaryPath()
            let download = try await client.downloadFile("/lfs/h.bin", to: path)
            #expect(download.check.type == expected)
            #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == bytes)
            await client.close()
        }
    }

    @Test("a download whose data differs from the device's file fails its sha256 check and leaves only the .part")
    func downloadMismatch() async throws {
        let (device, server) = simulator()
        await device.setFile("/lfs/m.bin", Self.contents(4_000))
        let client = try await openClient(InProcessTransport(server: CorruptingDownloadServer(inner: server)))
        let path = Self.temporaryPath()
        let error = await capture { _ = try await client.downloadFile("/lfs/m.bin", to: path, options: { var o = FileTransferOptions(); o.resume = false; return o }()) }
        guard case SMPClientError.verificationFailed(.dataMismatch, let text)? = error as? SMPClientError else {
            Issue.record("expected a data mismatch, got \(String(describing: error))")
            return
        }
        #expect(text.contains("sha256"))
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(FileManager.default.fileExists(atPath: path + ".part"))
        await client.close()
    }

    @Test("errors: a missing file, a name too long, a path outside the mount point")
    func errors() async throws {
        let (_, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        let missing = await capture { _ = try await client.downloadFile("/lfs/none", to: Self.temporaryPath()) }
        #expect(missing.flatMap(deviceError)?.kind == .group(.fs, 3))
        let file = try Self.localFile(Self.contents(100))
        let long = await capture { _ = try await client.uploadFile(file, to: "/lfs/" + String(repeating: "x", count: 64)) }
        #expect(long.flatMap(deviceError)?.kind == .smp(.invalidArgument))
        let outside = await capture { _ = try await client.uploadFile(file, to: "/sd/x") }
        #expect(outside.flatMap(deviceError)?.kind == .group(.fs, 14))
        await client.close()
    }
}

/// A link that flips one data byte of the first file download answer, as a corrupted transfer would.
final class CorruptingDownloadServer: SMPPacketServer {
    let inner: SimulatorServer
    let done = LockedValue(false)
    init(inner: SimulatorServer) { self.inner = inner }

    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        var reply = await inner.handle(packet)
        guard let header = try? SMPHeader(decoding: packet), header.group == .fs, header.command == 0,
            header.operation == .read, !done.withLock({ $0 })
        else { return reply }
        reply.responses = reply.responses.map { bytes in
            guard let response = try? SMPPacket(decoding: bytes), var map = try? SMPResponseDecoder.map(from: response.body),
                var data = map["data"]?.byteString, !data.isEmpty
            else { return bytes }
            data[0] ^= 0xFF
            map["data"] = .bytes(data)
            done.withLock { $0 = true }
            return SMPPacket(header: response.header, body: CBOREncoder.encode(.map(map))).bytes
        }
        return reply
    }
}
