import Foundation
import Testing

/// `smpctl fs`, `storage erase`, `reset --boot-mode`, `os info`, `info` and `raw` against the simulator.
@Suite("smpctl fs, storage, os info, raw against the simulator", .serialized)
struct FSCommandTests {
    static func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-cli-\(UUID().uuidString)-\(name)").path
    }

    static func randomFile(_ count: Int) throws -> (String, Data) {
        var generator = SystemRandomNumberGenerator()
        let data = Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let path = temporary("local.bin")
        try data.write(to: URL(fileURLWithPath: path))
        return (path, data)
    }

    @Test("fs upload then download over UDP: same bytes, sha256 compared; stat, hash, supported-hashes, close")
    func roundTrip() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { server.terminate() }
        let (local, data) = try Self.randomFile(50_000)
        let upload = try await CLI.run(["-c", connection, "--json", "fs", "upload", local, "/lfs/blob.bin"])
        #expect(upload.status == 0, "stderr: \(upload.stderr)")
        let uploaded = try upload.json()
        #expect(uploaded["length"] as? Int == 50_000)
        #expect(uploaded["hash_checked"] as? Bool == true)
        let check = try #require(uploaded["hash_check"] as? [String: Any])
        #expect(check["type"] as? String == "sha256")

        let stat = try await CLI.run(["-c", connection, "fs", "stat", "/lfs/blob.bin"])
        #expect(stat.stdout == "/lfs/blob.bin: 50000 bytes\n")
        let hash = try await CLI.run(["-c", connection, "--json", "fs", "hash", "--type", "sha256", "/lfs/blob.bin"])
        #expect(try hash.json()["output"] as? String == check["output"] as? String)
        let crc = try await CLI.run(["-c", connection, "fs", "hash", "/lfs/blob.bin"])
        #expect(crc.stdout.hasPrefix("crc32 "), "\(crc.stdout)")
        #expect(try await CLI.run(["-c", connection, "fs", "supported-hashes"]).stdout
            == "crc32: 4 bytes, number\nsha256: 32 bytes, byte string\n")
        #expect(try await CLI.run(["-c", connection, "fs", "close"]).stdout == "closed\n")

        let target = Self.temporary("download.bin")
        let download = try await CLI.run(["-c", connection, "fs", "download", "/lfs/blob.bin", target])
        #expect(download.status == 0, "stderr: \(download.stderr)")
        #expect(download.stdout.contains("sha256 matches the device's"), "\(download.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == data)
        #expect(!FileManager.default.fileExists(atPath: target + ".part"))

        // The same upload again: the device holds the file, nothing is sent.
        let again = try await CLI.run(["-c", connection, "fs", "upload", local, "/lfs/blob.bin"])
        #expect(again.stdout.contains("already holds"), "\(again.stdout)")
    }

    @Test("fs upload --window 3 over UDP to a simulator that loses and reorders requests: verified, with refusals rewound")
    func windowedOverLossyUDP() async throws {
        let (server, connection) = try CLI.startSimulator([
            "--udp", "127.0.0.1:0", "--buf-size", "512", "--request-loss-rate", "0.1", "--reorder-rate", "0.1",
            "--fault-seed", "7",
        ])
        defer { server.terminate() }
        let (local, data) = try Self.randomFile(30_000)
        let upload = try await CLI.run([
            "-c", connection, "--timeout", "1", "--json", "fs", "upload", "--window", "3", local, "/lfs/lossy.bin",
        ])
        #expect(upload.status == 0, "stderr: \(upload.stderr)")
        let json = try upload.json()
        #expect(json["window"] as? Int == 3)
        #expect((json["rewinds"] as? Int ?? 0) > 0, "\(json)")
        #expect((json["hash_check"] as? [String: Any])?["type"] as? String == "sha256")
        // Read back over the same lossy link: the device holds exactly the file.
        let target = Self.temporary("lossy.bin")
        let download = try await CLI.run(["-c", connection, "--timeout", "1", "fs", "download", "/lfs/lossy.bin", target])
        #expect(download.status == 0, "stderr: \(download.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == data)
    }

    @Test("an interrupted upload and download continue where they stopped")
    func resume() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { server.terminate() }
        let (local, data) = try Self.randomFile(8_000)
        // Put the first 1000 bytes on the device as an interrupted upload would, with raw requests.
        let first = data.prefix(1000).map { String(format: "%02x", $0) }.joined()
        let raw = try await CLI.run([
            "-c", connection, "raw", "--group", "fs", "--command", "0", "--write",
            "--body", "{\"off\": 0, \"name\": \"/lfs/r.bin\", \"data\": \"h'\(first)'\", \"len\": 8000}",
        ])
        #expect(raw.status == 0, "stderr: \(raw.stderr)")
        #expect(raw.stdout == "{\"off\": 1000}\n")
        let upload = try await CLI.run(["-c", connection, "--json", "fs", "upload", local, "/lfs/r.bin"])
        #expect(upload.status == 0, "stderr: \(upload.stderr)")
        #expect(try upload.json()["resumed_from"] as? Int == 1000)

        let target = Self.temporary("r.bin")
        try data.prefix(5000).write(to: URL(fileURLWithPath: target + ".part"))
        let download = try await CLI.run(["-c", connection, "fs", "download", "/lfs/r.bin", target])
        #expect(download.status == 0, "stderr: \(download.stderr)")
        #expect(download.stdout.hasPrefix("resumed at offset 5000\n"), "\(download.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == data)
        // --restart ignores a .part.
        try data.prefix(5000).write(to: URL(fileURLWithPath: target + ".part"))
        let restart = try await CLI.run(["-c", connection, "--json", "fs", "download", "--restart", "/lfs/r.bin", target])
        #expect(try restart.json()["resumed_from"] as? Int == 0)
    }

    @Test("errors: a missing remote file exits 4 with its code, a name too long exits 4 with the limit, a missing local file exits 2")
    func errors() async throws {
        let missing = try await CLI.run(["-c", "sim", "fs", "download", "/lfs/none", Self.temporary("x")])
        #expect(missing.status == 4)
        #expect(missing.stderr.contains("FS_MGMT_ERR_FILE_NOT_FOUND"), "\(missing.stderr)")
        let json = try await CLI.run(["-c", "sim", "--json", "fs", "stat", "/lfs/none"])
        #expect(json.status == 4)
        let error = try #require(try json.json()["device_error"] as? [String: Any])
        #expect(error["name"] as? String == "FS_MGMT_ERR_FILE_NOT_FOUND" && error["group"] as? Int == 8)

        let (local, _) = try Self.randomFile(100)
        let long = try await CLI.run(["-c", "sim", "fs", "upload", local, "/lfs/" + String(repeating: "n", count: 70)])
        #expect(long.status == 4)
        #expect(long.stderr.contains("CONFIG_MCUMGR_GRP_FS_PATH_LEN"), "\(long.stderr)")
        #expect(long.stderr.contains("the name is 75 bytes"), "\(long.stderr)")

        let absent = try await CLI.run(["-c", "sim", "fs", "upload", Self.temporary("absent"), "/lfs/x"])
        #expect(absent.status == 2)
        let emptyPath = Self.temporary("empty")
        try Data().write(to: URL(fileURLWithPath: emptyPath))
        let empty = try await CLI.run(["-c", "sim", "fs", "upload", emptyPath, "/lfs/x"])
        #expect(empty.status == 2)
        #expect(empty.stderr.contains("does not truncate"), "\(empty.stderr)")
        let mount = try await CLI.run(["-c", "sim", "fs", "upload", local, "/sd/x"])
        #expect(mount.status == 4)
        #expect(mount.stderr.contains("FS_MGMT_ERR_MOUNT_POINT_NOT_FOUND"))
        #expect(try await CLI.run(["-c", "sim", "fs", "hash", "--type", "md5", "/lfs/readme.txt"]).status == 2)
        let noHash = try await CLI.run(["-c", "sim?fs-hashes=none", "fs", "upload", local, "/lfs/x"])
        #expect(noHash.status == 0, "stderr: \(noHash.stderr)")
        #expect(noHash.stdout.contains("not compared: the device has no hash command"))
    }

    @Test("storage erase: refused without --yes off a terminal, done with it")
    func storageErase() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { server.terminate() }
        let refused = try await CLI.run(["-c", connection, "storage", "erase"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--yes"))
        #expect(try await CLI.run(["-c", connection, "fs", "stat", "/lfs/readme.txt"]).status == 0)
        let erased = try await CLI.run(["-c", connection, "--json", "storage", "erase", "--yes"])
        #expect(erased.status == 0, "stderr: \(erased.stderr)")
        #expect(try erased.json()["erased"] as? Bool == true)
        #expect(try await CLI.run(["-c", connection, "fs", "stat", "/lfs/readme.txt"]).status == 4)
    }

    @Test("reset --boot-mode, os info FORMAT, and info printing every field")
    func osCommands() async throws {
        let reset = try await CLI.run(["-c", "sim", "--json", "reset", "--boot-mode", "1", "--force"])
        #expect(reset.status == 0, "stderr: \(reset.stderr)")
        #expect(try reset.json()["boot_mode"] as? Int == 1)
        #expect(try await CLI.run(["-c", "sim", "reset", "--boot-mode", "300"]).status == 2)
        #expect(try await CLI.run(["-c", "sim", "os", "info", "sr"]).stdout == "Zephyr 4.1.0\n")
        #expect(try await CLI.run(["-c", "sim", "os", "info"]).stdout == "Zephyr\n")
        let bad = try await CLI.run(["-c", "sim", "os", "info", "q"])
        #expect(bad.status == 4)
        #expect(bad.stderr.contains("OS_MGMT_ERR_INVALID_FORMAT"))
        let info = try await CLI.run(["-c", "sim", "info"])
        #expect(info.stdout == "Zephyr smpctl-sim 4.1.0 v4.1.0-smpctl Jan  1 2026 00:00:00 ARM cortex-m4 nrf52840dk/nrf52840 Zephyr\n")
    }

    @Test("raw: a JSON body, a CBOR body, decoded answers in text and JSON, typed refusals")
    func raw() async throws {
        let echo = try await CLI.run(["-c", "sim", "raw", "--group", "0", "--command", "0", "--write", "--body", "{\"d\": \"hi\"}"])
        #expect(echo.status == 0, "stderr: \(echo.stderr)")
        #expect(echo.stdout == "{\"r\": \"hi\"}\n")
        // {"d": "hi"} as CBOR bytes.
        let hex = try await CLI.run(["-c", "sim", "--json", "raw", "--group", "os", "--command", "0", "--write", "--cbor-hex", "a161646268 69"])
        #expect(hex.status == 0, "stderr: \(hex.stderr)")
        let json = try hex.json()
        #expect((json["response"] as? [String: Any])?["r"] as? String == "hi")
        #expect(json["response_hex"] as? String == "a1617262686" + "9")
        let params = try await CLI.run(["-c", "sim", "--json", "raw", "--group", "os", "--command", "6"])
        #expect(((try params.json()["response"] as? [String: Any])?["buf_size"] as? Int ?? 0) > 0)
        #expect(try await CLI.run(["-c", "sim", "raw", "--group", "os", "--command", "0", "--body", "{\"d\":"]).status == 2)
        #expect(try await CLI.run(["-c", "sim", "raw", "--group", "os", "--command", "0", "--body", "[1]"]).status == 2)
        #expect(try await CLI.run(["-c", "sim", "raw", "--group", "os", "--command", "0", "--cbor-hex", "zz"]).status == 2)
        #expect(try await CLI.run(["-c", "sim", "raw", "--group", "nosuch", "--command", "0"]).status == 2)
        #expect(try await CLI.run(["-c", "sim", "raw", "--group", "0", "--command", "0", "--read", "--write"]).status == 2)
        // Larger than the simulator's 2048-byte buffer: refused before sending, exit 4.
        let big = "{\"d\": \"" + String(repeating: "x", count: 3000) + "\"}"
        let tooLarge = try await CLI.run(["-c", "sim", "raw", "--group", "os", "--command", "0", "--write", "--body", big])
        #expect(tooLarge.status == 4)
        #expect(tooLarge.stderr.contains("at most"), "\(tooLarge.stderr)")
        let unsupported = try await CLI.run(["-c", "sim", "raw", "--group", "64", "--command", "1"])
        #expect(unsupported.status == 4)
        #expect(unsupported.stderr.contains("MGMT_ERR_ENOTSUP"), "\(unsupported.stderr)")
    }
}

extension FSCommandTests {
    /// Runs smpctl with standard input on a pseudo-terminal that has `answer` typed into it.
    static func runWithTerminalInput(_ arguments: [String], answer: String, timeout: Double = 60) throws -> CLIResult {
        var controller: Int32 = -1
        var terminal: Int32 = -1
        guard openpty(&controller, &terminal, nil, nil, nil) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "openpty failed"])
        }
        defer { close(controller) }
        let process = Process()
        process.executableURL = try CLI.executable
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle(fileDescriptor: terminal, closeOnDealloc: true)
        try process.run()
        let outData = Reader(out.fileHandleForReading)
        let errData = Reader(err.fileHandleForReading)
        let bytes = Array(answer.utf8)
        _ = bytes.withUnsafeBufferPointer { write(controller, $0.baseAddress, $0.count) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            Issue.record("smpctl \(arguments.joined(separator: " ")) timed out")
        }
        process.waitUntilExit()
        try? (process.standardInput as? FileHandle)?.close()
        return CLIResult(status: process.terminationStatus, stdout: outData.finish(), stderr: errData.finish())
    }

    @Test("storage erase on a terminal asks: no keeps the storage, yes erases it")
    func storageEraseConfirmation() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { server.terminate() }
        let declined = try Self.runWithTerminalInput(["-c", connection, "storage", "erase"], answer: "n\n")
        #expect(declined.status == 1)
        #expect(declined.stderr.contains("[y/N]"), "\(declined.stderr)")
        #expect(declined.stderr.contains("nothing was erased"))
        #expect(try await CLI.run(["-c", connection, "fs", "stat", "/lfs/readme.txt"]).status == 0)
        let confirmed = try Self.runWithTerminalInput(["-c", connection, "storage", "erase"], answer: "y\n")
        #expect(confirmed.status == 0, "stderr: \(confirmed.stderr)")
        #expect(confirmed.stdout == "storage partition erased\n")
        #expect(try await CLI.run(["-c", connection, "fs", "stat", "/lfs/readme.txt"]).status == 4)
    }
}
