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

@Suite("SMP versions", .timeLimit(.minutes(1)))
struct VersionTests {
    @Test("frames reach the log as hex only while logsFrames is on; the other lines always do",
          arguments: [true, false])
    func frameLogging(logsFrames: Bool) async throws {
        let (_, server) = simulator { $0.dropResponses = .requests([2]) }
        let lines = LockedValue<[String]>([])
        var options = testClientOptions()
        options.log = { line in lines.withLock { $0.append(line) } }
        options.logsFrames = logsFrames
        let client = try await openClient(InProcessTransport(server: server), options: options)
        _ = try await client.send(OSManagement.EchoRequest("one"))
        _ = try await client.send(OSManagement.EchoRequest("two"))
        await client.close()
        let logged = lines.withLock { $0 }
        let frames = logged.filter { $0.hasPrefix("tx seq ") || $0.hasPrefix("rx: ") }
        #expect(logsFrames ? frames.count >= 4 : frames.isEmpty, "\(logged)")
        // The lost answer's resend is logged either way.
        #expect(logged.contains { !$0.hasPrefix("tx seq ") && !$0.hasPrefix("rx: ") }, "\(logged)")
    }

    @Test("a device without v1 answers a forced v1 request with rc 12")
    func rejectV1() async throws {
        let (_, server) = simulator { $0.rejectV1 = true }
        var options = testClientOptions()
        options.forcedVersion = .v1
        let client = try await openClient(InProcessTransport(server: server), options: options)
        let error = await capture { _ = try await client.send(OSManagement.EchoRequest("hi")) }
        let device = try #require(error.flatMap(deviceError))
        #expect(device.kind == .smp(.versionTooOld))
        #expect(device.rawCode == 12)
        #expect(await client.version == .v1)
        await client.close()
    }

    @Test("a legacy device that answers in v1 switches the client to v1")
    func legacyDevice() async throws {
        let (device, inner) = simulator()
        let server = LegacyV1Server(inner: inner)
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(1)))
        #expect(await client.version == .v2)
        let echo = try await client.send(OSManagement.EchoRequest("legacy"))
        #expect(echo.text == "legacy")
        #expect(await client.version == .v1)
        _ = try await client.send(ImageManagement.StateReadRequest())
        _ = try await client.send(OSManagement.EchoRequest("again"))
        // Only the first request went out in v2 (a retry after a slow answer would add more v1 requests).
        let versions = server.versions.withLock { $0 }
        #expect(versions.count >= 3)
        #expect(versions.first == .v2)
        #expect(versions.dropFirst().allSatisfy { $0 == .v1 })
        #expect(await device.requestLog.allSatisfy { $0.header?.version == .v1 })

        // An upload works in v1 too, and group errors come back as v1 rc codes.
        let image = try TestImage.built(payloadSize: 8 * 1024, seed: 20)
        let result = try await client.upload(image.file)
        #expect(result.length == image.file.length)
        let error = await capture {
            _ = try await client.send(ImageManagement.StateWriteRequest(hash: [UInt8](repeating: 7, count: 32), confirm: false))
        }
        let deviceError = try #require(error.flatMap(deviceError))
        #expect(deviceError.version == .v1)
        #expect(deviceError.kind == .smp(SMPReturnCode(rawValue: SimulatedDevice.v1Code(group: .image, code: 8))))
        await client.close()
    }

    @Test("a device answering rc 13 to v2 makes the client fall back to v1 at once",
        arguments: [SMPVersion.v1, SMPVersion.v2])
    func versionTooNew(answerVersion: SMPVersion) async throws {
        let (_, inner) = simulator()
        let server = V1OnlyServer(inner: inner, answerVersion: answerVersion)
        // A fallback that waited for the timeout would take at least 3 s and resend the v2 request first.
        let timeout = Duration.seconds(3)
        // A fixed 3 s wait (no adaptive timeout below it), so a loaded machine cannot resend.
        var options = testClientOptions(timeout: timeout)
        options.minimumTimeout = timeout
        let client = try await openClient(InProcessTransport(server: server), options: options)
        let clock = ContinuousClock()
        let start = clock.now
        let echo = try await client.send(OSManagement.EchoRequest("fallback"))
        let elapsed = clock.now - start
        #expect(echo.text == "fallback")
        // What proves "at once" is the request log below: a fallback after a timeout would have
        // resent the v2 request first. The clock is only a hang guard (loaded machines are slow).
        #expect(elapsed < timeout * 10, "the fallback took \(elapsed)")
        #expect(await client.version == .v1)
        #expect(server.versions.withLock { $0 } == [.v2, .v1])
        _ = try await client.send(ImageManagement.StateReadRequest())
        let versions = server.versions.withLock { $0 }
        #expect(versions.first == .v2 && versions.dropFirst().allSatisfy { $0 == .v1 })
        await client.close()
    }
}

@Suite("Buffer parameters and packet sizes", .timeLimit(.minutes(1)))
struct ParameterTests {
    @Test("a device without mcumgr params gets 384-byte requests")
    func paramsUnsupported() async throws {
        let (device, server) = simulator { $0.supportsParams = false }
        let client = try await openClient(InProcessTransport(server: server))
        let parameters = try await client.readParameters()
        #expect(parameters.bufferSize == 384)
        #expect(parameters.bufferSize == SMPClient.defaultBufferSize)
        #expect(await client.parametersSupported == false)
        #expect(await client.maximumRequestSize() == 384)

        let image = try TestImage.built(payloadSize: 8 * 1024, seed: 30)
        let result = try await client.upload(image.file)
        #expect(result.length == image.file.length)
        let uploads = await uploadRequests(device)
        #expect(!uploads.isEmpty)
        #expect(uploads.allSatisfy { $0.packetSize <= 384 })
        #expect(uploads.dropLast().allSatisfy { $0.packetSize >= 380 })
        #expect(await device.requestLog.allSatisfy { $0.bytes.count <= 384 })
        #expect(await device.lastCompletedUpload?.match == true)
        await client.close()
    }

    @Test("upload requests fill the device's buffer exactly", arguments: [512, 1024, 2048])
    func exactSizing(bufferSize: Int) async throws {
        let (device, server) = simulator { $0.bufferSize = bufferSize }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(2)))
        let parameters = try await client.readParameters()
        #expect(parameters.bufferSize == bufferSize)
        #expect(await client.parametersSupported)

        let image = try TestImage.built(payloadSize: 12 * 1024, seed: 31)
        _ = try await client.upload(image.file)
        let uploads = await uploadRequests(device)
        #expect(uploads.allSatisfy { $0.packetSize <= bufferSize })
        // Only the last chunk (and a first chunk cut by alignment) may be smaller, however often resent.
        let smaller = Set(uploads.filter { $0.packetSize != bufferSize }.map(\.offset))
        #expect(smaller.count <= 2, "requests at offsets \(smaller.sorted()) are smaller than \(bufferSize) bytes")
        #expect(await device.requestLog.allSatisfy { !$0.responseDropped })
        #expect(await device.lastCompletedUpload?.match == true)
        await client.close()
    }

    @Test("the UDP datagram limit bounds every request", arguments: [600, 1500])
    func udpLimit(maximumDatagram: Int) async throws {
        let (device, server) = simulator { $0.bufferSize = 4096 }
        let served = try ServedDevice.serve(server, over: .udp, maximumDatagram: maximumDatagram)
        let client = try await openClient(served.transport, options: testClientOptions(timeout: .seconds(2)))
        try await client.readParameters()
        #expect(await client.maximumRequestSize() == maximumDatagram)
        let image = try TestImage.built(payloadSize: 10 * 1024, seed: 32)
        let result = try await client.upload(image.file)
        #expect(result.length == image.file.length)
        let uploads = await uploadRequests(device)
        #expect(uploads.allSatisfy { $0.packetSize <= maximumDatagram })
        // Only the last chunk (and the first, with its extra fields cut by rounding) may be smaller.
        #expect(Set(uploads.filter { $0.packetSize != maximumDatagram }.map(\.offset)).count <= 2)

        // The transport itself refuses a larger packet.
        let big = SMPRawRequest(
            group: .os, command: 0, operation: .write,
            body: .map(CBORMap([.init(key: "d", value: .text(String(repeating: "x", count: maximumDatagram)))])))
        let error = await capture { _ = try await client.send(big) }
        guard case SMPClientError.transport(let transportError)? = error as? SMPClientError else {
            Issue.record("expected a transport error, got \(String(describing: error))")
            return
        }
        #expect(transportError.code == .packetTooLarge)
        await client.close()
        await served.stop()
    }
}

@Suite("Device errors and timeouts", .timeLimit(.minutes(1)))
struct DeviceErrorTests {
    @Test("an injected image upload error surfaces with its group and code")
    func forcedUploadError() async throws {
        let (_, server) = simulator {
            $0.forcedErrors = [FaultRule(group: .image, command: ImageManagement.Command.upload.rawValue, error: .group(30))]
        }
        let client = try await openClient(InProcessTransport(server: server))
        let image = try TestImage(path: Fixture.testImagePath)
        let error = await capture { _ = try await client.upload(image.file) }
        let device = try #require(error.flatMap(deviceError))
        #expect(device.kind == .group(.image, 30))
        #expect(device.requestGroup == .image)
        #expect(device.command == ImageManagement.Command.upload.rawValue)
        #expect(device.version == .v2)
        await client.close()
    }

    @Test("an injected error part way through the upload stops it with that error")
    func forcedErrorMidUpload() async throws {
        let (device, server) = simulator {
            $0.forcedErrors = [FaultRule(
                group: .image, command: ImageManagement.Command.upload.rawValue, error: .group(31), count: 1,
                minimumUploadOffset: 4000)]
        }
        // A generous timeout: a chunk resent after a spurious timeout would use up the one-shot fault.
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(3)))
        let image = try TestImage.built(payloadSize: 16 * 1024, seed: 40)
        let error = await capture { _ = try await client.upload(image.file) }
        #expect(error.flatMap(deviceError)?.kind == .group(.image, 31))
        #expect(await device.lastCompletedUpload == nil)
        await client.close()
    }

    @Test("an unknown group answers rc 8 (not supported)")
    func unknownGroup() async throws {
        let (_, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        let error = await capture {
            _ = try await client.send(SMPRawRequest(group: .perUser, command: 0, operation: .read))
        }
        let device = try #require(error.flatMap(deviceError))
        #expect(device.kind == .smp(.notSupported))
        #expect(device.requestGroup == SMPGroupID(rawValue: 64))
        await client.close()
    }

    @Test("an image larger than the secondary slot is refused with image error 30")
    func slotTooSmall() async throws {
        let (device, server) = simulator { $0.secondarySlotSizeOverride = 16 * 1024 }
        let client = try await openClient(InProcessTransport(server: server))
        let image = try TestImage.built(payloadSize: 32 * 1024, seed: 41)
        // Forced past the workflow's own slot check (UploadPreflightTests), the device's check answers.
        var options = testUpdateOptions()
        options.upload.force = true
        let error = await capture {
            _ = try await client.update(image.file, imageHash: image.hash, options: options)
        }
        #expect(error.flatMap(deviceError)?.kind == .group(.image, 30))
        #expect(await device.bootCount == 0)
        #expect(!(await device.slotStates.contains { $0.hash == image.hash }))
        await client.close()
    }

    @Test("marking an unknown hash answers image error 8 (hash not found)")
    func hashNotFound() async throws {
        let (_, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        var generator = SplitMix64(seed: 50)
        let hash = (0..<32).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let error = await capture {
            _ = try await client.send(ImageManagement.StateWriteRequest(hash: hash, confirm: false))
        }
        let device = try #require(error.flatMap(deviceError))
        #expect(device.kind == .group(.image, 8))
        #expect(device.entry != nil)
        await client.close()
    }

    @Test("a silent server times out after retries + 1 attempts", arguments: [0, 2])
    func timeout(retries: Int) async throws {
        let server = SilentServer()
        let client = try await openClient(
            InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(100), retries: retries))
        let clock = ContinuousClock()
        let start = clock.now
        let error = await capture { _ = try await client.send(OSManagement.EchoRequest("anyone?")) }
        let elapsed = clock.now - start
        guard case SMPClientError.timedOut(let group, let command, let attempts, _)? = error as? SMPClientError else {
            Issue.record("expected a timeout, got \(String(describing: error))")
            return
        }
        #expect(attempts == retries + 1)
        #expect(group == .os)
        #expect(command == OSManagement.Command.echo.rawValue)
        #expect(server.received.withLock { $0 } == retries + 1)
        #expect(elapsed >= .milliseconds(100 * (retries + 1)))
        await client.close()
    }
}

@Suite("Large images", .timeLimit(.minutes(1)))
struct LargeImageTests {
    @Test("a 4 MiB image uploads completely, read piece by piece")
    func fourMiB() async throws {
        let image = try TestImage.built(payloadSize: 4 * 1024 * 1024, seed: 60)
        let (device, server) = simulator {
            $0.slotSize = 5 * 1024 * 1024
            $0.bufferSize = 16 * 1024
        }
        let client = try await openClient(InProcessTransport(server: server))
        let result = try await client.upload(image.file)
        #expect(result.length == image.file.length)
        #expect(result.match == true)
        #expect(result.chunkSize < 16 * 1024)
        #expect(result.chunks >= image.file.length / (16 * 1024))
        let completed = try #require(await device.lastCompletedUpload)
        #expect(completed.length == image.file.length)
        #expect(completed.match == true)
        #expect(await device.slotStates.contains { $0.slot == 1 && $0.hash == image.hash })
        await client.close()

        // The reader hands out only the piece asked for.
        let reader = try FirmwareReader(file: image.file)
        let piece = try reader.read(offset: 1_000_000, count: 4096)
        #expect(piece == Array(image.bytes[1_000_000..<1_004_096]))
        let tail = try reader.read(offset: image.file.length - 10, count: 4096)
        #expect(tail.count == 10)
        // Known limitation: FirmwareImageIdentity reads the whole file to parse and hash it.
    }
}
