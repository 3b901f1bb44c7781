import SMPCtlTestSupport
import Foundation
import Testing
@testable import SMPCtlClient
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport

/// The links an end-to-end update runs over.
enum LinkKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inProcess = "in-process"
    case udp
    case pty

    var testDescription: String { rawValue }
}

/// A served simulator and a client transport to it.
struct ServedDevice {
    let transport: any SMPTransport
    let stop: @Sendable () async -> Void

    static func serve(_ server: any SMPPacketServer, over link: LinkKind, maximumDatagram: Int? = 1500) throws
        -> ServedDevice
    {
        switch link {
        case .inProcess:
            return ServedDevice(transport: InProcessTransport(server: server), stop: {})
        case .udp:
            let endpoint = try UDPServerEndpoint(host: "127.0.0.1", port: 0, server: server)
            let address = try SocketAddress.resolve(host: "127.0.0.1", port: endpoint.boundPort)
            return ServedDevice(
                transport: UDPTransport(address: address, maximumDatagram: maximumDatagram), stop: { endpoint.stop() })
        case .pty:
            let endpoint = try PTYServerEndpoint(server: server)
            return ServedDevice(transport: SerialTransport(path: endpoint.path), stop: { await endpoint.stop() })
        }
    }
}

enum ImageKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case fixture = "test-image.bin"
    case built300KiB = "built 300 KiB"
    var testDescription: String { rawValue }

    func make() throws -> TestImage {
        switch self {
        case .fixture: try TestImage(path: Fixture.testImagePath)
        case .built300KiB: try TestImage.built(payloadSize: 300 * 1024, seed: 300)
        }
    }
}

@Suite("Firmware update end to end", .timeLimit(.minutes(1)))
struct FirmwareUpdateEndToEndTests {
    @Test("the fixture's image hash is the hash TLV")
    func fixtureIdentity() throws {
        let image = try TestImage(path: Fixture.testImagePath)
        #expect(hexString(image.hash) == Fixture.testImageHash)
        #expect(image.file.length == 4770)
        #expect(image.hash != image.file.sha256)
    }

    @Test("full test-and-confirm update", arguments: LinkKind.allCases, ImageKind.allCases)
    func fullUpdate(link: LinkKind, imageKind: ImageKind) async throws {
        let image = try imageKind.make()
        let (device, server) = simulator { $0.slotSize = 512 * 1024 }
        let oldHash = try #require(await device.slotStates.first { $0.slot == 0 }?.hash)
        let served = try ServedDevice.serve(server, over: link)
        let client = try await openClient(served.transport)
        let events = EventLog()

        let report = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions()) {
            events.append($0)
        }
        await client.close()
        await served.stop()

        // The device runs the new image, confirmed, and keeps the old one in slot 1.
        let states = await device.slotStates
        let primary = try #require(states.first { $0.image == 0 && $0.slot == 0 })
        #expect(primary.hash == image.hash)
        #expect(primary.active && primary.confirmed && !primary.pending)
        #expect(primary.version == image.version)
        let secondary = try #require(states.first { $0.slot == 1 })
        #expect(secondary.hash == oldHash)
        #expect(!secondary.active && !secondary.pending)
        #expect(await device.bootCount == 1)
        #expect(Array(await device.flashContents(slot: 0).prefix(image.bytes.count)) == image.bytes)

        // The report says what happened.
        #expect(report.mode == .testAndConfirm)
        #expect(!report.uploadSkipped)
        #expect(report.running)
        #expect(report.confirmed)
        let upload = try #require(report.upload)
        #expect(upload.length == image.file.length)
        #expect(upload.resumedFrom == 0)
        #expect(upload.match == true)
        #expect(upload.chunks >= (image.file.length + upload.chunkSize - 1) / upload.chunkSize)
        let requestLimit = await client.maximumRequestSize()
        #expect(upload.chunkSize > 0 && upload.chunkSize <= requestLimit)
        let reconnect = try #require(report.reconnectSeconds)
        #expect(reconnect > 0 && reconnect < 5)
        #expect(report.finalState == states)

        let names = events.names
        // The preflight (slot check) comes before anything else the update does.
        #expect(names.first == "preflight")
        #expect(names.dropFirst().first == "readParameters")
        #expect(names.contains("uploadFinished") && names.contains("markedForTest") && names.contains("resetting"))
        #expect(names.last == "confirmed")
        #expect(!names.contains("alreadyOnDevice"))
    }

    @Test("every mode", arguments: FirmwareUpdateMode.allCases)
    func modes(mode: FirmwareUpdateMode) async throws {
        let image = try TestImage(path: Fixture.blinkyPath)
        #expect(image.version == "1.1.0")
        let (device, server) = simulator()
        let oldHash = try #require(await device.slotStates.first { $0.slot == 0 }?.hash)
        let client = try await openClient(InProcessTransport(server: server))
        let report = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions(mode))
        #expect(report.mode == mode)
        #expect(report.upload?.length == image.file.length)
        let states = await device.slotStates
        let primary = try #require(states.first { $0.slot == 0 })
        let secondary = try #require(states.first { $0.slot == 1 })

        switch mode {
        case .testAndConfirm, .confirmOnly:
            #expect(report.running && report.confirmed)
            #expect(primary.hash == image.hash && primary.active && primary.confirmed)
            #expect(primary.version == "1.1.0")
            #expect(secondary.hash == oldHash && !secondary.pending)
            // Confirmed: another reset keeps the new image.
            await device.powerCycle()
            #expect(await device.slotStates.first { $0.slot == 0 }?.hash == image.hash)
        case .testOnly:
            #expect(report.running)
            #expect(!report.confirmed)
            #expect(primary.hash == image.hash && primary.active && !primary.confirmed)
            // The old image is the confirmed one; the next reset reverts to it.
            #expect(secondary.hash == oldHash && secondary.confirmed)
            await device.powerCycle()
            let after = await device.slotStates
            let reverted = try #require(after.first { $0.slot == 0 })
            #expect(reverted.hash == oldHash && reverted.active && reverted.confirmed)
            #expect(reverted.version == "1.0.0")
            #expect(after.first { $0.slot == 1 }?.hash == image.hash)
        case .uploadOnly:
            #expect(!report.running && !report.confirmed)
            #expect(report.reconnectSeconds == nil)
            #expect(await device.bootCount == 0)
            #expect(primary.hash == oldHash && primary.active && primary.confirmed)
            #expect(secondary.hash == image.hash && !secondary.pending && !secondary.active)
            #expect(report.finalState == states)
        }
        await client.close()
    }

    @Test("a second update of the same image skips the upload")
    func alreadyOnDevice() async throws {
        let image = try TestImage(path: Fixture.testImagePath)
        let (device, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        _ = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions())
        let uploadsAfterFirst = await uploadRequests(device).count
        #expect(uploadsAfterFirst > 0)
        let bootsAfterFirst = await device.bootCount

        let events = EventLog()
        let report = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions()) {
            events.append($0)
        }
        #expect(report.uploadSkipped)
        #expect(report.upload == nil)
        #expect(report.running && report.confirmed)
        #expect(events.names.contains("alreadyOnDevice"))
        #expect(!events.names.contains("uploadStarted"))
        #expect(await uploadRequests(device).count == uploadsAfterFirst)
        #expect(await device.bootCount == bootsAfterFirst)
        await client.close()
    }

    @Test("an image uploaded earlier (upload-only) is not sent again; the update goes on to test and confirm")
    func uploadedEarlier() async throws {
        let image = try TestImage(path: Fixture.blinkyPath)
        let (device, server) = simulator()
        let client = try await openClient(InProcessTransport(server: server))
        _ = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions(.uploadOnly))
        let uploads = await uploadRequests(device).count

        let report = try await client.update(image.file, imageHash: image.hash, options: testUpdateOptions())
        #expect(report.uploadSkipped)
        #expect(report.upload == nil)
        #expect(report.running && report.confirmed)
        #expect(await uploadRequests(device).count == uploads)
        let primary = try #require(await device.slotStates.first { $0.slot == 0 })
        #expect(primary.hash == image.hash && primary.confirmed)
        await client.close()
    }
}

/// Collects update events from the callback.
final class EventLog: Sendable {
    private let events = LockedValue<[FirmwareUpdateEvent]>([])
    func append(_ event: FirmwareUpdateEvent) { events.withLock { $0.append(event) } }
    var all: [FirmwareUpdateEvent] { events.withLock { $0 } }
    var names: [String] {
        all.map { event in
            let text = "\(event)"
            return String(text.prefix { $0 != "(" })
        }
    }
}

import SMPCtlLocking
