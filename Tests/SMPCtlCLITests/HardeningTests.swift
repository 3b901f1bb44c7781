import Foundation
import SMPCtlZipFixtures
import Testing

#if canImport(Glibc)
import Glibc
#endif

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
    func emptyQueryItem(_ connection: String) async throws {
        let result = try await CLI.run(["echo", "hi", "-c", connection, "--timeout", "1"])
        #expect(result.status == 2, "\(connection): \(result.status) \(result.stderr)")
        #expect(result.stderr.contains("has no name"), "\(result.stderr)")
        let fromEnvironment = try await CLI.run(["echo", "hi", "--timeout", "1"], environment: ["SMPCTL_CONNECTION": connection])
        #expect(fromEnvironment.status == 2, "SMPCTL_CONNECTION=\(connection): \(fromEnvironment.status) \(fromEnvironment.stderr)")
    }

    @Test("UDP port 0, ports over 65535 and names are refused", arguments: [
        "udp:127.0.0.1:0", "udp:127.0.0.1:65536", "udp:127.0.0.1:port",
    ])
    func badPort(_ connection: String) async throws {
        let result = try await CLI.run(["echo", "hi", "-c", connection, "--timeout", "1", "--retries", "0"])
        #expect(result.status == 2, "\(connection): \(result.status) \(result.stderr)")
        #expect(result.stderr.contains("1 to 65535"), "\(result.stderr)")
    }

    @Test("profile add checks the name and the connection")
    func profileAdd() async throws {
        let xdg = ["XDG_CONFIG_HOME": try Self.temporaryFolder().path]
        for (name, connection) in [("bench", "sim?="), ("bench", "udp:127.0.0.1:0"), ("", "sim"),
                                   (String(repeating: "p", count: 65), "sim"), ("a b", "sim"), ("sim", "sim")]
        {
            let result = try await CLI.run(["profile", "add", name, connection], environment: xdg)
            #expect(result.status == 2, "profile add '\(name)' '\(connection)': \(result.status) \(result.stderr)")
        }
        #expect(try await CLI.run(["profile", "add", String(repeating: "p", count: 64), "sim"], environment: xdg).status == 0)
        #expect(try await CLI.run(["profile", "add", "lab-1.b_2", "sim"], environment: xdg).status == 0)
    }

    @Test("a saved profile that no longer parses names the profile; list and remove still work")
    func brokenSavedProfile() async throws {
        let folder = try Self.temporaryFolder()
        let xdg = ["XDG_CONFIG_HOME": folder.path]
        let file = folder.appendingPathComponent("smpctl/profiles.json")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(#"{"profiles": {"broken": "udp:127.0.0.1?=", "good": "sim"}}"#.utf8).write(to: file)

        let use = try await CLI.run(["echo", "hi", "-c", "broken"], environment: xdg)
        #expect(use.status == 2, "\(use.status) \(use.stderr)")
        #expect(use.stderr.contains("profile broken"), "\(use.stderr)")
        #expect(try await CLI.run(["echo", "hi", "-c", "good"], environment: xdg).status == 0)

        let list = try await CLI.run(["profile", "list"], environment: xdg)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("broken = udp:127.0.0.1?=") && list.stdout.contains("good = sim"))
        #expect(list.stdout.contains("not usable"))

        #expect(try await CLI.run(["profile", "remove", "broken"], environment: xdg).status == 0)
        let after = try await CLI.run(["profile", "list", "--json"], environment: xdg)
        #expect(after.status == 0)
        #expect(try after.json()["profiles"] as? [String: String] == ["good": "sim"])
    }

    // MARK: FIFOs (a FIFO with no writer blocked open(2) forever)

    /// A copy of a fixture build folder (and its parent, for pm_static.yml) in a temporary folder.
    static func copyOfBuild(_ name: String) throws -> URL {
        let folder = try temporaryFolder().appendingPathComponent(name)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: CLI.path("Tests/Fixtures/builds/\(name)")), to: folder)
        return folder.appendingPathComponent("build")
    }

    static func makeFIFO(_ url: URL) throws {
        try? FileManager.default.removeItem(at: url)
        try #require(mkfifo(url.path, 0o600) == 0, "mkfifo \(url.path)")
    }

    @Test("image inspect and image upload refuse a FIFO at once")
    func imageFIFO() async throws {
        let fifo = try Self.temporaryFolder().appendingPathComponent("zephyr.signed.bin")
        try Self.makeFIFO(fifo)
        let inspect = try await CLI.run(["image", "inspect", fifo.path], timeout: 20)
        #expect(inspect.status == 2, "\(inspect.status) \(inspect.stdout) \(inspect.stderr)")
        #expect((inspect.stdout + inspect.stderr).contains("FIFO"), "\(inspect.stdout) \(inspect.stderr)")
        let upload = try await CLI.run(["image", "upload", fifo.path, "-c", "sim"], timeout: 20)
        #expect(upload.status == 2, "\(upload.status) \(upload.stdout) \(upload.stderr)")
        #expect(upload.stderr.contains("FIFO"), "\(upload.stderr)")
        let forced = try await CLI.run(["image", "upload", fifo.path, "-c", "sim", "--force"], timeout: 20)
        #expect(forced.status == 2, "\(forced.status) \(forced.stderr)")
    }

    @Test("doctor reports a FIFO partitions.yml or PM_STATIC_YML_FILE instead of blocking")
    func doctorFIFOPartitions() async throws {
        let build = try Self.copyOfBuild("healthy")
        try Self.makeFIFO(build.appendingPathComponent("partitions.yml"))
        let partitions = try await CLI.run(["doctor", build.path, "--json"], timeout: 20)
        #expect(partitions.status == 0, "\(partitions.status) \(partitions.stderr)")
        let findings = try #require(try partitions.json()["findings"] as? [[String: Any]])
        #expect(findings.contains { $0["id"] as? String == "unreadable-build-file" && $0["file"] as? String == "partitions.yml" })

        let staticFile = build.deletingLastPathComponent().appendingPathComponent("custom_pm_static.yml")
        try Self.makeFIFO(staticFile)
        try Data("PM_STATIC_YML_FILE:FILEPATH=\(staticFile.path)\n".utf8).write(to: build.appendingPathComponent("CMakeCache.txt"))
        let pmStatic = try await CLI.run(["doctor", build.path], timeout: 20)
        #expect(pmStatic.status == 0, "\(pmStatic.status) \(pmStatic.stderr)")
        #expect(pmStatic.stdout.contains("WARNING [unreadable-build-file] ../custom_pm_static.yml"), "\(pmStatic.stdout)")
        #expect(pmStatic.stdout.contains("FIFO"))
    }

    @Test("doctor refuses a FIFO zephyr/.config instead of blocking")
    func doctorFIFOConfig() async throws {
        let childImage = try Self.copyOfBuild("slot-size-mismatch")
        try Self.makeFIFO(childImage.appendingPathComponent("zephyr/.config"))
        let top = try await CLI.run(["doctor", childImage.path], timeout: 20)
        #expect(top.status == 2, "\(top.status) \(top.stdout) \(top.stderr)")
        #expect(top.stderr.contains("not a regular file"), "\(top.stderr)")

        let sysbuild = try Self.copyOfBuild("healthy")
        try Self.makeFIFO(sysbuild.appendingPathComponent("mcuboot/zephyr/.config"))
        let mcuboot = try await CLI.run(["doctor", sysbuild.path], timeout: 20)
        #expect(mcuboot.stdout.contains("[unreadable-build-file] mcuboot/zephyr/.config"), "\(mcuboot.stdout) \(mcuboot.stderr)")
    }

    @Test("explain --log refuses a FIFO and points at standard input")
    func explainFIFO() async throws {
        let fifo = try Self.temporaryFolder().appendingPathComponent("boot.log")
        try Self.makeFIFO(fifo)
        let result = try await CLI.run(["explain", "--log", fifo.path], timeout: 20)
        #expect(result.status == 2, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("give - to read standard input"), "\(result.stderr)")
    }

    // MARK: Doctor arithmetic on parsed values

    @Test("doctor reports a 64-bit partition size as an error instead of trapping")
    func doctorHugePartition() async throws {
        let build = try Self.copyOfBuild("max-img-sectors-too-small")
        let file = build.appendingPathComponent("partitions.yml")
        var lines = try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "mcuboot_primary:"))
        let size = try #require(lines.indices.first { $0 > start && lines[$0].hasPrefix("  size:") })
        lines[size] = "  size: 0xffffffffffffffff"
        try Data(lines.joined(separator: "\n").utf8).write(to: file)
        let result = try await CLI.run(["doctor", build.path])
        #expect(result.status == 5, "\(result.status) \(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("ERROR [value-out-of-range] partitions.yml:"), "\(result.stdout)")
    }

    // MARK: DFU packages

    /// 106 KB on disk: one 64 MiB member listed 60,000 times by manifest.json. Each listing used to
    /// inflate the member again (hours of CPU).
    @Test("a ZIP whose manifest lists one 64 MiB member 60,000 times is refused quickly")
    func zipManifestBomb() async throws {
        let folder = try Self.temporaryFolder()
        let zip = folder.appendingPathComponent("dfu_application.zip")
        try ZipFixture.archive([
            ("manifest.json", ZipFixture.manifest(listing: "a", times: 60_000, compact: true)),
            ("a", Data(count: 64 << 20)),
        ]).write(to: zip)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: zip.path)[.size] as? Int)
        #expect(size < 200_000)
        let inspect = try await CLI.run(["image", "inspect", zip.path, "--json"], timeout: 60)
        #expect(inspect.status == 2, "\(inspect.status) \(inspect.stderr)")
        #expect(inspect.stdout.contains("lists 60000 files"), "\(inspect.stdout)")
        let upload = try await CLI.run(["image", "upload", zip.path, "-c", "sim"], timeout: 60)
        #expect(upload.status == 2, "\(upload.status) \(upload.stderr)")
        #expect(inspect.seconds + upload.seconds < 60)
    }

    // MARK: Device answers

    @Test("a timeout after undecodable answers says how many came, not that nothing speaks SMP")
    func undecodableAnswers() async throws {
        let result = try await CLI.run(["echo", "hi", "-c", "sim?truncate-rate=1", "--timeout", "1", "--retries", "1"])
        #expect(result.status == 3, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("2 undecodable or malformed answers"), "\(result.stderr)")
        #expect(!result.stderr.contains("Nothing that speaks SMP"), "\(result.stderr)")
        let json = try await CLI.run(["echo", "hi", "-c", "sim?truncate-rate=1", "--timeout", "1", "--retries", "1", "--json"])
        #expect(try json.json()["malformed_answers"] as? Int == 2)
    }

    @Test("a device buffer of 0 or 9 bytes is a device limit (exit 4) naming the figure", arguments: [0, 9])
    func tinyDeviceBuffer(_ size: Int) async throws {
        let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")
        for command in [["image", "upload"], ["dfu"]] {
            let result = try await CLI.run(command + [image, "-c", "sim?report-buf-size=\(size)", "--timeout", "2"])
            #expect(result.status == 4, "\(command) \(size): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains("buf_size \(size) bytes"), "\(result.stderr)")
        }
    }
}
