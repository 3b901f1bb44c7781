import Foundation
import Testing

/// Hostile connection strings, profiles, files and build folders give an error and an exit
/// status, never a trap (exit 132) or a hang (issue #13).
@Suite("smpctl on hostile input")
struct HardeningCLITests {
    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-hardening-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("a query item that is only '=' is a usage error", arguments: ["sim?=", "udp:127.0.0.1?=", "sim?buf-size=512&="])
    func emptyQueryItem(_ connection: String) throws {
        let result = try CLI.run(["echo", "hi", "-c", connection, "--timeout", "1"])
        #expect(result.status == 2, "\(connection): \(result.status) \(result.stderr)")
        #expect(result.stderr.contains("has no name"), "\(result.stderr)")
        let fromEnvironment = try CLI.run(["echo", "hi", "--timeout", "1"], environment: ["SMPCTL_CONNECTION": connection])
        #expect(fromEnvironment.status == 2, "SMPCTL_CONNECTION=\(connection): \(fromEnvironment.status) \(fromEnvironment.stderr)")
    }

    @Test("UDP port 0, ports over 65535 and names are refused", arguments: [
        "udp:127.0.0.1:0", "udp:127.0.0.1:65536", "udp:127.0.0.1:port",
    ])
    func badPort(_ connection: String) throws {
        let result = try CLI.run(["echo", "hi", "-c", connection, "--timeout", "1", "--retries", "0"])
        #expect(result.status == 2, "\(connection): \(result.status) \(result.stderr)")
        #expect(result.stderr.contains("1 to 65535"), "\(result.stderr)")
    }

    @Test("profile add checks the name and the connection")
    func profileAdd() throws {
        let xdg = ["XDG_CONFIG_HOME": try Self.temporaryFolder().path]
        for (name, connection) in [("bench", "sim?="), ("bench", "udp:127.0.0.1:0"), ("", "sim"),
                                   (String(repeating: "p", count: 65), "sim"), ("a b", "sim"), ("sim", "sim")]
        {
            let result = try CLI.run(["profile", "add", name, connection], environment: xdg)
            #expect(result.status == 2, "profile add '\(name)' '\(connection)': \(result.status) \(result.stderr)")
        }
        #expect(try CLI.run(["profile", "add", String(repeating: "p", count: 64), "sim"], environment: xdg).status == 0)
        #expect(try CLI.run(["profile", "add", "lab-1.b_2", "sim"], environment: xdg).status == 0)
    }

    @Test("a saved profile that no longer parses names the profile; list and remove still work")
    func brokenSavedProfile() throws {
        let folder = try Self.temporaryFolder()
        let xdg = ["XDG_CONFIG_HOME": folder.path]
        let file = folder.appendingPathComponent("smpctl/profiles.json")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(#"{"profiles": {"broken": "udp:127.0.0.1?=", "good": "sim"}}"#.utf8).write(to: file)

        let use = try CLI.run(["echo", "hi", "-c", "broken"], environment: xdg)
        #expect(use.status == 2, "\(use.status) \(use.stderr)")
        #expect(use.stderr.contains("profile broken"), "\(use.stderr)")
        #expect(try CLI.run(["echo", "hi", "-c", "good"], environment: xdg).status == 0)

        let list = try CLI.run(["profile", "list"], environment: xdg)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("broken = udp:127.0.0.1?=") && list.stdout.contains("good = sim"))
        #expect(list.stdout.contains("not usable"))

        #expect(try CLI.run(["profile", "remove", "broken"], environment: xdg).status == 0)
        let after = try CLI.run(["profile", "list", "--json"], environment: xdg)
        #expect(after.status == 0)
        #expect(try after.json() as? [String: String] == ["good": "sim"])
    }
}
