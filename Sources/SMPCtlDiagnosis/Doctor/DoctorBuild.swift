import Foundation
import SMPCtlFiles

// Finds and reads the files of a Zephyr / nRF Connect SDK build folder. Three layouts:
// - sysbuild (NCS 2.7+ default): BUILD/zephyr/.config holds SB_CONFIG_* options, the application is
//   BUILD/<app>/ (named by BUILD/domains.yaml), MCUboot is BUILD/mcuboot/, partitions.yml is at BUILD/.
// - child image (NCS before sysbuild): the application is BUILD/ itself, MCUboot is BUILD/mcuboot/.
// - plain Zephyr: BUILD/zephyr/.config and nothing else.

/// How the build folder is organised.
public enum DoctorLayout: String, Sendable {
    case sysbuild
    case childImage = "child-image"
    case zephyr
}

/// The Zephyr version a build records (`zephyr/include/generated/zephyr/version.h`).
public struct DoctorZephyrVersion: Sendable, Equatable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int
    /// The file it was read from.
    public var file: String

    public var description: String { "\(major).\(minor).\(patch)" }
    public static func < (a: Self, b: Self) -> Bool { (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch) }
    /// Whether this is the given version or a later one.
    public func isAtLeast(_ major: Int, _ minor: Int, _ patch: Int = 0) -> Bool { (self.major, self.minor, self.patch) >= (major, minor, patch) }

    /// Reads `#define KERNEL_VERSION_STRING "4.3.0"` (or `KERNEL_VERSION_MAJOR`, `_MINOR`, `KERNEL_PATCHLEVEL`).
    static func parse(_ text: String, file: String) -> DoctorZephyrVersion? {
        var fields: [String: Int] = [:]
        for line in text.split(whereSeparator: \.isNewline).prefix(500) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 3, words[0] == "#define" else { continue }
            let value = words[2]
            if words[1] == "KERNEL_VERSION_STRING" {
                let parts = value.trimmingCharacters(in: CharacterSet(charactersIn: "\"")).split(separator: ".")
                let numbers = parts.prefix(3).compactMap { part in part.count <= 4 ? Int(part.prefix { $0.isNumber }) : nil }
                if numbers.count == 3 { return DoctorZephyrVersion(major: numbers[0], minor: numbers[1], patch: numbers[2], file: file) }
            } else if ["KERNEL_VERSION_MAJOR", "KERNEL_VERSION_MINOR", "KERNEL_PATCHLEVEL"].contains(String(words[1])),
                value.count <= 4, let number = Int(value)
            {
                fields[String(words[1])] = number
            }
        }
        guard let major = fields["KERNEL_VERSION_MAJOR"], let minor = fields["KERNEL_VERSION_MINOR"] else { return nil }
        return DoctorZephyrVersion(major: major, minor: minor, patch: fields["KERNEL_PATCHLEVEL"] ?? 0, file: file)
    }
}

/// Where the build's flash partitions were read from.
public enum DoctorPartitionSource: String, Sendable {
    /// nRF Connect SDK's Partition Manager: `partitions.yml` and/or `pm_static.yml`.
    case partitionManager = "partition-manager"
    /// The devicetree's fixed partitions (upstream Zephyr, or NCS with the Partition Manager off).
    case devicetree
    /// Neither was found.
    case none
}

/// One image of the build (the application or MCUboot) and its resolved configuration.
public struct DoctorImage: Sendable {
    /// "application" or "MCUboot".
    public var role: String
    /// The image's folder relative to the build folder ("" for the build folder itself).
    public var directory: String
    /// `zephyr/.config`, when present (read by the doctor's checks; the readers are not API).
    var kconfig: DoctorKconfig?
    /// `zephyr/zephyr.dts`, when present.
    var devicetree: DoctorDevicetree?
}

/// A partition from `partitions.yml` or `pm_static.yml`.
public struct DoctorPartition: Sendable {
    public var name: String
    public var address: UInt64?
    public var size: UInt64?
    public var region: String
    public var device: String?
    public var line: Int
}

/// A build file that is there but could not be used: not a regular file (a FIFO would block the
/// read), too large, unreadable, or not valid YAML.
public struct DoctorUnreadableFile: Sendable, Equatable {
    /// Relative to the build folder, as findings show it.
    public var file: String
    /// The line, when the problem is at one (YAML errors).
    public var line: Int?
    public var reason: String
}

/// Everything the doctor read from a build folder.
public struct DoctorBuild: Sendable {
    /// The folder as given.
    public var path: String
    public var layout: DoctorLayout
    public var application: DoctorImage
    public var mcuboot: DoctorImage?
    /// Sysbuild's own configuration (`SB_CONFIG_*`), in sysbuild layouts.
    var sysbuild: DoctorKconfig?
    /// `partitions.yml` (relative path and partitions), when Partition Manager ran.
    public var partitionsFile: String?
    public var partitions: [String: DoctorPartition] = [:]
    /// `pm_static.yml` found next to the application sources, when there is one.
    public var pmStaticFile: String?
    public var pmStatic: [String: DoctorPartition] = [:]
    /// Where ``partitions`` came from.
    public var partitionSource: DoctorPartitionSource = .none
    /// The Zephyr version the application was built with, when the build records it.
    public var zephyrVersion: DoctorZephyrVersion?
    /// Files of the build folder that exist, relative to it (only the ones the checks look for).
    public var existingFiles: Set<String> = []
    /// The sizes of the image files in ``existingFiles``, in bytes.
    public var fileSizes: [String: UInt64] = [:]
    /// Files that are there but were not read, and why.
    public var unreadableFiles: [DoctorUnreadableFile] = []
    /// The network core's image, update file and DFU package (nRF5340 multi-core builds).
    public var networkCore: DoctorNetworkCore?

    /// Largest file the doctor reads; build files are far smaller.
    static let maxFileSize = 8 * 1024 * 1024

    /// Names of sysbuild image folders that are not the application.
    static let nonApplicationImages: Set<String> = [
        "mcuboot", "b0", "b0n", "s1_image", "ipc_radio", "hci_ipc", "hci_rpmsg", "empty_net_core",
        "multiprotocol_rpmsg", "802154_rpmsg", "rpc_host", "tfm", "_sysbuild", "modules", "zephyr",
    ]

    /// Reads a build folder, or returns nil when it is not one.
    public static func load(path: String) -> DoctorBuild? {
        let root = URL(fileURLWithPath: path)
        var problems: [DoctorUnreadableFile] = []
        func read(_ relative: String) -> String? {
            readBounded(root.appendingPathComponent(relative), display: relative, problems: &problems)
        }
        /// The document, or nil (recorded in `problems`) when it is not YAML the doctor reads.
        func yaml(_ text: String, file: String) -> DoctorYAMLNode? {
            do {
                return try DoctorYAML.parse(text)
            } catch {
                problems.append(DoctorUnreadableFile(file: file, line: error.line, reason: "it is not YAML the doctor reads (\(error.reason))"))
                return nil
            }
        }
        func exists(_ relative: String) -> Bool {
            FileManager.default.fileExists(atPath: root.appendingPathComponent(relative).path)
        }

        let topConfigText = read("zephyr/.config")
        let isSysbuild = exists("domains.yaml") || (topConfigText?.contains("SB_CONFIG_") ?? false)
        var layout: DoctorLayout
        var applicationDirectory: String
        var sysbuild: DoctorKconfig?
        if isSysbuild {
            layout = .sysbuild
            if let text = topConfigText { sysbuild = DoctorKconfig(file: "zephyr/.config", text: text) }
            var candidate: String?
            if let domains = read("domains.yaml"), let node = yaml(domains, file: "domains.yaml") {
                if let name = node["default"]?.scalar, exists(name + "/zephyr/.config") { candidate = name }
            }
            if candidate == nil {
                let children = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
                candidate = children.sorted().first { name in
                    !nonApplicationImages.contains(name) && !name.hasPrefix(".") && exists(name + "/zephyr/.config")
                }
            }
            guard let found = candidate else { return nil }
            applicationDirectory = found
        } else if topConfigText != nil {
            layout = exists("mcuboot/zephyr/.config") ? .childImage : .zephyr
            applicationDirectory = ""
        } else {
            return nil
        }

        func image(role: String, directory: String) -> DoctorImage {
            let prefix = directory.isEmpty ? "" : directory + "/"
            let config = read(prefix + "zephyr/.config").map { DoctorKconfig(file: prefix + "zephyr/.config", text: $0) }
            let dts = read(prefix + "zephyr/zephyr.dts").map { DoctorDevicetree(file: prefix + "zephyr/zephyr.dts", text: $0) }
            return DoctorImage(role: role, directory: directory, kconfig: config, devicetree: dts)
        }

        var build = DoctorBuild(
            path: path, layout: layout, application: image(role: "application", directory: applicationDirectory),
            mcuboot: exists("mcuboot/zephyr/.config") ? image(role: "MCUboot", directory: "mcuboot") : nil,
            sysbuild: sysbuild)

        for candidate in ["partitions.yml", applicationDirectory + "/partitions.yml"] where build.partitionsFile == nil {
            if let text = read(candidate) {
                build.partitionsFile = candidate
                build.partitions = yaml(text, file: candidate).map(partitions(in:)) ?? [:]
            }
        }

        if let (file, text) = findPMStatic(root: root, applicationDirectory: applicationDirectory, problems: &problems) {
            build.pmStaticFile = file
            build.pmStatic = yaml(text, file: file).map(partitions(in:)) ?? [:]
        }

        if !build.partitions.isEmpty || !build.pmStatic.isEmpty {
            build.partitionSource = .partitionManager
        } else if !(build.application.kconfig?.isEnabled("CONFIG_PARTITION_MANAGER_ENABLED") ?? false) {
            // Upstream Zephyr: the slots are the devicetree's fixed partitions (the application's, else MCUboot's).
            for image in [build.application, build.mcuboot].compactMap({ $0 }) where build.partitions.isEmpty {
                guard let dts = image.devicetree else { continue }
                let found = devicetreePartitions(dts)
                if found["mcuboot_primary"] != nil {
                    build.partitions = found
                    build.partitionsFile = dts.file
                    build.partitionSource = .devicetree
                }
            }
        }

        let appPrefix = applicationDirectory.isEmpty ? "" : applicationDirectory + "/"
        for candidate in [appPrefix + "zephyr/include/generated/zephyr/version.h", appPrefix + "zephyr/include/generated/version.h"]
        where build.zephyrVersion == nil {
            if let text = read(candidate) { build.zephyrVersion = DoctorZephyrVersion.parse(text, file: candidate) }
        }
        for relative in [
            appPrefix + "zephyr/zephyr.bin", appPrefix + "zephyr/zephyr.signed.bin", appPrefix + "zephyr/zephyr.signed.hex",
            appPrefix + "zephyr/app_update.bin", appPrefix + "zephyr/app_signed.hex", "dfu_application.zip",
            appPrefix + "zephyr/dfu_application.zip", "zephyr/app_update.bin", "zephyr/dfu_application.zip",
        ] where exists(relative) {
            build.existingFiles.insert(relative)
            let attributes = try? FileManager.default.attributesOfItem(atPath: root.appendingPathComponent(relative).path)
            if let size = attributes?[.size] as? NSNumber { build.fileSizes[relative] = size.uint64Value }
        }
        build.networkCore = DoctorNetworkCore.load(root: root, layout: layout, sysbuild: sysbuild, problems: &problems)
        // The same file can be a candidate twice (partitions.yml at the top and in the application).
        for problem in problems where !build.unreadableFiles.contains(problem) { build.unreadableFiles.append(problem) }
        return build
    }

    /// The labels Zephyr's MCUboot partitions carry in the devicetree, and the Partition Manager names they stand for.
    static let devicetreeSlotLabels: [(label: String, name: String)] = [
        ("boot_partition", "mcuboot"), ("slot0_partition", "mcuboot_primary"), ("slot1_partition", "mcuboot_secondary"),
        ("slot2_partition", "mcuboot_primary_1"), ("slot3_partition", "mcuboot_secondary_1"),
        ("scratch_partition", "mcuboot_scratch"), ("storage_partition", "storage"),
    ]

    /// The MCUboot partitions of a devicetree (`slot0_partition`...), under Partition Manager names; a partition
    /// under a `soc-nv-flash` node is internal flash, any other is external.
    static func devicetreePartitions(_ dts: DoctorDevicetree) -> [String: DoctorPartition] {
        var result: [String: DoctorPartition] = [:]
        for (label, name) in devicetreeSlotLabels {
            guard let node = dts.node(label: label) else { continue }
            let reg = node.cells("reg")
            guard reg.count == 2 else { continue }
            var onChip = false
            var device: String?
            var parent = node.parent
            var steps = 0
            // Bounded walk up the tree (a hostile file cannot loop it).
            while let index = parent, index < dts.nodes.count, steps < 64 {
                let ancestor = dts.nodes[index]
                if ancestor.compatibles.contains("soc-nv-flash") { onChip = true }
                if device == nil, !ancestor.compatibles.isEmpty, !ancestor.compatibles.contains("fixed-partitions") {
                    device = ancestor.labels.first ?? ancestor.name
                }
                parent = ancestor.parent
                steps += 1
            }
            result[name] = DoctorPartition(
                name: name, address: reg[0], size: reg[1], region: onChip ? "flash_primary" : "external_flash", device: device,
                line: node.propertyLines["reg"] ?? node.line)
        }
        return result
    }

    /// The partitions of a Partition Manager document, by name.
    static func partitions(in node: DoctorYAMLNode) -> [String: DoctorPartition] {
        var result: [String: DoctorPartition] = [:]
        // Some hand-written files nest everything under `partitions:`.
        let entries = node["partitions"].map(\.entries) ?? node.entries
        for entry in entries {
            guard case .mapping = entry.value else { continue }
            result[entry.key] = DoctorPartition(
                name: entry.key,
                address: doctorInteger(entry.value["address"]?.scalar),
                size: doctorInteger(entry.value["size"]?.scalar),
                region: entry.value["region"]?.scalar ?? "flash_primary",
                device: entry.value["device"]?.scalar,
                line: entry.line)
        }
        return result
    }

    /// Looks for the static partition file the build used: `PM_STATIC_YML_FILE` or the application
    /// source folder from CMakeCache.txt, then the build folder's parent (the usual `APP/build`).
    static func findPMStatic(
        root: URL, applicationDirectory: String, problems: inout [DoctorUnreadableFile]
    ) -> (String, String)? {
        var folders: [URL] = []
        var files: [URL] = []
        let caches = [applicationDirectory + "/CMakeCache.txt", "CMakeCache.txt"]
        for cache in caches {
            guard let text = readBounded(root.appendingPathComponent(cache), display: cache, problems: &problems) else { continue }
            for line in text.split(separator: "\n") {
                if line.hasPrefix("PM_STATIC_YML_FILE:"), let value = line.split(separator: "=", maxSplits: 1).last {
                    let path = String(value).trimmingSpaces()
                    if !path.isEmpty { files.append(URL(fileURLWithPath: path)) }
                }
                if line.hasPrefix("APPLICATION_SOURCE_DIR:") || line.hasPrefix("APP_DIR:"),
                    let value = line.split(separator: "=", maxSplits: 1).last
                {
                    folders.append(URL(fileURLWithPath: String(value).trimmingSpaces()))
                }
            }
        }
        folders.append(root.deletingLastPathComponent())
        for folder in folders {
            files.append(folder.appendingPathComponent("pm_static.yml"))
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            for name in names.sorted() where name.hasPrefix("pm_static") && name.hasSuffix(".yml") && name != "pm_static.yml" {
                files.append(folder.appendingPathComponent(name))
            }
        }
        for file in files {
            let display = displayPath(file, root: root)
            if let text = readBounded(file, display: display, problems: &problems) {
                return (display, text)
            }
        }
        return nil
    }

    /// A path shown relative to the build folder when it is inside or beside it.
    static func displayPath(_ file: URL, root: URL) -> String {
        let rootPath = root.standardizedFileURL.path
        let filePath = file.standardizedFileURL.path
        if filePath.hasPrefix(rootPath + "/") { return String(filePath.dropFirst(rootPath.count + 1)) }
        let parent = root.standardizedFileURL.deletingLastPathComponent().path
        if filePath.hasPrefix(parent + "/") { return "../" + filePath.dropFirst(parent.count + 1) }
        return filePath
    }

    /// Reads a regular file of at most ``maxFileSize`` bytes as UTF-8 (invalid bytes replaced).
    /// A missing file is nil; one that is there but cannot be read (a FIFO, a device, too large)
    /// is nil and recorded in `problems`. Nothing is opened in a way that can block.
    static func readBounded(_ url: URL, display: String, problems: inout [DoctorUnreadableFile]) -> String? {
        do {
            let data = try RegularFile.read(url.path, limit: maxFileSize)
            return String(decoding: data, as: UTF8.self)
        } catch {
            switch error.kind {
            case .missing: break
            case .notRegular(let what): problems.append(DoctorUnreadableFile(file: display, reason: "it is \(what), not a regular file"))
            case .tooLarge(let limit): problems.append(DoctorUnreadableFile(file: display, reason: "it is larger than \(limit / (1024 * 1024)) MiB"))
            case .unreadable: problems.append(DoctorUnreadableFile(file: display, reason: error.reason))
            }
            return nil
        }
    }
}
