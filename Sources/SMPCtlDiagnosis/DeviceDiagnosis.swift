// `diagnose`: why an update could fail or did fail, judged from the facts the client read.
//
// Pure: `SMPClient.readDeviceFacts` gathers the facts (read-only); this file only judges them.

import SMPCtlProtocol

/// The device-state checks of `diagnose`.
public enum DeviceDiagnosis {
    /// The findings for `facts`, in the order `diagnose` reports them.
    ///
    /// - Parameters:
    ///   - fileLength: the size of the image to be uploaded, to compare with the slot.
    ///   - imageHash: the hash of that image, to tell whether the device already holds it.
    public static func findings(_ facts: DeviceFacts, fileLength: Int? = nil, imageHash: [UInt8]? = nil) -> [Finding] {
        guard facts.reachable else {
            return [Finding(
                id: "no-answer", severity: .error,
                summary: "the device does not answer SMP echo\(facts.unreachableReason.map { ": \($0)" } ?? "")",
                why: "nothing else can be read or updated without SMP answers",
                fix: "check the connection string, that the application has mcumgr enabled for this transport, and that no other program holds the port",
                settings: ["CONFIG_MCUMGR", "CONFIG_MCUMGR_GRP_OS", "CONFIG_MCUMGR_TRANSPORT_UART / _BT / _UDP"])]
        }
        var findings: [Finding] = []
        let image = facts.image
        if let value = facts.bootloaderMode, value == 0 || value == 2 || value == 4 {
            findings.append(Finding(
                id: "no-revert", severity: .warning,
                summary: "MCUboot runs in \(OSManagement.mcubootModeName(value)) mode",
                why: "this mode cannot revert: a test boot of a broken image is not undone, and single-application mode has no secondary slot to upload into",
                fix: "use a swap mode (swap using move or scratch) if you need revert; otherwise upload with --mode confirm-only",
                settings: ["CONFIG_BOOT_SWAP_USING_MOVE", "CONFIG_BOOT_UPGRADE_ONLY", "CONFIG_SINGLE_APPLICATION_SLOT"]))
        }
        if let error = facts.imageListError {
            findings.append(Finding(
                id: "no-image-list", severity: .error, summary: "the image list cannot be read: \(error)",
                why: "updates use the image group; without it nothing can be uploaded",
                fix: "enable the image management group in the firmware", settings: ["CONFIG_MCUMGR_GRP_IMG"]))
        }
        let images = facts.images ?? []
        let mine = images.filter { $0.image == image }
        if let primary = mine.first(where: { $0.slot == 0 }) {
            if primary.active, !primary.confirmed {
                findings.append(Finding(
                    id: "unconfirmed-running-image", severity: .warning,
                    summary: "the running image \(primary.version) is not confirmed",
                    why: "MCUboot reverts to the previous image at the next reset unless it is confirmed, and a new upload is refused while the revert is pending",
                    fix: "confirm it with `smpctl image confirm` once it works, or reset to revert"))
            }
        } else if !images.isEmpty {
            findings.append(Finding(
                id: "no-primary-image", severity: .warning, summary: "no image is listed in slot 0 of image \(image)",
                why: "the application cannot read its own slot; the partition layout of the application and MCUboot may differ",
                fix: "compare the slot partitions of the application and MCUboot (`smpctl doctor BUILD_DIR`)"))
        }
        if let secondary = mine.first(where: { $0.slot == 1 }) {
            if secondary.pending {
                findings.append(Finding(
                    id: "pending-slot-blocks-upload", severity: .error,
                    summary: "slot 1 holds version \(secondary.version), marked \(secondary.permanent ? "permanent" : "for test") at the next reset",
                    why: "a pending slot cannot be overwritten: an upload answers NO_FREE_SLOT (image error 9, v1 rc 6)",
                    fix: "reset the device to apply it, or mark the other image again, before uploading"))
            } else if secondary.confirmed, !secondary.active {
                findings.append(Finding(
                    id: "revert-image-in-secondary", severity: .warning,
                    summary: "slot 1 holds the previous image \(secondary.version), the revert target of a test boot",
                    why: "until the running image is confirmed, slot 1 is needed for the revert and uploads are refused",
                    fix: "confirm the running image first"))
            }
            if let imageHash, secondary.hash == imageHash {
                findings.append(Finding(
                    id: "already-uploaded", severity: .info, summary: "slot 1 already holds this image",
                    why: "the upload can be skipped", fix: "mark it for test or confirm it (`smpctl dfu` does this)"))
            }
        }
        if let imageHash, mine.contains(where: { $0.slot == 0 && $0.hash == imageHash }) {
            findings.append(Finding(
                id: "already-running", severity: .info, summary: "the device already runs this image",
                why: "there is nothing to update", fix: "nothing"))
        }
        if let entry = facts.slotInfo?.images.first(where: { $0.image == image }) {
            let sizes = entry.slots.compactMap(\.size)
            if sizes.count == 2, sizes[0] != sizes[1] {
                findings.append(Finding(
                    id: "slot-size-mismatch", severity: .warning,
                    summary: "the slots of image \(image) differ in size (\(sizes[0]) and \(sizes[1]) bytes)",
                    why: "swap modes need equal slots (MCUboot: \"not a compatible amount of sectors\"); the larger image will not fit the smaller slot",
                    fix: "give both slots the same size in the partition layout (pm_static.yml or devicetree)"))
            }
            for slot in entry.slots where slot.size == nil {
                findings.append(Finding(
                    id: "slot-unreadable", severity: .error,
                    summary: "slot \(slot.slot) of image \(image) cannot be opened (rc \(slot.rc ?? -1))",
                    why: "an upload to it fails with FLASH_OPEN_FAILED; on external flash this usually means the flash driver is not in the application",
                    fix: "enable the external flash driver in the application (and in MCUboot)",
                    settings: ["CONFIG_SPI_NOR", "CONFIG_NORDIC_QSPI_NOR", "CONFIG_PM_EXTERNAL_FLASH_MCUBOOT_SECONDARY"]))
            }
            let limit = entry.maxImageSize ?? entry.slots.first(where: { $0.slot == 1 })?.size
            if let fileLength, let limit, fileLength > limit {
                findings.append(Finding(
                    id: "image-too-large", severity: .error,
                    summary: "the image is \(fileLength) bytes; the slot takes at most \(limit)",
                    why: "the upload is refused with INVALID_IMAGE_TOO_LARGE (image error 30) or MCUboot will not swap it",
                    fix: "make the image smaller or the slots larger (both application and MCUboot layouts)"))
            }
        }
        return findings
    }
}
