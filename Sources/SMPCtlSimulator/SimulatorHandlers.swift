import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol

// Image group (1) and OS group (0) handlers of ``SimulatedDevice``.

/// Image group codes used by the simulator (`img_mgmt_err_code_t`), by name from the one table
/// in ``SMPErrorCatalog`` (a test checks that every name is there).
enum ImageError {
    static let names = [
        "UNKNOWN", "NO_IMAGE", "NO_TLVS", "INVALID_TLV", "TLV_MULTIPLE_HASHES_FOUND", "TLV_INVALID_SIZE",
        "HASH_NOT_FOUND", "NO_FREE_SLOT", "INVALID_SLOT", "INVALID_OFFSET", "INVALID_LENGTH",
        "INVALID_IMAGE_HEADER", "INVALID_IMAGE_HEADER_MAGIC", "INVALID_HASH", "VERSION_GET_FAILED",
        "CURRENT_VERSION_IS_NEWER", "IMAGE_ALREADY_PENDING", "INVALID_IMAGE_TOO_LARGE",
        "INVALID_IMAGE_DATA_OVERRUN", "IMAGE_SETTING_TEST_TO_ACTIVE_DENIED",
    ]
    static func code(_ name: String) -> Int { SMPErrorCatalog.code(named: "IMG_MGMT_ERR_" + name, in: .image) ?? 1 }

    static let unknown = code("UNKNOWN")
    static let noImage = code("NO_IMAGE")
    static let noTLVs = code("NO_TLVS")
    static let invalidTLV = code("INVALID_TLV")
    static let multipleHashes = code("TLV_MULTIPLE_HASHES_FOUND")
    static let tlvInvalidSize = code("TLV_INVALID_SIZE")
    static let hashNotFound = code("HASH_NOT_FOUND")
    static let noFreeSlot = code("NO_FREE_SLOT")
    static let invalidSlot = code("INVALID_SLOT")
    static let invalidOffset = code("INVALID_OFFSET")
    static let invalidLength = code("INVALID_LENGTH")
    static let invalidHeader = code("INVALID_IMAGE_HEADER")
    static let invalidMagic = code("INVALID_IMAGE_HEADER_MAGIC")
    static let invalidHash = code("INVALID_HASH")
    static let versionGetFailed = code("VERSION_GET_FAILED")
    static let currentVersionIsNewer = code("CURRENT_VERSION_IS_NEWER")
    static let alreadyPending = code("IMAGE_ALREADY_PENDING")
    static let tooLarge = code("INVALID_IMAGE_TOO_LARGE")
    static let overrun = code("INVALID_IMAGE_DATA_OVERRUN")
    static let testToActiveDenied = code("IMAGE_SETTING_TEST_TO_ACTIVE_DENIED")
}

/// OS group codes (`os_mgmt_err_code_t`), by name from ``SMPErrorCatalog``.
enum OSError {
    static let names = ["INVALID_FORMAT", "QUERY_YIELDS_NO_ANSWER", "RTC_NOT_SET"]
    static func code(_ name: String) -> Int { SMPErrorCatalog.code(named: "OS_MGMT_ERR_" + name, in: .os) ?? 1 }

    static let invalidFormat = code("INVALID_FORMAT")
    static let queryYieldsNoAnswer = code("QUERY_YIELDS_NO_ANSWER")
    static let rtcNotSet = code("RTC_NOT_SET")
}

extension SimulatedDevice {
    // MARK: Slot inspection

    /// The image in a slot when `img_mgmt_read_info` would accept it (one 32-byte SHA-256 TLV).
    func validImage(_ slot: Int) -> MCUbootImage? {
        guard readInfoError(slot) == nil, let image = try? MCUbootImage(parsing: flash[slot]) else { return nil }
        return image
    }

    /// The image group code `img_mgmt_read_info` gives for a slot, `nil` when the slot is valid.
    func readInfoError(_ slot: Int) -> Int? {
        guard flash.indices.contains(slot) else { return ImageError.invalidSlot }
        let image: MCUbootImage
        do {
            image = try MCUbootImage(parsing: flash[slot])
        } catch {
            switch error.code {
            case .tooShort: return ImageError.noImage
            case .badMagic:
                return flash[slot].prefix(4).allSatisfy { $0 == 0xFF } ? ImageError.noImage : ImageError.invalidMagic
            case .badHeaderSize, .truncated, .badTLVMagic, .badTLVAreaSize, .protectedSizeMismatch:
                return ImageError.noTLVs
            case .tlvOverrun: return ImageError.tlvInvalidSize
            }
        }
        if image.sha256TLVCount > 1 { return ImageError.multipleHashes }
        if image.sha256TLV == nil { return ImageError.hashNotFound }
        return nil
    }

    /// Whether a slot is active or chosen for the next boot (Zephyr's `img_mgmt_slot_in_use`).
    func slotInUse(_ slot: Int) -> Bool {
        if slot % 2 == 0 { return true }
        let state = boot[slot / 2]
        return state.pending != nil || state.revertArmed
    }

    /// The state flags as `img_mgmt_state_flags` derives them from the swap type.
    func stateFlags(slot: Int) -> (pending: Bool, confirmed: Bool, active: Bool, permanent: Bool) {
        let state = boot[slot / 2]
        let active = slot % 2 == 0
        var flags = (pending: false, confirmed: false, active: active, permanent: false)
        switch state.pending {
        case .test?:
            if active { flags.confirmed = true } else { flags.pending = true }
        case .permanent?:
            if active { flags.confirmed = true } else { (flags.pending, flags.permanent) = (true, true) }
        case nil:
            if state.revertArmed {
                if !active { flags.confirmed = true }
            } else if active {
                flags.confirmed = true
            }
        }
        return flags
    }

    /// The state read response map.
    func stateResponse() -> CBORValue {
        var images: [CBORValue] = []
        for state in slotStates {
            var entry = CBORMap()
            if configuration.slotCount > 2 { entry["image"] = .unsigned(UInt64(state.image)) }
            entry["slot"] = .unsigned(UInt64(state.slot))
            entry["version"] = .text(state.version)
            if let hash = state.hash { entry["hash"] = .bytes(hash) }
            entry["bootable"] = .bool(state.bootable)
            entry["pending"] = .bool(state.pending)
            entry["confirmed"] = .bool(state.confirmed)
            entry["active"] = .bool(state.active)
            entry["permanent"] = .bool(state.permanent)
            images.append(.map(entry))
        }
        return .map(CBORMap([
            .init(key: "images", value: .array(images)), .init(key: "splitStatus", value: .unsigned(0)),
        ]))
    }

    // MARK: Image group

    func handleImage(_ header: SMPHeader, _ map: CBORMap) -> Reply {
        let command = ImageManagement.Command(rawValue: header.command)
        switch (command, header.operation) {
        case (.state?, .read): return .success(stateResponse())
        case (.state?, .write): return stateWrite(map)
        case (.upload?, .write): return uploadChunk(map)
        case (.erase?, .write): return erase(map)
        case (.slotInfo?, .read):
            return configuration.supportsSlotInfo ? .success(slotInfo()) : .smp(SMPReturnCode.notSupported.rawValue)
        default: return .smp(SMPReturnCode.notSupported.rawValue)
        }
    }

    func stateWrite(_ map: CBORMap) -> Reply {
        let hash: [UInt8]?
        let confirm: Bool
        do {
            hash = try map.optionalBytes("hash")
            confirm = try map.optionalBool("confirm") ?? false
        } catch {
            return .smp(SMPReturnCode.invalidArgument.rawValue)
        }
        guard let hash else {
            guard confirm else { return .group(ImageError.invalidHash) }
            boot[0].revertArmed = false  // confirm the running image
            return .success(stateResponse())
        }
        guard hash.count == 32 else { return .group(ImageError.invalidHash) }
        guard let slot = flash.indices.first(where: { validImage($0)?.sha256TLV == hash }) else {
            return .group(ImageError.hashNotFound)
        }
        let index = slot / 2
        if slot % 2 == 0 {
            guard confirm else { return .group(ImageError.testToActiveDenied) }
            boot[index].revertArmed = false
            return .success(stateResponse())
        }
        if boot[index].revertArmed { return .group(ImageError.alreadyPending) }
        switch (boot[index].pending, confirm) {
        case (.permanent?, false): return .group(ImageError.alreadyPending)
        case (_, true): boot[index].pending = .permanent
        case (_, false): boot[index].pending = .test
        }
        markOrder.removeAll { $0 == index }
        markOrder.append(index)
        return .success(stateResponse())
    }

    func uploadChunk(_ map: CBORMap) -> Reply {
        let off: Int?
        let data: [UInt8]
        let length: Int?
        let sha: [UInt8]?
        let imageNumber: Int
        let upgrade: Bool
        do {
            off = try map.optionalUInt("off")
            data = try map.optionalBytes("data") ?? []
            length = try map.optionalUInt("len")
            sha = try map.optionalBytes("sha")
            imageNumber = try map.optionalUInt("image") ?? 0
            upgrade = try map.optionalBool("upgrade") ?? false
        } catch {
            return .smp(SMPReturnCode.invalidArgument.rawValue)
        }
        guard let off else { return .group(ImageError.invalidOffset) }

        if let hostile = configuration.hostileOffset {
            switch hostile {
            case .zero: return .success(["off": 0])
            case .one: return .success(["off": 1])
            case .stuck:
                if let stuck = hostileStuckOffset { return .success(["off": .unsigned(UInt64(stuck))]) }
            case .backwards:
                if off > 0 { return .success(["off": .unsigned(UInt64(off - 1))]) }
            }
        }
        defer {
            if configuration.hostileOffset == .stuck, hostileStuckOffset == nil, let reached = upload?.offset {
                hostileStuckOffset = reached
            }
        }

        // Zephyr's img_mgmt_upload (subsys/mgmt/mcumgr/grp/img_mgmt/src/img_mgmt.c) with
        // img_mgmt_upload_inspect (zephyr_img_mgmt.c), the same in 3.5 and later releases:
        // - `off` 0 starts an upload (or resumes the one in progress with the same `sha`);
        // - any other `off` that differs from g_img_mgmt_state.off is "Invalid offset. Drop the
        //   data, and respond with the offset we're expecting data for": rc 0 (no `rc` key
        //   unless CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR) and `off` = the current offset;
        // - once the last chunk is written img_mgmt_reset_upload() zeroes g_img_mgmt_state
        //   (off 0, size 0, area_id −1). A late resend of a middle or last chunk then differs from
        //   off 0 and is answered `{off: 0}` with nothing written; a late resend of the first
        //   chunk (`off` 0) starts a new upload and erases the slot again.
        var session: UploadSession
        if off == 0 {
            guard data.count >= MCUbootImage.headerLength else { return .group(ImageError.invalidHeader) }
            guard let length else { return .group(ImageError.invalidLength) }
            let magic = UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24
            guard magic == MCUbootImage.magic else { return .group(ImageError.invalidMagic) }
            if let sha, sha.count > 32 { return .group(ImageError.invalidHash) }
            if let sha, !sha.isEmpty, let current = upload, current.sha == sha, current.offset < current.length {
                return .success(["off": .unsigned(UInt64(current.offset))])  // resume
            }
            guard imageNumber < boot.count else { return .group(ImageError.noFreeSlot) }
            let slot = 2 * imageNumber + 1
            if slotInUse(slot) { return .group(ImageError.noFreeSlot) }
            guard length <= flash[slot].count else { return .group(ImageError.tooLarge) }
            if upgrade {
                guard let running = validImage(2 * imageNumber) else { return .group(ImageError.versionGetFailed) }
                let new = MCUbootImageVersion(
                    major: data[20], minor: data[21], revision: UInt16(data[22]) | UInt16(data[23]) << 8,
                    build: UInt32(data[24]) | UInt32(data[25]) << 8 | UInt32(data[26]) << 16 | UInt32(data[27]) << 24)
                guard new.isNewer(than: running.version) else { return .group(ImageError.currentVersionIsNewer) }
            }
            guard data.count <= length else { return .group(ImageError.overrun) }
            eraseForUpload(slot: slot, length: length)
            session = UploadSession(image: imageNumber, slot: slot, offset: 0, length: length, sha: sha)
            upload = session
        } else {
            guard let current = upload, current.offset == off else {
                return .success(["off": .unsigned(UInt64(upload?.offset ?? 0))])
            }
            guard data.count <= current.length - off else { return .group(ImageError.overrun) }
            session = current
        }

        if let resetAt = resetAtOffset, off <= resetAt, resetAt < off + max(data.count, 1) {
            resetAtOffset = nil
            let written = resetAt - off
            write(data[0..<written], slot: session.slot, at: off)
            session.offset += written
            upload = session
            return .silentReset
        }
        write(data[...], slot: session.slot, at: off)
        session.offset += data.count
        guard session.offset >= session.length else {
            upload = session
            return .success(["off": .unsigned(UInt64(session.offset))])
        }

        upload = nil
        var response = CBORMap()
        response["off"] = .unsigned(UInt64(session.offset))
        var match: Bool?
        if let sha = session.sha, sha.count == 32 {
            match = MCUbootImage.sha256(flash[session.slot][0..<session.length]) == sha
        }
        let validation = readInfoError(session.slot)
        lastCompletedUpload = SimulatorCompletedUpload(
            slot: session.slot, length: session.length, match: match, validationError: validation)
        if configuration.validateOnCompletion, let validation { return .group(validation) }
        if let match { response["match"] = .bool(match) }
        return .success(.map(response))
    }

    /// Erases the sectors the upload will write plus the last sector (the trailer).
    func eraseForUpload(slot: Int, length: Int) {
        let size = flash[slot].count
        note("erase: slot \(slot) for a \(length)-byte upload")
        let sector = max(configuration.sectorSize, 1)
        let end = min(size, (length + sector - 1) / sector * sector)
        // Filled in place (replaceSubrange with a repeated element went byte by byte).
        flash[slot].withUnsafeMutableBufferPointer { bytes in
            if end > 0 { bytes[0..<end].update(repeating: 0xFF) }
            let trailerStart = max(0, (size - 1) / sector * sector)
            if trailerStart < size { bytes[trailerStart..<size].update(repeating: 0xFF) }
        }
    }

    func write(_ data: ArraySlice<UInt8>, slot: Int, at offset: Int) {
        let end = min(offset + data.count, flash[slot].count)
        guard offset < end else { return }
        // Copied in place: the slot keeps its size, so no replaceSubrange is needed.
        flash[slot].withUnsafeMutableBufferPointer { bytes in
            _ = bytes[offset..<end].update(fromContentsOf: data.prefix(end - offset))
        }
    }

    /// Image erase as Zephyr's img_mgmt_erase (subsys/mgmt/mcumgr/grp/img_mgmt/src/img_mgmt.c):
    /// a slot whose image is valid (img_mgmt_read_info) and in use answers NO_FREE_SLOT; then
    /// img_mgmt_erase_slot (zephyr_img_mgmt.c) runs and the upload state is reset whatever it
    /// answers (img_mgmt_reset_upload).
    ///
    /// An empty slot: img_mgmt_erase_slot reads the whole area with
    /// img_mgmt_flash_check_empty_inner, which returns 1 when every word is erased. Zephyr 3.5
    /// only erased when it returned 0 and returned the 1 as it was, so img_mgmt_erase answered
    /// `err {group 1, rc 1}` (IMG_MGMT_ERR_UNKNOWN; v1 `rc 1`). Zephyr PR #64070 ("Fix erase
    /// returning unknown error", merged after v3.5.0, in v3.6.0) maps the 1 to success: "A
    /// return value of 1 indicates that the slot is already erased, thus return a success code".
    func erase(_ map: CBORMap) -> Reply {
        let slot: Int
        do {
            slot = try map.optionalUInt("slot") ?? 1
        } catch {
            return .smp(SMPReturnCode.invalidArgument.rawValue)
        }
        if readInfoError(slot) == nil && slotInUse(slot) { return .group(ImageError.noFreeSlot) }
        defer { upload = nil }
        guard flash.indices.contains(slot) else { return .group(ImageError.invalidSlot) }
        if flash[slot].allSatisfy({ $0 == 0xFF }) {
            switch configuration.zephyrVersion {
            case .v3_5: return .group(ImageError.unknown)
            case .v3_6: return .success(.map(CBORMap()))
            }
        }
        eraseSlot(slot)
        return .success(.map(CBORMap()))
    }

    func slotInfo() -> CBORValue {
        var images: [CBORValue] = []
        for index in boot.indices {
            let primary = flash[2 * index].count
            let secondary = flash[2 * index + 1].count
            let slots: CBORValue = [
                ["slot": 0, "size": .unsigned(UInt64(primary))],
                ["slot": 1, "size": .unsigned(UInt64(secondary)), "upload_image_id": .unsigned(UInt64(index))],
            ]
            // Swap using move needs one spare sector in the slot.
            let maxImage = max(0, min(primary, secondary) - max(configuration.sectorSize, 0))
            images.append([
                "image": .unsigned(UInt64(index)), "slots": slots, "max_image_size": .unsigned(UInt64(maxImage)),
            ])
        }
        return ["images": .array(images)]
    }

    // MARK: OS group

    func handleOS(_ header: SMPHeader, _ map: CBORMap) -> Reply {
        let command = OSManagement.Command(rawValue: header.command)
        switch (command, header.operation) {
        case (.echo?, _):
            guard let text = map["d"]?.string else { return .smp(SMPReturnCode.invalidArgument.rawValue) }
            return .success(["r": .text(text)])
        case (.reset?, .write):
            let force: Bool
            switch map["force"] {
            case nil: force = false
            case .bool(let b)?: force = b
            case let value?:
                guard let n = value.int else { return .smp(SMPReturnCode.invalidArgument.rawValue) }
                force = n > 0
            }
            // Zephyr 4.2's os_mgmt.c (CONFIG_MCUMGR_GRP_OS_RESET_BOOT_MODE) takes `boot_mode`, an
            // unsigned 8-bit value handed to bootmode_set() before the reboot: 0 boots normally,
            // 1 asks the bootloader for its recovery mode. Another type is `rc 3`.
            var bootMode: UInt64?
            if let value = map["boot_mode"] {
                guard let number = value.uint64, number <= 255 else { return .smp(SMPReturnCode.invalidArgument.rawValue) }
                bootMode = number
            }
            if configuration.refuseResetUnlessForced && !force { return .smp(SMPReturnCode.busy.rawValue) }
            lastResetBootMode = bootMode
            return .resetAfter(.map(CBORMap()))
        case (.mcumgrParameters?, .read):
            guard configuration.supportsParams else { return .smp(SMPReturnCode.notSupported.rawValue) }
            return .success([
                "buf_size": .unsigned(UInt64(max(configuration.reportedBufferSize ?? configuration.bufferSize, 0))),
                "buf_count": .unsigned(UInt64(max(configuration.bufferCount, 0))),
            ])
        case (.info?, .read):
            let format: String
            switch map["format"] {
            case nil: format = "s"
            case .text(let text)?: format = text.isEmpty ? "s" : text
            default: return .smp(SMPReturnCode.invalidArgument.rawValue)
            }
            guard let output = Self.infoOutput(format: format) else { return .group(OSError.invalidFormat) }
            return .success(["output": .text(output)])
        case (.bootloaderInfo?, .read):
            switch map["query"] {
            case nil: return .success(["bootloader": "MCUboot"])
            case .text("mode")?: return .success(["mode": 3])
            case .text?: return .group(OSError.queryYieldsNoAnswer)
            default: return .smp(SMPReturnCode.invalidArgument.rawValue)
            }
        case (.taskStatistics?, .read):
            return .success(["tasks": Self.tasks])
        case (.dateTime?, .read):
            guard let dateTime else { return .group(OSError.rtcNotSet) }
            return .success(["datetime": .text(dateTime)])
        case (.dateTime?, .write):
            guard let text = map["datetime"]?.string, Self.isValidDateTime(text) else {
                return .smp(SMPReturnCode.invalidArgument.rawValue)
            }
            dateTime = text
            return .success(.map(CBORMap()))
        default:
            return .smp(SMPReturnCode.notSupported.rawValue)
        }
    }

    /// A `uname`-like line for the info command, or `nil` for an unknown format letter.
    static func infoOutput(format: String) -> String? {
        let fields: [Character: String] = [
            "s": "Zephyr", "n": "smpctl-sim", "r": "4.1.0", "v": "v4.1.0-smpctl", "b": "Jan  1 2026 00:00:00",
            "m": "ARM", "p": "cortex-m4", "i": "nrf52840dk/nrf52840", "o": "Zephyr",
        ]
        let all: [Character] = ["s", "n", "r", "v", "b", "m", "p", "i", "o"]
        var letters: [Character] = []
        for letter in format {
            if letter == "a" {
                letters = all
                break
            }
            guard fields[letter] != nil else { return nil }
            if !letters.contains(letter) { letters.append(letter) }
        }
        let ordered = all.filter { letters.contains($0) }
        return ordered.compactMap { fields[$0] }.joined(separator: " ")
    }

    static let tasks: CBORValue = [
        "idle": ["prio": 15, "tid": 1, "state": 0, "stkuse": 48, "stksiz": 80, "cswcnt": 5821, "runtime": 912_344,
                 "last_checkin": 0, "next_checkin": 0],
        "main": ["prio": 0, "tid": 2, "state": 2, "stkuse": 312, "stksiz": 512, "cswcnt": 97, "runtime": 10_210,
                 "last_checkin": 0, "next_checkin": 0],
        "mcumgr smp": ["prio": 14, "tid": 3, "state": 2, "stkuse": 640, "stksiz": 1024, "cswcnt": 233,
                       "runtime": 55_012, "last_checkin": 0, "next_checkin": 0],
    ]

    /// `yyyy-MM-ddTHH:mm:ss` followed by optional fraction and zone.
    static func isValidDateTime(_ text: String) -> Bool {
        let chars = Array(text.utf8)
        guard chars.count >= 19 else { return false }
        for (index, byte) in chars.prefix(19).enumerated() {
            switch index {
            case 4, 7: if byte != UInt8(ascii: "-") { return false }
            case 10: if byte != UInt8(ascii: "T") { return false }
            case 13, 16: if byte != UInt8(ascii: ":") { return false }
            default: if !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { return false }
            }
        }
        return true
    }
}
