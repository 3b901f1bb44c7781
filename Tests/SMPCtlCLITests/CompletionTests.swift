import Foundation
import Testing

/// Shell completion: the scripts `--generate-completion-script` writes, and the candidates
/// `smpctl ---completion` returns for `-c`.
@Suite("shell completions")
struct CompletionTests {
    static func script(_ shell: String) async throws -> String {
        let result = try await CLI.run(["--generate-completion-script", shell])
        #expect(result.status == 0)
        return result.stdout
    }

    /// The function or block of a script that completes `command`, up to the next one.
    static func section(of script: String, bashFunction name: String) -> String {
        guard let start = script.range(of: "\n\(name)() {") else { return "" }
        let rest = script[start.upperBound...]
        let end = rest.range(of: "\n}")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }

    @Test("bash: file arguments by kind, build folders as folders, -c through smpctl")
    func bash() async throws {
        let script = try await Self.script("bash")
        #expect(Self.section(of: script, bashFunction: "_smpctl_image_upload").contains("-fX '!*.@(bin)'"))
        #expect(Self.section(of: script, bashFunction: "_smpctl_dfu").contains("-fX '!*.@(bin)'"))
        #expect(Self.section(of: script, bashFunction: "_smpctl_image_inspect").contains("-fX '!*.@(bin|zip|hex|elf)'"))
        #expect(Self.section(of: script, bashFunction: "_smpctl_image_inspect").contains("-fX '!*.@(pem)'"))
        #expect(Self.section(of: script, bashFunction: "_smpctl_doctor").contains("__smpctl_add_completions -d"))
        #expect(Self.section(of: script, bashFunction: "_smpctl_fleet_run").contains("yaml|yml|json"))
        #expect(script.contains("---completion dfu -- --connection"))
        #expect(script.contains("---completion profile remove -- positional@0"))
        // profile add keeps options: they complete, --adapter with the kernel's controllers.
        let add = Self.section(of: script, bashFunction: "_smpctl_profile_add")
        for option in ["--timeout", "--retries", "--window", "--adapter"] { #expect(add.contains(option), "profile add lacks \(option)") }
        #expect(script.contains("---completion profile add -- --adapter"))
        #expect(script.contains("---completion scan -- --adapter"))
        // Offline commands take no connection, so nothing completes one there.
        for offline in ["explain", "doctor", "image inspect"] {
            #expect(!script.contains("---completion \(offline) -- --connection"), "\(offline) completes --connection")
        }
    }

    @Test("zsh and fish: the same kinds")
    func zshAndFish() async throws {
        let zsh = try await Self.script("zsh")
        #expect(zsh.contains(#":file:_files -g '\''*.bin *.zip *.hex *.elf'\''"#))
        #expect(zsh.contains(#":build-dir:_files -/"#))
        #expect(zsh.contains("---completion image upload -- --connection"))
        let fish = try await Self.script("fish")
        #expect(fish.contains(#"set -l exts \'bin\' \'zip\' \'hex\' \'elf\'"#))
        #expect(fish.contains("---completion dfu -- --connection"))
        #expect(fish.contains("__smpctl_should_offer_completions_for_positional \"smpctl doctor\""))
    }

    /// Asks smpctl for the candidates of `-c` being typed as `prefix`, as the scripts do.
    static func connections(_ prefix: String, environment: [String: String]) async throws -> (CLIResult, [String], Double) {
        let result = try await CLI.run(["---completion", "image", "list", "--", "--connection", "3", String(prefix.count), prefix], environment: environment, timeout: 20)
        return (result, result.stdout.split(separator: "\n").map(String.init), result.seconds)
    }

    static func profiles(_ json: String) throws -> (URL, [String: String]) {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-complete-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: config.appendingPathComponent("smpctl"), withIntermediateDirectories: true)
        try Data(json.utf8).write(to: config.appendingPathComponent("smpctl/profiles.json"))
        return (config, ["XDG_CONFIG_HOME": config.path, "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/smpctl-test"])
    }

    @Test("-c completes the forms and the saved profiles, filtered by what is typed")
    func profileNames() async throws {
        let (config, environment) = try Self.profiles(#"{"profiles":{"lab":"udp:192.0.2.1","bench-2":"sim","lab-b":"serial:/dev/ttyACM0"}}"#)
        defer { try? FileManager.default.removeItem(at: config) }
        let (all, words, _) = try await Self.connections("", environment: environment)
        #expect(all.status == 0)
        #expect(Set(words) == ["sim", "udp:", "serial:", "ble:", "lab", "bench-2", "lab-b"])
        #expect(try await Self.connections("la", environment: environment).1 == ["lab", "lab-b"])
        #expect(try await Self.connections("u", environment: environment).1 == ["udp:"])
        // A profiles file that is not one completes no profile, and still the forms.
        let (broken, brokenEnvironment) = try Self.profiles("{not json")
        defer { try? FileManager.default.removeItem(at: broken) }
        #expect(Set(try await Self.connections("", environment: brokenEnvironment).1) == ["sim", "udp:", "serial:", "ble:"])
    }

    @Test("ble: completion never hangs: a bus that never answers costs about a second, then nothing")
    func bluetoothBounded() async throws {
        let (config, environment) = try Self.profiles(#"{"profiles":{"blelab":"sim"}}"#)
        defer { try? FileManager.default.removeItem(at: config) }
        // A Unix socket that accepts connections and never says a word: the D-Bus handshake stalls.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-silent-\(UUID().uuidString.prefix(8)).sock").path
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer {
            close(listener)
            unlink(path)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        #expect(listen(listener, 8) == 0)
        var silent = environment
        silent["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=\(path)"
        let (result, words, seconds) = try await Self.connections("ble", environment: silent)
        #expect(result.status == 0)
        #expect(words == ["ble:", "blelab"])
        #expect(seconds < 5, "completion took \(seconds) s")
        // With no bus at all, it is immediate.
        let (_, none, quick) = try await Self.connections("bl", environment: environment)
        #expect(none == ["ble:", "blelab"])
        #expect(quick < 3)
        // profile remove completes the saved names.
        let remove = try await CLI.run(["---completion", "profile", "remove", "--", "positional@0", "0", "1", "b"], environment: environment)
        #expect(remove.stdout.split(separator: "\n") == ["blelab"])
    }
}
