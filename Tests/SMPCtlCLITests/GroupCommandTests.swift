import Foundation
import Testing

/// `smpctl stat`, `settings`, `shell exec`, `enum` and `info --groups` against the simulator.
@Suite("smpctl stat, settings, shell, enum against the simulator", .serialized)
struct GroupCommandTests {
    @Test("stat list and stat show, text and JSON; an unknown group exits 4 naming the statistics code")
    func stat() async throws {
        let list = try await CLI.run(["-c", "sim", "stat", "list"])
        #expect(list.status == 0, "stderr: \(list.stderr)")
        #expect(list.stdout == "smp_svr_stats\nsmp_transport\n")

        let show = try await CLI.run(["-c", "sim", "--json", "stat", "show", "smp_transport"])
        #expect(show.status == 0, "stderr: \(show.stderr)")
        let json = try show.json()
        #expect(json["group"] as? String == "smp_transport")
        let fields = try #require(json["fields"] as? [String: Any])
        #expect(Set(fields.keys) == ["rx_packets", "rx_bytes", "boots"])
        #expect((fields["rx_packets"] as? Int ?? 0) >= 1)

        let text = try await CLI.run(["-c", "sim", "stat", "show", "smp_svr_stats"])
        #expect(text.stdout.hasPrefix("smp_svr_stats:\n  ticks  "))

        let unknown = try await CLI.run(["-c", "sim", "stat", "show", "nope"])
        #expect(unknown.status == 4)
        #expect(unknown.stderr.contains("STAT_MGMT_ERR_INVALID_STAT_NAME"), "stderr: \(unknown.stderr)")
        #expect(!unknown.stderr.contains("FLASH_CONFIG_QUERY_FAIL"), "stderr: \(unknown.stderr)")
    }

    @Test("settings get, set, delete, commit, load and save over UDP to one simulated device")
    func settings() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { server.terminate() }
        let get = try await CLI.run(["-c", connection, "settings", "get", "app/name"])
        #expect(get.status == 0, "stderr: \(get.stderr)")
        #expect(get.stdout == "smpctl-sim\n")
        // Not printable: hex by default; --text and --hex force a form.
        let interval = try await CLI.run(["-c", connection, "--json", "settings", "get", "app/interval"])
        #expect(try interval.json()["hex"] as? String == "0a000000")
        #expect(try await CLI.run(["-c", connection, "settings", "get", "app/interval"]).stdout == "0a000000\n")
        #expect(try await CLI.run(["-c", connection, "settings", "get", "--hex", "app/name"]).stdout == "736d7063746c2d73696d\n")

        let set = try await CLI.run(["-c", connection, "settings", "set", "app/interval", "--hex", "14000000"])
        #expect(set.status == 0, "stderr: \(set.stderr)")
        #expect(try await CLI.run(["-c", connection, "settings", "get", "app/interval"]).stdout == "14000000\n")
        #expect(try await CLI.run(["-c", connection, "settings", "set", "app/name", "board-7"]).status == 0)
        #expect(try await CLI.run(["-c", connection, "settings", "get", "--text", "app/name"]).stdout == "board-7\n")
        // Load puts the stored values back; save and then load keeps the new one.
        #expect(try await CLI.run(["-c", connection, "settings", "load"]).stdout == "settings loaded\n")
        #expect(try await CLI.run(["-c", connection, "settings", "get", "app/name"]).stdout == "smpctl-sim\n")
        #expect(try await CLI.run(["-c", connection, "settings", "set", "app/name", "board-7"]).status == 0)
        let save = try await CLI.run(["-c", connection, "--json", "settings", "save"])
        #expect(try save.json()["action"] as? String == "save")
        #expect(try await CLI.run(["-c", connection, "settings", "commit"]).stdout == "settings committed\n")
        #expect(try await CLI.run(["-c", connection, "settings", "load"]).status == 0)
        #expect(try await CLI.run(["-c", connection, "settings", "get", "app/name"]).stdout == "board-7\n")

        #expect(try await CLI.run(["-c", connection, "settings", "delete", "app/name"]).stdout == "app/name deleted\n")
        let missing = try await CLI.run(["-c", connection, "--json", "settings", "get", "bt/id"])
        #expect(missing.status == 4)
        let error = try #require(try missing.json()["device_error"] as? [String: Any])
        #expect("\(error)".contains("SETTINGS_MGMT_ERR_ROOT_KEY_NOT_FOUND"), "\(error)")

        #expect(try await CLI.run(["-c", connection, "settings", "set", "--hex", "app/x", "zz"]).status == 2)
        #expect(try await CLI.run(["-c", connection, "settings", "get", "--hex", "--text", "app/x"]).status == 2)
    }

    @Test("shell exec prints the output; a non-zero return code exits 4")
    func shell() async throws {
        let ok = try await CLI.run(["-c", "sim", "shell", "exec", "--", "kernel", "version"])
        #expect(ok.status == 0, "stderr: \(ok.stderr)")
        #expect(ok.stdout == "Zephyr version 4.1.0\n")

        let failed = try await CLI.run(["-c", "sim", "--json", "shell", "exec", "--", "frobnicate", "--now"])
        #expect(failed.status == 4)
        let json = try failed.json()
        #expect(json["return_code"] as? Int == -8)
        #expect(json["output"] as? String == "frobnicate: command not found\n")
        #expect(json["ok"] as? Bool == false)

        let text = try await CLI.run(["-c", "sim", "shell", "exec", "--", "false"])
        #expect(text.status == 4)
        #expect(text.stderr.contains("returned 1"))
        #expect(try await CLI.run(["-c", "sim", "shell", "exec"]).status == 2)
    }

    @Test("enum count, list, single, details")
    func enumeration() async throws {
        #expect(try await CLI.run(["-c", "sim", "enum", "count"]).stdout == "8\n")
        let list = try await CLI.run(["-c", "sim", "--json", "enum", "list"])
        let groups = try #require(try list.json()["groups"] as? [[String: Any]])
        #expect(groups.compactMap { $0["id"] as? Int } == [10, 8, 1, 0, 3, 9, 2, 63])
        #expect(groups.first?["name"] as? String == "enumeration")
        #expect(try await CLI.run(["-c", "sim", "enum", "single", "6"]).stdout == "stat (2)\n")
        #expect(try await CLI.run(["-c", "sim", "enum", "single", "7"]).stdout == "zephyr-basic (63) (last)\n")
        let past = try await CLI.run(["-c", "sim", "enum", "single", "8"])
        #expect(past.status == 4)
        #expect(past.stderr.contains("ENUM_MGMT_ERR_INDEX_TOO_LARGE"), "stderr: \(past.stderr)")
        let details = try await CLI.run(["-c", "sim", "enum", "details", "--group", "os", "--group", "9"])
        #expect(details.stdout == "os (0): \"os mgmt\", 9 handlers\nshell (9): \"shell mgmt\", 1 handlers\n")
        #expect(try await CLI.run(["-c", "sim", "enum", "details", "--group", "nosuch"]).status == 2)
    }

    @Test("info --groups lists the groups, and says so when the device has no enumeration group")
    func infoGroups() async throws {
        let info = try await CLI.run(["-c", "sim", "--json", "info", "--groups"])
        #expect(info.status == 0, "stderr: \(info.stderr)")
        let json = try info.json()
        #expect((json["output"] as? String)?.hasPrefix("Zephyr smpctl-sim 4.1.0") == true)
        let groups = try #require(json["groups"] as? [[String: Any]])
        #expect(groups.count == 8)

        let text = try await CLI.run(["-c", "sim", "info", "--groups"])
        #expect(text.stdout.contains("groups: enumeration (10), fs (8), image (1), os (0), settings (3), shell (9), stat (2), zephyr-basic (63)"), "\(text.stdout)")

        let without = try await CLI.run(["-c", "sim?fail=enum:1:rc=8", "info", "--groups"])
        #expect(without.status == 0, "stderr: \(without.stderr)")
        #expect(without.stdout.contains("groups: unknown (the device has no enumeration group)"))
        // Without --groups, info sends one request (format "a") and prints one line.
        #expect(try await CLI.run(["-c", "sim", "info"]).stdout.split(separator: "\n").count == 1)
    }
}
