public import Foundation
import SMPCtlFiles

/// Named connections kept in `$XDG_CONFIG_HOME/smpctl/profiles.json`, as
/// `{"profiles": {"name": "udp:..."}}`.
///
/// The file is read as it is: a saved connection that no longer parses does not stop the others
/// from being listed, removed or used. It is reported, naming the profile, when it is used.
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

    /// The saved profiles, by name; empty when there is no file.
    public func load() throws(ConnectionError) -> [String: String] {
        let data: Data
        do {
            data = try RegularFile.read(url.path, limit: Self.maximumFileSize)
        } catch {
            if case .missing = error.kind { return [:] }
            throw ConnectionError(error.description)
        }
        let shape = "\(url.path) is not a profiles file ({\"profiles\": {\"name\": \"udp:...\"}})"
        guard let object = try? JSONSerialization.jsonObject(with: data), let root = object as? [String: Any],
            let profiles = root["profiles"] as? [String: String]
        else {
            throw ConnectionError(shape)
        }
        guard profiles.count <= Self.maximumProfiles else {
            throw ConnectionError("\(url.path) holds \(profiles.count) profiles; at most \(Self.maximumProfiles) are read")
        }
        return profiles
    }

    /// Writes the profiles (atomically), creating the folder when needed.
    public func save(_ profiles: [String: String]) throws(ConnectionError) {
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let data = try JSONSerialization.data(
                withJSONObject: ["profiles": profiles], options: [.prettyPrinted, .sortedKeys])
            try data.write(to: url, options: .atomic)
        } catch {
            throw ConnectionError("cannot write \(url.path): \(Self.reason(error))")
        }
    }

    /// Why a write failed, in words (the errno's text), not as an NSCocoaErrorDomain number.
    static func reason(_ error: any Error) -> String {
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
}
