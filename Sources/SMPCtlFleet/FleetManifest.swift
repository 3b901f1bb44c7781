// The fleet manifest: which devices, how to reach them, which image each gets and in which
// version. YAML (JSON is YAML too), read with Yams; every size is bounded and every error names
// file:line:column and the field.

public import Foundation
public import SMPCtlClient
public import SMPCtlConnection
import Crypto
import SMPCtlFiles
import Yams

/// Settings a manifest gives for all devices (`defaults`) or one (`devices[n]`); `nil` inherits.
public struct FleetDeviceSettings: Sendable, Equatable {
    /// The longest wait for one answer, in seconds.
    public var timeout: Double?
    /// Times a request is sent again.
    public var retries: Int?
    /// Upload chunks in flight.
    public var window: Int?
    /// Seconds one device's whole update may take.
    public var deadline: Double?
    /// Seconds to wait for the device after its reset.
    public var reconnectTimeout: Double?
    /// Tries per device when the link fails (a transport error, a timeout, a stall).
    public var attempts: Int?
    public var mode: FirmwareUpdateMode?
    /// Update a device that runs a newer version than the target.
    public var allowDowngrade: Bool?

    public init() {}

    /// These settings, with `defaults` filling what is not set, and built-in values last.
    public func resolved(over defaults: FleetDeviceSettings) -> FleetResolvedSettings {
        FleetResolvedSettings(
            timeout: timeout ?? defaults.timeout ?? 10,
            retries: retries ?? defaults.retries ?? 3,
            window: window ?? defaults.window,
            deadline: deadline ?? defaults.deadline ?? 900,
            reconnectTimeout: reconnectTimeout ?? defaults.reconnectTimeout ?? 30,
            attempts: attempts ?? defaults.attempts ?? 2,
            mode: mode ?? defaults.mode ?? .testAndConfirm,
            allowDowngrade: allowDowngrade ?? defaults.allowDowngrade ?? false)
    }
}

/// The settings in force for one device.
public struct FleetResolvedSettings: Sendable, Equatable {
    public var timeout: Double
    public var retries: Int
    public var window: Int?
    public var deadline: Double
    public var reconnectTimeout: Double
    public var attempts: Int
    public var mode: FirmwareUpdateMode
    public var allowDowngrade: Bool
}

/// An image the manifest names: its file (read and checked when the manifest loads) and the
/// version devices must run.
public struct FleetImage: Sendable {
    public var name: String
    /// Absolute path of the file.
    public var path: String
    /// The target version: a device whose active slot runs it is up to date.
    public var version: String
    /// The image number on the device (0, or 1 for an nRF5340 network core).
    public var imageNumber: Int
    public var file: FirmwareFile
    /// The hash TLV the device lists for it.
    public var hash: [UInt8]
}

/// A rule: devices whose labels match get these images. The first matching rule wins.
public struct FleetRule: Sendable {
    /// Label key to accepted values; every key must match. `name` matches the device name.
    public var match: [String: [String]]
    public var images: [String]
    public var line: Int?

    public func matches(_ device: FleetDevice) -> Bool {
        match.allSatisfy { key, values in
            guard let value = device.label(key) else { return false }
            return values.contains(value)
        }
    }
}

/// A device of the fleet.
public struct FleetDevice: Sendable {
    public var name: String
    /// The connection as written (a `-c` form or a profile name).
    public var connectionText: String
    public var connection: ConnectionSpec
    public var labels: [String: String]
    public var settings: FleetDeviceSettings
    /// Images named on the device itself; they replace the rules.
    public var imageOverride: [String]?
    public var line: Int?

    /// A label's value; `name` is the device name.
    public func label(_ key: String) -> String? {
        key == "name" ? name : labels[key]
    }

    /// The BLE adapter or serial port the device is reached through, for `--per-adapter`; `nil`
    /// for UDP and the in-process simulator, which share nothing.
    public var sharedLink: String? {
        switch connection {
        case .ble(_, let adapter, _): "ble:\(adapter ?? "default")"
        case .serial(let path, _): "serial:\(path)"
        case .udp, .simulator: nil
        }
    }
}

/// A parsed and checked manifest.
public struct FleetManifest: Sendable {
    /// The largest manifest file read.
    public static let maximumFileSize = 32 << 20
    /// The most devices in one manifest.
    public static let maximumDevices = 100_000
    public static let maximumImages = 16
    public static let maximumRules = 1000
    public static let maximumLabels = 32
    /// The most values (nodes) read from a manifest.
    public static let maximumNodes = 4_000_000
    public static let maximumKeyLength = 64
    public static let maximumValueLength = 4096
    /// Device names: `[A-Za-z0-9._-]`, 1 to 128 bytes, not starting with a dot (they name log files).
    public static let maximumNameLength = 128

    /// The path as given.
    public var path: String
    /// SHA-256 of the file, hex.
    public var sha256: String
    public var defaults: FleetDeviceSettings
    public var images: [FleetImage]
    public var rules: [FleetRule]
    public var devices: [FleetDevice]

    /// The image with this name.
    public func image(named name: String) -> FleetImage? { images.first { $0.name == name } }

    /// The images a device gets: its own `image`, or the first matching rule's; `nil` when no
    /// rule matches.
    public func images(for device: FleetDevice) -> [FleetImage]? {
        let names: [String]
        if let own = device.imageOverride {
            names = own
        } else if let rule = rules.first(where: { $0.matches(device) }) {
            names = rule.images
        } else {
            return nil
        }
        return names.compactMap { image(named: $0) }
    }

    /// The settings in force for a device.
    public func settings(for device: FleetDevice) -> FleetResolvedSettings {
        device.settings.resolved(over: defaults)
    }

    /// Reads and checks a manifest file. Relative image paths are relative to the manifest's
    /// folder; connections that are profile names are resolved with `environment`.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ManifestError) -> FleetManifest {
        let data: Data
        do {
            data = try RegularFile.read(path, limit: maximumFileSize)
        } catch {
            throw ManifestError(file: path, line: nil, field: "", message: error.description)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ManifestError(file: path, line: nil, field: "", message: "the manifest is not UTF-8 text")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path
        var manifest = try parse(text: text, file: path, baseDirectory: base, environment: environment)
        manifest.sha256 = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        return manifest
    }

    /// Parses manifest text; `file` names it in errors.
    public static func parse(
        text: String, file: String, baseDirectory: String, environment: [String: String] = [:]
    ) throws(ManifestError) -> FleetManifest {
        if let anchor = firstYAMLAnchor(in: text) {
            throw ManifestError(
                file: file, line: anchor.line, column: anchor.column, field: "",
                message: "YAML anchors and aliases (&name, *name) are not accepted in a manifest; write the values out (quote a value that starts with & or *)")
        }
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ManifestError(file: file, line: nil, field: "", message: "the manifest is empty")
            }
            root = node
        } catch let error as ManifestError {
            throw error
        } catch let error as YamlError {
            throw Self.yamlError(error, file: file)
        } catch {
            throw ManifestError(file: file, line: nil, field: "", message: "not valid YAML: \(error)")
        }
        let reader = ManifestReader(file: file, nodeBudget: maximumNodes)
        return try Parser(reader: reader, base: baseDirectory, environment: environment).manifest(root, file: file)
    }

    static func yamlError(_ error: YamlError, file: String) -> ManifestError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let what = context.map { "\($0.text) " } ?? ""
            return ManifestError(file: file, line: mark.line, column: mark.column, field: "", message: "not valid YAML: \(what)\(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ManifestError(
                file: file, line: context.mark.line, column: context.mark.column, field: "",
                message: "the key \(duplicates.prefix(3).joined(separator: ", ")) appears twice in one mapping")
        default:
            return ManifestError(file: file, line: nil, field: "", message: "not valid YAML: \(error)")
        }
    }
}

/// The manifest grammar.
private struct Parser {
    let reader: ManifestReader
    let base: String
    let environment: [String: String]

    func manifest(_ root: Node, file: String) throws(ManifestError) -> FleetManifest {
        let top = try reader.mapping(root, "", maximum: 16)
        try reader.expectOnly(["version", "defaults", "images", "rules", "devices"], in: top, "")
        func value(_ key: String) -> (keyNode: Node, value: Node)? {
            top.first { $0.key == key }.map { ($0.keyNode, $0.value) }
        }
        guard let version = value("version") else {
            throw reader.error(root, "version", "missing: a manifest starts with `version: 1`")
        }
        guard try reader.integer(version.value, "version", in: 0...1_000_000) == 1 else {
            throw reader.error(version.value, "version", "only version 1 manifests are read")
        }
        var defaults = FleetDeviceSettings()
        if let node = value("defaults") {
            defaults = try settings(try reader.mapping(node.value, "defaults", maximum: 16), "defaults", allowing: [])
        }
        guard let imagesNode = value("images") else {
            throw reader.error(root, "images", "missing: name at least one image with its file and version")
        }
        var images: [FleetImage] = []
        for pair in try reader.mapping(imagesNode.value, "images", maximum: FleetManifest.maximumImages) {
            try checkName(pair.key, node: pair.keyNode, field: "images.\(pair.key)", what: "an image name")
            images.append(try image(pair.key, pair.value))
        }
        guard !images.isEmpty else { throw reader.error(imagesNode.value, "images", "name at least one image") }
        let imageNames = Set(images.map(\.name))

        var rules: [FleetRule] = []
        if let node = value("rules") {
            for (index, element) in try reader.sequence(node.value, "rules", maximum: FleetManifest.maximumRules).enumerated() {
                rules.append(try rule(element, "rules[\(index)]", imageNames: imageNames))
            }
        }
        guard let devicesNode = value("devices") else {
            throw reader.error(root, "devices", "missing: list the devices")
        }
        var devices: [FleetDevice] = []
        var seen: [String: Int] = [:]
        let elements = try reader.sequence(devicesNode.value, "devices", maximum: FleetManifest.maximumDevices)
        devices.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            let field = "devices[\(index)]"
            let device = try device(element, field, imageNames: imageNames)
            if let earlier = seen[device.name] {
                throw reader.error(element, "\(field).name", "the name \(device.name) is used twice (first at devices[\(earlier)])")
            }
            seen[device.name] = index
            devices.append(device)
        }
        return FleetManifest(path: file, sha256: "", defaults: defaults, images: images, rules: rules, devices: devices)
    }

    func checkName(_ name: String, node: Node, field: String, what: String) throws(ManifestError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
        }
        guard allowed, !name.isEmpty, !name.hasPrefix("."), name.utf8.count <= FleetManifest.maximumNameLength else {
            throw reader.error(node, field, "\(what) is 1 to \(FleetManifest.maximumNameLength) characters from A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.'; \"\(name.prefix(80))\" is not")
        }
    }

    func image(_ name: String, _ node: Node) throws(ManifestError) -> FleetImage {
        let field = "images.\(name)"
        let pairs = try reader.mapping(node, field, maximum: 8)
        try reader.expectOnly(["file", "version", "image"], in: pairs, field)
        guard let fileNode = pairs.first(where: { $0.key == "file" })?.value else {
            throw reader.error(node, "\(field).file", "missing: the signed image file, relative to the manifest")
        }
        let relative = try reader.text(fileNode, "\(field).file")
        let path = relative.hasPrefix("/") ? relative : URL(fileURLWithPath: base).appendingPathComponent(relative).standardizedFileURL.path
        let firmware: FirmwareFile
        let identity: FirmwareImageIdentity
        do {
            firmware = try FirmwareFile(path: path)
            identity = try FirmwareImageIdentity(file: firmware)
        } catch {
            throw reader.error(fileNode, "\(field).file", "\(error)")
        }
        var version = identity.version
        if let versionNode = pairs.first(where: { $0.key == "version" })?.value {
            let stated = try reader.text(versionNode, "\(field).version", maximumLength: 64)
            guard FleetVersion.equal(stated, identity.version) else {
                throw reader.error(versionNode, "\(field).version", "says \(stated), but \(relative) is version \(identity.version)")
            }
            version = stated
        } else {
            throw reader.error(node, "\(field).version", "missing: state the target version (\(relative) is \(identity.version)); devices that run it are skipped")
        }
        var number = 0
        if let imageNode = pairs.first(where: { $0.key == "image" })?.value {
            number = try reader.integer(imageNode, "\(field).image", in: 0...15)
        }
        return FleetImage(name: name, path: path, version: version, imageNumber: number, file: firmware, hash: identity.hash)
    }

    func rule(_ node: Node, _ field: String, imageNames: Set<String>) throws(ManifestError) -> FleetRule {
        let pairs = try reader.mapping(node, field, maximum: 4)
        try reader.expectOnly(["match", "images", "image"], in: pairs, field)
        var match: [String: [String]] = [:]
        if let matchNode = pairs.first(where: { $0.key == "match" })?.value {
            for pair in try reader.mapping(matchNode, "\(field).match", maximum: FleetManifest.maximumLabels) {
                match[pair.key] = try labelValues(pair.value, "\(field).match.\(pair.key)")
            }
        }
        guard let imagesPair = pairs.first(where: { $0.key == "images" || $0.key == "image" }) else {
            throw reader.error(node, "\(field).images", "missing: the images this rule picks")
        }
        let images = try imageList(imagesPair.value, "\(field).\(imagesPair.key)", known: imageNames)
        return FleetRule(match: match, images: images, line: node.mark?.line)
    }

    func labelValues(_ node: Node, _ field: String) throws(ManifestError) -> [String] {
        if node.sequence != nil {
            var values: [String] = []
            for (index, element) in try reader.sequence(node, field, maximum: 256).enumerated() {
                values.append(try reader.string(element, "\(field)[\(index)]", maximumLength: 256))
            }
            return values
        }
        return [try reader.string(node, field, maximumLength: 256)]
    }

    func imageList(_ node: Node, _ field: String, known: Set<String>) throws(ManifestError) -> [String] {
        let names = try reader.names(node, field, maximum: FleetManifest.maximumImages)
        guard !names.isEmpty else { throw reader.error(node, field, "name at least one image") }
        for name in names where !known.contains(name) {
            throw reader.error(node, field, "no image is named \(name); the manifest names \(known.sorted().joined(separator: ", "))")
        }
        guard Set(names).count == names.count else { throw reader.error(node, field, "names an image twice") }
        return names
    }

    func device(_ node: Node, _ field: String, imageNames: Set<String>) throws(ManifestError) -> FleetDevice {
        let pairs = try reader.mapping(node, field, maximum: 16)
        let own: Set<String> = ["name", "connection", "labels", "image", "images"]
        let deviceSettings = try settings(pairs, field, allowing: own)
        guard let namePair = pairs.first(where: { $0.key == "name" }) else {
            throw reader.error(node, "\(field).name", "missing: every device has a name")
        }
        let name = try reader.text(namePair.value, "\(field).name", maximumLength: FleetManifest.maximumNameLength)
        try checkName(name, node: namePair.value, field: "\(field).name", what: "a device name")
        guard let connectionPair = pairs.first(where: { $0.key == "connection" }) else {
            throw reader.error(node, "\(field).connection", "missing: how to reach \(name) (udp:HOST:PORT, serial:PATH, ble:NAME or a profile)")
        }
        let connectionText = try reader.text(connectionPair.value, "\(field).connection", maximumLength: ConnectionSpec.maximumLength)
        let connection: ConnectionSpec
        do {
            connection = try resolveConnection(connectionText, environment: environment)
        } catch {
            throw reader.error(connectionPair.value, "\(field).connection", error.message)
        }
        var labels: [String: String] = [:]
        if let labelsNode = pairs.first(where: { $0.key == "labels" })?.value {
            for pair in try reader.mapping(labelsNode, "\(field).labels", maximum: FleetManifest.maximumLabels) {
                guard pair.key != "name" else {
                    throw reader.error(pair.keyNode, "\(field).labels.name", "`name` is the device's name, not a label")
                }
                labels[pair.key] = try reader.string(pair.value, "\(field).labels.\(pair.key)", maximumLength: 256)
            }
        }
        var imageOverride: [String]?
        if let imagePair = pairs.first(where: { $0.key == "image" || $0.key == "images" }) {
            imageOverride = try imageList(imagePair.value, "\(field).\(imagePair.key)", known: imageNames)
        }
        return FleetDevice(
            name: name, connectionText: connectionText, connection: connection, labels: labels,
            settings: deviceSettings, imageOverride: imageOverride, line: node.mark?.line)
    }

    /// The settings keys of `defaults` or a device; `allowing` names the other keys allowed there.
    func settings(
        _ pairs: [(key: String, keyNode: Node, value: Node)], _ field: String, allowing: Set<String>
    ) throws(ManifestError) -> FleetDeviceSettings {
        let keys: Set<String> = ["timeout", "retries", "window", "deadline", "reconnect-timeout", "attempts", "mode", "allow-downgrade"]
        try reader.expectOnly(keys.union(allowing), in: pairs, field)
        var settings = FleetDeviceSettings()
        for pair in pairs {
            let name = "\(field).\(pair.key)"
            switch pair.key {
            case "timeout": settings.timeout = try reader.seconds(pair.value, name, maximum: 3600)
            case "retries": settings.retries = try reader.integer(pair.value, name, in: 0...100)
            case "window": settings.window = try reader.integer(pair.value, name, in: 1...32)
            case "deadline": settings.deadline = try reader.seconds(pair.value, name, maximum: 86_400)
            case "reconnect-timeout": settings.reconnectTimeout = try reader.seconds(pair.value, name, maximum: 3600)
            case "attempts": settings.attempts = try reader.integer(pair.value, name, in: 1...10)
            case "allow-downgrade": settings.allowDowngrade = try reader.boolean(pair.value, name)
            case "mode":
                let text = try reader.text(pair.value, name, maximumLength: 32)
                guard let mode = FirmwareUpdateMode(rawValue: text) else {
                    throw reader.error(pair.value, name, "must be one of \(FirmwareUpdateMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                settings.mode = mode
            default: break
            }
        }
        return settings
    }
}

/// MCUboot versions as devices list them: `major.minor.revision` with an optional build number.
public enum FleetVersion {
    /// The numeric parts; `nil` when the text is not a version.
    public static func parts(_ text: String) -> [Int]? {
        let cleaned = text.split(separator: "+", maxSplits: 1).first.map(String.init) ?? text
        let pieces = cleaned.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(pieces.count) else { return nil }
        var numbers: [Int] = []
        for piece in pieces {
            guard !piece.isEmpty, piece.utf8.count <= 10, let number = Int(piece), number >= 0 else { return nil }
            numbers.append(number)
        }
        if text.contains("+"), let build = text.split(separator: "+").last.flatMap({ Int($0) }) {
            while numbers.count < 3 { numbers.append(0) }
            numbers.append(build)
        }
        while numbers.count < 4 { numbers.append(0) }
        return numbers
    }

    /// Whether two versions are the same (1.1.0 and 1.1.0.0 are).
    public static func equal(_ a: String, _ b: String) -> Bool {
        if let left = parts(a), let right = parts(b) { return left == right }
        return a == b
    }

    /// Whether `a` is newer than `b`; false when either is not a version.
    public static func newer(_ a: String, than b: String) -> Bool {
        guard let left = parts(a), let right = parts(b) else { return false }
        return left.lexicographicallyPrecedes(right) == false && left != right
    }
}
