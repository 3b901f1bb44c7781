public import Foundation
import SMPCtlFiles

/// What a profile keeps besides its connection: the options a command uses when it names the
/// profile and does not give the flag itself. `nil` means not stored.
public struct ProfileOptions: Sendable, Equatable {
    /// `--timeout`: the longest wait for a response, in seconds.
    public var timeout: Double?
    /// `--retries`: resends after a timeout.
    public var retries: Int?
    /// `--window`: upload chunks kept in flight (`image upload`, `dfu`).
    public var window: Int?
    /// The BlueZ adapter (`hciN`) of a `ble:` connection whose string names none.
    public var adapter: String?

    public init(timeout: Double? = nil, retries: Int? = nil, window: Int? = nil, adapter: String? = nil) {
        self.timeout = timeout
        self.retries = retries
        self.window = window
        self.adapter = adapter
    }

    /// Whether no option is stored.
    public var isEmpty: Bool { timeout == nil && retries == nil && window == nil && adapter == nil }

    /// The longest adapter name taken.
    public static let maximumAdapterLength = 16

    /// Refuses values the flags would refuse: the same bounds as `--timeout`, `--retries`,
    /// `--window` and `?adapter=`; an adapter only for a `ble:` connection that names none.
    public func validate(for connection: ConnectionSpec?) throws(ConnectionError) {
        if let timeout, !(timeout > 0 && timeout <= 3600) {
            throw ConnectionError("timeout must be between 0 and 3600 seconds, not \(timeout)")
        }
        if let retries, !(0...100).contains(retries) { throw ConnectionError("retries must be between 0 and 100, not \(retries)") }
        if let window, !(1...32).contains(window) { throw ConnectionError("window must be between 1 and 32, not \(window)") }
        if let adapter {
            guard !adapter.isEmpty, adapter.utf8.count <= Self.maximumAdapterLength,
                adapter.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) })
            else {
                throw ConnectionError("an adapter is a BlueZ adapter name such as hci0 (1 to \(Self.maximumAdapterLength) characters from a-z and 0-9)")
            }
            switch connection {
            case .ble(_, nil, _)?, nil: break
            case .ble(_, let named?, _)? where named == adapter: break
            case .ble(_, let named?, _)?:
                throw ConnectionError("the connection names adapter \(named) and the option \(adapter): give one")
            case .some: throw ConnectionError("an adapter applies only to a ble: connection")
            }
        }
    }
}

/// One saved profile: its connection string and options. `problem` says why an entry of the file
/// cannot be used (an option of the wrong type or out of range); the entry is still listed and
/// can be removed.
public struct Profile: Sendable, Equatable {
    public var connection: String
    public var options: ProfileOptions
    public var problem: String?

    public init(connection: String, options: ProfileOptions = ProfileOptions(), problem: String? = nil) {
        self.connection = connection
        self.options = options
        self.problem = problem
    }
}

/// Named connections kept in `$XDG_CONFIG_HOME/smpctl/profiles.json`:
///
/// ```json
/// {"profiles": {"lab": "udp:192.0.2.10",
///               "bench": {"connection": "ble:smp_svr", "timeout_seconds": 5, "retries": 1, "window": 2, "adapter": "hci1"}}}
/// ```
///
/// A profile without options is written as its connection string alone, as older versions wrote
/// every profile, so files of either age read the same. The file is read as it is: a saved
/// profile that no longer parses does not stop the others from being listed, removed or used. It
/// is reported, naming the profile, when it is used.
public struct ProfileStore: Sendable {
    /// The largest profiles file read.
    public static let maximumFileSize = 1 << 20
    /// The most profiles a file may hold.
    public static let maximumProfiles = 1024
    /// The longest profile name.
    public static let maximumNameLength = 64

    public let url: URL

    public init(environment: [String: String]) {
        let base: URL
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty {
            base = URL(fileURLWithPath: xdg)
        } else {
            base = URL(fileURLWithPath: environment["HOME"] ?? NSHomeDirectory()).appendingPathComponent(".config")
        }
        url = base.appendingPathComponent("smpctl").appendingPathComponent("profiles.json")
    }

    private var shape: String {
        "\(url.path) is not a profiles file ({\"profiles\": {\"name\": \"udp:...\"}} or {\"profiles\": {\"name\": {\"connection\": \"udp:...\", \"timeout_seconds\": 5}}})"
    }

    /// The file's bytes; `nil` when there is no file.
    private func readFile() throws(ConnectionError) -> Data? {
        do {
            return try RegularFile.read(url.path, limit: Self.maximumFileSize)
        } catch {
            if case .missing = error.kind { return nil }
            throw ConnectionError(error.description)
        }
    }

    /// The saved profiles, by name; empty when there is no file.
    public func load() throws(ConnectionError) -> [String: Profile] {
        guard let data = try readFile() else { return [:] }
        let root: ProfilesFile
        do {
            root = try JSONDecoder().decode(ProfilesFile.self, from: data)
        } catch {
            throw ConnectionError(shape)
        }
        guard root.profiles.count <= Self.maximumProfiles else {
            throw ConnectionError("\(url.path) holds \(root.profiles.count) profiles; at most \(Self.maximumProfiles) are read")
        }
        return root.profiles.mapValues(\.profile)
    }

    /// Saves `profile` under `name` (or removes `name` when `profile` is `nil`), atomically,
    /// creating the folder when needed. The other entries are written back as they were read.
    public func save(_ profile: Profile?, named name: String) throws(ConnectionError) {
        var root: [String: Any] = [:]
        if let data = try readFile() {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                object["profiles"] == nil || object["profiles"] is [String: Any]
            else {
                throw ConnectionError(shape)
            }
            root = object
        }
        var profiles = root["profiles"] as? [String: Any] ?? [:]
        if let profile {
            guard profiles[name] != nil || profiles.count < Self.maximumProfiles else {
                throw ConnectionError("\(url.path) already holds \(profiles.count) profiles, the most it may hold")
            }
            profiles[name] = Self.entry(profile)
        } else {
            profiles.removeValue(forKey: name)
        }
        root["profiles"] = profiles
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: url, options: .atomic)
        } catch {
            throw ConnectionError("cannot write \(url.path): \(Self.reason(error))")
        }
    }

    /// A profile as the file holds it: the string alone without options.
    static func entry(_ profile: Profile) -> Any {
        let options = profile.options
        guard !options.isEmpty else { return profile.connection }
        var object: [String: Any] = ["connection": profile.connection]
        if let timeout = options.timeout { object["timeout_seconds"] = timeout }
        if let retries = options.retries { object["retries"] = retries }
        if let window = options.window { object["window"] = window }
        if let adapter = options.adapter { object["adapter"] = adapter }
        return object
    }

    /// Why a write failed, in words (the errno's text), not as an NSCocoaErrorDomain number.
    public static func reason(_ error: any Error) -> String {
        let described = error as NSError
        for candidate in [described.userInfo[NSUnderlyingErrorKey] as? NSError, described].compactMap({ $0 })
        where candidate.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(truncatingIfNeeded: candidate.code)))
        }
        if let cocoa = error as? CocoaError {
            switch cocoa.code {
            case .fileWriteNoPermission: return "permission denied"
            case .fileWriteVolumeReadOnly: return "read-only file system"
            case .fileWriteOutOfSpace: return "no space left on the device"
            case .fileWriteFileExists: return "a file is in the way"
            case .fileNoSuchFile, .fileWriteInvalidFileName: return "no such folder"
            default: break
            }
        }
        return "write failed (\(described.domain) \(described.code))"
    }

    /// Refuses a name that cannot be a profile: 1 to 64 characters from `A-Z a-z 0-9 . _ -`, not `sim`.
    public static func validate(name: String) throws(ConnectionError) {
        let rule = "a profile name is 1 to \(maximumNameLength) characters from A-Z, a-z, 0-9, '.', '_' and '-', and cannot be 'sim'"
        guard !name.isEmpty, name.utf8.count <= maximumNameLength, name != "sim",
            name.utf8.allSatisfy({ byte in
                (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                    || byte == 0x2E || byte == 0x5F || byte == 0x2D
            })
        else {
            throw ConnectionError(rule)
        }
    }

    /// The connection a saved profile holds, or an error that names the profile.
    public static func connection(named name: String, uri: String) throws(ConnectionError) -> ConnectionSpec {
        let spec: ConnectionSpec?
        do {
            spec = try ConnectionSpec.parse(uri)
        } catch {
            throw ConnectionError(
                "profile \(name) holds \"\(uri)\", which is not a valid connection: \(error.message) (fix it with `smpctl profile add \(name) CONNECTION`, or `smpctl profile remove \(name)`)")
        }
        guard let spec else {
            throw ConnectionError("profile \(name) holds \"\(uri)\", which is not a connection")
        }
        return spec
    }

    /// A saved profile's connection with its options applied (the adapter), and the options; an
    /// error that names the profile when either cannot be used.
    public static func resolve(named name: String, _ profile: Profile) throws(ConnectionError) -> ResolvedConnection {
        let fix = "(fix it with `smpctl profile add \(name) CONNECTION [OPTIONS]`, or `smpctl profile remove \(name)`)"
        if let problem = profile.problem { throw ConnectionError("profile \(name) cannot be used: \(problem) \(fix)") }
        var spec = try connection(named: name, uri: profile.connection)
        do {
            try profile.options.validate(for: spec)
        } catch {
            throw ConnectionError("profile \(name) cannot be used: \(error.message) \(fix)")
        }
        if case .ble(let target, nil, let bleOptions) = spec, let adapter = profile.options.adapter {
            spec = .ble(target: target, adapter: adapter, options: bleOptions)
        }
        return ResolvedConnection(spec: spec, profile: name, options: profile.options)
    }
}

/// A connection ready to open: the spec (a profile's adapter applied), the profile it came from
/// and that profile's options (empty for a connection string).
public struct ResolvedConnection: Sendable, Equatable {
    public var spec: ConnectionSpec
    public var profile: String?
    public var options: ProfileOptions

    public init(spec: ConnectionSpec, profile: String? = nil, options: ProfileOptions = ProfileOptions()) {
        self.spec = spec
        self.profile = profile
        self.options = options
    }
}

/// The file's shape, read with typed decoding: each entry is a string or an object.
private struct ProfilesFile: Decodable {
    var profiles: [String: Entry]

    struct Entry: Decodable {
        var profile: Profile

        private struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        /// Never fails: an entry that cannot be read becomes a profile with a problem, so that
        /// one bad entry does not hide the others.
        init(from decoder: any Decoder) {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                profile = Profile(connection: text)
                return
            }
            guard let container = try? decoder.container(keyedBy: Key.self) else {
                profile = Profile(connection: "", problem: "its entry is neither a connection string nor an object")
                return
            }
            var result = Profile(connection: "")
            var problems: [String] = []
            func read<T: Decodable>(_ type: T.Type, _ name: String, _ what: String) -> T? {
                let key = Key(stringValue: name)
                guard container.contains(key) else { return nil }
                guard let value = try? container.decode(T.self, forKey: key) else {
                    problems.append("\(name) must be \(what)")
                    return nil
                }
                return value
            }
            if let connection = read(String.self, "connection", "a connection string") {
                result.connection = connection
            } else if !container.contains(Key(stringValue: "connection")) {
                problems.append("it has no connection")
            }
            result.options.timeout = read(Double.self, "timeout_seconds", "a number of seconds")
            result.options.retries = read(Int.self, "retries", "a whole number")
            result.options.window = read(Int.self, "window", "a whole number")
            result.options.adapter = read(String.self, "adapter", "an adapter name such as hci0")
            let known: Set = ["connection", "timeout_seconds", "retries", "window", "adapter"]
            let unknown = container.allKeys.map(\.stringValue).filter { !known.contains($0) }.sorted()
            if !unknown.isEmpty { problems.append("unknown option\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", "))") }
            if !problems.isEmpty { result.problem = problems.joined(separator: "; ") }
            profile = result
        }
    }
}
