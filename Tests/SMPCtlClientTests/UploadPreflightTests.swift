import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport
import Testing

/// The upload checks live in the workflows, so every library caller of `update` and `uploadImage` gets them.
@Suite("upload preflight in the workflows")
struct UploadPreflightTests {
    /// The image-group state reads (command 0, read) among the packets the device handled.
    static func imageListReads(_ device: SimulatedDevice) async -> Int {
        await device.requestLog.filter { $0.header?.group == .image && $0.header?.command == 0 && $0.header?.operation == .read }.count
    }

    @Test("update refuses an image larger than the slot before anything is sent")
    func updateRefusesOversized() async throws {
        let image = try TestImage.built(payloadSize: 24 * 1024, seed: 3)
        let (device, server) = simulator { $0.secondarySlotSizeOverride = 16 * 1024 }
        let client = try await openClient(InProcessTransport(server: server))
        do {
            _ = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions(.uploadOnly))
            Issue.record("an oversized image was not refused")
        } catch {
            guard case .refused(let refusal) = error, refusal.reason == .imageTooLarge else {
                Issue.record("expected an image-too-large refusal, got \(error)")
                return
            }
            #expect(refusal.message.hasPrefix("image too large for the device: the image is \(image.file.length) bytes"))
        }
        #expect(await device.uploadOffset == nil)
        #expect(await device.lastCompletedUpload == nil)
        await client.close()
    }

    @Test("uploadImage: the preflight reports the slot check, the upload lands, the device lists it")
    func uploadImageChecksAndUploads() async throws {
        let image = try TestImage.built(payloadSize: 8 * 1024, seed: 4)
        let (_, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        let events = EventLog()
        let report = try await client.uploadImage(image.file, imageHash: image.hash) { events.append($0) }
        await client.close()
        guard case .fits(let limit, _)? = report.preflight.slotCheck else {
            Issue.record("no slot check in \(report.preflight)")
            return
        }
        #expect(limit >= image.file.length)
        #expect(report.preflight.presentIn == nil && report.preflight.refusal == nil)
        #expect(report.finalState.images.contains { $0.slot == 1 && $0.hash == image.hash })
        #expect(events.names.first == "preflight")
        #expect(events.names.contains("uploadProgress"))
    }

    @Test("uploadImage refuses an oversized image unless forced")
    func uploadImageForce() async throws {
        let image = try TestImage.built(payloadSize: 24 * 1024, seed: 5)
        let (device, server) = simulator { $0.secondarySlotSizeOverride = 16 * 1024 }
        let client = try await openClient(InProcessTransport(server: server))
        await #expect(throws: SMPClientError.self) { _ = try await client.uploadImage(image.file, imageHash: image.hash) }
        #expect(await device.uploadOffset == nil)
        var options = UploadOptions()
        options.force = true
        // Forced, the upload starts; the simulator refuses what does not fit, as Zephyr does.
        let forced = await #expect(throws: SMPClientError.self) {
            _ = try await client.uploadImage(image.file, imageHash: image.hash, options: options)
        }
        if case .refused? = forced { Issue.record("force did not override the refusal") }
        await client.close()
    }

    @Test("an image list already read (by detectRecovery) is not read again for the preflight")
    func imageListReadOnce() async throws {
        let image = try TestImage.built(payloadSize: 4 * 1024, seed: 6)
        let (device, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        let detection = try await client.detectRecovery()
        #expect(!detection.inRecovery)
        let before = await Self.imageListReads(device)
        #expect(before == 1)
        let preflight = try await client.uploadPreflight(
            length: image.file.length, imageHash: image.hash, image: 0, state: detection.state)
        #expect(await Self.imageListReads(device) == before)
        #expect(preflight.state == detection.state)
        let fresh = try await client.uploadPreflight(length: image.file.length, imageHash: image.hash, image: 0)
        #expect(await Self.imageListReads(device) == before + 1)
        #expect(fresh.slotCheck != nil)
        await client.close()
    }

    @Test("a file that is not an image is refused with what it is; force opens it without an identity")
    func notAnImage() throws {
        let path = Fixture.testsDirectory.appendingPathComponent("Fixtures/images/zephyr.bin").path
        do {
            _ = try UploadImageFile.open(path: path)
            Issue.record("a raw binary was not refused")
        } catch {
            guard case .refused(let refusal) = error, case .notAnImage(let kind, let problems) = refusal.reason else {
                Issue.record("expected a not-an-image refusal, got \(error)")
                return
            }
            #expect(kind == .rawBinary)
            #expect(problems.map(\.id) == ["raw-binary"])
            #expect(refusal.message.contains("is not a signed MCUboot image"))
        }
        let forced = try UploadImageFile.open(path: path, force: true)
        #expect(forced.identity == nil)
        #expect(forced.overridden.count == 2)
    }
}
