import Foundation
import SMPCtlClient
import SMPCtlConnection
import SMPCtlFiles
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport
import SMPCtlLocking

/// `-c 'sim?state=FILE'`: the in-process simulator loads its flash and slot state from FILE when
/// the command starts and saves it when the command ends, so that separate commands
/// (`image upload`, `image list`, `image test`, `reset`) see one device.
///
/// The file is JSON (`smpctl-sim-state/1`): each slot's size and its contents up to the last
/// byte that is not erased (base64), the boot flags per image, an upload in progress, the order
/// images were marked, the clock, settings and files. A missing file is a factory-fresh device.
/// It is read bounded (the slots' size, as base64, plus 8 MiB) and written atomically (a
/// temporary file renamed over it).
enum SimulatorStateFile {
    static let format = "smpctl-sim-state/1"

    /// The largest state file read for a simulator with these slots.
    static func maximumSize(_ configuration: SimulatorConfiguration) -> Int {
        let flash = (0..<configuration.slotCount).reduce(0) { $0 + configuration.size(ofSlot: $1) }
        return flash / 3 * 4 + 8 << 20
    }

    /// The saved state, `nil` when there is no file yet.
    static func load(_ path: String, configuration: SimulatorConfiguration) throws(ConnectionError) -> SimulatedDeviceState? {
        let data: Data
        do {
            data = try RegularFile.read(path, limit: maximumSize(configuration))
        } catch {
            if case .missing = error.kind { return nil }
            throw ConnectionError("sim?state: \(error.description)")
        }
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw ConnectionError("sim?state: \(path) is not a simulator state file (\(format)); remove it to start from a fresh device")
        }
        guard document.format == format else {
            throw ConnectionError("sim?state: \(path) is a \(document.format) file, not \(format)")
        }
        let state = document.state
        do {
            try state.check(against: configuration)
        } catch {
            throw ConnectionError("sim?state: \(path) cannot be used: \(error.message)")
        }
        return state
    }

    /// Writes `state` to `path` atomically.
    static func save(_ state: SimulatedDeviceState, to path: String) throws(ConnectionError) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(Document(state))
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ConnectionError("cannot save the simulator state to \(path): \(ProfileStore.reason(error))")
        }
    }

    /// The JSON shape.
    struct Document: Codable {
        struct Slot: Codable {
            var size: Int
            var data: Data
        }

        struct Boot: Codable {
            var pending: String?
            var revertArmed: Bool

            enum CodingKeys: String, CodingKey {
                case pending
                case revertArmed = "revert_armed"
            }
        }

        struct Upload: Codable {
            var image: Int
            var slot: Int
            var offset: Int
            var length: Int
            var sha: Data?
        }

        var format: String
        var slots: [Slot]
        var boot: [Boot]
        var upload: Upload?
        var markOrder: [Int]
        var inRecovery: Bool
        var dateTime: String?
        var settingsRuntime: [String: Data]
        var settingsStored: [String: Data]
        var files: [String: Data]

        enum CodingKeys: String, CodingKey {
            case format, slots, boot, upload, files
            case markOrder = "mark_order"
            case inRecovery = "in_recovery"
            case dateTime = "date_time"
            case settingsRuntime = "settings_runtime"
            case settingsStored = "settings_stored"
        }

        init(_ state: SimulatedDeviceState) {
            format = SimulatorStateFile.format
            slots = zip(state.slots, state.slotSizes).map { Slot(size: $1, data: Data($0)) }
            boot = state.boot.map { Boot(pending: $0.pending?.rawValue, revertArmed: $0.revertArmed) }
            upload = state.upload.map { Upload(image: $0.image, slot: $0.slot, offset: $0.offset, length: $0.length, sha: $0.sha.map { Data($0) }) }
            markOrder = state.markOrder
            inRecovery = state.inRecovery
            dateTime = state.dateTime
            settingsRuntime = state.settingsRuntime.mapValues { Data($0) }
            settingsStored = state.settingsStored.mapValues { Data($0) }
            files = state.files.mapValues { Data($0) }
        }

        /// The state it describes; an unknown pending kind is no pending swap.
        var state: SimulatedDeviceState {
            SimulatedDeviceState(
                slots: slots.map { [UInt8]($0.data) }, slotSizes: slots.map(\.size),
                boot: boot.map { .init(pending: $0.pending.flatMap(SimulatedDeviceState.Pending.init(rawValue:)), revertArmed: $0.revertArmed) },
                upload: upload.map { .init(image: $0.image, slot: $0.slot, offset: $0.offset, length: $0.length, sha: $0.sha.map { [UInt8]($0) }) },
                markOrder: markOrder, inRecovery: inRecovery, dateTime: dateTime,
                settingsRuntime: settingsRuntime.mapValues { [UInt8]($0) }, settingsStored: settingsStored.mapValues { [UInt8]($0) },
                files: files.mapValues { [UInt8]($0) })
        }
    }

    /// The note added to an error that needs state an earlier command would have made (a hash
    /// not found, an empty slot, a missing file), when the connection is `sim` without `state=`.
    static func hint(for error: SMPClientError, connection: ConnectionSpec) -> String? {
        guard case .simulator(let options) = connection, options["state"] == nil else { return nil }
        let needsState: Bool
        switch error {
        case .invalidInput(let message):
            // ImageSelection: no image with that hash prefix, or none in that slot.
            needsState = message.contains("`smpctl image list`")
        case .device(let deviceError):
            let names: Set = [
                "IMG_MGMT_ERR_NO_IMAGE", "IMG_MGMT_ERR_HASH_NOT_FOUND", "MGMT_ERR_ENOENT", "FS_MGMT_ERR_FILE_NOT_FOUND",
                "SETTINGS_MGMT_ERR_KEY_NOT_FOUND",
            ]
            needsState = deviceError.entry.map { names.contains($0.name) } ?? false
        default:
            needsState = false
        }
        guard needsState else { return nil }
        return "-c sim starts empty for each command (its factory image only); to keep its flash and slots between commands, use -c 'sim?state=FILE' in each of them"
    }
}

/// The in-process simulator's transport for `sim?state=FILE`: it saves the device's state each
/// time the link closes (at the end of the command, and before a reconnect).
final class SimulatorStateTransport: SMPTransport {
    private let inner: InProcessTransport
    private let device: SimulatedDevice
    let path: String
    private let failure = LockedValue<ConnectionError?>(nil)

    init(inner: InProcessTransport, device: SimulatedDevice, path: String) {
        self.inner = inner
        self.device = device
        self.path = path
    }

    var description: String { inner.description }
    var framing: SMPFraming { inner.framing }
    var linkModel: LinkModel? { inner.linkModel }

    func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError) {
        try await inner.open(events: events)
    }

    func send(_ packet: [UInt8]) async throws(SMPTransportError) {
        try await inner.send(packet)
    }

    func close() async {
        await inner.close()
        let state = await device.savedState
        do {
            try SimulatorStateFile.save(state, to: path)
            failure.withLock { $0 = nil }
        } catch {
            failure.withLock { $0 = error }
        }
    }

    /// Why the last save failed, if it did.
    var saveFailure: ConnectionError? { failure.withLock { $0 } }
}
