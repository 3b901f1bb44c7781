import Foundation
import SMPCtlClient
import SMPCtlFleet
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport
import Testing

@Suite("What a device needs")
struct AssessmentTests {
    func target() throws -> FleetImage {
        let folder = try FleetFixture.folder("assess")
        let manifest = try FleetFixture.manifest(
            "version: 1\nimages:\n  app: {file: \"\(FleetFixture.image)\", version: 1.1.0}\ndevices: []\n", in: folder)
        return try #require(manifest.images.first)
    }

    func slot(_ number: Int, _ version: String, hash: [UInt8]? = nil, active: Bool = false, confirmed: Bool = false, pending: Bool = false) -> ImageManagement.SlotState {
        ImageManagement.SlotState(
            slot: number, version: version, hash: hash ?? [UInt8](repeating: UInt8(number + 1), count: 32), pending: pending,
            confirmed: confirmed, active: active)
    }

    @Test("up to date, update, confirm, and the blocked cases")
    func cases() throws {
        let app = try target()
        func assess(_ slots: [ImageManagement.SlotState], downgrade: Bool = false) -> FleetAssessment {
            FleetAssessment.assess(slots: slots, targets: [app], allowDowngrade: downgrade)
        }
        #expect(assess([slot(0, "1.1.0", active: true, confirmed: true)]).action == .upToDate)
        let update = assess([slot(0, "1.0.0", active: true, confirmed: true)])
        #expect(update.action == .update && update.reason == "app: 1.0.0 -> 1.1.0")
        #expect(assess([slot(0, "1.1.0", hash: app.hash, active: true)]).pending.first?.action == .confirm)
        // A non-active slot marked pending: the next reset swaps it in.
        let pending = assess([slot(0, "1.0.0", active: true, confirmed: true), slot(1, "0.9.0", pending: true)])
        #expect(pending.action == .blocked && pending.reason.contains("slot 1 holds version 0.9.0 marked pending"))
        // The target itself pending is fine: the run resets into it.
        #expect(assess([slot(0, "1.0.0", active: true, confirmed: true), slot(1, "1.1.0", hash: app.hash, pending: true)]).action == .update)
        #expect(assess([slot(0, "1.0.5", active: true)]).action == .blocked)
        let newer = assess([slot(0, "2.0.0", active: true, confirmed: true)])
        #expect(newer.action == .blocked && newer.reason.contains("newer"))
        #expect(assess([slot(0, "2.0.0", active: true, confirmed: true)], downgrade: true).action == .update)
        #expect(assess([]).action == .blocked)
    }

    @Test("fleet plan over UDP: a device with a pending image in slot 1 is blocked, and nothing is written")
    func planBlocked() async throws {
        let fleet = try SimulatedFleet(SimulatedFleetOptions(count: 2))
        defer { fleet.stop() }
        // Put an image in slot 1 of the first device and mark it for test (pending).
        let other = try TestImageMaker.image(version: MCUbootImageVersion(major: 0, minor: 9, revision: 0, build: 0))
        let transport = UDPTransport(address: try SocketAddress.resolve(host: "127.0.0.1", port: fleet.devices[0].port))
        let client = SMPClient(transport: transport)
        try await client.open()
        _ = try await client.upload(other.file)
        _ = try await client.send(ImageManagement.StateWriteRequest(hash: other.hash, confirm: false))
        await client.close()

        let folder = try FleetFixture.folder("plan")
        let manifest = try FleetFixture.manifest(FleetFixture.manifestText(for: fleet), in: folder)
        let before = fleet.devices.map { $0.server?.requestCount ?? 0 }
        let entries = await FleetPlanner.plan(manifest, devices: manifest.devices, parallel: 4, factory: FleetFixture.udpFactory)
        #expect(entries.map(\.action) == [.blocked, .update])
        #expect(entries[0].reason.contains("marked pending"))
        // Read-only: the plan sent image-list reads and nothing else.
        for (index, device) in fleet.devices.enumerated() {
            let log = await device.server?.simulator.device.requestLog ?? []
            let mine = log.suffix((device.server?.requestCount ?? 0) - before[index])
            #expect(!mine.isEmpty && mine.allSatisfy { $0.header?.group == .image && $0.header?.command == 0 && $0.header?.operation == .read })
        }
    }
}

/// A signed image of another version, made from the example's layout (same key-less hash TLV).
enum TestImageMaker {
    struct Made {
        var file: FirmwareFile
        var hash: [UInt8]
    }

    static func image(version: MCUbootImageVersion) throws -> Made {
        let bytes = MCUbootImageBuilder(version: version, payload: [UInt8](repeating: 0x5A, count: 8192)).build()
        let path = try FleetFixture.folder("image") + "/image.bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let file = try FirmwareFile(path: path)
        return Made(file: file, hash: try FirmwareImageIdentity(file: file).hash)
    }
}
