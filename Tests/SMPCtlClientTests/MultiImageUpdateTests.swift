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
}
