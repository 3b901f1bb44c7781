public import SMPCtlProtocol

/// One thing `diagnose` found about a device.
public struct DiagnosisFinding: Sendable, Hashable {
    public enum Severity: String, Sendable, Hashable, Comparable {
        case info, warning, error

        private var rank: Int { self == .info ? 0 : self == .warning ? 1 : 2 }
        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
    }

    /// A stable identifier, such as `pending-slot-blocks-upload`.
    public var id: String
    public var severity: Severity
    /// What was found.
    public var summary: String
    /// Why it matters for an update.
    public var why: String
    /// What to do.
    public var fix: String
    /// Firmware settings involved.
    public var settings: [String]

    public init(id: String, severity: Severity, summary: String, why: String, fix: String, settings: [String] = []) {
        self.id = id
        self.severity = severity
        self.summary = summary
        self.why = why
        self.fix = fix
        self.settings = settings
    }
}

/// What `diagnose` read from the device, and what it concluded.
public struct DeviceDiagnosis: Sendable {
    public var reachable = false
    public var smpVersion: SMPVersion = .v2
    public var parameters: OSManagement.ParametersResponse?
    public var parametersSupported = false
    public var bootloader: String?
    public var bootloaderMode: Int?
    public var images: [ImageManagement.SlotState] = []
    public var slotInfo: ImageManagement.SlotInfoResponse?
    public var findings: [DiagnosisFinding] = []

    /// The worst severity found, or `nil` when nothing was found.
    public var worst: DiagnosisFinding.Severity? { findings.map(\.severity).max() }
}

extension SMPClient {
    /// Reads the device's state without changing anything (echo, params, bootloader info, image
    /// list, slot info) and reports why an update could fail or did fail.
    ///
    /// - Parameters:
    ///   - image: the image number an update would target.
    ///   - fileLength: the size of the image to be uploaded, to compare with the slot.
    ///   - imageHash: the hash of that image, to tell whether the device already holds it.
    public func diagnose(image: Int = 0, fileLength: Int? = nil, imageHash: [UInt8]? = nil) async -> DeviceDiagnosis {
        var report = DeviceDiagnosis()
        do {
            _ = try await send(OSManagement.EchoRequest("smpctl diagnose"))
            report.reachable = true
        } catch {
            report.findings.append(DiagnosisFinding(
                id: "no-answer", severity: .error, summary: "the device does not answer SMP echo: \(error)",
                why: "nothing else can be read or updated without SMP answers",
                fix: "check the connection string, that the application has mcumgr enabled for this transport, and that no other program holds the port",
                settings: ["CONFIG_MCUMGR", "CONFIG_MCUMGR_GRP_OS", "CONFIG_MCUMGR_TRANSPORT_UART / _BT / _UDP"]))
            return report
        }
        report.smpVersion = version

        if let parameters = try? await readParameters() {
            report.parameters = parameters
            report.parametersSupported = parametersSupported
            report.findings += SpeedAdvisor.advise(
                parameters: parameters, supported: parametersSupported, link: await linkModel())
        }

        if let info = try? await send(OSManagement.BootloaderInfoRequest()) { report.bootloader = info.bootloader }
        if let mode = try? await send(OSManagement.BootloaderInfoRequest(query: "mode")) {
            report.bootloaderMode = mode.mode
            if let value = mode.mode, value == 0 || value == 2 || value == 4 {
                report.findings.append(DiagnosisFinding(
                    id: "no-revert", severity: .warning,
                    summary: "MCUboot runs in \(OSManagement.mcubootModeName(value)) mode",
                    why: "this mode cannot revert: a test boot of a broken image is not undone, and single-application mode has no secondary slot to upload into",
                    fix: "use a swap mode (swap using move or scratch) if you need revert; otherwise upload with --mode confirm-only",
                    settings: ["CONFIG_BOOT_SWAP_USING_MOVE", "CONFIG_BOOT_UPGRADE_ONLY", "CONFIG_SINGLE_APPLICATION_SLOT"]))
            }
        }

        do {
            report.images = try await send(ImageManagement.StateReadRequest()).images
        } catch {
            report.findings.append(DiagnosisFinding(
                id: "no-image-list", severity: .error, summary: "the image list cannot be read: \(error)",
                why: "updates use the image group; without it nothing can be uploaded",
                fix: "enable the image management group in the firmware", settings: ["CONFIG_MCUMGR_GRP_IMG"]))
        }
        let mine = report.images.filter { $0.image == image }
        if let primary = mine.first(where: { $0.slot == 0 }) {
            if primary.active, !primary.confirmed {
                report.findings.append(DiagnosisFinding(
                    id: "unconfirmed-running-image", severity: .warning,
                    summary: "the running image \(primary.version) is not confirmed",
                    why: "MCUboot reverts to the previous image at the next reset unless it is confirmed, and a new upload is refused while the revert is pending",
                    fix: "confirm it with `smpctl image confirm` once it works, or reset to revert"))
            }
        } else if !report.images.isEmpty {
            report.findings.append(DiagnosisFinding(
                id: "no-primary-image", severity: .warning, summary: "no image is listed in slot 0 of image \(image)",
                why: "the application cannot read its own slot; the partition layout of the application and MCUboot may differ",
                fix: "compare the slot partitions of the application and MCUboot (`smpctl doctor BUILD_DIR`)"))
        }
        if let secondary = mine.first(where: { $0.slot == 1 }) {
            if secondary.pending {
                report.findings.append(DiagnosisFinding(
                    id: "pending-slot-blocks-upload", severity: .error,
                    summary: "slot 1 holds version \(secondary.version), marked \(secondary.permanent ? "permanent" : "for test") at the next reset",
                    why: "a pending slot cannot be overwritten: an upload answers NO_FREE_SLOT (image error 9, v1 rc 6)",
                    fix: "reset the device to apply it, or mark the other image again, before uploading"))
            } else if secondary.confirmed, !secondary.active {
                report.findings.append(DiagnosisFinding(
                    id: "revert-image-in-secondary", severity: .warning,
                    summary: "slot 1 holds the previous image \(secondary.version), the revert target of a test boot",
                    why: "until the running image is confirmed, slot 1 is needed for the revert and uploads are refused",
                    fix: "confirm the running image first"))
            }
            if let imageHash, secondary.hash == imageHash {
                report.findings.append(DiagnosisFinding(
                    id: "already-uploaded", severity: .info, summary: "slot 1 already holds this image",
                    why: "the upload can be skipped", fix: "mark it for test or confirm it (`smpctl dfu` does this)"))
            }
        }
        if let imageHash, mine.contains(where: { $0.slot == 0 && $0.hash == imageHash }) {
            report.findings.append(DiagnosisFinding(
                id: "already-running", severity: .info, summary: "the device already runs this image",
                why: "there is nothing to update", fix: "nothing"))
        }

        if let info = try? await send(ImageManagement.SlotInfoRequest()) {
            report.slotInfo = info
            if let entry = info.images.first(where: { $0.image == image }) {
                let sizes = entry.slots.compactMap(\.size)
                if sizes.count == 2, sizes[0] != sizes[1] {
                    report.findings.append(DiagnosisFinding(
                        id: "slot-size-mismatch", severity: .warning,
                        summary: "the slots of image \(image) differ in size (\(sizes[0]) and \(sizes[1]) bytes)",
                        why: "swap modes need equal slots (MCUboot: \"not a compatible amount of sectors\"); the larger image will not fit the smaller slot",
                        fix: "give both slots the same size in the partition layout (pm_static.yml or devicetree)"))
                }
                for slot in entry.slots where slot.size == nil {
                    report.findings.append(DiagnosisFinding(
                        id: "slot-unreadable", severity: .error,
                        summary: "slot \(slot.slot) of image \(image) cannot be opened (rc \(slot.rc ?? -1))",
                        why: "an upload to it fails with FLASH_OPEN_FAILED; on external flash this usually means the flash driver is not in the application",
                        fix: "enable the external flash driver in the application (and in MCUboot)",
                        settings: ["CONFIG_SPI_NOR", "CONFIG_NORDIC_QSPI_NOR", "CONFIG_PM_EXTERNAL_FLASH_MCUBOOT_SECONDARY"]))
                }
                let limit = entry.maxImageSize ?? entry.slots.first(where: { $0.slot == 1 })?.size
                if let fileLength, let limit, fileLength > limit {
                    report.findings.append(DiagnosisFinding(
                        id: "image-too-large", severity: .error,
                        summary: "the image is \(fileLength) bytes; the slot takes at most \(limit)",
                        why: "the upload is refused with INVALID_IMAGE_TOO_LARGE (image error 30) or MCUboot will not swap it",
                        fix: "make the image smaller or the slots larger (both application and MCUboot layouts)"))
                }
            }
        }
        return report
    }
}
