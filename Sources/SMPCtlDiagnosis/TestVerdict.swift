// What the device's image list says after `image test`: whether slot 1 holds the image the user meant, another
// image, or one that is already pending. Pure: the CLI reads the image list (the test command's own answer, or
// DeviceFacts after a failure) and this file judges it.
//
// Zephyr's behaviour it relies on (subsys/mgmt/mcumgr/grp/img_mgmt/src/img_mgmt_state.c: img_mgmt_state_write and
// img_mgmt_set_next_boot_slot_common): the hash is looked up among the listed slots (not found:
// IMG_MGMT_ERR_HASH_NOT_FOUND, which SMP v1 carries as MGMT_ERR_EUNKNOWN); "setting test to active slot is not allowed"
// (IMG_MGMT_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED); testing the slot already set for test does nothing, and a change
// while another boot is pending (a test mark, or an unconfirmed test boot that reverts) is IMG_MGMT_ERR_IMAGE_ALREADY_PENDING.
// MCUboot boots the slot marked pending at the next reset, and reverts an unconfirmed test boot
// (boot/bootutil/src/bootutil_public.c, boot_set_pending / boot_swap_type).

public import SMPCtlProtocol

/// What slot 1 holds after `image test`, against the image the user meant.
public struct TestedImageVerdict: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Slot 1 holds the image meant, marked for a test boot.
        case markedForTest = "marked-for-test"
        /// Slot 1 holds the image meant, marked permanent by an earlier confirm: the test did not undo it.
        case alreadyPermanent = "already-permanent"
        /// Slot 1 holds the image meant, but it is not pending: the next reset does not boot it.
        case notPending = "not-pending"
        /// The image meant is the one running; slot 1 is not what the next reset boots unless it is pending.
        case runningImage = "running-image"
        /// Slot 1 holds another image than the one meant.
        case otherImage = "other-image-in-slot-1"
        /// Slot 1 holds another image, already marked pending: the next reset boots that one.
        case otherImagePending = "other-image-pending"
        /// Slot 1 is empty and the image meant is not on the device.
        case secondaryEmpty = "slot-1-empty"
    }

    public var kind: Kind
    /// One sentence: what slot 1 holds and what the next reset does.
    public var summary: String
    /// What to do next, when the state is not the one the user asked for.
    public var advice: String?
    /// Whether the state differs from "the image meant boots once at the next reset".
    public var isProblem: Bool { kind != .markedForTest }
}

extension DeviceStateRanking {
    /// The verdict on slot 1 after `image test` from the image list (`facts.images`) and the hash the user meant
    /// (`facts.hashSent`); `nil` when either is unknown.
    public static func afterTest(_ facts: DeviceFacts) -> TestedImageVerdict? {
        guard let images = facts.images, let meant = facts.hashSent, !meant.isEmpty else { return nil }
        // The image number is the one that lists the hash, else the command's.
        let target = images.first { $0.hash == meant }
        let image = target?.image ?? facts.image
        let primary = images.first { $0.image == image && $0.slot == 0 }
        let secondary = images.first { $0.image == image && $0.slot == 1 }
        let meantText = hashPrefix(meant)
        func named(_ slot: ImageManagement.SlotState) -> String {
            "\(slot.version.prefix(32))\(slot.hash.map { " (\(hashPrefix($0)))" } ?? "")"
        }
        func pendingMark(_ slot: ImageManagement.SlotState) -> String { slot.permanent ? "permanent" : "for test" }

        guard let target else {
            if let secondary, secondary.pending {
                return TestedImageVerdict(
                    kind: .otherImagePending,
                    summary: "Slot 1 of image \(image) holds another image, \(named(secondary)), already marked \(pendingMark(secondary)); the image you meant (\(meantText)) is not on the device, and the next reset boots \(secondary.version.prefix(32)).",
                    advice: "If you meant \(secondary.version.prefix(32)), reset (`smpctl reset`). Otherwise upload your image first: a pending slot is not overwritten, so reset to boot the pending one (or erase it, with CONFIG_MCUMGR_GRP_IMG_ALLOW_ERASE_PENDING), then `smpctl image upload FILE` and `smpctl image test FILE`.")
            }
            if let secondary {
                return TestedImageVerdict(
                    kind: .otherImage,
                    summary: "Slot 1 of image \(image) holds another image, \(named(secondary)), not the one you meant (\(meantText)).",
                    advice: "Upload your image again (`smpctl image upload FILE`, or `smpctl dfu FILE`), then test it; compare the hashes with `smpctl image inspect FILE` and `smpctl image list`.")
            }
            return TestedImageVerdict(
                kind: .secondaryEmpty,
                summary: "Slot 1 of image \(image) is empty: the image you meant (\(meantText)) is not on the device.",
                advice: "Upload it first (`smpctl image upload FILE`); if it was uploaded and slot 1 is still empty, the application writes another flash area than it lists (`smpctl doctor BUILD_DIR`).")
        }
        if target.slot == 1 {
            if target.pending && target.permanent {
                return TestedImageVerdict(
                    kind: .alreadyPermanent,
                    summary: "Slot 1 holds the image you meant, \(named(target)), already marked permanent by an earlier confirm: the next reset installs it for good, with no revert.",
                    advice: "Reset to boot it (`smpctl reset`); a test mark cannot undo the confirm.")
            }
            if target.pending {
                return TestedImageVerdict(
                    kind: .markedForTest,
                    summary: "Slot 1 holds the image you meant, \(named(target)), marked for test: the next reset boots it once, and it reverts unless it is confirmed.",
                    advice: nil)
            }
            if let primary, primary.active, !primary.confirmed {
                // An unconfirmed test boot: MCUboot reverts to slot 1 at the next reset without any mark.
                return TestedImageVerdict(
                    kind: .notPending,
                    summary: "Slot 1 holds the image you meant, \(named(target)), without a pending mark, but the running image \(named(primary)) is an unconfirmed test boot: the next reset reverts to \(target.version.prefix(32)) anyway.",
                    advice: "Reset to go back to it (`smpctl reset`), or confirm the running image (`smpctl image confirm`) to keep that one; until one of the two, the device refuses new test marks (IMAGE_ALREADY_PENDING).")
            }
            return TestedImageVerdict(
                kind: .notPending,
                summary: "Slot 1 holds the image you meant, \(named(target)), but it is not marked pending: the next reset keeps \(primary.map(named) ?? "the running image").",
                advice: "The device took the test request without marking the slot: MCUboot's downgrade prevention (the image's version is not newer) or a mode without test (`smpctl bootloader-info`).")
        }
        // The image meant is in the primary slot.
        var summary = "The image you meant, \(named(target)), is in slot 0\(target.active ? " and running" : "")"
        if let secondary, secondary.pending {
            summary += "; slot 1 holds \(named(secondary)), marked \(pendingMark(secondary)), which the next reset boots."
        } else {
            summary += "; a test mark on it changes nothing."
        }
        return TestedImageVerdict(
            kind: .runningImage, summary: summary,
            advice: target.active && !target.confirmed
                ? "It runs as a test boot: confirm it (`smpctl image confirm`) to keep it; a reset reverts to slot 1."
                : "To test another image, upload it to slot 1 first (`smpctl image upload FILE`).")
    }

    static func hashPrefix(_ hash: [UInt8]) -> String {
        let hex = hash.prefix(4).map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
        return hash.count > 4 ? hex + "…" : hex
    }
}
