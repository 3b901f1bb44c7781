import Foundation
import Testing

/// Profiles that keep options (timeout, retries, window, adapter), and `scan`'s options, through
/// the built binary.
@Suite("profile options")
struct ProfileOptionsTests {
    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")

    /// A fresh XDG_CONFIG_HOME, and the profiles file inside it.
    func config() throws -> (folder: URL, file: URL, environment: [String: String]) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-profile-options-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("smpctl"), withIntermediateDirectories: true)
        return (folder, folder.appendingPathComponent("smpctl/profiles.json"), ["XDG_CONFIG_HOME": folder.path])
    }

    @Test("a stored timeout and retries take effect with -c NAME; the command's own flags win")
    func storedTimeout() async throws {
        let (folder, _, xdg) = try config()
        defer { try? FileManager.default.removeItem(at: folder) }
        // Every answer comes 600 ms late: a 0.2 s timeout with no retry fails, the default one-second
        // first wait (under --timeout 5) gets the answer.
        let add = try await CLI.run(["profile", "add", "slow", "sim?delay=600", "--timeout", "0.2", "--retries", "0", "--json"], environment: xdg)
        #expect(add.status == 0, "\(add.stderr)")
        let added = try add.json()
        #expect((added["options"] as? [String: Any])?["timeout_seconds"] as? Double == 0.2)
        #expect((added["options"] as? [String: Any])?["retries"] as? Int == 0)

        let stored = try await CLI.run(["-c", "slow", "--json", "echo", "hi"], environment: xdg)
        #expect(stored.status == 3, "the profile's 0.2 s timeout and 0 retries: \(stored.stdout) \(stored.stderr)")
        #expect(try stored.json()["error"] as? String == "timeout")
        #expect(stored.seconds < 10)

        let flagWins = try await CLI.run(["-c", "slow", "echo", "hi", "--timeout", "5"], environment: xdg)
        #expect(flagWins.status == 0, "--timeout 5 overrides the profile's 0.2 s: \(flagWins.stderr)")
        #expect(flagWins.stdout == "hi\n")
        // Root options before the subcommand are flags too.
        let before = try await CLI.run(["--timeout", "5", "-c", "slow", "echo", "hi"], environment: xdg)
        #expect(before.status == 0, "\(before.stderr)")

        let list = try await CLI.run(["profile", "list"], environment: xdg)
        #expect(list.stdout.contains("slow = sim?delay=600 (timeout 0.2 s, retries 0)"), "\(list.stdout)")
    }

    @Test("a stored window is the upload's window unless --window is given")
    func storedWindow() async throws {
        let (folder, _, xdg) = try config()
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(try await CLI.run(["profile", "add", "narrow", "sim", "--window", "2"], environment: xdg).status == 0)
        let stored = try await CLI.run(["-c", "narrow", "--json", "image", "upload", image], environment: xdg)
        #expect(stored.status == 0, "\(stored.stderr)")
        #expect(try stored.json()["window"] as? Int == 2)
        let flag = try await CLI.run(["-c", "narrow", "--json", "image", "upload", image, "--window", "1"], environment: xdg)
        #expect(try flag.json()["window"] as? Int == 1)
        // Without the profile: the simulator's buf_count 4, less one.
        let plain = try await CLI.run(["-c", "sim", "--json", "image", "upload", image], environment: xdg)
        #expect(try plain.json()["window"] as? Int == 3)
        let dfu = try await CLI.run(["-c", "narrow", "--json", "dfu", image], environment: xdg)
        #expect(dfu.status == 0, "\(dfu.stderr)")
    }

    @Test("an old profiles file still loads, keeps its entries as they were, and takes new profiles with options")
    func oldFile() async throws {
        let (folder, file, xdg) = try config()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"profiles": {"old": "sim?buf-size=512"}}"#.utf8).write(to: file)
        let params = try await CLI.run(["-c", "old", "--json", "params"], environment: xdg)
        #expect(try params.json()["buf_size"] as? Int == 512)
        #expect(try await CLI.run(["profile", "add", "lab", "ble:smp_svr", "--adapter", "hci1", "--timeout", "5"], environment: xdg).status == 0)
        let saved = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        let profiles = try #require(saved["profiles"] as? [String: Any])
        #expect(profiles["old"] as? String == "sim?buf-size=512")
        let lab = try #require(profiles["lab"] as? [String: Any])
        #expect(lab["connection"] as? String == "ble:smp_svr")
        #expect(lab["adapter"] as? String == "hci1")
        #expect(lab["timeout_seconds"] as? Double == 5)
        let list = try await CLI.run(["profile", "list", "--json"], environment: xdg)
        let document = try list.json()
        #expect(document["profiles"] as? [String: String] == ["old": "sim?buf-size=512", "lab": "ble:smp_svr"])
        #expect(((document["options"] as? [String: Any])?["lab"] as? [String: Any])?["adapter"] as? String == "hci1")
        // Adding a name again replaces it, options included: back to the string form.
        #expect(try await CLI.run(["profile", "add", "lab", "ble:smp_svr"], environment: xdg).status == 0)
        let replaced = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        #expect((replaced["profiles"] as? [String: Any])?["lab"] as? String == "ble:smp_svr")
    }

    @Test("options are validated when saved and when read; a bad entry names its profile and spares the others")
    func validation() async throws {
        let (folder, file, xdg) = try config()
        defer { try? FileManager.default.removeItem(at: folder) }
        for arguments in [
            ["x", "sim", "--window", "0"], ["x", "sim", "--window", "33"], ["x", "sim", "--timeout", "0"],
            ["x", "sim", "--retries", "101"], ["x", "udp:192.0.2.1", "--adapter", "hci0"],
            ["x", "ble:dev", "--adapter", "HCI 0"], ["x", "ble:dev?adapter=hci0", "--adapter", "hci1"],
        ] {
            let result = try await CLI.run(["profile", "add"] + arguments, environment: xdg)
            #expect(result.status == 2, "profile add \(arguments): \(result.status) \(result.stderr)")
            #expect(!result.stderr.isEmpty)
        }
        #expect(!FileManager.default.fileExists(atPath: file.path))
        try Data(#"{"profiles": {"bad": {"connection": "sim", "window": 99}, "typed": {"connection": "sim", "timeout_seconds": "soon"}, "good": "sim"}}"#.utf8)
            .write(to: file)
        let bad = try await CLI.run(["-c", "bad", "echo", "hi"], environment: xdg)
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("profile bad") && bad.stderr.contains("window"), "\(bad.stderr)")
        let typed = try await CLI.run(["-c", "typed", "--json", "echo", "hi"], environment: xdg)
        #expect(typed.status == 2)
        #expect(try typed.json()["error"] as? String == "connection")
        #expect((try typed.json()["message"] as? String)?.contains("timeout_seconds must be a number of seconds") == true)
        #expect(try await CLI.run(["-c", "good", "echo", "hi"], environment: xdg).stdout == "hi\n")
        let list = try await CLI.run(["profile", "list"], environment: xdg)
        #expect(list.status == 0)
        #expect(list.stdout.contains("bad = sim (window 99)  (not usable: "), "\(list.stdout)")
        #expect(try await CLI.run(["profile", "remove", "bad"], environment: xdg).status == 0)
        let after = try await CLI.run(["profile", "list", "--json"], environment: xdg)
        #expect(try after.json()["profiles"] as? [String: String] == ["good": "sim", "typed": "sim"])
        // A corrupt file: a clear message with its path, for use as for list.
        try Data("[1, 2".utf8).write(to: file)
        let corrupt = try await CLI.run(["-c", "good", "echo", "hi"], environment: xdg)
        #expect(corrupt.status == 2)
        #expect(corrupt.stderr.contains("\(file.path) is not a profiles file"), "\(corrupt.stderr)")
    }

    @Test("scan takes --json and --timeout after it and before it, and its help lists them")
    func scanOptions() async throws {
        let help = try await CLI.run(["scan", "--help"])
        #expect(help.status == 0)
        for option in ["--timeout", "--json", "--adapter", "--all"] {
            #expect(help.stdout.contains(option), "scan --help lacks \(option): \(help.stdout)")
        }
        #expect(!help.stdout.contains("--connection") && !help.stdout.contains("--retries"))
        // Out of range, wherever it is written: the value reaches the check.
        for arguments in [["scan", "--timeout", "0"], ["--timeout", "0", "scan"], ["scan", "--json", "--timeout", "-1"]] {
            let result = try await CLI.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stdout.contains("--timeout") || result.stderr.contains("--timeout"), "\(arguments): \(result.stderr)")
        }
    }
}

/// `-c 'sim?state=FILE'`: separate processes share one simulated device.
@Suite("sim?state=FILE")
struct SimulatorStateTests {
    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")

    func folder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-sim-state-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    func images(_ result: CLIResult) throws -> [[String: Any]] {
        try #require(result.json()["images"] as? [[String: Any]], "\(result.stdout) \(result.stderr)")
    }

    @Test("upload, list, test, reset, confirm: each a process of its own, one device")
    func sequence() async throws {
        let folder = try folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("device.json").path
        let connection = "sim?state=\(state)"
        let inspect = try await CLI.run(["image", "inspect", image, "--json"])
        let hash = try #require(inspect.json()["image_hash"] as? String)

        let upload = try await CLI.run(["-c", connection, "--json", "image", "upload", image])
        #expect(upload.status == 0, "\(upload.stderr)")
        #expect(FileManager.default.fileExists(atPath: state))

        let list = try await CLI.run(["-c", connection, "--json", "image", "list"])
        let listed = try images(list)
        #expect(listed.contains { $0["slot"] as? Int == 1 && $0["hash"] as? String == hash }, "\(listed)")

        let test = try await CLI.run(["-c", connection, "--json", "image", "test", String(hash.prefix(8))])
        #expect(test.status == 0, "\(test.stderr)")
        #expect(try images(test).contains { $0["hash"] as? String == hash && $0["pending"] as? Bool == true })

        #expect(try await CLI.run(["-c", connection, "reset"]).status == 0)
        let afterReset = try images(try await CLI.run(["-c", connection, "--json", "image", "list"]))
        #expect(afterReset.contains { $0["hash"] as? String == hash && $0["active"] as? Bool == true && $0["slot"] as? Int == 0 },
            "the tested image runs after the reset: \(afterReset)")

        let confirm = try await CLI.run(["-c", connection, "--json", "image", "confirm"])
        #expect(confirm.status == 0, "\(confirm.stderr)")
        #expect(try images(confirm).contains { $0["hash"] as? String == hash && $0["confirmed"] as? Bool == true })

        // Without state=, the next command's device is factory-fresh again.
        let fresh = try images(try await CLI.run(["-c", "sim", "--json", "image", "list"]))
        #expect(!fresh.contains { $0["hash"] as? String == hash })
    }

    @Test("an interrupted upload resumes in the next command")
    func resumedUpload() async throws {
        let folder = try folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("device.json").path
        // Over an emulated 115200-baud serial link the 48 KiB upload takes seconds: --deadline 1
        // stops it part-way, and the device's upload state is saved so.
        let cut = try await CLI.run(["-c", "sim?link=serial:115200&state=\(state)", "--json", "image", "upload", image, "--deadline", "1"])
        #expect(cut.status == 3, "\(cut.stdout) \(cut.stderr)")
        let reached = try #require((try cut.json()["upload_progress"] as? [String: Any])?["offset"] as? Int, "\(cut.stdout)")
        #expect(reached > 0)
        let resumed = try await CLI.run(["-c", "sim?state=\(state)", "--json", "image", "upload", image])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect((try resumed.json()["resumed_from"] as? Int ?? 0) > 0, "\(resumed.stdout)")
    }

    @Test("without state=, an error that needs an earlier command's work says so and names sim?state=FILE")
    func hint() async throws {
        let missing = String(repeating: "ab", count: 32)
        let text = try await CLI.run(["-c", "sim", "image", "test", missing])
        #expect(text.status == 4, "\(text.stderr)")
        #expect(text.stderr.contains("starts empty") && text.stderr.contains("sim?state=FILE"), "\(text.stderr)")
        #expect(text.stderr.components(separatedBy: "sim?state=FILE").count == 2, "said once: \(text.stderr)")
        // An error the knowledge base does not explain with the device's state: the note says it.
        let slot = try await CLI.run(["-c", "sim", "image", "test", "--slot", "1"])
        #expect(slot.status == 2)
        #expect(slot.stderr.contains("note: -c sim starts empty") && slot.stderr.contains("sim?state=FILE"), "\(slot.stderr)")
        let json = try await CLI.run(["-c", "sim", "--json", "image", "test", "--slot", "1"])
        #expect(json.status == 2)
        #expect((try json.json()["hint"] as? String)?.contains("sim?state=FILE") == true, "\(json.stdout)")
        // With state=, no such note: the device is what earlier commands left.
        let folder = try folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let kept = try await CLI.run(["-c", "sim?state=\(folder.path)/d.json", "image", "test", missing])
        #expect(kept.status == 4)
        #expect(!kept.stderr.contains("starts empty"), "\(kept.stderr)")
        #expect(kept.stderr.contains("kept in a state file"), "\(kept.stderr)")
        // A device error that has nothing to do with state gets no note either.
        let other = try await CLI.run(["-c", "sim?fail=os:echo:rc=6", "echo", "hi"])
        #expect(other.status == 4 && !other.stderr.contains("starts empty"), "\(other.stderr)")
    }

    @Test("a corrupt or mismatched state file is a usage error naming the file; nothing is overwritten")
    func corrupt() async throws {
        let folder = try folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("device.json").path
        try Data("{\"format\": \"smpctl-sim-state/1\", \"slots\": 3".utf8).write(to: URL(fileURLWithPath: state))
        let broken = try await CLI.run(["-c", "sim?state=\(state)", "--json", "image", "list"])
        #expect(broken.status == 2)
        #expect(try broken.json()["error"] as? String == "connection")
        #expect((try broken.json()["message"] as? String)?.contains("\(state) is not a simulator state file") == true, "\(broken.stdout)")
        #expect(try String(contentsOfFile: state, encoding: .utf8).hasSuffix("\"slots\": 3"))

        try FileManager.default.removeItem(atPath: state)
        #expect(try await CLI.run(["-c", "sim?state=\(state)", "image", "list"]).status == 0)
        let other = try await CLI.run(["-c", "sim?slot-size=131072&state=\(state)", "image", "list"])
        #expect(other.status == 2)
        #expect(other.stderr.contains(state) && other.stderr.contains("slots of 262144, 262144 bytes"), "\(other.stderr)")

        let empty = try await CLI.run(["-c", "sim?state=", "image", "list"])
        #expect(empty.status == 2 && empty.stderr.contains("needs a file"), "\(empty.stderr)")
        // A folder that cannot be written: the command says so and fails.
        let unwritable = try await CLI.run(["-c", "sim?state=\(folder.path)/no/such/folder/d.json", "--json", "image", "list"])
        #expect(unwritable.status == 1, "\(unwritable.stdout) \(unwritable.stderr)")
        #expect(try unwritable.json()["error"] as? String == "simulator-state")
    }
}
