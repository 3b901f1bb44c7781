import SMPCtlTestSupport
import Foundation
import Testing
@testable import SMPCtlClient
import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport

/// Detection of MCUboot's serial recovery and the dfu through it, against the simulator's recovery mode.
@Suite("Serial recovery update", .timeLimit(.minutes(1)))
struct SerialRecoveryClientTests {
    static func recoverySimulator(_ configure: (inout SimulatedRecovery) -> Void = { _ in })
        -> (SimulatedDevice, SimulatorServer)
    {
        var recovery = SimulatedRecovery()
        configure(&recovery)
        return simulator { $0.recovery = recovery }
    }

    /// The transport to a recovery simulator: the serial console over a PTY, or in process with
    /// the console framing's 4 bytes taken from the buffer.
    static func serve(_ server: SimulatorServer, over link: LinkKind) throws -> ServedDevice {
        switch link {
        case .inProcess:
            return ServedDevice(transport: InProcessTransport(server: server, deviceBufferOverhead: 4), stop: {})
        default:
            return try ServedDevice.serve(server, over: link)
        }
    }

    /// The upload chunks the device received, decoded.
    static func uploadChunks(_ device: SimulatedDevice) async throws -> [CBORMap] {
        var chunks: [CBORMap] = []
        for record in await device.requestLog {
            guard let header = record.header, header.group == .image,
                header.command == ImageManagement.Command.upload.rawValue
            else { continue }
            let body = Array(record.bytes[SMPHeader.size...])
            chunks.append(try SMPResponseDecoder.map(from: body))
        }
        return chunks
    }

    @Test("a Zephyr application is not taken for recovery")
    func applicationIsNotRecovery() async throws {
        let (_, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        let detection = try await client.detectRecovery()
        await client.close()
        #expect(!detection.inRecovery)
        #expect(detection.evidence.isEmpty)
    }

    @Test("dfu through recovery: primary slot, len first, no erase, no test or confirm, then the application runs it",
        arguments: [LinkKind.inProcess, .pty])
    func update(link: LinkKind) async throws {
        let image = try TestImage.built(payloadSize: 20 * 1024, seed: 16)
        let (device, server) = Self.recoverySimulator()
        let served = try Self.serve(server, over: link)
        let client = try await openClient(served.transport)
        // A generous bound: on a loaded machine a PTY round trip can take seconds.
        let detection = try await client.detectRecovery(parametersTimeout: .seconds(15))
        #expect(detection.inRecovery)
        #expect(detection.parameters?.bufferCount == 1)
        #expect(detection.evidence.contains("mcumgr params report buf_count 1"))
        let report = try await client.updateInRecovery(
            image.file, imageHash: image.hash, version: image.version, detection: detection, options: testUpdateOptions())
        let requestLimit = await client.maximumRequestSize()
        await client.close()
        await served.stop()

        #expect(report.running)
        #expect(!report.uploadSkipped)
        #expect(await device.inRecovery == false)
        let primary = try #require(await device.slotStates.first { $0.slot == 0 })
        #expect(primary.hash == image.hash && primary.active)
        #expect(Array(await device.flashContents(slot: 0).prefix(image.bytes.count)) == image.bytes)
        // Requests fit MCUboot's buffer: 1024 less the frame's length and CRC.
        #expect(requestLimit == 1020)

        let log = await device.requestLog
        let headers = log.compactMap(\.header)
        #expect(!headers.contains { $0.group == .image && $0.command == ImageManagement.Command.erase.rawValue })
        #expect(!headers.contains { $0.group == .image && $0.command == ImageManagement.Command.state.rawValue && $0.operation == .write })
        #expect(log.allSatisfy { $0.bytes.count <= 1021 })
        let chunks = try await Self.uploadChunks(device)
        let first = try #require(chunks.first)
        #expect(first["off"]?.uint64 == 0)
        #expect(first["len"]?.uint64 == UInt64(image.file.length))
        // `len` goes with offset 0 only (a first chunk resent after a timeout on a loaded machine
        // carries it again, as MCUboot's boot_serial.c requires of every offset-0 chunk).
        #expect(chunks.allSatisfy { ($0["len"] != nil) == ($0["off"]?.uint64 == 0) })
    }

    @Test("MCUboot before 1.9: params go unanswered within the short bound and small frames carry the image")
    func legacyRecovery() async throws {
        let image = try TestImage.built(payloadSize: 6 * 1024, seed: 17)
        let (device, server) = Self.recoverySimulator { $0.version = .v1_8 }
        let served = try Self.serve(server, over: .pty)
        // With a 5 s timeout and 3 retries, an unanswered params request would take 20 s.
        let client = try await openClient(served.transport, options: testClientOptions(timeout: .seconds(5)))
        let clock = ContinuousClock()
        let start = clock.now
        let detection = try await client.detectRecovery(parametersTimeout: .milliseconds(500))
        // Bounded by the probe's own timeout, not the client's timeout and retries (an image
        // state read comes first, so the bound leaves room for a loaded machine).
        #expect(clock.now - start < .seconds(10))
        #expect(detection.inRecovery)
        #expect(detection.parameters == nil)
        #expect(await client.parametersSupported == false)
        let report = try await client.updateInRecovery(
            image.file, imageHash: image.hash, version: image.version, detection: detection, options: testUpdateOptions())
        await client.close()
        await served.stop()
        #expect(report.running)
        // The 384-byte default less the console framing, within the 512-byte buffer of 1.8.
        #expect(await device.requestLog.allSatisfy { $0.bytes.count <= 380 })
        #expect(await device.slotStates.first { $0.slot == 0 }?.hash == image.hash)
    }

    @Test("an image recovery does not validate is reported as not listed, and nothing is reset")
    func rejectedImage() async throws {
        // A payload byte flipped after signing: the hash TLV no longer matches, so bootutil_img_validate fails.
        let built = try TestImage.built(payloadSize: 4 * 1024, seed: 18)
        var bytes = built.bytes
        bytes[1000] ^= 0xFF
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-recovery-\(UUID().uuidString).bin")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        // FirmwareImageIdentity refuses such a file, so the file is opened as it is, with the original hash.
        let file = try FirmwareFile(path: url.path)
        let (device, server) = Self.recoverySimulator()
        let client = try await openClient(InProcessTransport(server: server, deviceBufferOverhead: 4))
        let detection = try await client.detectRecovery()
        await #expect {
            _ = try await client.updateInRecovery(
                file, imageHash: built.hash, version: built.version, detection: detection,
                options: testUpdateOptions())
        } throws: { error in
            guard case SMPClientError.verificationFailed(.uploadNotListed, let text) = error else { return false }
            return text.contains("serial recovery")
        }
        await client.close()
        #expect(await device.bootCount == 0)
        #expect(await device.inRecovery)
    }
}
