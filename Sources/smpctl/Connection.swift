import Foundation
import SMPCtlBlueZ
import SMPCtlClient
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport

/// A parsed `--connection` value.
enum ConnectionSpec: Equatable {
    /// The embedded simulator in this process, with simulator options from the query.
    case simulator(options: [String: String])
    case udp(host: String, port: UInt16, datagramLimit: Int?)
    case serial(path: String, baud: Int)
    case ble(target: String, adapter: String?)

    /// The accepted forms, for error messages and help.
    static let forms = """
        Accepted connection forms:
          sim                              the embedded device simulator (no hardware)
          udp:HOST[:PORT][?mtu=N]          SMP over UDP (default port 1337; the largest datagram is learned, or N; IPv6 as udp:[::1]:1337)
          serial:PATH[?baud=N]             SMP console framing on a serial port (default 115200 baud)
          ble:NAME-OR-ADDRESS[?adapter=hciN]  Bluetooth LE through BlueZ (bluetoothd over D-Bus)
          NAME                             a profile saved with `smpctl profile add`
        Give it with -c/--connection or the SMPCTL_CONNECTION environment variable.
        """

    /// Parses a URI; `nil` means it is not a URI (it may be a profile name).
    static func parse(_ text: String) throws(ConnectionError) -> ConnectionSpec? {
        let (base, query) = splitQuery(text)
        if base == "sim" || base == "sim:" { return .simulator(options: query) }
        guard let colon = base.firstIndex(of: ":") else { return nil }
        let scheme = base[..<colon].lowercased()
        let rest = String(base[base.index(after: colon)...])
        switch scheme {
        case "udp":
            guard !rest.isEmpty else { throw ConnectionError("udp: needs a host, as in udp:192.0.2.1 or udp:[::1]:1337") }
            var host = rest
            var port = UDPTransport.defaultPort
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { throw ConnectionError("unclosed [ in \(text)") }
                host = String(rest[...close])
                let after = rest[rest.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let value = UInt16(after.dropFirst()) else { throw ConnectionError("invalid UDP port in \(text)") }
                    port = value
                } else if !after.isEmpty {
                    throw ConnectionError("unexpected text after ] in \(text)")
                }
            } else if let portColon = rest.lastIndex(of: ":") {
                guard rest.filter({ $0 == ":" }).count == 1 else {
                    throw ConnectionError("write IPv6 addresses in brackets: udp:[\(rest)]:1337")
                }
                host = String(rest[..<portColon])
                guard let value = UInt16(rest[rest.index(after: portColon)...]) else {
                    throw ConnectionError("invalid UDP port in \(text)")
                }
                port = value
            }
            var limit: Int?
            if let value = query["mtu"] {
                guard let number = Int(value), (64...65_507).contains(number) else {
                    throw ConnectionError("mtu must be a datagram size from 64 to 65507 bytes")
                }
                limit = number
            }
            return .udp(host: host, port: port, datagramLimit: limit)
        case "serial":
            guard !rest.isEmpty else { throw ConnectionError("serial: needs a device path, as in serial:/dev/ttyACM0") }
            var baud = 115_200
            if let value = query["baud"] {
                guard let number = Int(value), number > 0 else { throw ConnectionError("invalid baud rate \(value)") }
                baud = number
            }
            return .serial(path: rest, baud: baud)
        case "ble":
            guard !rest.isEmpty else { throw ConnectionError("ble: needs a device name or address") }
            return .ble(target: rest, adapter: query["adapter"])
        default:
            throw ConnectionError("unknown connection scheme \"\(scheme)\"")
        }
    }

    private static func splitQuery(_ text: String) -> (String, [String: String]) {
        guard let mark = text.firstIndex(of: "?") else { return (text, [:]) }
        var query: [String: String] = [:]
        for pair in text[text.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return (String(text[..<mark]), query)
    }
}

/// A connection string that cannot be used.
struct ConnectionError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Named connections kept in `$XDG_CONFIG_HOME/smpctl/profiles.json`.
struct ProfileStore {
    let url: URL

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let base: URL
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty {
            base = URL(fileURLWithPath: xdg)
        } else {
            base = URL(fileURLWithPath: environment["HOME"] ?? NSHomeDirectory()).appendingPathComponent(".config")
        }
        url = base.appendingPathComponent("smpctl").appendingPathComponent("profiles.json")
    }

    func load() throws -> [String: String] {
        guard FileManager.default.fileExists(atPath: url.path) else { return [:] }
        let data = try Data(contentsOf: url)
        guard data.count < 1 << 20,
            let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let profiles = root["profiles"] as? [String: String]
        else {
            throw ConnectionError("\(url.path) is not a profiles file ({\"profiles\": {\"name\": \"udp:...\"}})")
        }
        return profiles
    }

    func save(_ profiles: [String: String]) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let data = try JSONSerialization.data(
            withJSONObject: ["profiles": profiles], options: [.prettyPrinted, .sortedKeys])
        try data.write(to: url, options: .atomic)
    }
}

/// Resolves the connection from the option, the environment and the profiles.
func resolveConnection(_ option: String?) throws(ConnectionError) -> ConnectionSpec {
    let environment = ProcessInfo.processInfo.environment
    guard let text = option ?? environment["SMPCTL_CONNECTION"], !text.isEmpty else {
        throw ConnectionError("no connection given.\n" + ConnectionSpec.forms)
    }
    if let spec = try ConnectionSpec.parse(text) { return spec }
    let profiles: [String: String]
    do {
        profiles = try ProfileStore(environment: environment).load()
    } catch {
        throw ConnectionError("cannot read profiles: \(error)")
    }
    guard let uri = profiles[text] else {
        throw ConnectionError("\"\(text)\" is neither a connection nor a saved profile.\n" + ConnectionSpec.forms)
    }
    guard let spec = try ConnectionSpec.parse(uri) else {
        throw ConnectionError("profile \(text) holds \"\(uri)\", which is not a connection")
    }
    return spec
}

/// Builds the transport for a connection.
func makeTransport(_ spec: ConnectionSpec) throws -> any SMPTransport {
    switch spec {
    case .simulator(let options):
        let server = try SimulatorOptions.server(from: options)
        return InProcessTransport(server: server, linkModel: server.link == .ideal ? nil : server.link)
    case .udp(let host, let port, let limit):
        return UDPTransport(address: try SocketAddress.resolve(host: host, port: port), maximumDatagram: limit)
    case .serial(let path, let baud):
        return SerialTransport(path: path, baud: baud)
    case .ble(let target, let adapter):
        // The system bus, or DBUS_SYSTEM_BUS_ADDRESS when set.
        return BLETransport(target: target, adapter: adapter)
    }
}
