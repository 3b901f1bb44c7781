// The `--connection` strings (sim, udp:, serial:, ble:) and the named profiles that stand for them.
// Everything here comes from a user, an environment variable or a file: every length and count is
// bounded, and every failure is a ConnectionError, never a trap.


/// A parsed `--connection` value.
public enum ConnectionSpec: Equatable, Sendable {
    /// The embedded simulator in this process, with simulator options from the query.
    case simulator(options: [String: String])
    /// `datagramLimit` is `?mtu=N`; `nil` lets the client learn the path's largest datagram.
    case udp(host: String, port: UInt16, datagramLimit: Int?)
    case serial(path: String, baud: Int)
    /// Bluetooth LE through BlueZ; `options` are the query's `write=` and `pair=`.
    case ble(target: String, adapter: String?, options: BLEConnectionOptions = BLEConnectionOptions())

    /// The longest connection string read.
    public static let maximumLength = 4096
    /// The most `key=value` items in a query.
    public static let maximumQueryItems = 64

    /// The accepted forms, for error messages and help.
    /// Zephyr's default SMP UDP port (CONFIG_MCUMGR_TRANSPORT_UDP_PORT).
    public static let defaultUDPPort: UInt16 = 1337

    public static let forms = """
        Accepted connection forms:
          sim[?state=FILE]                 the embedded device simulator (no hardware); new for each command unless state=FILE keeps it
          udp:HOST[:PORT][?mtu=N]          SMP over UDP (default port 1337; the largest datagram is learned, or N; IPv6 as udp:[::1]:1337)
          serial:PATH[?baud=N]             SMP console framing on a serial port (default 115200 baud)
          ble:NAME-OR-ADDRESS[?adapter=hciN][&write=dbus|request][&pair=yes]  Bluetooth LE through BlueZ (bluetoothd over D-Bus; pair=yes pairs when the device requires it)
          NAME                             a profile saved with `smpctl profile add`
        Give it with -c/--connection or the SMPCTL_CONNECTION environment variable.
        """

    /// Parses a URI; `nil` means it is not a URI (it may be a profile name).
    public static func parse(_ text: String) throws(ConnectionError) -> ConnectionSpec? {
        guard text.utf8.count <= maximumLength else {
            throw ConnectionError("a connection string is at most \(maximumLength) bytes")
        }
        let (base, query) = try splitQuery(text)
        if base == "sim" || base == "sim:" { return .simulator(options: query) }
        guard let colon = base.firstIndex(of: ":") else { return nil }
        let scheme = base[..<colon].lowercased()
        let rest = String(base[base.index(after: colon)...])
        switch scheme {
        case "udp":
            guard !rest.isEmpty else { throw ConnectionError("udp: needs a host, as in udp:192.0.2.1 or udp:[::1]:1337") }
            let (host, port) = try udpEndpoint(rest, in: text, allowingPortZero: false)
            var limit: Int?
            if let value = query["mtu"] {
                guard let number = decimal(value), (64...65_507).contains(number) else {
                    throw ConnectionError("mtu must be a datagram size from 64 to 65507 bytes")
                }
                limit = number
            }
            return .udp(host: host, port: port, datagramLimit: limit)
        case "serial":
            guard !rest.isEmpty else { throw ConnectionError("serial: needs a device path, as in serial:/dev/ttyACM0") }
            var baud = 115_200
            if let value = query["baud"] {
                guard let number = decimal(value), number > 0, number <= 100_000_000 else {
                    throw ConnectionError("invalid baud rate \(value)")
                }
                baud = number
            }
            return .serial(path: rest, baud: baud)
        case "ble":
            guard !rest.isEmpty else { throw ConnectionError("ble: needs a device name or address") }
            if let adapter = query["adapter"], adapter.isEmpty {
                throw ConnectionError("adapter needs a name, as in ?adapter=hci0")
            }
            var options = BLEConnectionOptions()
            if let write = query["write"] {
                switch write {
                case "dbus": options.dbusWrites = true
                case "socket": options.dbusWrites = false
                case "request": options.writeRequests = true
                default:
                    throw ConnectionError(
                        "write must be socket (AcquireWrite), dbus (WriteValue) or request (write requests, one at a time), not \"\(write)\"")
                }
            }
            if let pair = query["pair"] {
                switch pair {
                case "yes", "": options.pair = true
                case "no": options.pair = false
                default: throw ConnectionError("pair must be yes (pair when the device requires it) or no, not \"\(pair)\"")
                }
            }
            return .ble(target: rest, adapter: query["adapter"], options: options)
        default:
            throw ConnectionError("unknown connection scheme \"\(scheme)\"")
        }
    }

    /// Parses `HOST:PORT` (`[V6]:PORT`) for a UDP endpoint. Port 0 is refused unless
    /// `allowingPortZero` (a server that binds any free port, as `simulate --udp 127.0.0.1:0`).
    public static func parseUDPEndpoint(_ text: String, allowingPortZero: Bool) throws(ConnectionError) -> (host: String, port: UInt16) {
        guard text.utf8.count <= maximumLength else {
            throw ConnectionError("a connection string is at most \(maximumLength) bytes")
        }
        return try udpEndpoint(text, in: text, allowingPortZero: allowingPortZero)
    }

    private static func udpEndpoint(
        _ rest: String, in text: String, allowingPortZero: Bool
    ) throws(ConnectionError) -> (host: String, port: UInt16) {
        var host = rest
        var port = Self.defaultUDPPort
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw ConnectionError("unclosed [ in \(text)") }
            host = String(rest[...close])
            guard host.count > 2 else { throw ConnectionError("empty IPv6 address in \(text)") }
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                port = try parsePort(String(after.dropFirst()), in: text, allowingZero: allowingPortZero)
            } else if !after.isEmpty {
                throw ConnectionError("unexpected text after ] in \(text)")
            }
        } else if let portColon = rest.lastIndex(of: ":") {
            guard rest.filter({ $0 == ":" }).count == 1 else {
                throw ConnectionError("write IPv6 addresses in brackets: udp:[\(rest)]:1337")
            }
            host = String(rest[..<portColon])
            port = try parsePort(String(rest[rest.index(after: portColon)...]), in: text, allowingZero: allowingPortZero)
        }
        guard !host.isEmpty else { throw ConnectionError("udp: needs a host before the port in \(text)") }
        return (host, port)
    }

    private static func parsePort(_ text: String, in whole: String, allowingZero: Bool) throws(ConnectionError) -> UInt16 {
        guard let number = decimal(text), number <= Int(UInt16.max) else {
            throw ConnectionError("invalid UDP port \"\(text)\" in \(whole): a port is a number from 1 to 65535")
        }
        guard number > 0 || allowingZero else {
            throw ConnectionError("UDP port 0 in \(whole) is not a port a device can listen on: give 1 to 65535 (Zephyr's default is 1337)")
        }
        return UInt16(number)
    }

    /// A decimal number of ASCII digits only (no sign, no spaces), at most 9 digits.
    static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 9, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    /// Splits `BASE?key=value&key` into the base and the query items. A bare `key` means "" (a flag).
    private static func splitQuery(_ text: String) throws(ConnectionError) -> (String, [String: String]) {
        guard let mark = text.firstIndex(of: "?") else { return (text, [:]) }
        var query: [String: String] = [:]
        let items = text[text.index(after: mark)...].split(separator: "&", omittingEmptySubsequences: true)
        guard items.count <= maximumQueryItems else {
            throw ConnectionError("a connection query has at most \(maximumQueryItems) items")
        }
        for item in items {
            let key: Substring
            let value: Substring
            if let equals = item.firstIndex(of: "=") {
                key = item[..<equals]
                value = item[item.index(after: equals)...]
            } else {
                key = item
                value = ""
            }
            guard !key.isEmpty else {
                throw ConnectionError("the query item \"\(item)\" in \(text) has no name: write key=value, as in udp:192.0.2.1?mtu=1024")
            }
            query[String(key)] = String(value)
        }
        return (String(text[..<mark]), query)
    }
}

/// The `ble:` query options.
public struct BLEConnectionOptions: Equatable, Sendable {
    /// `write=dbus`: BlueZ's `WriteValue` and `StartNotify` instead of the `AcquireWrite` and
    /// `AcquireNotify` sockets.
    public var dbusWrites: Bool
    /// `pair=yes`: when the device refuses an unencrypted access ("Not paired"), pair with
    /// smpctl's agent and try once more.
    public var pair: Bool
    /// `write=request`: every write an ATT Write Request through `WriteValue`, each answered
    /// before the next, so writes keep their order on an EATT link.
    public var writeRequests: Bool

    public init(dbusWrites: Bool = false, pair: Bool = false, writeRequests: Bool = false) {
        self.dbusWrites = dbusWrites
        self.pair = pair
        self.writeRequests = writeRequests
    }
}

/// A connection string that cannot be used.
public struct ConnectionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Resolves the connection from the option, then `SMPCTL_CONNECTION`, then the saved profiles.
public func resolveConnection(
    _ option: String?, environment: [String: String]
) throws(ConnectionError) -> ConnectionSpec {
    try resolveConnectionAndProfile(option, environment: environment).spec
}

/// Resolves the connection as ``resolveConnection(_:environment:)`` does, and returns the
/// profile's options with it when the connection names a profile.
public func resolveConnectionAndProfile(
    _ option: String?, environment: [String: String]
) throws(ConnectionError) -> ResolvedConnection {
    guard let text = option ?? environment["SMPCTL_CONNECTION"], !text.isEmpty else {
        throw ConnectionError("no connection given.\n" + ConnectionSpec.forms)
    }
    if let spec = try ConnectionSpec.parse(text) { return ResolvedConnection(spec: spec) }
    let store = ProfileStore(environment: environment)
    let profiles: [String: Profile]
    do {
        profiles = try store.load()
    } catch {
        throw ConnectionError("cannot read profiles: \(error)")
    }
    guard let profile = profiles[text] else {
        throw ConnectionError("\"\(text)\" is neither a connection nor a profile saved in \(store.url.path).\n" + ConnectionSpec.forms)
    }
    return try ProfileStore.resolve(named: text, profile)
}
