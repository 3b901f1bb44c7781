import SMPCtlTestSupport
import Foundation
import Testing
@testable import SMPCtlClient
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport

/// Two-image updates (nRF5340 application and network cores) and the NCSDK-34106 marking order.
@Suite("Multi-image update", .timeLimit(.minutes(1)))
struct MultiImageUpdateTests {
    static func images() throws -> (application: PackageImage, network: PackageImage) {
        let app = try TestImage.built(payloadSize: 12 * 1024, seed: 40)
        let net = try TestImage.built(payloadSize: 8 * 1024, seed: 41)
        return (
            PackageImage(image: 0, file: app.file, hash: app.hash, version: app.version),
            PackageImage(image: 1, file: net.file, hash: net.hash, version: net.version)
        )
    }

    @Test("the simulator skips the network core when the application core is marked first (NCSDK-34106)")
    func simulatorModelsTheSkip() async throws {
        let (application, network) = try Self.images()
        let (device, server) = simulator { $0.imageCount = 2; $0.networkCoreOrderSkip = true }
        let client = try await openClient(InProcessTransport(server: server))
        for item in [application, network] {
            var options = UploadOptions(image: item.image)
            options.expectedImageHash = item.hash
            _ = try await client.upload(item.file, options: options)
        }
        // The wrong order: application core first.
        _ = try await client.send(ImageManagement.StateWriteRequest(hash: application.hash, confirm: true))
        _ = try await client.send(ImageManagement.StateWriteRequest(hash: network.hash, confirm: true))
        await client.close()
        await device.powerCycle()
        #expect(await device.skippedAtLastBoot == [1])
        let states = await device.slotStates
        #expect(states.contains { $0.image == 0 && $0.slot == 0 && $0.hash == application.hash && $0.active })
        #expect(!states.contains { $0.image == 1 && $0.slot == 0 && $0.hash == network.hash })
    }

    @Test("updateImages marks the network core first, so both cores run the new images, confirmed")
    func bothCoresUpdated() async throws {
        let (application, network) = try Self.images()
        let (device, server) = simulator { $0.imageCount = 2; $0.networkCoreOrderSkip = true }
        let client = try await openClient(InProcessTransport(server: server))
        let report = try await client.updateImages([application, network], options: testUpdateOptions())
        await client.close()
        #expect(report.uploaded == [0, 1])
        #expect(report.marked == [1, 0])
        #expect(report.running && report.confirmed)
        #expect(await device.skippedAtLastBoot.isEmpty)
        let states = await device.slotStates
        for item in [application, network] {
            #expect(states.contains { $0.image == item.image && $0.slot == 0 && $0.hash == item.hash && $0.active && $0.confirmed })
        }
        // Each upload went to its own image's secondary slot (image field in the first chunk).
        let firstChunks = await device.requestLog.compactMap { record -> Int? in
            guard let header = record.header, header.group == .image, header.command == 1,
                let map = try? SMPResponseDecoder.map(from: Array(record.bytes[SMPHeader.size...])),
                map["off"]?.uint64 == 0
            else { return nil }
            return map["image"]?.int ?? 0
        }
        // A first chunk resent after a slow answer (a loaded machine) is the same upload.
        let uploads = firstChunks.reduce(into: [Int]()) { if $0.last != $1 { $0.append($1) } }
        #expect(uploads == [0, 1], "\(firstChunks)")
    }

    @Test("an image larger than its own core's slot is refused before anything is uploaded, naming the core and the sizes")
    func networkCoreImageTooLarge() async throws {
        // nRF5340-like: the network core's slots (image 1) are far smaller than the application's.
        let app = try TestImage.built(payloadSize: 40 * 1024, seed: 50)
        let net = try TestImage.built(payloadSize: 30 * 1024, seed: 51)
        let (device, server) = simulator {
            $0.imageCount = 2
            $0.slotSize = 64 * 1024
            $0.slotSizeByImage = [1: 32 * 1024]
        }
        let client = try await openClient(InProcessTransport(server: server))
        let images = [
            PackageImage(image: 0, file: app.file, hash: app.hash, version: app.version, core: "application core"),
            PackageImage(image: 1, file: net.file, hash: net.hash, version: net.version, core: "network core"),
        ]
        let error = await capture { _ = try await client.updateImages(images, options: testUpdateOptions()) }
        await client.close()
        guard case .verificationFailed(.imageTooLarge, let message)? = error as? SMPClientError else {
            Issue.record("expected image-too-large, got \(String(describing: error))")
            return
        }
        // max_image_size of image 1: its 32 KiB slot less one 4 KiB sector (swap using move).
        #expect(message.contains("image 1 (network core)"))
        #expect(message.contains("\(net.file.length) bytes"))
        #expect(message.contains("\(28 * 1024) bytes for image 1 (max_image_size)"))
        #expect(!message.contains("image 0"), "the application image fits its 64 KiB slot: \(message)")
        #expect(await uploadRequests(device).isEmpty, "something was uploaded")
    }

    @Test("the check is per core: an application image larger than the network core's slot still goes to image 0")
    func perCoreLimits() async throws {
        let app = try TestImage.built(payloadSize: 40 * 1024, seed: 52)
        let net = try TestImage.built(payloadSize: 10 * 1024, seed: 53)
        let (device, server) = simulator {
            $0.imageCount = 2
            $0.slotSize = 64 * 1024
            $0.slotSizeByImage = [1: 32 * 1024]
        }
        let client = try await openClient(InProcessTransport(server: server))
        let report = try await client.updateImages(
            [
                PackageImage(image: 0, file: app.file, hash: app.hash, version: app.version),
                PackageImage(image: 1, file: net.file, hash: net.hash, version: net.version),
            ], options: testUpdateOptions())
        await client.close()
        #expect(report.running && report.confirmed)
        #expect(await device.flashContents(slot: 2).count == 32 * 1024)
    }

    @Test("without slot info (rc 8) the sizes are not checked and the update goes on")
    func noSlotInfo() async throws {
        let (application, network) = try Self.images()
        let (_, server) = simulator { $0.imageCount = 2; $0.supportsSlotInfo = false }
        let client = try await openClient(InProcessTransport(server: server))
        let report = try await client.updateImages([application, network], options: testUpdateOptions())
        await client.close()
        #expect(report.running)
    }
}
