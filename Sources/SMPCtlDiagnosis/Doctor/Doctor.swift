// `smpctl doctor`: checks a Zephyr / nRF Connect SDK build folder for the misconfigurations that
// make firmware updates fail in the field. Each check names the public reports it is based on
// (keys into DoctorReferences).

/// The doctor's findings are ``Finding``s; these names stay for the checks written against them.
public typealias DoctorSeverity = Severity
/// Where a doctor finding points (``Finding/Location``).
public typealias DoctorLocation = Finding.Location
/// One misconfiguration: a ``Finding`` with a location and references (keys into ``DoctorReferences``).
public typealias DoctorFinding = Finding

/// The result of checking a build folder.
public struct DoctorReport: Sendable {
    public var build: DoctorBuild
    public var findings: [DoctorFinding]
    /// The file to upload over SMP, when the build has one.
    public var uploadFile: String?

    /// Findings at error level.
    public var errorCount: Int { findings.filter { $0.severity == .error }.count }
    /// Findings at warning level.
    public var warningCount: Int { findings.filter { $0.severity == .warning }.count }
}

/// The build-folder doctor.
public enum Doctor {
    /// Flash drivers that the Partition Manager recognises for an external region.
    static let inTreeExternalCompatibles: Set<String> = ["nordic,qspi-nor", "jedec,spi-nor", "jedec,mspi-nor"]

    /// Partitions whose address and size must sit on erase-page boundaries.
    static let erasablePartitions: Set<String> = [
        "mcuboot", "mcuboot_primary", "mcuboot_secondary", "mcuboot_primary_1", "mcuboot_secondary_1",
        "mcuboot_scratch", "settings_storage", "nvs_storage", "littlefs_storage", "zboss_nvram", "storage",
    ]

    /// Reads and checks a build folder; nil when `path` is not a build folder.
    public static func examine(path: String) -> DoctorReport? {
        guard let build = DoctorBuild.load(path: path) else { return nil }
        return check(build)
    }

    /// Runs every check on a loaded build.
    public static func check(_ build: DoctorBuild) -> DoctorReport {
        var context = Context(build: build)
        context.checkUnreadableFiles()
        context.checkValueRanges()
        context.checkExternalFlash()
        context.checkQSPIWithoutNode()
        context.checkSPINorBus()
        context.checkSlotSizes()
        context.checkAlignment()
        context.checkForeignPartitionFile()
        context.checkSectors()
        context.checkSwapMoveFit()
        context.checkActiveSlotRegression()
        context.checkNetworkCore()
        context.checkImages()
        context.checkSigningKey()
        return DoctorReport(build: build, findings: ordered(context.findings), uploadFile: context.uploadFile())
    }

    /// The report's order: errors first, then warnings, then notes; by id within each.
    static func ordered(_ findings: [Finding]) -> [Finding] {
        findings.sorted { $0.severity != $1.severity ? $0.severity > $1.severity : $0.id < $1.id }
    }

    struct Context {
        let build: DoctorBuild
        var findings: [DoctorFinding] = []

        init(build: DoctorBuild) { self.build = build }

        var app: DoctorImage { build.application }
        var images: [DoctorImage] { [build.application] + (build.mcuboot.map { [$0] } ?? []) }
        var partitionsFile: String { build.partitionsFile ?? "partitions.yml" }

        mutating func add(
            _ id: String, _ severity: DoctorSeverity, _ location: DoctorLocation, _ summary: String,
            why: String, fix: String, references: [String]
        ) {
            findings.append(Finding(
                id: id, severity: severity, summary: summary, why: why, fix: fix, location: location, references: references))
        }

        /// The secondary slot, when it is in an external region.
        var externalSecondary: DoctorPartition? {
            guard let secondary = build.partitions["mcuboot_secondary"] ?? build.pmStatic["mcuboot_secondary"] else { return nil }
            return secondary.region.contains("external") ? secondary : nil
        }

        func partitionLocation(_ partition: DoctorPartition, key: String? = nil) -> DoctorLocation {
            let inPartitions = build.partitions[partition.name] != nil
            return DoctorLocation(
                file: inPartitions ? partitionsFile : (build.pmStaticFile ?? "pm_static.yml"),
                line: partition.line, key: key ?? partition.name)
        }

        func hasExternalDriver(_ config: DoctorKconfig) -> Bool {
            config.isEnabled("CONFIG_NORDIC_QSPI_NOR") || config.isEnabled("CONFIG_SPI_NOR")
                || config.isEnabled("CONFIG_PM_EXTERNAL_FLASH_HAS_DRIVER")
        }

        // MARK: Files that are there but could not be read.

        mutating func checkUnreadableFiles() {
            for problem in build.unreadableFiles {
                let isPartitionFile = problem.file.hasSuffix(".yml") || problem.file.hasSuffix(".yaml")
                add("unreadable-build-file", .warning, DoctorLocation(file: problem.file, line: problem.line),
                    "\(problem.file) was not read: \(problem.reason).",
                    why: "The doctor checks only the files it can read, so the checks that need this one were skipped"
                        + (isPartitionFile ? "; if the build used it, its partition layout is what the device has." : "."),
                    fix: isPartitionFile
                        ? "Make it a regular, valid YAML file (as Partition Manager writes it), or remove it, and run the doctor again."
                        : "Build again so that the build writes a regular file there, and run the doctor again.",
                    references: [isPartitionFile ? "ncs-partition-manager" : "zephyr-build-output"])
            }
        }

        // MARK: Values no flash map can hold.

        /// Flash offsets and sizes in Zephyr's flash map are 32-bit (`struct flash_area`), and
        /// devicetree cells are 32-bit. A larger value (a typo, or a hostile file) is reported here,
        /// and the checks below leave it out rather than compute with it.
        mutating func checkValueRanges() {
            let sources: [(String, [String: DoctorPartition])] = [
                (partitionsFile, build.partitions), (build.pmStaticFile ?? "pm_static.yml", build.pmStatic),
            ]
            for (file, table) in sources {
                for name in table.keys.sorted() {
                    guard let partition = table[name], !Doctor.fitsFlashMap(partition) else { continue }
                    let address = partition.address.map { "0x" + String($0, radix: 16) } ?? "none"
                    let size = partition.size.map { "0x" + String($0, radix: 16) } ?? "none"
                    add("value-out-of-range", .error, DoctorLocation(file: file, line: partition.line, key: name),
                        "\(name) (address \(address), size \(size)) does not fit a 32-bit flash map.",
                        why: "Zephyr's flash map holds partition offsets and sizes in 32 bits, so no device can have this partition: "
                            + "Partition Manager or the build fails, or the values wrap and the slot lands somewhere else.",
                        fix: "Correct the address and size of \(name) in \(file) (they must end below 4 GiB).",
                        references: ["ncs-partition-manager"])
                }
            }
            for image in images {
                if let dts = image.devicetree {
                    for node in dts.nodes where node.cells("erase-block-size").contains(where: { $0 > UInt64(UInt32.max) }) {
                        add("value-out-of-range", .error,
                            DoctorLocation(file: dts.file, line: node.propertyLines["erase-block-size"] ?? node.line, key: node.path + "/erase-block-size"),
                            "The erase-block-size of \(node.path) in the \(image.role) devicetree does not fit a 32-bit cell.",
                            why: "Devicetree cells are 32 bits; a larger erase page cannot be real, so the alignment and sector checks ignore it.",
                            fix: "Set erase-block-size to the flash's erase page (0x1000 on nRF52 and nRF53 internal flash).",
                            references: ["zephyr-build-output"])
                    }
                }
                if let config = image.kconfig {
                    for option in Doctor.pageSizeOptions {
                        guard let value = config.integer(option), value > UInt64(UInt32.max) else { continue }
                        add("value-out-of-range", .error, config.location(option),
                            "\(option) in the \(image.role) is 0x\(String(value, radix: 16)), larger than any flash page.",
                            why: "The flash layout page size is a 32-bit value; this one cannot be real, so the sector checks ignore it.",
                            fix: "Set \(option) to the external flash's erase sector (4096 for the usual QSPI and SPI NOR chips).",
                            references: ["nrf5340-audio-ext-flash-conf"])
                    }
                }
            }
        }

        // MARK: External flash: drivers, chosen node, override.

        mutating func checkExternalFlash() {
            for image in images {
                if let dts = image.devicetree { checkChosen(dts, image: image) }
            }
            guard let secondary = externalSecondary else { return }
            for image in images {
                guard let config = image.kconfig else { continue }
                let name = image.role == "MCUboot" ? "mcuboot" : "app"
                let dts = image.devicetree
                let extNode = dts?.chosenNode("nordic,pm-ext-flash") ?? dts?.chosenNode("zephyr,external-flash")
                // Without the Partition Manager the slot's device is its devicetree parent: no chosen node is needed.
                let partitionManager = build.partitionSource != .devicetree
                if let dts {
                    if partitionManager, dts.chosen["nordic,pm-ext-flash"] == nil {
                        add("pm-ext-flash-missing", .error, DoctorLocation(file: dts.file, key: "chosen/nordic,pm-ext-flash"),
                            "The secondary slot is in external flash, but the \(image.role) devicetree chooses no nordic,pm-ext-flash.",
                            why: "Partition Manager places the external_flash region on the node chosen as nordic,pm-ext-flash. "
                                + "Without it the \(image.role) has no device for the secondary slot: the build fails, or "
                                + "MCUboot and img_mgmt cannot open the slot (Failed to open flash area, -19 or -2).",
                            fix: "Add `chosen { nordic,pm-ext-flash = &<flash-node>; };` to the \(image.role)'s overlay"
                                + (image.role == "MCUboot" ? " (sysbuild/mcuboot.overlay, or child_image/mcuboot.overlay before sysbuild)." : "."),
                            references: ["ncs-pm-external-flash", "sdk-zephyr-pr-1010", "devzone-122329"])
                    } else if let extNode, !dts.isEnabled(extNode) {
                        add("ext-flash-node-disabled", .error,
                            DoctorLocation(file: dts.file, line: extNode.propertyLines["status"] ?? extNode.line, key: extNode.path),
                            "The external flash chosen for the secondary slot is disabled in the \(image.role) devicetree.",
                            why: "A disabled node has no driver instance, so the \(image.role) cannot reach the secondary slot "
                                + "(Failed to open flash area: -19, or a link error on __device_dts_ord_N).",
                            fix: "Set `status = \"okay\";` on \(extNode.path) and on its bus in the \(image.role)'s overlay.",
                            references: ["devzone-122329", "devzone-119044"])
                    }
                }
                if hasExternalDriver(config) { continue }
                let compatibles = extNode?.compatibles ?? []
                let outOfTree = partitionManager && !compatibles.isEmpty && Doctor.inTreeExternalCompatibles.isDisjoint(with: compatibles)
                if partitionManager, config.isEnabled("CONFIG_PM_OVERRIDE_EXTERNAL_DRIVER_CHECK") {
                    add("pm-override-without-driver", .error, config.location("CONFIG_PM_OVERRIDE_EXTERNAL_DRIVER_CHECK"),
                        "CONFIG_PM_OVERRIDE_EXTERNAL_DRIVER_CHECK is set in the \(image.role), but no external flash driver is compiled in.",
                        why: "The override keeps the external partitions in the flash map although nothing can drive them: "
                            + "the link fails with undefined reference to '__device_dts_ord_N', or the slot cannot be opened at run time.",
                        fix: "Enable the driver for the external flash in the \(image.role) (CONFIG_SPI_NOR=y or CONFIG_NORDIC_QSPI_NOR=y, "
                            + "with the node enabled), or remove the override.",
                        references: ["ncs-ext-flash-troubleshooting", "sdk-nrf-pr-9423"])
                } else if outOfTree {
                    add("oot-driver-no-has-driver", .error, config.location("CONFIG_PM_EXTERNAL_FLASH_HAS_DRIVER"),
                        "The external flash (\(compatibles.joined(separator: ", "))) uses an out-of-tree driver that does not select CONFIG_PM_EXTERNAL_FLASH_HAS_DRIVER in the \(image.role).",
                        why: "Partition Manager leaves partitions of a region without a known driver out of the flash map, so "
                            + "the secondary slot is not accessible: MCUboot prints \"Failed reading sectors; BOOT_MAX_IMG_SECTORS=… - too small?\" "
                            + "and uploads fail.",
                        fix: "Add `select PM_EXTERNAL_FLASH_HAS_DRIVER` to the driver's Kconfig symbol (or set "
                            + "CONFIG_PM_OVERRIDE_EXTERNAL_DRIVER_CHECK=y with the driver enabled) in every image that uses the slot.",
                        references: ["ncs-ext-flash-troubleshooting", "sdk-nrf-pr-9423"])
                } else {
                    let driverOption = compatibles.contains("jedec,spi-nor") ? "CONFIG_SPI_NOR" : "CONFIG_NORDIC_QSPI_NOR"
                    let symptom = image.role == "MCUboot"
                        ? "MCUboot cannot read the secondary slot: \"Failed reading sectors; BOOT_MAX_IMG_SECTORS=… - too small?\", then \"Cannot upgrade: not a compatible amount of sectors\" or \"Failed to open flash area … -19\"."
                        : "The application cannot write the secondary slot: uploads fail with rc 5 (\"Image upload inspect failed: 5\") or \"Failed to open flash area … -19\"."
                    add("ext-flash-no-driver-\(name)", .error, config.location(driverOption),
                        "The secondary slot is in external flash (\(secondary.device ?? secondary.region)), but the \(image.role) has no flash driver for it.",
                        why: symptom,
                        fix: "Enable the driver in the \(image.role): \(driverOption)=y"
                            + (driverOption == "CONFIG_SPI_NOR" ? " with CONFIG_SPI=y" : "")
                            + (image.role == "MCUboot" ? " in sysbuild/mcuboot.conf (child_image/mcuboot.conf before sysbuild), and give MCUboot the same devicetree overlay." : " in prj.conf."),
                        references: ["ncs-ext-flash-troubleshooting", "devzone-123633", "devzone-119044"])
                }
            }
        }

        mutating func checkChosen(_ dts: DoctorDevicetree, image: DoctorImage) {
            guard let pm = dts.chosen["nordic,pm-ext-flash"], let zephyr = dts.chosen["zephyr,external-flash"] else { return }
            let pmNode = dts.chosenNode("nordic,pm-ext-flash")?.path ?? pm
            let zephyrNode = dts.chosenNode("zephyr,external-flash")?.path ?? zephyr
            let same = pmNode == zephyrNode
            add("ext-flash-chosen-conflict", same ? .warning : .error,
                DoctorLocation(file: dts.file, line: dts.chosenLines["zephyr,external-flash"], key: "chosen/zephyr,external-flash"),
                same
                    ? "The \(image.role) devicetree chooses both zephyr,external-flash and nordic,pm-ext-flash."
                    : "The \(image.role) devicetree chooses zephyr,external-flash (\(zephyrNode)) and nordic,pm-ext-flash (\(pmNode)) as different devices.",
                why: "Partition Manager only follows nordic,pm-ext-flash. A second chosen external flash means the code that opens "
                    + "the slot and the partition map can disagree on the device, and the slot is then written to one chip and read from another, or not found.",
                fix: "Keep one chosen external flash: `nordic,pm-ext-flash = &<node>;` and remove zephyr,external-flash from the overlays.",
                references: ["ncs-pm-external-flash"])
        }

        // MARK: QSPI driver enabled without an enabled QSPI flash node.

        mutating func checkQSPIWithoutNode() {
            for image in images {
                guard let config = image.kconfig, let dts = image.devicetree, config.isEnabled("CONFIG_NORDIC_QSPI_NOR") else { continue }
                let enabled = dts.nodes(compatible: "nordic,qspi-nor").contains { dts.isEnabled($0) }
                guard !enabled else { continue }
                let implied = config.isEnabled("CONFIG_NCS_SAMPLE_MCUMGR_BT_OTA_DFU")
                add("qspi-driver-without-node", .error, config.location("CONFIG_NORDIC_QSPI_NOR"),
                    "CONFIG_NORDIC_QSPI_NOR is on in the \(image.role), but its devicetree has no enabled QSPI flash node"
                        + (implied ? " (it is implied by CONFIG_NCS_SAMPLE_MCUMGR_BT_OTA_DFU)." : "."),
                    why: "The QSPI NOR driver is built for a device that does not exist: the build breaks in nrf_qspi_nor.c or at link "
                        + "time, or the image ends up without the flash device it expects, and uploads fail with rc 5.",
                    fix: "Set CONFIG_NORDIC_QSPI_NOR=n in the \(image.role) (an `imply` can be overridden), or enable the &qspi node "
                        + "and its flash if the board has one.",
                    references: ["devzone-104264"])
            }
        }

        // MARK: SPI NOR on a disabled bus, or without the SPI driver.

        mutating func checkSPINorBus() {
            for image in images {
                guard let config = image.kconfig, let dts = image.devicetree, config.isEnabled("CONFIG_SPI_NOR") else { continue }
                for node in dts.nodes(compatible: "jedec,spi-nor") where node.isOkay {
                    guard let bus = dts.parent(of: node) else { continue }
                    let busOff = !dts.isEnabled(bus)
                    let spiOff = !config.isEnabled("CONFIG_SPI")
                    guard busOff || spiOff else { continue }
                    add("spi-nor-bus-unavailable", .error,
                        busOff ? DoctorLocation(file: dts.file, line: bus.propertyLines["status"] ?? bus.line, key: bus.path)
                            : config.location("CONFIG_SPI"),
                        "The SPI NOR flash \(node.path) is enabled in the \(image.role), but "
                            + (busOff ? "its bus \(bus.path) is disabled." : "CONFIG_SPI is not set."),
                        why: "The flash driver refers to a bus device that is not built, so linking fails with "
                            + "undefined reference to '__device_dts_ord_N' (often inside the MCUboot image).",
                        fix: busOff
                            ? "Enable the bus (`&\(bus.labels.first ?? bus.name) { status = \"okay\"; };`) in the \(image.role)'s overlay, with its pinctrl."
                            : "Set CONFIG_SPI=y in the \(image.role)'s configuration.",
                        references: ["devzone-117351", "devzone-112849", "devzone-122329"])
                }
            }
        }

        // MARK: Slot sizes.

        mutating func checkSlotSizes() {
            let table = build.partitions.isEmpty ? build.pmStatic : build.partitions
            for suffix in ["", "_1"] {
                guard let primary = table["mcuboot_primary" + suffix], let secondary = table["mcuboot_secondary" + suffix],
                    let primarySize = primary.size, let secondarySize = secondary.size, primarySize != secondarySize
                else { continue }
                add("slot-size-mismatch", .error, partitionLocation(secondary, key: secondary.name + ".size"),
                    "\(primary.name) is \(kib(primarySize)) but \(secondary.name) is \(kib(secondarySize)).",
                    why: "MCUboot swaps or copies whole slots and finds the image trailer at the end of each slot. With different "
                        + "sizes the trailer is looked for in the wrong place: the device answers \"Hash not found\" (image error 8), "
                        + "the test request is ignored, or the swap is refused.",
                    fix: build.partitionSource == .devicetree
                        ? "Give both slots the same size (0x\(String(primarySize, radix: 16))) in the devicetree: the reg of "
                            + "slot0_partition and slot1_partition in a board overlay, used by both the application and MCUboot."
                        : "Give both slots the same size (0x\(String(primarySize, radix: 16))) in pm_static.yml "
                            + "(or CONFIG_PM_PARTITION_SIZE_MCUBOOT_SECONDARY in the application and MCUboot).",
                    references: ["devzone-121133"])
            }
        }

        // MARK: Alignment to erase pages.

        /// The internal flash's erase page (sizes that do not fit 32 bits are reported by ``checkValueRanges()`` and skipped).
        func internalEraseSize() -> UInt64 {
            func usable(_ size: UInt64?) -> UInt64? {
                guard let size, size > 0, size <= UInt64(UInt32.max) else { return nil }
                return size
            }
            for dts in images.compactMap(\.devicetree) {
                if let flash = dts.chosenNode("zephyr,flash"), let size = usable(flash.cells("erase-block-size").first) { return size }
                for node in dts.nodes(compatible: "soc-nv-flash") {
                    if let size = usable(node.cells("erase-block-size").first) { return size }
                }
            }
            return 4096
        }

        func spuRegionSize() -> UInt64? {
            guard let config = app.kconfig, config.isEnabled("CONFIG_BUILD_WITH_TFM") || config.isEnabled("CONFIG_TRUSTED_EXECUTION_NONSECURE")
            else { return nil }
            return config.integer("CONFIG_NRF_SPU_FLASH_REGION_SIZE")
        }

        mutating func checkAlignment() {
            let table = build.partitions.isEmpty ? build.pmStatic : build.partitions
            let internalPage = internalEraseSize()
            for name in table.keys.sorted() where Doctor.erasablePartitions.contains(name) {
                guard let partition = table[name], let address = partition.address, let size = partition.size,
                    Doctor.fitsFlashMap(partition)
                else { continue }
                let external = partition.region.contains("external")
                if partition.region.contains("ram") || partition.region == "otp" { continue }
                let page: UInt64 = external ? 4096 : internalPage
                guard page > 0, address % page != 0 || size % page != 0 else { continue }
                let slot = name.hasPrefix("mcuboot")
                add("partition-misaligned", slot ? .error : .warning, partitionLocation(partition),
                    "\(name) (address 0x\(String(address, radix: 16)), size 0x\(String(size, radix: 16))) is not aligned to the \(external ? "external" : "internal") flash erase page of 0x\(String(page, radix: 16)).",
                    why: "Flash is erased a page at a time. A partition that starts or ends inside a page shares it with its neighbour, "
                        + "so erasing the slot before an upload (or during a swap) destroys data next to it, and MCUboot counts sectors "
                        + "that do not match (\"Cannot upgrade: slots have non-compatible sectors\").",
                    fix: "Move and size \(name) in pm_static.yml to multiples of 0x\(String(page, radix: 16)) (the erase-block-size of the flash node).",
                    references: ["ncs-ext-flash-troubleshooting", "devzone-122634"])
            }
            if let region = spuRegionSize(), region > 0, let primary = table["mcuboot_primary"], let address = primary.address,
                address % region != 0
            {
                add("partition-misaligned", .error, partitionLocation(primary, key: "mcuboot_primary.address"),
                    "mcuboot_primary starts at 0x\(String(address, radix: 16)), which is not on a 0x\(String(region, radix: 16)) SPU region boundary.",
                    why: "With TF-M the flash is split into secure and non-secure parts in SPU regions; a slot that starts inside a region "
                        + "cannot be given the right security attribute, and the image does not boot.",
                    fix: "Align mcuboot_primary (and the partitions before it) to CONFIG_NRF_SPU_FLASH_REGION_SIZE in pm_static.yml.",
                    references: ["devzone-122634"])
            }
        }

        // MARK: A partition file from another SoC.

        mutating func checkForeignPartitionFile() {
            guard let config = app.kconfig else { return }
            let multiCore = config.isEnabled("CONFIG_SOC_NRF5340_CPUAPP") || config.isEnabled("CONFIG_SOC_SERIES_NRF53X")
            guard !multiCore else { return }
            let mcubootImages = build.mcuboot?.kconfig?.integer("CONFIG_UPDATEABLE_IMAGE_NUMBER") ?? 1
            let sources: [(String, [String: DoctorPartition])] = [
                (build.pmStaticFile ?? "pm_static.yml", build.pmStatic), (partitionsFile, build.partitions),
            ]
            for (file, table) in sources {
                let foreign = table.values.filter {
                    (($0.name == "mcuboot_primary_1" || $0.name == "mcuboot_secondary_1") && mcubootImages < 2)
                        || $0.region == "ram_flash" || $0.device == "flash_ctrl"
                }.sorted { $0.line < $1.line }
                guard let first = foreign.first else { continue }
                let soc = config.values.keys.filter { $0.hasPrefix("CONFIG_SOC_NRF") && config.isEnabled($0) && !$0.contains("SERIES") }
                    .sorted().first.map { String($0.dropFirst("CONFIG_SOC_".count)) } ?? "this SoC"
                add("pm-static-foreign-soc", .error, DoctorLocation(file: file, line: first.line, key: first.name),
                    "\(file) has \(foreign.map(\.name).joined(separator: ", ")), which exist only on the nRF5340 (network-core update), but the build is for \(soc).",
                    why: "The file was copied from a multi-core project. MCUboot and img_mgmt are built for one image pair here, so "
                        + "the extra partitions either break the layout or leave slot numbers pointing at areas that do not exist "
                        + "(Failed to open flash area … -2).",
                    fix: "Regenerate the static layout for this SoC: delete \(file), build once, and copy the new partitions.yml "
                        + "to pm_static.yml; or remove the *_1 and ram_flash entries.",
                    references: ["sdk-mcuboot-pr-206", "devzone-107589"])
                break
            }
        }

        // MARK: BOOT_MAX_IMG_SECTORS and sector sizes.

        mutating func checkSectors() {
            guard let mcuboot = build.mcuboot?.kconfig else { return }
            let table = build.partitions.isEmpty ? build.pmStatic : build.partitions
            guard let primary = table["mcuboot_primary"], let primarySize = primary.size, Doctor.fitsFlashMap(primary) else { return }
            let internalPage = internalEraseSize()
            var secondarySector = internalPage
            var layoutOption: String?
            if externalSecondary != nil {
                for option in Doctor.pageSizeOptions {
                    if let size = mcuboot.integer(option), size > 0, size <= UInt64(UInt32.max) {
                        secondarySector = size
                        layoutOption = option
                        break
                    }
                }
            }
            let secondary = table["mcuboot_secondary"]
            if let secondary, !Doctor.fitsFlashMap(secondary) { return }
            let secondarySize = secondary?.size ?? primarySize
            let needed = max(
                Doctor.sectors(primarySize, of: internalPage), Doctor.sectors(secondarySize, of: secondarySector))
            if !mcuboot.isEnabled("CONFIG_BOOT_MAX_IMG_SECTORS_AUTO"), let configured = mcuboot.integer("CONFIG_BOOT_MAX_IMG_SECTORS"),
                configured < needed
            {
                add("max-img-sectors-too-small", .error, mcuboot.location("CONFIG_BOOT_MAX_IMG_SECTORS"),
                    "MCUboot's CONFIG_BOOT_MAX_IMG_SECTORS is \(configured), but the slots need \(needed) sectors (\(kib(primarySize)) in 0x\(String(internalPage, radix: 16))-byte sectors).",
                    why: "MCUboot keeps a table of at most BOOT_MAX_IMG_SECTORS sectors per slot. A larger slot cannot be read: "
                        + "\"Failed reading sectors; BOOT_MAX_IMG_SECTORS=\(configured) - too small?\", then \"Cannot upgrade: not a compatible amount of sectors\", "
                        + "and the uploaded image is never installed.",
                    fix: "Set CONFIG_BOOT_MAX_IMG_SECTORS=\(nextPowerOfTwo(needed)) (at least \(needed)) in MCUboot's configuration "
                        + "(sysbuild/mcuboot.conf or child_image/mcuboot.conf), or CONFIG_BOOT_MAX_IMG_SECTORS_AUTO=y where available.",
                    references: ["ncs-ext-flash-troubleshooting", "devzone-81563", "devzone-120384"])
            }
            if let layoutOption, secondarySector != internalPage, mcuboot.isEnabled("CONFIG_BOOT_SWAP_USING_MOVE") {
                add("sector-size-mismatch", .error, mcuboot.location(layoutOption),
                    "MCUboot sees the external secondary slot in 0x\(String(secondarySector, radix: 16))-byte sectors but the primary slot in 0x\(String(internalPage, radix: 16))-byte sectors.",
                    why: "Swap using move needs the same sector size in both slots. MCUboot refuses the upgrade with "
                        + "\"Cannot upgrade: slots have non-compatible sectors\" and keeps running the old image.",
                    fix: "Set \(layoutOption)=\(internalPage) in MCUboot's configuration (the external chip erases 4 KiB sectors).",
                    references: ["nrf5340-audio-ext-flash-conf", "devzone-128074"])
            }
        }

        /// Zephyr's img_mgmt finds the running slot by comparing a slot's offset with CONFIG_FLASH_LOAD_OFFSET, without
        /// its flash device (zephyr #99762): from v4.3.0 a range check, before it an exact match. A secondary slot on
        /// another device whose offsets cover the load offset is taken for the running one, and an upload goes to the
        /// primary slot: it overwrites the running image.
        mutating func checkActiveSlotRegression() {
            // Upstream Zephyr's fixed partitions (the Partition Manager finds the running slot its own way).
            guard let version = build.zephyrVersion, build.partitionSource == .devicetree else { return }
            let table = build.partitions.isEmpty ? build.pmStatic : build.partitions
            guard let primary = table["mcuboot_primary"], let primaryAddress = primary.address,
                let secondary = table["mcuboot_secondary"], let secondaryAddress = secondary.address, let secondarySize = secondary.size,
                Doctor.fitsFlashMap(primary), Doctor.fitsFlashMap(secondary)
            else { return }
            let primaryInternal = !primary.region.contains("external")
            let secondaryInternal = !secondary.region.contains("external")
            guard primaryInternal != secondaryInternal || (primary.device != nil && secondary.device != nil && primary.device != secondary.device)
            else { return }
            let loadOffset = app.kconfig?.integer("CONFIG_FLASH_LOAD_OFFSET").flatMap { $0 <= UInt64(UInt32.max) ? $0 : nil } ?? primaryAddress
            let rangeCheck = version.isAtLeast(4, 3)
            let hit = rangeCheck
                ? (secondaryAddress <= loadOffset && loadOffset < secondaryAddress + secondarySize)
                : secondaryAddress == loadOffset
            guard hit else { return }
            add("zephyr-99762-active-slot", .error, partitionLocation(secondary, key: secondary.name + ".address"),
                "With Zephyr \(version), the application may take \(secondary.name) (0x\(String(secondaryAddress, radix: 16))-0x\(String(secondaryAddress + secondarySize, radix: 16)) on another flash device) for the running slot, because its offsets cover the load offset 0x\(String(loadOffset, radix: 16)).",
                why: "img_mgmt decides which slot runs by comparing partition offsets with CONFIG_FLASH_LOAD_OFFSET and ignores the flash device"
                    + (rangeCheck ? " (a range check since Zephyr v4.3.0)" : " (an exact match before Zephyr v4.3.0)")
                    + ". It then treats the primary slot as free: an upload is written over the running image and the device no longer boots.",
                fix: "Until the fix for zephyr #99762 is in your Zephyr, place the secondary slot so that its offsets on the external device do not "
                    + "cover 0x\(String(loadOffset, radix: 16)) (for example start it above the primary slot's end), or use a Zephyr version without the regression.",
                references: ["zephyr-99762"])
        }

        /// The flash's write block (the smallest write), from MCUboot's devicetree, else the application's; 4 (nRF) when unknown.
        func writeBlockSize() -> UInt64 {
            for image in [build.mcuboot, build.application].compactMap({ $0 }) {
                guard let dts = image.devicetree else { continue }
                if let flash = dts.chosenNode("zephyr,flash"), let size = flash.cells("write-block-size").first, (1...256).contains(size) {
                    return size
                }
            }
            return 4
        }

        /// Swap using move needs, besides the image, one free sector in the primary slot (the move) and the image
        /// trailer at the end of both slots, rounded up to whole sectors (MCUboot swap_move.c, app_max_size()).
        mutating func checkSwapMoveFit() {
            guard let mcuboot = build.mcuboot?.kconfig, mcuboot.isEnabled("CONFIG_BOOT_SWAP_USING_MOVE") else { return }
            guard let file = uploadFile(), let imageSize = build.fileSizes[file], imageSize > 0 else { return }
            let table = build.partitions.isEmpty ? build.pmStatic : build.partitions
            guard let primary = table["mcuboot_primary"], let primarySize = primary.size, Doctor.fitsFlashMap(primary) else { return }
            let secondary = table["mcuboot_secondary"]
            if let secondary, !Doctor.fitsFlashMap(secondary) { return }
            let secondarySize = secondary?.size ?? primarySize
            let sector = internalEraseSize()
            let write = writeBlockSize()
            // Values come from files: every one is bounded before it is multiplied (32-bit sizes, at most 2^20 sectors).
            var maxSectors = Doctor.sectors(primarySize, of: sector)
            if !mcuboot.isEnabled("CONFIG_BOOT_MAX_IMG_SECTORS_AUTO"), let configured = mcuboot.integer("CONFIG_BOOT_MAX_IMG_SECTORS") {
                maxSectors = configured
            }
            guard sector > 0, maxSectors > 0, maxSectors <= 1 << 20 else { return }
            // swap_type + copy_done + image_ok + swap_size (BOOT_MAX_ALIGN 8 each) and the 16-byte magic.
            var infoSize: UInt64 = 8 * 4 + 16
            if mcuboot.isEnabled("CONFIG_BOOT_ENCRYPT_IMAGE") {
                infoSize += 2 * (mcuboot.isEnabled("CONFIG_BOOT_ENCRYPT_ALG_AES_256") ? 32 : 16)
            }
            // Three status entries per sector with swap using move (BOOT_STATUS_STATE_COUNT).
            let rawTrailer = maxSectors * 3 * write + infoSize
            let trailer = Doctor.sectors(rawTrailer, of: sector) * sector
            let primaryBytes = (primarySize / sector) * sector
            let secondaryBytes = (secondarySize / sector) * sector
            guard primaryBytes > trailer + sector, secondaryBytes > trailer else { return }
            let limit = min(primaryBytes - trailer - sector, secondaryBytes - trailer)
            guard imageSize > limit else { return }
            let location = DoctorLocation(file: file)
            // The trailer is sized for CONFIG_BOOT_MAX_IMG_SECTORS; sized for the slot's own sectors it may take fewer.
            let slotSectors = Doctor.sectors(primarySize, of: sector)
            let smallerTrailer = Doctor.sectors(slotSectors * 3 * write + infoSize, of: sector) * sector
            let trailerHint = smallerTrailer < trailer
                ? "; CONFIG_BOOT_MAX_IMG_SECTORS=\(slotSectors) (the slot's sector count) shrinks the trailer to \(kib(smallerTrailer))" : ""
            add("swap-move-image-too-large", .error, location,
                "The signed image is \(imageSize) bytes, but with swap using move MCUboot takes at most \(limit) bytes from these slots (\(kib(primarySize)) minus one 0x\(String(sector, radix: 16))-byte sector for the move and a \(kib(trailer)) trailer).",
                why: "MCUboot moves the primary image up by one sector and keeps its swap status (\(maxSectors) sectors x 3 x \(write)-byte writes plus \(infoSize) bytes) at the end of the slots. "
                    + "A larger image fits the partition but not the swap: the upload is refused with INVALID_IMAGE_TOO_LARGE (image error 30) "
                    + "where the application checks it, or MCUboot rejects the image at the next boot and keeps the old one.",
                fix: "Make the image smaller by at least \(imageSize - limit) bytes, or grow both slots by whole sectors (pm_static.yml or the devicetree "
                    + "partitions)\(trailerHint).",
                references: ["mcuboot-swap-move-max-size"])
        }

        // MARK: The application image and img_mgmt.

        mutating func checkImages() {
            guard let config = app.kconfig else { return }
            let prefix = app.directory.isEmpty ? "" : app.directory + "/"
            let hasMCUboot = build.mcuboot != nil || (build.sysbuild?.isEnabled("SB_CONFIG_BOOTLOADER_MCUBOOT") ?? false)
            if hasMCUboot && !config.isEnabled("CONFIG_BOOTLOADER_MCUBOOT") {
                add("app-not-built-for-mcuboot", .error, config.location("CONFIG_BOOTLOADER_MCUBOOT"),
                    "The build has MCUboot, but the application is not built for it (CONFIG_BOOTLOADER_MCUBOOT is not set).",
                    why: "The application is linked for the start of flash and is not signed, so MCUboot rejects it and an upload "
                        + "fails with rc 5 or leaves an image that never boots.",
                    fix: "Set CONFIG_BOOTLOADER_MCUBOOT=y in the application (with sysbuild, SB_CONFIG_BOOTLOADER_MCUBOOT=y in sysbuild.conf).",
                    references: ["mcuboot-imgtool"])
            } else if config.isEnabled("CONFIG_BOOTLOADER_MCUBOOT"), uploadFile() == nil,
                build.existingFiles.contains(prefix + "zephyr/zephyr.bin")
            {
                add("unsigned-image", .warning, DoctorLocation(file: prefix + "zephyr/zephyr.bin"),
                    "The build folder has only the unsigned zephyr.bin; there is no signed image to upload.",
                    why: "zephyr.bin has no MCUboot header or TLVs. Uploaded, it is refused (\"Image upload inspect failed: 5\", rc 5) "
                        + "or sits in the secondary slot where MCUboot ignores it.",
                    fix: "Upload zephyr.signed.bin (sysbuild) or app_update.bin (older NCS), or dfu_application.zip with a phone app; "
                        + "check that signing ran (CONFIG_MCUBOOT_SIGNATURE_KEY_FILE / imgtool) and rebuild.",
                    references: ["mcuboot-imgtool"])
            }
            let imageGroup = config.isEnabled("CONFIG_MCUMGR_GRP_IMG") || config.isEnabled("CONFIG_MCUMGR_CMD_IMG_MGMT")
                || config.isEnabled("CONFIG_IMG_MGMT")
            let serialRecovery = build.mcuboot?.kconfig?.isEnabled("CONFIG_MCUBOOT_SERIAL") ?? false
            if hasMCUboot && config.isEnabled("CONFIG_BOOTLOADER_MCUBOOT") && !imageGroup && !serialRecovery {
                add("img-mgmt-missing", .warning, config.location("CONFIG_MCUMGR_GRP_IMG"),
                    "The application has no SMP image management group (CONFIG_MCUMGR_GRP_IMG), and MCUboot has no serial recovery.",
                    why: "Nothing on the device can receive an image over SMP: upload requests get rc 8 (not supported) or no answer.",
                    fix: "Enable CONFIG_MCUMGR=y, CONFIG_MCUMGR_GRP_IMG=y, CONFIG_IMG_MANAGER=y and a transport "
                        + "(CONFIG_NCS_SAMPLE_MCUMGR_BT_OTA_DFU=y for Bluetooth on NCS).",
                    references: ["ncs-ext-flash-troubleshooting"])
            }
        }

        /// The signed image in the build folder, preferring what NCS tells users to upload.
        func uploadFile() -> String? {
            let prefix = app.directory.isEmpty ? "" : app.directory + "/"
            for candidate in [prefix + "zephyr/zephyr.signed.bin", prefix + "zephyr/app_update.bin", "zephyr/app_update.bin"]
            where build.existingFiles.contains(candidate) {
                return candidate
            }
            return nil
        }

        // MARK: Signing key.

        mutating func checkSigningKey() {
            let sources: [(DoctorKconfig, String)] = [
                build.mcuboot?.kconfig.map { ($0, "CONFIG_BOOT_SIGNATURE_KEY_FILE") },
                build.sysbuild.map { ($0, "SB_CONFIG_BOOT_SIGNATURE_KEY_FILE") },
            ].compactMap { $0 }
            for (config, option) in sources {
                guard let value = config.values[option], !value.isEmpty else { continue }
                let file = value.split(separator: "/").last.map(String.init) ?? value
                let defaults: Set<String> = ["root-ec-p256.pem", "root-rsa-2048.pem", "root-rsa-3072.pem", "root-ed25519.pem", "root-ec-p384.pem"]
                guard defaults.contains(file), value.contains("mcuboot") || !value.contains("/") else { continue }
                add("default-signing-key", .warning, config.location(option),
                    "Images are signed with MCUboot's public development key (\(file)).",
                    why: "Anyone can sign an image with that key, so a device in the field accepts any firmware; and images signed "
                        + "with your own key later are refused by this bootloader (rc 5 or \"Image in the secondary slot is not valid\").",
                    fix: "Generate a key (imgtool keygen -t ecdsa-p256 -k priv.pem) and set \(option) to it before shipping.",
                    references: ["ncs-mcuboot-signing"])
                break
            }
        }
    }

    static func kib(_ bytes: UInt64) -> String {
        bytes % 1024 == 0 ? "\(bytes / 1024) KiB (0x\(String(bytes, radix: 16)))" : "\(bytes) bytes (0x\(String(bytes, radix: 16)))"
    }

    /// Kconfig options that set the external flash's sector size as MCUboot sees it.
    static let pageSizeOptions = ["CONFIG_NORDIC_QSPI_NOR_FLASH_LAYOUT_PAGE_SIZE", "CONFIG_SPI_NOR_FLASH_LAYOUT_PAGE_SIZE"]

    /// Whether a partition's address, size and end fit Zephyr's 32-bit flash map.
    static func fitsFlashMap(_ partition: DoctorPartition) -> Bool {
        let limit = UInt64(UInt32.max) + 1
        let address = partition.address ?? 0
        let size = partition.size ?? 0
        let (end, overflow) = address.addingReportingOverflow(size)
        return !overflow && end <= limit
    }

    /// How many sectors of `sector` bytes cover `bytes` (rounded up), without overflow.
    static func sectors(_ bytes: UInt64, of sector: UInt64) -> UInt64 {
        guard sector > 0 else { return bytes }
        let (whole, rest) = bytes.quotientAndRemainder(dividingBy: sector)
        return rest == 0 ? whole : whole + 1  // whole < bytes when rest > 0, so this cannot overflow
    }

    static func nextPowerOfTwo(_ value: UInt64) -> UInt64 {
        var result: UInt64 = 1
        while result < value && result < (1 << 40) { result <<= 1 }
        return result
    }
}

func kib(_ bytes: UInt64) -> String { Doctor.kib(bytes) }
func nextPowerOfTwo(_ value: UInt64) -> UInt64 { Doctor.nextPowerOfTwo(value) }
