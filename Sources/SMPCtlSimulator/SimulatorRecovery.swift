import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol

// MCUboot's serial recovery, as boot/boot_serial/src/boot_serial.c answers (read at the main
// branch after v2.4.0, and at v1.8.0 for ``SimulatedMCUbootVersion/v1_8``). Recovery errors are
// always a plain `{rc: N}` (bs_rc_rsp), whatever the SMP version of the request; the answer's
// header repeats the request's with the operation incremented (boot_serial_output).

/// The `mgmt_err` codes boot_serial_priv.h defines.
enum RecoveryCode {
    static let ok = 0
    static let invalid = 3  // MGMT_ERR_EINVAL
    static let notSupported = 8  // MGMT_ERR_ENOTSUP
}

extension SimulatedDevice {
    /// What recovery answers to one frame; `nil` for no answer.
    ///
    /// boot_serial_input: a frame whose operation is not read or write, or whose header length is
    /// smaller than the bytes after the header, is ignored; only one request per frame is handled.
    func recoveryReply(to header: SMPHeader, packet: [UInt8], _ recovery: SimulatedRecovery) -> Reply? {
        guard header.operation == .read || header.operation == .write else { return nil }
        let bodyLength = packet.count - SMPHeader.size
        guard bodyLength >= 0, Int(header.length) >= bodyLength else { return nil }
        let body = Array(packet[SMPHeader.size...])
        let legacy = recovery.version == .v1_8
        var map: CBORMap?
        if body.isEmpty {
            map = CBORMap()
        } else if let value = try? SMPResponseDecoder.cbor.decode(body), case .map(let decoded) = value {
            map = decoded
        }
        // The simulator's injected faults still apply (tests use them for lost or refused chunks).
        for (index, rule) in configuration.forcedErrors.enumerated() {
            guard rule.group == header.group, rule.command == nil || rule.command == header.command else { continue }
            if let remaining = faultRemaining[index], remaining <= 0 { continue }
            if let remaining = faultRemaining[index] { faultRemaining[index] = remaining - 1 }
            switch rule.error {
            case .smp(let rc): return .smp(rc)
            case .group(let code): return .smp(code)
            }
        }

        switch header.group {
        case .image:
            switch header.command {
            case ImageManagement.Command.state.rawValue:
                // bs_list_set: a read lists the images; a write needs MCUBOOT_SERIAL_IMG_GRP_IMAGE_STATE
                // (not modelled, off by default), else MGMT_ERR_ENOTSUP. Before 1.9, bs_list ran
                // for either operation: a test or confirm got the list back and changed nothing.
                if header.operation == .read || legacy { return .success(recoveryImageList(recovery)) }
                return .smp(RecoveryCode.notSupported)
            case ImageManagement.Command.upload.rawValue:
                guard let map else { return .smp(RecoveryCode.invalid) }
                return recoveryUpload(map, recovery)
            default:
                // Erase, slot info (without MCUBOOT_SERIAL_IMG_GRP_SLOT_INFO) and the rest: ENOTSUP;
                // before 1.9 bs_empty_rsp answered `{rc: 0}` and did nothing.
                return legacy ? .success(["rc": 0]) : .smp(RecoveryCode.notSupported)
            }
        case .os:
            switch header.command {
            case OSManagement.Command.echo.rawValue:
                // bs_echo (CONFIG_BOOT_MGMT_ECHO): `{r: d}`; a missing `d` is MGMT_ERR_EINVAL.
                guard !legacy else { return nil }
                guard recovery.echo else { return .smp(RecoveryCode.notSupported) }
                guard let text = map?["d"]?.string else { return .smp(RecoveryCode.invalid) }
                return .success(["r": .text(text)])
            case OSManagement.Command.consoleEchoControl.rawValue:
                return .success(["rc": 0])
            case OSManagement.Command.reset.rawValue:
                // bs_reset answers `{rc: 0}`, waits 250 ms and reboots; it reads no field.
                lastResetBootMode = nil
                return .resetAfter(["rc": 0])
            case OSManagement.Command.mcumgrParameters.rawValue where !legacy && recovery.reportsParameters:
                // bs_mcumgr_params: one buffer of MCUBOOT_SERIAL_MAX_RECEIVE_SIZE.
                return .success([
                    "buf_size": .unsigned(UInt64(max(0, recovery.receiveSize))), "buf_count": 1,
                ])
            case OSManagement.Command.bootloaderInfo.rawValue where !legacy && recovery.bootloaderInfo:
                switch map?["query"] {
                case nil: return .success(["bootloader": "MCUboot"])
                case .text("mode")?: return .success(["mode": 3])
                default: return .smp(RecoveryCode.invalid)
                }
            default:
                return legacy ? nil : .smp(RecoveryCode.notSupported)
            }
        default:
            // Without MCUBOOT_PERUSER_MGMT_GROUP_ENABLED: ENOTSUP; before 1.9, no answer.
            return legacy ? nil : .smp(RecoveryCode.notSupported)
        }
    }

    /// bs_list: per image and slot, an entry for each image that bootutil_img_validate accepts,
    /// with `image` only on multi-image builds, `slot`, `hash` (MCUBOOT_SERIAL_IMG_GRP_HASH) and
    /// `version` (bs_list_img_ver: the build number only when it is not 0). No flags (they need
    /// MCUBOOT_SERIAL_IMG_GRP_IMAGE_STATE) and no `splitStatus`.
    func recoveryImageList(_ recovery: SimulatedRecovery) -> CBORValue {
        var images: [CBORValue] = []
        for slot in 0..<flash.count {
            guard let image = validImage(slot), image.hashMatches else { continue }
            var entry = CBORMap()
            if configuration.slotCount > 2 { entry["image"] = .unsigned(UInt64(slot / 2)) }
            entry["slot"] = .unsigned(UInt64(slot % 2))
            if recovery.listsHashes, let hash = image.sha256TLV { entry["hash"] = .bytes(hash) }
            let version = image.version
            var text = "\(version.major).\(version.minor).\(version.revision)"
            if version.build != 0 { text += ".\(version.build)" }
            entry["version"] = .text(text)
            images.append(.map(entry))
        }
        return .map(CBORMap([.init(key: "images", value: .array(images))]))
    }

    /// bs_upload: the image goes to the primary slot of `image` (flash_area_id_from_multi_image_slot(
    /// img_num, 0), without MCUBOOT_SERIAL_DIRECT_IMAGE_UPLOAD); `image` is read only from the
    /// chunk at offset 0. That chunk must carry `len` no larger than the slot (a missing `len`
    /// leaves img_size_tmp at SIZE_MAX, which fails the size check: MGMT_ERR_EINVAL) and erases
    /// the slot; there is no `sha`, no resume and no `match`. A chunk at another offset than
    /// `curr_off` is answered `{rc: 0, off: curr_off}` with nothing written; one past `len` is
    /// MGMT_ERR_EINVAL. Every answer is `{rc: 0, off: curr_off}` or `{rc: N}`.
    func recoveryUpload(_ map: CBORMap, _ recovery: SimulatedRecovery) -> Reply {
        let off: Int?
        let data: [UInt8]?
        let length: Int?
        let imageNumber: Int?
        do {
            off = try map.optionalUInt("off")
            data = try map.optionalBytes("data")
            length = try map.optionalUInt("len")
            imageNumber = try map.optionalUInt("image")
        } catch {
            return .smp(RecoveryCode.invalid)  // zcbor_map_decode_bulk failed: out_invalid_data
        }
        // "Offset must be set in every block", and data too.
        guard let off, let data else { return .smp(RecoveryCode.invalid) }
        if off == 0 {
            let image = imageNumber ?? 0
            // flash_area_open fails for an image the build does not have: MGMT_ERR_EINVAL.
            guard image < boot.count else { return .smp(RecoveryCode.invalid) }
            let slot = 2 * image
            guard let length, length <= flash[slot].count else { return .smp(RecoveryCode.invalid) }
            // Without MCUBOOT_ERASE_PROGRESSIVELY the whole slot is erased at the first chunk.
            eraseSlot(slot)
            recoveryUpload = (image: image, offset: 0, length: length)
        }
        guard var state = recoveryUpload else {
            // No upload started since the boot: curr_off is 0 and img_size 0.
            return off == 0 ? .smp(RecoveryCode.invalid) : .success(["rc": 0, "off": 0])
        }
        if off != state.offset { return .success(["rc": 0, "off": .unsigned(UInt64(state.offset))]) }
        guard data.count <= state.length - state.offset else { return .smp(RecoveryCode.invalid) }
        let slot = 2 * state.image
        write(data[...], slot: slot, at: off)
        state.offset += data.count
        recoveryUpload = state
        if state.offset == state.length {
            lastCompletedUpload = SimulatorCompletedUpload(
                slot: slot, length: state.length, match: nil, validationError: readInfoError(slot))
        }
        return .success(["rc": 0, "off": .unsigned(UInt64(state.offset))])
    }
}
