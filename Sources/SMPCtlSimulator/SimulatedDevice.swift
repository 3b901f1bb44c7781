public import SMPCtlProtocol
import SMPCtlCBOR
import SMPCtlImage

/// What the device did with one incoming packet.
public struct SimulatorOutput: Sendable, Hashable {
    /// Encoded response packets, one per request in the packet; empty when lost or not answered.
    public var responses: [[UInt8]]
    /// The transport should cut the link after sending ``responses``.
    public var disconnect: Bool
    /// The device is rebooting after this packet (reset command or an injected reset).
    public var resetting: Bool

    public init(responses: [[UInt8]] = [], disconnect: Bool = false, resetting: Bool = false) {
        self.responses = responses
        self.disconnect = disconnect
        self.resetting = resetting
    }
}

/// One packet handed to the device, for tests.
public struct SimulatorRequestRecord: Sendable, Hashable {
    /// 1-based count of packets handled so far.
    public var number: Int
    /// The decoded header of the first request, if the packet had one.
    public var header: SMPHeader?
    /// The raw packet.
    public var bytes: [UInt8]
    /// Whether the response was lost (drop policy), or nothing was answered.
    public var responseDropped: Bool
}

/// The result of the last upload that reached its full length.
public struct SimulatorCompletedUpload: Sendable, Hashable {
    public var slot: Int
    public var length: Int
    /// `match` as reported: the file SHA-256 equals the `sha` sent; `nil` without a 32-byte `sha`.
    public var match: Bool?
    /// The image group code `img_mgmt_read_info` would give for the slot, `nil` when valid.
    public var validationError: Int?
}

/// A simulated Zephyr device with mcumgr and MCUboot (swap using move): a pure-logic SMP
/// server with flash slots, no sockets.
///
/// Decisions: the upload state lives in RAM and is lost on every reset unless
/// ``SimulatorConfiguration/keepUploadStateAcrossReset`` is set; the date/time is lost on
/// reset too. Responses are encoded with indefinite-length maps like zcbor.
public actor SimulatedDevice {
    /// The configuration the device was built with.
    nonisolated public let configuration: SimulatorConfiguration

    enum PendingKind: Sendable, Hashable {
        case test
        case permanent
    }

    struct BootState: Sendable {
        /// Set by image state write on the secondary slot.
        var pending: PendingKind?
        /// The primary runs a tested image that is not confirmed yet: the next boot reverts.
        var revertArmed = false
    }

    struct UploadSession: Sendable {
        var image: Int
        var slot: Int
        var offset: Int
        var length: Int
        var sha: [UInt8]?
    }

    var flash: [[UInt8]]
    var boot: [BootState]
    var upload: UploadSession?
    var dateTime: String?
    /// Runtime values of the settings handler (lost on reset) and the values saved to storage.
    var settingsRuntime: [String: [UInt8]] = SimulatedDevice.factorySettings
    var settingsStored: [String: [UInt8]] = SimulatedDevice.factorySettings
    /// How many times `settings_commit` ran (commit and load), for tests.
    public internal(set) var settingsCommitCount = 0
    /// The simulated littlefs at `/lfs` (on the storage partition) and the open-file state.
    var files: [String: [UInt8]] = SimulatedDevice.factoryFiles
    var fileContext = FileContext()
    /// How many times the storage partition was erased (Zephyr basic group), for tests.
    public internal(set) var storageEraseCount = 0
    /// The `boot_mode` of the last reset request, for tests (nil: none given).
    public internal(set) var lastResetBootMode: UInt64?
    var log: [SimulatorRequestRecord] = []
    var packetCount = 0
    var bytesReceived = 0
    var busyRemaining: Int
    var faultRemaining: [Int?]
    var resetAtOffset: Int?
    var disconnectArmed: Bool
    var dropGenerator: SimulatorRandom?
    /// One generator per random link fault, all from ``SimulatorConfiguration/faultSeed``.
    var faultGenerators: [LinkFault: SimulatorRandom]
    /// A request held back by the reorder fault: its arrival number and bytes.
    var heldRequest: (number: Int, bytes: [UInt8])?
    /// Request packets lost before the device saw them (``SimulatorConfiguration/requestLossRate``).
    public internal(set) var lostRequestCount = 0
    /// The offset a `.stuck` hostile device keeps answering.
    var hostileStuckOffset: Int?
    /// Whether MCUboot's serial recovery answers instead of the application (see
    /// ``SimulatorConfiguration/recovery``).
    public internal(set) var inRecovery: Bool
    /// bs_upload's static state (boot_serial.c): the image number, `curr_off` and `img_size`.
    var recoveryUpload: (image: Int, offset: Int, length: Int)?
    /// The images marked pending since the last boot, in the order they were marked.
    var markOrder: [Int] = []
    /// The images whose pending update the last boot skipped (``SimulatorConfiguration/networkCoreOrderSkip``).
    public internal(set) var skippedAtLastBoot: [Int] = []
    /// Number of boots after the first.
    public private(set) var bootCount = 0
    /// What the device did besides answering (erases, boot decisions), for `simulate -v`; taken
    /// with ``takeActivity()``. Bounded: the oldest lines go first.
    private var activity: [String] = []

    /// The lines recorded since the last call.
    public func takeActivity() -> [String] {
        defer { activity = [] }
        return activity
    }

    func note(_ line: String) {
        if activity.count >= 256 { activity.removeFirst(activity.count - 255) }
        activity.append(line)
    }
    /// The last upload that reached its full length.
    public internal(set) var lastCompletedUpload: SimulatorCompletedUpload?

    public init(configuration: SimulatorConfiguration = SimulatorConfiguration()) {
        self.init(configuration: configuration, checkedState: nil)
    }

    /// The factory state, or `state` (already checked against the configuration) over it.
    init(configuration: SimulatorConfiguration, checkedState state: SimulatedDeviceState?) {
        self.configuration = configuration
        let slots = configuration.slotCount
        var flash: [[UInt8]] = []
        for slot in 0..<slots {
            flash.append([UInt8](repeating: 0xFF, count: configuration.size(ofSlot: slot)))
        }
        for image in 0..<(slots / 2) {
            let factory: [UInt8]
            if image == 0, let custom = configuration.initialImage {
                factory = custom
            } else {
                factory = Self.factoryImage(version: configuration.initialVersion, image: image)
            }
            let count = min(factory.count, flash[2 * image].count)
            flash[2 * image].replaceSubrange(0..<count, with: factory[0..<count])
        }
        switch configuration.recovery?.primaryImage ?? .valid {
        case .valid:
            break
        case .empty:
            flash[0] = [UInt8](repeating: 0xFF, count: flash[0].count)
        case .corrupt:
            // One payload byte after the header (ih_hdr_size, bytes 8-9): the SHA-256 TLV no
            // longer matches (bootutil_img_validate in boot/bootutil/src/image_validate.c fails).
            let headerSize = flash[0].count > 9 ? Int(flash[0][8]) | Int(flash[0][9]) << 8 : 0
            if headerSize > 0, headerSize + 16 < flash[0].count { flash[0][headerSize + 16] ^= 0x5A }
        }
        self.flash = flash
        boot = Array(repeating: BootState(), count: slots / 2)
        inRecovery = configuration.recovery != nil
        busyRemaining = configuration.busyCount
        faultRemaining = configuration.forcedErrors.map(\.count)
        resetAtOffset = configuration.resetDuringUploadAtOffset
        disconnectArmed = configuration.disconnectAfterBytes != nil
        if case .random(_, let seed) = configuration.dropResponses {
            dropGenerator = SimulatorRandom(seed: seed)
        }
        var generators: [LinkFault: SimulatorRandom] = [:]
        for fault in LinkFault.allCases {
            generators[fault] = SimulatorRandom(seed: configuration.faultSeed ^ fault.seedSalt)
        }
        faultGenerators = generators
        if let state {
            for (slot, data) in state.slots.enumerated() where slot < flash.count {
                var contents = [UInt8](repeating: 0xFF, count: flash[slot].count)
                let count = min(data.count, contents.count)
                contents.replaceSubrange(0..<count, with: data[0..<count])
                flash[slot] = contents
            }
            self.flash = flash
            boot = state.boot.map { saved in
                BootState(pending: saved.pending.map { $0 == .test ? .test : .permanent }, revertArmed: saved.revertArmed)
            }
            upload = state.upload.map { UploadSession(image: $0.image, slot: $0.slot, offset: $0.offset, length: $0.length, sha: $0.sha) }
            markOrder = state.markOrder
            inRecovery = state.inRecovery && configuration.recovery != nil
            dateTime = state.dateTime
            settingsRuntime = state.settingsRuntime
            settingsStored = state.settingsStored
            files = state.files
        }
    }

    /// The random link faults, each with its own generator.
    enum LinkFault: CaseIterable, Hashable, Sendable {
        case reorder, duplicate, corrupt, truncate, requestLoss

        var seedSalt: UInt64 {
            switch self {
            case .requestLoss: 0x1057_2E9E
            case .reorder: 0x52E0_4DE4
            case .duplicate: 0xD0B1_1CA7
            case .corrupt: 0xC044_0B7E
            case .truncate: 0x7A0C_A7E5
            }
        }
    }

    /// Whether the fault fires this time (`false` without drawing when its rate is 0).
    func draw(_ fault: LinkFault, rate: Double) -> Bool {
        guard rate > 0, var generator = faultGenerators[fault] else { return false }
        let value = generator.unitInterval()
        faultGenerators[fault] = generator
        return value < rate
    }

    /// A value in 0..<bound from the fault's generator (0 when bound ≤ 1).
    func pick(_ fault: LinkFault, below bound: Int) -> Int {
        guard bound > 1, var generator = faultGenerators[fault] else { return 0 }
        let value = Int(truncatingIfNeeded: generator.next() % UInt64(bound))
        faultGenerators[fault] = generator
        return value
    }

    /// A valid unsigned image (SHA-256 TLV only) with a deterministic payload.
    static func factoryImage(version: String, image: Int) -> [UInt8] {
        var generator = SimulatorRandom(seed: 0x5EED_0000 &+ UInt64(image))
        let payload = (0..<2048).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let parsed = MCUbootImageVersion(string: version) ?? MCUbootImageVersion(major: 1, minor: 0, revision: 0)
        return MCUbootImageBuilder(version: parsed, payload: payload).build()
    }

    // MARK: Accessors for tests

    /// The slots as image state read reports them.
    public var slotStates: [ImageManagement.SlotState] {
        var states: [ImageManagement.SlotState] = []
        for slot in 0..<flash.count {
            guard let image = validImage(slot), let hash = image.sha256TLV else { continue }
            let flags = stateFlags(slot: slot)
            states.append(ImageManagement.SlotState(
                image: slot / 2, slot: slot % 2, version: image.versionString, hash: hash, bootable: image.isBootable,
                pending: flags.pending, confirmed: flags.confirmed, active: flags.active, permanent: flags.permanent))
        }
        return states
    }

    /// The whole contents of an absolute slot (empty for an unknown slot).
    public func flashContents(slot: Int) -> [UInt8] {
        flash.indices.contains(slot) ? flash[slot] : []
    }

    /// The offset of the upload in progress, or `nil` when none is.
    public var uploadOffset: Int? { upload?.offset }

    /// Every packet handled, in order.
    public var requestLog: [SimulatorRequestRecord] { log }

    /// The date/time last set, if any.
    public var storedDateTime: String? { dateTime }

    /// The contents of a file of the simulated file system, `nil` when there is none.
    public func file(_ path: String) -> [UInt8]? { files[path] }

    /// Puts a file on the simulated file system (as an earlier, interrupted upload would).
    public func setFile(_ path: String, _ contents: [UInt8]?) { files[path] = contents }

    /// The paths of the simulated file system.
    public var filePaths: [String] { files.keys.sorted() }

    // MARK: Packets

    /// Handles one packet (one or more concatenated requests) and returns what the device sends.
    ///
    /// With ``SimulatorConfiguration/reorderRate`` a packet may be held back: nothing is answered
    /// now, and it is handled right after the next packet, whose answers come first.
    public func handle(_ request: [UInt8]) async -> SimulatorOutput {
        if draw(.requestLoss, rate: configuration.requestLossRate) {
            lostRequestCount += 1
            note("link: a request of \(request.count) bytes was lost before the device saw it (request loss)")
            return SimulatorOutput()
        }
        packetCount += 1
        let number = packetCount
        if let held = heldRequest {
            heldRequest = nil
            var output = await execute(request, number: number)
            // A device that rebooted on the later packet lost the earlier one with its RAM.
            guard !output.resetting else { return output }
            let late = await execute(held.bytes, number: held.number)
            output.responses += late.responses
            output.disconnect = output.disconnect || late.disconnect
            output.resetting = late.resetting
            return output
        }
        if draw(.reorder, rate: configuration.reorderRate) {
            heldRequest = (number, request)
            return SimulatorOutput()
        }
        return await execute(request, number: number)
    }

    /// Handles one packet that arrived as the `number`th.
    func execute(_ request: [UInt8], number: Int) async -> SimulatorOutput {
        bytesReceived += request.count
        var output = SimulatorOutput()
        var firstHeader: SMPHeader?
        var reset = false

        if let recovery = configuration.recovery, inRecovery {
            firstHeader = try? SMPHeader(decoding: request.prefix(SMPHeader.size))
            if let header = firstHeader, request.count <= recovery.packetLimit,
                let reply = recoveryReply(to: header, packet: request, recovery)
            {
                switch reply {
                case .silentReset: reset = true
                case .resetAfter(let value):
                    output.responses.append(respond(to: header, .success(value)))
                    reset = true
                default: output.responses.append(respond(to: header, reply))
                }
            }
        } else if configuration.enforceBufferSize && request.count > configuration.bufferSize {
            firstHeader = try? SMPHeader(decoding: request)
        } else {
            var position = 0
            while request.count - position >= SMPHeader.size {
                guard let header = try? SMPHeader(decoding: request[position..<(position + SMPHeader.size)]) else {
                    break  // An OP of 4–7: not a request or response; Zephyr ignores it.
                }
                if firstHeader == nil { firstHeader = header }
                let bodyStart = position + SMPHeader.size
                let bodyEnd = bodyStart + Int(header.length)
                guard bodyEnd <= request.count else {
                    output.responses.append(respond(to: header, .smp(SMPReturnCode.corrupt.rawValue)))
                    break
                }
                position = bodyEnd
                let reply = process(header: header, body: Array(request[bodyStart..<bodyEnd]))
                switch reply {
                case .silentReset:
                    reset = true
                case .resetAfter(let value):
                    output.responses.append(respond(to: header, .success(value)))
                    reset = true
                default:
                    output.responses.append(respond(to: header, reply))
                }
                if reset || reply.isError { break }
            }
        }

        let dropped = output.responses.isEmpty || shouldDrop(number)
        if dropped { output.responses = [] }
        output.responses = output.responses.flatMap(damage)
        if disconnectArmed, let limit = configuration.disconnectAfterBytes, bytesReceived >= limit {
            disconnectArmed = false
            output.disconnect = true
        }
        if reset {
            output.resetting = true
            powerCycle()
        }
        log.append(SimulatorRequestRecord(number: number, header: firstHeader, bytes: request, responseDropped: dropped))
        if configuration.responseDelay > .zero {
            try? await Task.sleep(for: configuration.responseDelay)
        }
        return output
    }

    /// The response as the faulty link delivers it: corrupted, truncated, duplicated or intact.
    func damage(_ response: [UInt8]) -> [[UInt8]] {
        var bytes = response
        if bytes.count > SMPHeader.size, draw(.corrupt, rate: configuration.corruptRate) {
            // Additional information 28 is reserved in every major type (RFC 8949 §3): the body
            // no longer decodes, whatever it held. One more byte is flipped for variety.
            let first = SMPHeader.size
            bytes[first] = bytes[first] & 0xE0 | 0x1C
            let other = first + pick(.corrupt, below: bytes.count - first)
            if other != first { bytes[other] ^= 0xA5 }
        }
        if bytes.count > SMPHeader.size, draw(.truncate, rate: configuration.truncateRate) {
            // Keep the header (its length still counts the whole body) and part of the body.
            bytes = Array(bytes.prefix(SMPHeader.size + pick(.truncate, below: bytes.count - SMPHeader.size)))
        }
        return draw(.duplicate, rate: configuration.duplicateRate) ? [bytes, bytes] : [bytes]
    }

    private func shouldDrop(_ number: Int) -> Bool {
        switch configuration.dropResponses {
        case .requests(let numbers)?:
            return numbers.contains(number)
        case .random(let probability, _)?:
            guard var generator = dropGenerator else { return false }
            let draw = generator.unitInterval()
            dropGenerator = generator
            return draw < probability
        case nil:
            return false
        }
    }

    /// A handler's answer.
    enum Reply {
        case success(CBORValue)
        /// A top-level `rc`.
        case smp(Int)
        /// A group error of the request's group.
        case group(Int)
        /// A group error naming another group in SMP v2 (`err.group`), as Zephyr's stat group
        /// does; in SMP v1 it is translated by the request's group.
        case groupNamed(SMPGroupID, Int)
        /// A group error of the request's group with more fields in the same map, as fs_mgmt.c
        /// sends `len` with FILE_OFFSET_NOT_VALID.
        case groupWithFields(Int, CBORMap)
        /// Answer with success, then reboot.
        case resetAfter(CBORValue)
        /// Reboot without answering.
        case silentReset

        var isError: Bool {
            switch self {
            case .smp, .group, .groupNamed, .groupWithFields: true
            default: false
            }
        }
    }

    /// The response packet bytes for `reply`.
    func respond(to request: SMPHeader, _ reply: Reply) -> [UInt8] {
        let version: SMPVersion = request.version > .v2 ? .v2 : request.version
        var body = CBORMap()
        switch reply {
        case .success(let value), .resetAfter(let value):
            body = value.mapValue ?? CBORMap()
        case .smp(let rc):
            body["rc"] = .int(Int64(rc))
        case .group(let code):
            if version == .v1 {
                body["rc"] = .int(Int64(Self.v1Code(group: request.group, code: code)))
            } else {
                body["err"] = .map(CBORMap([
                    .init(key: "group", value: .unsigned(UInt64(request.group.rawValue))),
                    .init(key: "rc", value: .unsigned(UInt64(max(code, 0)))),
                ]))
            }
        case .groupWithFields(let code, let fields):
            if version == .v1 {
                body["rc"] = .int(Int64(Self.v1Code(group: request.group, code: code)))
            } else {
                body["err"] = .map(CBORMap([
                    .init(key: "group", value: .unsigned(UInt64(request.group.rawValue))),
                    .init(key: "rc", value: .unsigned(UInt64(max(code, 0)))),
                ]))
            }
            for entry in fields.entries { body.entries.append(entry) }
        case .groupNamed(let group, let code):
            if version == .v1 {
                body["rc"] = .int(Int64(Self.v1Code(group: request.group, code: code)))
            } else {
                body["err"] = .map(CBORMap([
                    .init(key: "group", value: .unsigned(UInt64(group.rawValue))),
                    .init(key: "rc", value: .unsigned(UInt64(max(code, 0)))),
                ]))
            }
        case .silentReset:
            break
        }
        let header = SMPHeader(
            operation: request.operation == .read ? .readResponse : .writeResponse, version: version, length: 0,
            group: request.group, sequence: request.sequence, command: request.command)
        return SMPPacket(header: header, body: IndefiniteCBOR.encode(.map(body))).bytes
    }

    /// The SMP v1 `rc` a group error code is translated to (`mg_translate_error`).
    public static func v1Code(group: SMPGroupID, code: Int) -> Int {
        switch group {
        case .image:
            switch code {
            case 0: return 0
            case 3, 4: return 5  // NO_IMAGE, NO_TLVS → ENOENT
            case 9, 27, 28: return 6  // NO_FREE_SLOT, CURRENT_VERSION_IS_NEWER, IMAGE_ALREADY_PENDING → EBADSTATE
            case 14, 19, 20, 21, 22, 24, 25: return 3  // → EINVAL
            case 15: return 2  // NO_FREE_MEMORY → ENOMEM
            default: return 1  // EUNKNOWN, including 30–34
            }
        case .os:
            // os_mgmt_translate_error_code (Zephyr os_mgmt.c); not in the reference tables.
            switch code {
            case 0: return 0
            case 2: return 3  // INVALID_FORMAT → EINVAL
            case 3, 4, 6: return 5  // no answer / RTC not set / invalid value → ENOENT
            default: return 1
            }
        case .stat:
            // stat_mgmt_translate_error_code (Zephyr stat_mgmt.c).
            switch code {
            case 0: return 0
            case 2, 3: return 5  // INVALID_GROUP, INVALID_STAT_NAME → ENOENT
            case 4: return 3  // INVALID_STAT_SIZE → EINVAL
            default: return 1
            }
        case .settings:
            // settings_mgmt_translate_error_code (Zephyr settings_mgmt.c).
            switch code {
            case 0: return 0
            case 2: return 3  // KEY_TOO_LONG → EINVAL
            case 3, 4: return 5  // KEY_NOT_FOUND, READ_NOT_SUPPORTED → ENOENT
            default: return 1
            }
        case .shell:
            // shell_mgmt_translate_error_code (Zephyr shell_mgmt.c).
            switch code {
            case 0: return 0
            case 2, 3: return 3  // COMMAND_TOO_LONG, EMPTY_COMMAND → EINVAL
            default: return 1
            }
        case .enumeration:
            // enum_mgmt_translate_error_code (Zephyr enum_mgmt.c): INDEX_TOO_LARGE is EUNKNOWN there.
            switch code {
            case 0: return 0
            case 2: return 3  // TOO_MANY_GROUP_ENTRIES → EINVAL
            default: return 1
            }
        case .fs:
            // fs_mgmt_translate_error_code (Zephyr fs_mgmt.c).
            switch code {
            case 0: return 0
            case 2, 13: return 3  // FILE_INVALID_NAME, CHECKSUM_HASH_NOT_FOUND → EINVAL
            case 3, 14: return 5  // FILE_NOT_FOUND, MOUNT_POINT_NOT_FOUND → ENOENT
            default: return 1
            }
        case .zephyrBasic:
            // zephyr_basic_group_translate_error_code (Zephyr basic_mgmt.c): a failed query or
            // erase becomes EOK there, so a v1 client is told that the erase succeeded.
            switch code {
            case 2: return 5  // FLASH_OPEN_FAILED → ENOENT
            case 0, 3, 4: return 0
            default: return 1
            }
        default:
            return code == 0 ? 0 : 1
        }
    }

    /// Runs one request through the SMP layer checks, fault injection and the group handlers.
    func process(header: SMPHeader, body: [UInt8]) -> Reply {
        if header.operation.isResponse { return .smp(SMPReturnCode.notSupported.rawValue) }
        if header.version > .v2 { return .smp(SMPReturnCode.versionTooNew.rawValue) }
        if header.version == .v1 && configuration.rejectV1 { return .smp(SMPReturnCode.versionTooOld.rawValue) }

        var map: CBORMap?
        if body.isEmpty {
            map = CBORMap()
        } else if let value = try? SMPResponseDecoder.cbor.decode(body), case .map(let decoded) = value {
            map = decoded
        }
        let isUpload = header.group == .image && header.command == ImageManagement.Command.upload.rawValue

        for (index, rule) in configuration.forcedErrors.enumerated() {
            guard rule.group == header.group, rule.command == nil || rule.command == header.command else { continue }
            if let remaining = faultRemaining[index], remaining <= 0 { continue }
            if let minimum = rule.minimumUploadOffset {
                guard isUpload, let off = map?["off"]?.uint64, off >= UInt64(clamping: minimum) else { continue }
            }
            if let remaining = faultRemaining[index] { faultRemaining[index] = remaining - 1 }
            switch rule.error {
            case .smp(let rc): return .smp(rc)
            case .group(let code): return .group(code)
            }
        }
        if isUpload && header.operation == .write && busyRemaining > 0 {
            busyRemaining -= 1
            return .smp(SMPReturnCode.busy.rawValue)
        }
        guard let map else { return .smp(SMPReturnCode.invalidArgument.rawValue) }

        switch header.group {
        case .os: return handleOS(header, map)
        case .image: return handleImage(header, map)
        case .stat: return handleStatistics(header, map)
        case .settings: return handleSettings(header, map)
        case .shell: return handleShell(header, map)
        case .enumeration: return handleEnumeration(header, map)
        case .fs: return handleFile(header, map)
        case .zephyrBasic: return handleZephyrBasic(header, map)
        default: return .smp(SMPReturnCode.notSupported.rawValue)
        }
    }

    // MARK: Reboot

    /// Reboots the device with MCUboot swap-using-move semantics.
    ///
    /// Per image: a pending secondary whose image is valid (hash checked) is swapped into the
    /// primary; after a test swap the new image runs unconfirmed and the following boot reverts
    /// unless it was confirmed; a permanent swap stays. An invalid pending image is erased.
    /// RAM state (upload session unless kept by configuration, date/time) is lost.
    public func powerCycle() {
        bootCount += 1
        skippedAtLastBoot = []
        // NCSDK-34106 (nRF Connect SDK 2.6.0 to 3.4.0 known issue): when the application core's
        // image (0) is marked before the network core's (1), MCUboot skips the network core update.
        if configuration.networkCoreOrderSkip, boot.count > 1, boot[1].pending != nil,
            let application = markOrder.firstIndex(of: 0), let network = markOrder.firstIndex(of: 1),
            application < network
        {
            boot[1].pending = nil
            skippedAtLastBoot = [1]
        }
        markOrder = []
        for index in boot.indices {
            let primary = 2 * index
            let secondary = primary + 1
            if let pending = boot[index].pending {
                boot[index].pending = nil
                if !configuration.bootloaderRejectsImages, let image = validImage(secondary), image.hashMatches,
                    image.isBootable
                {
                    swapSlots(primary, secondary)
                    boot[index].revertArmed = pending == .test
                    note("boot: image \(index): swapped the \(pending == .test ? "test" : "permanent") image in slot \(secondary) into slot \(primary)\(pending == .test ? "; it reverts at the next boot unless confirmed" : "")")
                } else {
                    eraseSlot(secondary)
                    note("boot: image \(index): the pending image in slot \(secondary) is \(configuration.bootloaderRejectsImages ? "refused by the bootloader" : "not valid (hash, header or not bootable)"); slot \(secondary) erased, slot \(primary) boots")
                }
            } else if boot[index].revertArmed {
                swapSlots(primary, secondary)
                boot[index].revertArmed = false
                note("boot: image \(index): the test image was not confirmed; reverted to the image in slot \(secondary)")
            } else {
                note("boot: image \(index): nothing pending; slot \(primary) boots")
            }
        }
        if !configuration.keepUploadStateAcrossReset { upload = nil }
        recoveryUpload = nil
        if configuration.recovery != nil {
            // MCUboot stays in serial recovery when the application asked for it with boot mode 1
            // (boot/zephyr/main.c with CONFIG_BOOT_SERIAL_BOOT_MODE) or when no primary image
            // validates (CONFIG_BOOT_SERIAL_NO_APPLICATION); otherwise it boots the primary slot.
            let bootable = validImage(0).map { $0.hashMatches && $0.isBootable } ?? false
            inRecovery = lastResetBootMode == 1 || !bootable
        }
        dateTime = nil
        // The application calls settings_load() at boot: the runtime values are the saved ones.
        settingsRuntime = settingsStored
        fileContext = FileContext()
        heldRequest = nil
    }

    func swapSlots(_ a: Int, _ b: Int) {
        let first = flash[a]
        let second = flash[b]
        flash[a] = Self.resized(second, to: first.count)
        flash[b] = Self.resized(first, to: second.count)
    }

    static func resized(_ bytes: [UInt8], to count: Int) -> [UInt8] {
        if bytes.count >= count { return Array(bytes[0..<count]) }
        return bytes + [UInt8](repeating: 0xFF, count: count - bytes.count)
    }

    func eraseSlot(_ slot: Int) {
        guard flash.indices.contains(slot) else { return }
        note("erase: slot \(slot) (\(flash[slot].count) bytes)")
        flash[slot] = [UInt8](repeating: 0xFF, count: flash[slot].count)
    }
}

/// SplitMix64, for reproducible fault injection.
struct SimulatorRandom: Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in [0, 1).
    mutating func unitInterval() -> Double {
        Double(next() >> 11) / Double(UInt64(1) << 53)
    }
}
