import Foundation
import Testing

/// `image test` and `image confirm` by hash prefix, file or slot; profile errors; `simulate -v`.
@Suite("image selection, profile errors, simulate -v")
struct ImageSelectionTests {
    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")

    /// The image's hash as `image inspect` reads it.
    func imageHash() async throws -> String {
        let inspect = try await CLI.run(["image", "inspect", image, "--json"])
        return try #require(inspect.json()["image_hash"] as? String)
    }

    /// The slots `image list --json` reports, as (slot, hash, pending).
    func slots(_ connection: String) async throws -> [(slot: Int, hash: String, pending: Bool)] {
        let list = try await CLI.run(["-c", connection, "--json", "image", "list"])
        let images = try #require(list.json()["images"] as? [[String: Any]])
        return images.compactMap { entry in
            guard let slot = entry["slot"] as? Int, let hash = entry["hash"] as? String else { return nil }
            return (slot, hash, entry["pending"] as? Bool ?? false)
        }
    }

    @Test("image test takes a unique hash prefix, a file, or --slot; a prefix nothing has is a usage error")
    func selection() async throws {
        let (simulator, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { simulator.terminate() }
        let hash = try await imageHash()
        #expect(try await CLI.run(["-c", connection, "image", "upload", image]).status == 0)
        #expect(try await slots(connection).contains { $0.slot == 1 && $0.hash == hash && !$0.pending })

        // A prefix of 8 digits, upper case as someone may copy it.
        let byPrefix = try await CLI.run(["-c", connection, "image", "test", String(hash.prefix(8)).uppercased()])
        #expect(byPrefix.status == 0, "\(byPrefix.stderr)")
        #expect(try await slots(connection).contains { $0.slot == 1 && $0.pending })

        // The file: its hash TLV names the image.
        #expect(try await CLI.run(["-c", connection, "image", "test", image]).status == 0)
        // The slot.
        #expect(try await CLI.run(["-c", connection, "image", "test", "--slot", "1"]).status == 0)

        // A prefix no image has, one too short, a slot that is empty, and text that is neither.
        let running = try await #require(try slots(connection).first { $0.slot == 0 }?.hash)
        let absent = (0..<16).map { String($0, radix: 16) }.map { String(repeating: $0, count: 6) }
            .first { !hash.hasPrefix($0) && !running.hasPrefix($0) } ?? "ffffff"
        let none = try await CLI.run(["-c", connection, "--json", "image", "test", absent])
        #expect(none.status == 2)
        #expect((try none.json()["message"] as? String)?.contains("no image on the device has a hash starting with \(absent)") == true)
        #expect(try await CLI.run(["-c", connection, "image", "test", "abc"]).status == 2)
        #expect(try await CLI.run(["-c", connection, "image", "test", "--slot", "3"]).status == 2)
        let neither = try await CLI.run(["-c", connection, "image", "test", "no-such-file.bin"])
        #expect(neither.status == 2 && neither.stderr.contains("neither a file nor an image hash"))
        #expect(try await CLI.run(["-c", connection, "image", "test"]).status == 2)
        #expect(try await CLI.run(["-c", connection, "image", "test", "--slot", "1", hash]).status == 2)
    }

    @Test("image confirm takes a prefix of the running image's hash")
    func confirmByPrefix() async throws {
        let (simulator, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { simulator.terminate() }
        let running = try await #require(try slots(connection).first { $0.slot == 0 }?.hash)
        let confirm = try await CLI.run(["-c", connection, "--json", "image", "confirm", String(running.prefix(6))])
        #expect(confirm.status == 0, "\(confirm.stdout)")
    }

    @Test("profile errors look like every other error and name the file")
    func profileErrors() async throws {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-profiles-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: config) }
        try FileManager.default.createDirectory(at: config.appendingPathComponent("smpctl"), withIntermediateDirectories: true)
        let file = config.appendingPathComponent("smpctl/profiles.json")
        try Data("{not json".utf8).write(to: file)
        let xdg = ["XDG_CONFIG_HOME": config.path]
        let list = try await CLI.run(["profile", "list"], environment: xdg)
        #expect(list.status == 2)
        #expect(list.stderr.hasPrefix("smpctl: error: \(file.path) is not a profiles file"))
        #expect(!list.stderr.contains("NSCocoaErrorDomain"))
        let json = try await CLI.run(["profile", "list", "--json"], environment: xdg)
        #expect(json.status == 2)
        #expect(try json.json()["error"] as? String == "profile")
        let remove = try await CLI.run(["profile", "remove", "nobody"], environment: xdg)
        #expect(remove.status == 2 && remove.stderr.contains(file.path))
        // A folder where the profiles file should be: still the path, and no Cocoa error number.
        try FileManager.default.removeItem(at: file)
        try FileManager.default.createDirectory(at: file, withIntermediateDirectories: true)
        let add = try await CLI.run(["profile", "add", "lab", "sim"], environment: xdg)
        #expect(add.status == 2 && add.stderr.contains(file.path) && !add.stderr.contains("NSCocoaErrorDomain"))
        let badName = try await CLI.run(["profile", "add", "sim", "udp:192.0.2.1"], environment: xdg)
        #expect(badName.status == 2 && badName.stderr.hasPrefix("smpctl: error: a profile name is"))
    }

    @Test("simulate -v logs each request, erase, reset and boot decision")
    func simulatorLog() async throws {
        let process = Process()
        process.executableURL = try CLI.executable
        process.arguments = ["simulate", "--udp", "127.0.0.1:0", "-v", "--exit-after", "600"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let log = Reader(err.fileHandleForReading)
        var line = Data()
        let handle = out.fileHandleForReading
        while true {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0A]) { break }
            line.append(byte)
        }
        let connection = String(decoding: line, as: UTF8.self)
        #expect(connection.hasPrefix("udp:"))
        let dfu = try await CLI.run(["-c", connection, "dfu", image])
        #expect(dfu.status == 0, "\(dfu.stderr)")
        process.terminate()
        process.waitUntilExit()
        let text = log.finish()
        #expect(text.contains("simulator: request: write group 1 command 1"), "\(text.prefix(2000))")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: image)[.size] as? Int)
        #expect(text.contains("simulator: erase: slot 1 for a \(size)-byte upload"))
        #expect(text.contains("simulator: reset: the device reboots"))
        #expect(text.contains("simulator: boot: image 0: swapped the test image in slot 1 into slot 0"))
    }
}
