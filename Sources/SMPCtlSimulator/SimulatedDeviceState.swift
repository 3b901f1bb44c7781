/// What a ``SimulatedDevice`` keeps between runs, as a device keeps it between two commands: its
/// flash (the slots), the boot flags (a pending test or permanent swap, a test boot not yet
/// confirmed), an upload in progress, the clock, settings and files. The CLI saves it for
/// `-c 'sim?state=FILE'` (in `smpctl/SimulatorStateFile.swift`); this module does no I/O.
public struct SimulatedDeviceState: Sendable, Equatable {
    public enum Pending: String, Sendable {
        case test
        case permanent
    }

    /// One image's boot flags.
    public struct Boot: Sendable, Equatable {
        public var pending: Pending?
        /// The primary runs a tested image that is not confirmed yet: the next boot reverts.
        public var revertArmed: Bool

        public init(pending: Pending? = nil, revertArmed: Bool = false) {
            self.pending = pending
            self.revertArmed = revertArmed
        }
    }

    /// An upload the device has taken in part (img_mgmt's RAM state).
    public struct Upload: Sendable, Equatable {
        public var image: Int
        public var slot: Int
        public var offset: Int
        public var length: Int
        public var sha: [UInt8]?

        public init(image: Int, slot: Int, offset: Int, length: Int, sha: [UInt8]?) {
            self.image = image
            self.slot = slot
            self.offset = offset
            self.length = length
            self.sha = sha
        }
    }

    /// Each absolute slot's contents up to its last byte that is not erased (0xFF); the rest of
    /// the slot is erased.
    public var slots: [[UInt8]]
    /// The size of each absolute slot when the state was taken.
    public var slotSizes: [Int]
    public var boot: [Boot]
    public var upload: Upload?
    /// The images marked pending since the last boot, in the order they were marked.
    public var markOrder: [Int]
    public var inRecovery: Bool
    public var dateTime: String?
    public var settingsRuntime: [String: [UInt8]]
    public var settingsStored: [String: [UInt8]]
    public var files: [String: [UInt8]]

    public init(
        slots: [[UInt8]], slotSizes: [Int], boot: [Boot], upload: Upload? = nil, markOrder: [Int] = [], inRecovery: Bool = false,
        dateTime: String? = nil, settingsRuntime: [String: [UInt8]] = [:], settingsStored: [String: [UInt8]] = [:],
        files: [String: [UInt8]] = [:]
    ) {
        self.slots = slots
        self.slotSizes = slotSizes
        self.boot = boot
        self.upload = upload
        self.markOrder = markOrder
        self.inRecovery = inRecovery
        self.dateTime = dateTime
        self.settingsRuntime = settingsRuntime
        self.settingsStored = settingsStored
        self.files = files
    }

    /// The most settings or files a state holds.
    public static let maximumEntries = 4096

    /// Refuses a state that does not fit `configuration`: another slot layout, an upload or a
    /// mark outside the slots, too many entries.
    public func check(against configuration: SimulatorConfiguration) throws(SimulatorStateError) {
        let sizes = (0..<configuration.slotCount).map(configuration.size(ofSlot:))
        guard slotSizes == sizes, slots.count == sizes.count else {
            throw SimulatorStateError(
                "it was saved by a simulator with slots of \(slotSizes.map(String.init).joined(separator: ", ")) bytes; this one has \(sizes.map(String.init).joined(separator: ", ")) (give the same sim options, or remove the file)")
        }
        for (index, data) in slots.enumerated() where data.count > sizes[index] {
            throw SimulatorStateError("slot \(index) holds \(data.count) bytes, more than its \(sizes[index])")
        }
        guard boot.count == sizes.count / 2 else { throw SimulatorStateError("it has boot flags for \(boot.count) images, not \(sizes.count / 2)") }
        if let upload {
            guard (0..<sizes.count).contains(upload.slot), upload.image == upload.slot / 2, upload.length >= 0,
                upload.length <= sizes[upload.slot], (0...upload.length).contains(upload.offset),
                upload.sha.map({ (1...64).contains($0.count) }) ?? true
            else {
                throw SimulatorStateError("its upload in progress does not fit the slots")
            }
        }
        guard markOrder.count <= boot.count, markOrder.allSatisfy({ (0..<boot.count).contains($0) }) else {
            throw SimulatorStateError("it marks images that do not exist")
        }
        guard settingsRuntime.count <= Self.maximumEntries, settingsStored.count <= Self.maximumEntries,
            files.count <= Self.maximumEntries
        else {
            throw SimulatorStateError("it holds more than \(Self.maximumEntries) settings or files")
        }
        if let dateTime, dateTime.utf8.count > 64 { throw SimulatorStateError("its date and time is too long") }
    }
}

/// A saved simulator state that cannot be used.
public struct SimulatorStateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension SimulatedDevice {
    /// A device that starts from `state` instead of the factory image; the state is checked
    /// against `configuration` first.
    public init(configuration: SimulatorConfiguration, restoring state: SimulatedDeviceState) throws(SimulatorStateError) {
        try state.check(against: configuration)
        self.init(configuration: configuration, checkedState: state)
    }

    /// The state to save: what the device would still hold after this command.
    public var savedState: SimulatedDeviceState {
        SimulatedDeviceState(
            slots: flash.map { slot in
                guard let last = slot.lastIndex(where: { $0 != 0xFF }) else { return [] }
                return Array(slot[...last])
            },
            slotSizes: flash.map(\.count),
            boot: boot.map { state in
                SimulatedDeviceState.Boot(
                    pending: state.pending.map { $0 == .test ? .test : .permanent }, revertArmed: state.revertArmed)
            },
            upload: upload.map { .init(image: $0.image, slot: $0.slot, offset: $0.offset, length: $0.length, sha: $0.sha) },
            markOrder: markOrder, inRecovery: inRecovery, dateTime: dateTime, settingsRuntime: settingsRuntime,
            settingsStored: settingsStored, files: files)
    }
}
