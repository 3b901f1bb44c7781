import Foundation
import SMPCtlFiles

// Multi-core (nRF5340) builds: the network core's image, its slot pair (image 1) and its place in the DFU
// package. The facts come from sdk-nrf:
// - sysbuild/Kconfig.netcore: SB_CONFIG_NETCORE_APP_UPDATE ("requires b0n for network core and MCUboot for
//   application core"), SB_CONFIG_NETCORE_IMAGE_NAME (ipc_radio, hci_ipc, empty_net_core, ...: the folder of the
//   network core's image in a sysbuild build);
// - sysbuild/Kconfig.mcuboot: SB_CONFIG_MCUBOOT_UPDATEABLE_IMAGES is at least 2 when the network core has an update
//   slot, and SB_CONFIG_MCUBOOT_NRF53_MULTI_IMAGE_UPDATE "is required if the secondary partition resides in off-chip
//   memory" and "if not using overwrite only mode for MCUboot, this can result in a bricked device upon firmware
//   reverts";
// - modules/mcuboot/boot/zephyr/Kconfig: MCUboot's CONFIG_NRF53_MULTI_IMAGE_UPDATE needs UPDATEABLE_IMAGE_NUMBER > 1
//   and BOOT_UPGRADE_ONLY (or USE_NRF53_MULTI_IMAGE_WITHOUT_UPGRADE_ONLY), and the RAM flash simulator that holds
//   mcuboot_primary_1;
// - modules/mcuboot/hooks/nrf53_hooks.c: image 1's primary slot is that RAM area (a fake header of PM_CPUNET_APP_SIZE);
//   the image in mcuboot_secondary_1 is copied there and handed to the network core through PCD;
// - sysbuild/Kconfig.zip: SB_CONFIG_DFU_ZIP_NET puts the network core update into dfu_application.zip, and
//   sysbuild/CMakeLists.txt names it signed_by_mcuboot_and_b0_<netcore image>.bin with image id 1;
// - Zephyr's subsys/mgmt/mcumgr/grp/img_mgmt/src/img_mgmt.c serves 2 * CONFIG_MCUMGR_GRP_IMG_UPDATABLE_IMAGE_NUMBER
//   slots: with 1, the application refuses an upload for image 1.

/// What a build holds of the network core: its image, its update file and the DFU package's images.
public struct DoctorNetworkCore: Sendable {
    /// The network core's image folder, relative to the build folder, when one was found.
    public var imageDirectory: String?
    /// The network core image's `.config`, when present.
    var kconfig: DoctorKconfig?
    /// The network core's update file (signed for MCUboot and b0n), relative to the build folder.
    public var updateFile: String?
    /// Its size in bytes.
    public var updateFileSize: UInt64?
    /// `dfu_application.zip`, when the build has one.
    public var packageFile: String?
    /// The `image_index` of every file its manifest.json lists (nil when it could not be read).
    public var packageImageIndices: [Int]?

    /// The network core images sysbuild can build (sysbuild/Kconfig.netcore), and the child images of older NCS.
    static let imageNames = [
        "ipc_radio", "hci_ipc", "empty_net_core", "rpc_host", "802154_rpmsg", "multiprotocol_rpmsg", "hci_rpmsg",
    ]
    /// The largest manifest.json read from the package.
    static let maximumManifestSize = 1 << 20

    /// Reads the network core's part of a build folder (bounded reads; problems go to `problems`).
    static func load(
        root: URL, layout: DoctorLayout, sysbuild: DoctorKconfig?, problems: inout [DoctorUnreadableFile]
    ) -> DoctorNetworkCore {
        var result = DoctorNetworkCore()
        func exists(_ relative: String) -> Bool {
            RegularFile.isRegular(root.appendingPathComponent(relative).path)
        }
        var names = imageNames
        if let configured = sysbuild?.values["SB_CONFIG_NETCORE_IMAGE_NAME"], !configured.isEmpty, configured.utf8.count <= 64,
            !configured.contains("/"), !configured.contains("..")
        {
            names.insert(configured, at: 0)
        }
        for name in names where result.imageDirectory == nil && exists(name + "/zephyr/.config") {
            result.imageDirectory = name
            let file = name + "/zephyr/.config"
            result.kconfig = DoctorBuild.readBounded(root.appendingPathComponent(file), display: file, problems: &problems)
                .map { DoctorKconfig(file: file, text: $0) }
        }
        var candidates = ["zephyr/net_core_app_update.bin"]
        if let name = result.imageDirectory { candidates.insert("signed_by_mcuboot_and_b0_\(name).bin", at: 0) }
        for candidate in candidates where result.updateFile == nil && exists(candidate) {
            result.updateFile = candidate
            let attributes = try? FileManager.default.attributesOfItem(atPath: root.appendingPathComponent(candidate).path)
            result.updateFileSize = (attributes?[.size] as? NSNumber)?.uint64Value
        }
        for candidate in ["dfu_application.zip", "zephyr/dfu_application.zip"] where result.packageFile == nil && exists(candidate) {
            result.packageFile = candidate
            result.packageImageIndices = packageIndices(root.appendingPathComponent(candidate), display: candidate, problems: &problems)
        }
        return result
    }

    /// The `image_index` values of a DFU package's manifest.json, or nil (recorded in `problems`) when it cannot be read.
    static func packageIndices(_ url: URL, display: String, problems: inout [DoctorUnreadableFile]) -> [Int]? {
        do {
            let data = try RegularFile.read(url.path, limit: ImageArchive.maximumTotalSize)
            let archive = try ImageArchive(data: data)
            guard let entry = archive.entry(named: "manifest.json"), entry.uncompressedSize <= maximumManifestSize else {
                problems.append(DoctorUnreadableFile(file: display, reason: "it has no manifest.json of at most 1 MiB"))
                return nil
            }
            let bytes = try archive.extract(entry)
            guard let root = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
                let files = root["files"] as? [[String: Any]], files.count <= ImageInspector.maximumManifestFiles
            else {
                problems.append(DoctorUnreadableFile(file: display, reason: "its manifest.json has no readable \"files\" list"))
                return nil
            }
            return files.compactMap { file in
                if let number = file["image_index"] as? NSNumber { return number.intValue }
                return (file["image_index"] as? String).flatMap { $0.utf8.count <= 4 ? Int($0) : nil }
            }
        } catch let error as ImageArchiveError {
            problems.append(DoctorUnreadableFile(file: display, reason: "it is not a ZIP the doctor reads (\(error.reason))"))
            return nil
        } catch {
            if case .missing = (error as? RegularFileError)?.kind { return nil }
            problems.append(DoctorUnreadableFile(file: display, reason: "it could not be read"))
            return nil
        }
    }
}

extension Doctor.Context {
    /// Whether the build updates the network core over SMP, and the option that says so.
    func networkCoreUpdate() -> (enabled: Bool, location: DoctorLocation?) {
        if let sysbuild = build.sysbuild, sysbuild.isEnabled("SB_CONFIG_NETCORE_APP_UPDATE") {
            return (true, sysbuild.location("SB_CONFIG_NETCORE_APP_UPDATE"))
        }
        if let config = app.kconfig, config.isEnabled("CONFIG_NRF53_UPGRADE_NETWORK_CORE") {
            return (true, config.location("CONFIG_NRF53_UPGRADE_NETWORK_CORE"))
        }
        return (false, nil)
    }

    // MARK: Multi-core builds: the network core's image and partitions.

    mutating func checkNetworkCore() {
        let enabled = networkCoreUpdate().enabled
        let netcore = build.networkCore
        let table = build.partitions.isEmpty ? build.pmStatic : build.partitions
        guard enabled else {
            // A network core image that cannot be updated is a choice, not a fault: said once, as information.
            if let directory = netcore?.imageDirectory, build.mcuboot != nil, build.layout == .sysbuild {
                add("netcore-not-updatable", .info, DoctorLocation(file: directory + "/zephyr/.config"),
                    "The build has a network core image (\(directory)), but network core updates are off (SB_CONFIG_NETCORE_APP_UPDATE).",
                    why: "Without it MCUboot has no slot pair for the network core and dfu_application.zip carries only the application: "
                        + "the network core keeps the firmware it was programmed with.",
                    fix: "To update it over SMP, set SB_CONFIG_SECURE_BOOT_NETCORE=y and SB_CONFIG_NETCORE_APP_UPDATE=y in sysbuild.conf "
                        + "(and SB_CONFIG_MCUBOOT_NRF53_MULTI_IMAGE_UPDATE=y when the secondary slots are in external flash).",
                    references: ["ncs-netcore-update"])
            }
            return
        }
        let mcuboot = build.mcuboot?.kconfig
        let references = ["ncs-netcore-update"]

        // MCUboot and img_mgmt must both serve two images.
        if let mcuboot, let count = mcuboot.integer("CONFIG_UPDATEABLE_IMAGE_NUMBER"), count < 2 {
            add("netcore-image-count", .error, mcuboot.location("CONFIG_UPDATEABLE_IMAGE_NUMBER"),
                "Network core updates are on, but MCUboot is built for \(count) image (CONFIG_UPDATEABLE_IMAGE_NUMBER=\(count)).",
                why: "MCUboot looks only at image 0's slots: a network core image uploaded to image 1's secondary slot is never installed, "
                    + "and the device keeps its old network core firmware without an error.",
                fix: build.layout == .childImage
                    ? "Set CONFIG_UPDATEABLE_IMAGE_NUMBER=2 in child_image/mcuboot.conf (and in the application), and rebuild."
                    : "Set SB_CONFIG_MCUBOOT_UPDATEABLE_IMAGES=2 in sysbuild.conf, and rebuild.",
                references: references)
        }
        if let config = app.kconfig {
            let option = config.values["CONFIG_MCUMGR_GRP_IMG_UPDATABLE_IMAGE_NUMBER"] != nil
                ? "CONFIG_MCUMGR_GRP_IMG_UPDATABLE_IMAGE_NUMBER" : "CONFIG_UPDATEABLE_IMAGE_NUMBER"
            if let count = config.integer(option), count < 2 {
                add("netcore-app-image-count", .error, config.location(option),
                    "Network core updates are on, but the application's image group serves \(count) image (\(option)=\(count)).",
                    why: "img_mgmt lists and accepts 2 × \(option) slots: an upload with image 1 (the network core) is refused, and "
                        + "`image list` shows no network core slots.",
                    fix: "Let sysbuild sync it (SB_CONFIG_MCUBOOT_APP_SYNC_UPDATEABLE_IMAGES=y, the default) or set \(option)=2 in the application.",
                    references: references)
            }
        }

        // The slot pair of image 1, from the partitions.
        if build.partitionSource == .partitionManager {
            let missing = ["mcuboot_primary_1", "mcuboot_secondary_1"].filter { table[$0] == nil }
            if !missing.isEmpty {
                add("netcore-secondary-missing", .error, DoctorLocation(file: partitionsFile),
                    "Network core updates are on, but \(partitionsFile) has no \(missing.joined(separator: " or ")).",
                    why: "Image 1 has no slot pair: an upload for the network core fails to open its flash area (image error 10, "
                        + "\"Failed to open flash area\"), or MCUboot has nowhere to stage it.",
                    fix: "Let the Partition Manager place them (remove a pm_static.yml copied from a single-core build, build once and "
                        + "copy the new partitions.yml), or add mcuboot_primary_1 (region ram_flash) and mcuboot_secondary_1 (the "
                        + "size of the network core's app partition) to pm_static.yml.",
                    references: references)
            }
        }
        let secondary = table["mcuboot_secondary"]
        let secondary1 = table["mcuboot_secondary_1"]
        if let secondary, let secondary1, let a = secondary.address, let aSize = secondary.size, let b = secondary1.address,
            let bSize = secondary1.size, Doctor.fitsFlashMap(secondary), Doctor.fitsFlashMap(secondary1),
            secondary.region == secondary1.region, secondary.device == secondary1.device, a < b + bSize, b < a + aSize
        {
            add("netcore-secondaries-overlap", .error, partitionLocation(secondary1, key: "mcuboot_secondary_1.address"),
                "mcuboot_secondary (0x\(String(a, radix: 16))-0x\(String(a + aSize, radix: 16))) and mcuboot_secondary_1 (0x\(String(b, radix: 16))-0x\(String(b + bSize, radix: 16))) overlap.",
                why: "A simultaneous update stages both images at once; where the slots overlap, the second upload overwrites the first "
                    + "and MCUboot finds a broken image (\"Image in the secondary slot is not valid!\").",
                fix: "Give each secondary slot its own range in pm_static.yml (mcuboot_secondary_1 after the end of mcuboot_secondary).",
                references: references)
        }

        // Staged in external flash: MCUboot must update both images in one operation.
        let externalStaging = [secondary, secondary1].compactMap { $0 }.contains { $0.region.contains("external") }
        if let mcuboot, externalStaging, !mcuboot.isEnabled("CONFIG_NRF53_MULTI_IMAGE_UPDATE") {
            add("netcore-external-needs-multi-image", .error, mcuboot.location("CONFIG_NRF53_MULTI_IMAGE_UPDATE"),
                "A secondary slot is in external flash, but MCUboot is not built for the simultaneous update (CONFIG_NRF53_MULTI_IMAGE_UPDATE).",
                why: "Without it MCUboot hands the network core image to the network core from internal flash only; staged in external "
                    + "flash it is never applied, or the application and network core end up on mismatched versions.",
                fix: build.layout == .childImage
                    ? "Set CONFIG_NRF53_MULTI_IMAGE_UPDATE=y in child_image/mcuboot.conf; it needs CONFIG_UPDATEABLE_IMAGE_NUMBER=2, "
                        + "CONFIG_BOOT_UPGRADE_ONLY=y and the RAM flash simulator (CONFIG_FLASH_SIMULATOR with a zephyr,sim-flash node)."
                    : "Set SB_CONFIG_MCUBOOT_NRF53_MULTI_IMAGE_UPDATE=y in sysbuild.conf (MCUboot then also needs overwrite-only: "
                        + "SB_CONFIG_MCUBOOT_MODE_OVERWRITE_ONLY=y).",
                references: references)
        }
        if let mcuboot, mcuboot.isEnabled("CONFIG_NRF53_MULTI_IMAGE_UPDATE"), !mcuboot.isEnabled("CONFIG_BOOT_UPGRADE_ONLY") {
            add("netcore-multi-image-revert", .warning, mcuboot.location("CONFIG_BOOT_UPGRADE_ONLY"),
                "The simultaneous network core update is built with a swap mode instead of overwrite-only (CONFIG_BOOT_UPGRADE_ONLY is not set).",
                why: "The network core image cannot be swapped back: if the application reverts, it runs against the new network core "
                    + "firmware, which can leave the device without a working radio (sdk-nrf warns it can brick the device on revert).",
                fix: "Use overwrite-only (SB_CONFIG_MCUBOOT_MODE_OVERWRITE_ONLY=y), or test the pair of images so that a revert never happens.",
                references: references)
        }

        // The network core image must fit its slot, and the RAM area it is copied through.
        if let file = netcore?.updateFile, let size = netcore?.updateFileSize, size > 0 {
            for name in ["mcuboot_secondary_1", "mcuboot_primary_1"] {
                guard let slot = table[name], let slotSize = slot.size, Doctor.fitsFlashMap(slot), size > slotSize else { continue }
                add("netcore-image-too-large", .error, DoctorLocation(file: file),
                    "The network core update (\(file)) is \(size) bytes, larger than \(name) (\(kib(slotSize))).",
                    why: name == "mcuboot_secondary_1"
                        ? "The upload for image 1 is refused (image error 30, too large) or cut off at the slot's end, so MCUboot never installs it."
                        : "MCUboot copies the network core image through this RAM area before handing it to the network core; a larger image is refused.",
                    fix: "Make the network core image smaller (its prj.conf), or grow the network core's app partition and \(name) together.",
                    references: references)
                break
            }
        }

        // The DFU package should carry the network core image (image index 1).
        if let package = netcore?.packageFile, let indices = netcore?.packageImageIndices, !indices.contains(1) {
            let zipOff = build.sysbuild?.values["SB_CONFIG_DFU_ZIP_NET"] == "n"
            add("netcore-zip-missing-image", .warning, DoctorLocation(file: package),
                "\(package) lists image\(indices.count == 1 ? "" : "s") \(indices.map(String.init).joined(separator: ", ")) but no network core image (image 1).",
                why: "A phone app or `smpctl dfu` given this package updates only the application; the network core keeps its old firmware, "
                    + "and an application that needs the new network core may not start its radio.",
                fix: zipOff
                    ? "Set SB_CONFIG_DFU_ZIP_NET=y in sysbuild.conf and rebuild, or upload the network core image separately with --image 1."
                    : "Rebuild so that the package includes the network core image (SB_CONFIG_DFU_ZIP_NET=y), or upload it separately with --image 1.",
                references: references)
        }
    }
}
