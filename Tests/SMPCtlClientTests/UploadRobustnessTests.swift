import Foundation
import Testing
@testable import SMPCtlClient
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport

@Suite("Upload resume, loss, busy and bad answers", .timeLimit(.minutes(1)))
struct UploadRobustnessTests {
    // MARK: Resume

    @Test("a disconnect mid-upload resumes from the device's offset without resending earlier data")
    func resumeAfterDisconnect() async throws {
        let image = try TestImage.built(payloadSize: 120 * 1024, seed: 7)
        let (device, server) = simulator { $0.disconnectAfterBytes = 50_000 }
        // No timeout is expected here; a long one keeps a slow machine from resending a chunk.
        var clientOptions = testClientOptions(timeout: .seconds(5))
        clientOptions.minimumTimeout = .seconds(3)
        let client = try await openClient(InProcessTransport(server: server), options: clientOptions)
        var options = UploadOptions()
        options.firstChunkTimeout = .seconds(5)
        let result = try await client.upload(image.file, options: options)

        #expect(result.length == image.file.length)
        #expect(result.resumedFrom > 0)
        #expect(result.resumedFrom < image.file.length)
        #expect(result.match == true)
        await expectUploaded(image, on: device)

        // Two first chunks: the start and the resume probe. Every other offset was sent once,
        // and after the probe the upload went on at the resumed offset.
        let uploads = await uploadRequests(device)
        let firsts = uploads.indices.filter { uploads[$0].first }
        #expect(firsts.count == 2)
        let probe = try #require(firsts.last)
        #expect(uploads[probe].offset == 0)
        #expect(uploads.indices.contains(probe + 1))
        #expect(uploads[probe + 1].offset == result.resumedFrom)
        let later = uploads.filter { !$0.first }.map(\.offset)
        #expect(Set(later).count == later.count, "an offset was sent twice")
        #expect(!uploads[(probe + 1)...].contains { $0.offset < result.resumedFrom && !$0.first })
        // Before the disconnect the device had received exactly up to the resumed offset.
        let beforeProbe = uploads[..<probe]
        #expect(beforeProbe.map { $0.offset + $0.dataLength }.max() == result.resumedFrom)
        await client.close()
    }

    @Test("a full update survives a disconnect mid-upload and reports the resume")
    func updateResumes() async throws {
        let image = try TestImage.built(payloadSize: 64 * 1024, seed: 8)
        let (device, server) = simulator { $0.disconnectAfterBytes = 20_000 }
        let client = try await openClient(InProcessTransport(server: server))
        let report = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions())
        #expect(report.confirmed)
        #expect((report.upload?.resumedFrom ?? 0) > 0)
        #expect(await device.slotStates.first { $0.slot == 0 }?.hash == image.hash)
        await client.close()
    }

    @Test("a device reset mid-upload (state lost) restarts the upload at 0 and completes")
    func resetDuringUpload() async throws {
        let image = try TestImage.built(payloadSize: 40 * 1024, seed: 9)
        let resetAt = 20_000
        let (device, server) = simulator { $0.resetDuringUploadAtOffset = resetAt }
        // One timeout is expected (the reset chunk); a longer one keeps a slow machine from resending others.
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(500)))
        var options = UploadOptions()
        options.firstChunkTimeout = .seconds(2)
        let result = try await client.upload(image.file, options: options)
        #expect(result.length == image.file.length)
        #expect(result.resumedFrom == 0)
        #expect(await device.bootCount == 1)
        await expectUploaded(image, on: device)

        // After the reset the device answered with offset 0 and the client started over with a first chunk.
        let uploads = await uploadRequests(device)
        let firsts = uploads.indices.filter { uploads[$0].first }
        #expect(firsts.count == 2)
        let restart = try #require(firsts.last)
        let crossing = try #require(uploads.firstIndex { $0.offset <= resetAt && resetAt < $0.offset + $0.dataLength })
        #expect(crossing < restart)
        // From the restart on, offsets go up from 0 without gaps.
        var expected = 0
        for upload in uploads[restart...] {
            #expect(upload.offset == expected)
            expected = upload.offset + upload.dataLength
        }
        #expect(expected == image.file.length)
        await client.close()
    }

    @Test("a device that keeps upload state across its reset lets the upload continue where it stopped")
    func resetDuringUploadKeepingState() async throws {
        let image = try TestImage.built(payloadSize: 40 * 1024, seed: 10)
        let resetAt = 20_000
        let (device, server) = simulator {
            $0.resetDuringUploadAtOffset = resetAt
            $0.keepUploadStateAcrossReset = true
        }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(500)))
        var options = UploadOptions()
        options.firstChunkTimeout = .seconds(2)
        let result = try await client.upload(image.file, options: options)
        #expect(result.length == image.file.length)
        await expectUploaded(image, on: device)
        let uploads = await uploadRequests(device)
        #expect(uploads.filter(\.first).count == 1)
        #expect(uploads.contains { $0.offset == resetAt })
        await client.close()
    }

    // MARK: Lossy links

    static let lossyLinks: [LinkFaults] = [
        LinkFaults(drop: 0.15, seed: 1),
        LinkFaults(duplicate: 0.3, seed: 2),
        LinkFaults(delay: 0.2, maximumDelay: .milliseconds(350), seed: 3),
        LinkFaults(reorder: 0.2, seed: 4),
        LinkFaults(corrupt: 0.2, seed: 5),
        LinkFaults(inject: 0.5, seed: 6),
        LinkFaults(drop: 0.08, duplicate: 0.1, delay: 0.08, reorder: 0.08, corrupt: 0.08, inject: 0.2, seed: 7),
    ]

    @Test("upload and state commands complete over a lossy link", arguments: [LinkKind.inProcess, .udp], lossyLinks)
    func lossyLink(link: LinkKind, faults: LinkFaults) async throws {
        let image = try TestImage.built(payloadSize: 24 * 1024, seed: faults.seed)
        let (device, server) = simulator()
        let served = try ServedDevice.serve(server, over: link)
        let faulty = FaultyTransport(served.transport, faults: faults)
        let client = try await openClient(faulty, options: testClientOptions(timeout: .milliseconds(150), retries: 10))
        var options = UploadOptions()
        options.firstChunkTimeout = .milliseconds(300)

        let result = try await client.upload(image.file, options: options)
        #expect(result.length == image.file.length)
        await expectUploaded(image, on: device)

        // State commands.
        let state = try await client.send(ImageManagement.StateReadRequest())
        #expect(state.images.contains { $0.slot == 1 && $0.hash == image.hash })
        let marked = try await client.send(ImageManagement.StateWriteRequest(hash: image.hash, confirm: false))
        #expect(marked.images.contains { $0.slot == 1 && $0.hash == image.hash && $0.pending })
        for index in 0..<5 {
            let echo = try await client.send(OSManagement.EchoRequest("echo \(index)"))
            #expect(echo.text == "echo \(index)")
        }
        let counts = faulty.counts
        #expect(!counts.isEmpty, "no fault fired: \(faults)")
        await client.close()
        await served.stop()
    }

    @Test("a full update completes over a lossy link")
    func lossyUpdate() async throws {
        let image = try TestImage(path: Fixture.blinkyPath)
        let (device, server) = simulator()
        let faults = LinkFaults(drop: 0.1, duplicate: 0.1, delay: 0.05, reorder: 0.05, corrupt: 0.05, inject: 0.2, seed: 99)
        let faulty = FaultyTransport(InProcessTransport(server: server), faults: faults)
        let client = try await openClient(faulty, options: testClientOptions(timeout: .milliseconds(150), retries: 10))
        let report = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions())
        #expect(report.running && report.confirmed)
        let primary = try #require(await device.slotStates.first { $0.slot == 0 })
        #expect(primary.hash == image.hash && primary.confirmed)
        #expect(await device.bootCount == 1)
        await client.close()
    }

    @Test("a lost reset request is sent again; a lost reset answer is not (the device resets once)",
        arguments: LossyResetServer.Loss.allCases)
    func lostReset(loss: LossyResetServer.Loss) async throws {
        let image = try TestImage(path: Fixture.testImagePath)
        let (device, inner) = simulator()
        let server = LossyResetServer(inner: inner, loss: loss)
        let client = try await openClient(InProcessTransport(server: server))
        let report = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions())
        #expect(report.running && report.confirmed)
        #expect(await device.bootCount == 1)
        let primary = try #require(await device.slotStates.first { $0.slot == 0 })
        #expect(primary.hash == image.hash && primary.active && primary.confirmed)
        await client.close()
    }

    @Test("responses the simulator drops are recovered by retries", arguments: [
        ResponseDropPolicy.requests([2, 3, 5, 9, 10, 11]),
        ResponseDropPolicy.random(probability: 0.2, seed: 11),
    ])
    func simulatorDrops(policy: ResponseDropPolicy) async throws {
        let image = try TestImage.built(payloadSize: 24 * 1024, seed: 12)
        let (device, server) = simulator { $0.dropResponses = policy }
        let client = try await openClient(
            InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(100), retries: 10))
        var options = UploadOptions()
        options.firstChunkTimeout = .milliseconds(200)
        let result = try await client.upload(image.file, options: options)
        #expect(result.length == image.file.length)
        await expectUploaded(image, on: device)
        #expect(await device.requestLog.contains { $0.responseDropped })
        let state = try await client.send(ImageManagement.StateReadRequest())
        #expect(state.images.contains { $0.slot == 1 && $0.hash == image.hash })
        await client.close()
    }

    @Test("a lost answer to the last chunk: the device has forgotten the finished upload; the client sees the image listed and does not upload it again")
    func lostFinalAnswer() async throws {
        let image = try TestImage.built(payloadSize: 12 * 1024, seed: 15)
        let (device, inner) = simulator()
        let client = try await openClient(InProcessTransport(server: LostFinalAnswerServer(inner: inner)))
        let result = try await client.upload(image.file)
        #expect(result.length == image.file.length)
        // The device's final `match` was lost with the answer; the image list stands in for it.
        #expect(result.match == nil)
        await expectUploaded(image, on: device)
        // Zephyr clears its upload state when the last chunk is written, so the resent last chunk
        // is answered with offset 0. The client reads the image list, finds the image in slot 1,
        // and does not send the whole image again (it did before: session 1's open end).
        let uploads = await uploadRequests(device)
        #expect(uploads.filter(\.first).count == 1)
        #expect(uploads.last.map { $0.offset + $0.dataLength } == image.file.length)
        await client.close()
    }

    // MARK: Busy and bad offsets

    @Test("a busy device (5 busy answers) still gets the whole upload")
    func busy() async throws {
        let image = try TestImage.built(payloadSize: 16 * 1024, seed: 13)
        let (device, server) = simulator { $0.busyCount = 5 }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(1)))
        let result = try await client.upload(image.file)
        #expect(result.length == image.file.length)
        await expectUploaded(image, on: device)
        let uploads = await uploadRequests(device)
        // The first chunk was sent 6 times: 5 busy answers, then handled.
        #expect(uploads.prefix(6).allSatisfy { $0.first && $0.offset == 0 })
        #expect(uploads.filter(\.first).count == 6)
        await client.close()
    }

    @Test("an upload answer with an offset beyond the data sent is ignored; the upload never jumps ahead",
        arguments: [1, 3])
    func badOffset(window: Int) async throws {
        let image = try TestImage.built(payloadSize: 20 * 1024, seed: 14)
        let (device, inner) = simulator()
        let server = BadOffsetServer(inner: inner, badAnswerAt: 3, jump: 5000)
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(1)))
        var options = UploadOptions()
        options.window = window
        let result = try await client.upload(image.file, options: options)
        #expect(result.length == image.file.length)
        #expect(result.window == window)
        await expectUploaded(image, on: device)

        let badOffset = try #require(server.badlyAnsweredOffset)
        let uploads = await uploadRequests(device)
        // No request ever started beyond the data sent before it.
        var sentEnd = 0
        for upload in uploads {
            #expect(upload.offset <= sentEnd, "jumped to \(upload.offset) with \(sentEnd) bytes sent")
            sentEnd = max(sentEnd, upload.offset + upload.dataLength)
        }
        // With one chunk in flight, the chunk with the bad answer is sent again at once (the device
        // then reports its real offset); with a window, later chunks in flight carry on.
        let index = try #require(uploads.firstIndex { $0.offset == badOffset })
        if window == 1 { #expect(uploads[index + 1].offset == badOffset) }
        await client.close()
    }
}
