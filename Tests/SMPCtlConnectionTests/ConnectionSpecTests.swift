import Foundation
import Testing

import SMPCtlConnection
import SMPCtlTransport

@Suite("connection strings")
struct ConnectionSpecTests {
    @Test("the documented forms parse")
    func forms() throws {
        #expect(try ConnectionSpec.parse("sim") == .simulator(options: [:]))
        #expect(try ConnectionSpec.parse("sim?buf-size=512&no-params") == .simulator(options: ["buf-size": "512", "no-params": ""]))
        #expect(try ConnectionSpec.parse("udp:192.0.2.1") == .udp(host: "192.0.2.1", port: ConnectionSpec.defaultUDPPort, datagramLimit: nil))
        #expect(try ConnectionSpec.parse("udp:192.0.2.1:1338?mtu=1024") == .udp(host: "192.0.2.1", port: 1338, datagramLimit: 1024))
        #expect(try ConnectionSpec.parse("udp:[::1]:65535") == .udp(host: "[::1]", port: 65535, datagramLimit: nil))
        #expect(try ConnectionSpec.parse("serial:/dev/ttyACM0?baud=9600") == .serial(path: "/dev/ttyACM0", baud: 9600))
        #expect(try ConnectionSpec.parse("ble:smp_svr?adapter=hci1") == .ble(target: "smp_svr", adapter: "hci1"))
        #expect(try ConnectionSpec.parse("ble:smp_svr?adapter=hci1&write=dbus") == .ble(target: "smp_svr", adapter: "hci1", options: BLEConnectionOptions(dbusWrites: true)))
        #expect(try ConnectionSpec.parse("ble:smp_svr?write=socket") == .ble(target: "smp_svr", adapter: nil, options: BLEConnectionOptions(dbusWrites: false)))
        #expect(try ConnectionSpec.parse("ble:smp_svr?pair=yes") == .ble(target: "smp_svr", adapter: nil, options: BLEConnectionOptions(pair: true)))
        #expect(try ConnectionSpec.parse("ble:AA:BB:CC:DD:EE:FF?write=dbus&pair=no") == .ble(target: "AA:BB:CC:DD:EE:FF", adapter: nil, options: BLEConnectionOptions(dbusWrites: true, pair: false)))
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parse("ble:smp_svr?pair=maybe") }
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parse("ble:smp_svr?write=gatt") }
        #expect(try ConnectionSpec.parse("ble:smp_svr?write=request") == .ble(target: "smp_svr", adapter: nil, options: BLEConnectionOptions(writeRequests: true)))
        #expect(try ConnectionSpec.parse("bench") == nil)
    }

    /// `"=".split(separator: "=")` is empty; indexing it trapped (SIGILL, exit 132).
    @Test("a query item with no name is an error, not a trap", arguments: [
        "sim?=", "udp:127.0.0.1?=", "sim?=1", "udp:127.0.0.1?mtu=600&=", "serial:/dev/null?=x", "ble:x?&=&",
    ])
    func emptyQueryName(_ text: String) {
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parse(text) }
    }

    @Test("UDP ports are 1 to 65535, in decimal", arguments: [
        "udp:127.0.0.1:0", "udp:[::1]:0", "udp:127.0.0.1:65536", "udp:127.0.0.1:99999999999999999999",
        "udp:127.0.0.1:", "udp:127.0.0.1:http", "udp:127.0.0.1:+1", "udp:127.0.0.1:-1", "udp:127.0.0.1: 1",
        "udp::1337", "udp:[]:1337",
    ])
    func badPorts(_ text: String) {
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parse(text) }
    }

    @Test("port 0 names the rule")
    func portZeroMessage() {
        #expect {
            try ConnectionSpec.parse("udp:127.0.0.1:0")
        } throws: { error in
            "\(error)".contains("1 to 65535")
        }
    }

    @Test("a server endpoint may bind port 0, a connection may not")
    func serverEndpoint() throws {
        let endpoint = try ConnectionSpec.parseUDPEndpoint("127.0.0.1:0", allowingPortZero: true)
        #expect(endpoint.host == "127.0.0.1" && endpoint.port == 0)
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parseUDPEndpoint("127.0.0.1:0", allowingPortZero: false) }
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parseUDPEndpoint("127.0.0.1:65536", allowingPortZero: true) }
    }

    @Test("lengths and counts are bounded")
    func bounds() {
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parse("udp:" + String(repeating: "a", count: 5000)) }
        let items = (0..<65).map { "k\($0)=1" }.joined(separator: "&")
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parse("sim?" + items) }
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parse("udp:127.0.0.1?mtu=99999999999999999999") }
        #expect(throws: ConnectionError.self) { try ConnectionSpec.parse("serial:/dev/ttyACM0?baud=99999999999") }
    }

    @Test("random strings never trap")
    func randomStrings() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("sim:udp?=&[]:0123456789serial/ble.-x%")
        for _ in 0..<5000 {
            let count = Int.random(in: 0..<40, using: &generator)
            let text = String((0..<count).map { _ in alphabet.randomElement(using: &generator) ?? "=" })
            _ = try? ConnectionSpec.parse(text)
            _ = try? ConnectionSpec.parseUDPEndpoint(text, allowingPortZero: true)
        }
    }
}

@Suite("saved profiles")
struct ProfileStoreTests {
    /// A store in a fresh temporary XDG_CONFIG_HOME.
    static func makeStore(_ json: String? = nil) throws -> (ProfileStore, [String: String]) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-profiles-\(UUID().uuidString)")
        let environment = ["XDG_CONFIG_HOME": folder.path]
        let store = ProfileStore(environment: environment)
        if let json {
            try FileManager.default.createDirectory(at: store.url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(json.utf8).write(to: store.url)
        }
        return (store, environment)
    }

    @Test("names are 1 to 64 characters of [A-Za-z0-9._-]")
    func names() {
        for good in ["bench", "lab-1.udp_2", String(repeating: "a", count: 64), "A", "0"] {
            #expect(throws: Never.self) { try ProfileStore.validate(name: good) }
        }
        for bad in ["", String(repeating: "a", count: 65), "sim", "a:b", "a?b", "a b", "a/b", "é", "a\n"] {
            #expect(throws: ConnectionError.self, "\(bad)") { try ProfileStore.validate(name: bad) }
        }
    }

    @Test("a saved connection that does not parse is reported by profile name, and the others still work")
    func badSavedConnection() throws {
        let (store, environment) = try Self.makeStore(#"{"profiles": {"broken": "sim?=", "good": "udp:127.0.0.1:1338", "zero": "udp:10.0.0.1:0"}}"#)
        let profiles = try store.load()
        #expect(profiles.count == 3)
        #expect(try resolveConnection("good", environment: environment) == .udp(host: "127.0.0.1", port: 1338, datagramLimit: nil))
        #expect {
            try resolveConnection("broken", environment: environment)
        } throws: { error in
            let text = "\(error)"
            return text.contains("profile broken") && text.contains("sim?=")
        }
        #expect {
            try resolveConnection("zero", environment: environment)
        } throws: { error in
            "\(error)".contains("profile zero")
        }
    }

    @Test("SMPCTL_CONNECTION goes through the same parser")
    func environmentVariable() throws {
        let (_, environment) = try Self.makeStore()
        var env = environment
        env["SMPCTL_CONNECTION"] = "sim?="
        #expect(throws: ConnectionError.self) { try resolveConnection(nil, environment: env) }
        env["SMPCTL_CONNECTION"] = "udp:127.0.0.1:0"
        #expect(throws: ConnectionError.self) { try resolveConnection(nil, environment: env) }
        env["SMPCTL_CONNECTION"] = "sim"
        #expect(try resolveConnection(nil, environment: env) == .simulator(options: [:]))
    }

    @Test("a file that is not a profiles file is an error; a missing one is empty")
    func fileShape() throws {
        #expect(try Self.makeStore().0.load().isEmpty)
        #expect(throws: ConnectionError.self) { try Self.makeStore("[1, 2]").0.load() }
        #expect(throws: ConnectionError.self) { try Self.makeStore(#"{"profiles": ["a"]}"#).0.load() }
        // An entry that is neither a string nor an object is a profile that cannot be used, not a
        // file that cannot be read: the other profiles stay usable.
        let odd = try Self.makeStore(#"{"profiles": {"a": 1, "b": "sim"}}"#).0.load()
        #expect(odd["a"]?.problem != nil && odd["b"] == Profile(connection: "sim"))
        let (saved, _) = try Self.makeStore()
        try saved.save(Profile(connection: "sim"), named: "bench")
        #expect(try saved.load() == ["bench": Profile(connection: "sim")])
    }
}

@Suite("profiles with options")
struct ProfileOptionsStoreTests {
    func store(_ json: String?) throws -> (ProfileStore, [String: String], URL) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("smpctl"), withIntermediateDirectories: true)
        let environment = ["XDG_CONFIG_HOME": folder.path]
        let store = ProfileStore(environment: environment)
        if let json { try Data(json.utf8).write(to: store.url) }
        return (store, environment, folder)
    }

    @Test("a profile's adapter applies to a ble: connection that names none; its options come with the spec")
    func resolve() throws {
        let (_, environment, folder) = try store(
            #"{"profiles": {"lab": {"connection": "ble:smp_svr?write=dbus", "adapter": "hci1", "timeout_seconds": 2.5, "retries": 1, "window": 4}, "old": "udp:192.0.2.1"}}"#)
        defer { try? FileManager.default.removeItem(at: folder) }
        let lab = try resolveConnectionAndProfile("lab", environment: environment)
        #expect(lab.spec == .ble(target: "smp_svr", adapter: "hci1", options: BLEConnectionOptions(dbusWrites: true)))
        #expect(lab.profile == "lab")
        #expect(lab.options == ProfileOptions(timeout: 2.5, retries: 1, window: 4, adapter: "hci1"))
        let old = try resolveConnectionAndProfile("old", environment: environment)
        #expect(old.spec == .udp(host: "192.0.2.1", port: 1337, datagramLimit: nil) && old.options.isEmpty)
        // A connection string has no profile options, and SMPCTL_CONNECTION may name a profile.
        #expect(try resolveConnectionAndProfile("sim", environment: environment).options.isEmpty)
        var named = environment
        named["SMPCTL_CONNECTION"] = "lab"
        #expect(try resolveConnectionAndProfile(nil, environment: named).options.window == 4)
    }

    @Test("save writes options as an object and plain profiles as strings, and keeps other entries as they were")
    func save() throws {
        let (store, _, folder) = try store(#"{"profiles": {"odd": {"connection": "sim", "future_option": true}}, "other": 1}"#)
        defer { try? FileManager.default.removeItem(at: folder) }
        try store.save(Profile(connection: "sim", options: ProfileOptions(window: 2)), named: "w")
        try store.save(Profile(connection: "udp:192.0.2.1"), named: "plain")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: store.url)) as? [String: Any])
        let profiles = try #require(root["profiles"] as? [String: Any])
        #expect((profiles["w"] as? [String: Any])?["window"] as? Int == 2)
        #expect(profiles["plain"] as? String == "udp:192.0.2.1")
        #expect((profiles["odd"] as? [String: Any])?["future_option"] as? Bool == true)
        #expect(root["other"] as? Int == 1)
        let loaded = try store.load()
        #expect(loaded["odd"]?.problem?.contains("future_option") == true)
        #expect(loaded["w"] == Profile(connection: "sim", options: ProfileOptions(window: 2)))
        try store.save(nil, named: "w")
        #expect(try store.load()["w"] == nil)
    }

    @Test("option bounds", arguments: [
        ProfileOptions(timeout: 0), ProfileOptions(timeout: 3601), ProfileOptions(timeout: -1), ProfileOptions(retries: -1),
        ProfileOptions(retries: 101), ProfileOptions(window: 0), ProfileOptions(window: 33), ProfileOptions(adapter: ""),
        ProfileOptions(adapter: "hci0/../x"), ProfileOptions(adapter: String(repeating: "h", count: 17)),
    ])
    func bounds(_ options: ProfileOptions) {
        #expect(throws: ConnectionError.self) { try options.validate(for: .ble(target: "x", adapter: nil)) }
    }
}
