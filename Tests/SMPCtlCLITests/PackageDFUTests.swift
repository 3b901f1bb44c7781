import Foundation
import SMPCtlZipFixtures
import Testing

/// `smpctl dfu dfu_application.zip`: each image to its image number, the network core marked first.
@Suite("dfu of a DFU package", .serialized)
struct PackageDFUTests {
    static let application = CLI.path("Examples/images/blinky-1.1.0.signed.bin")
    static let network = CLI.path("Tests/Fixtures/images/ecdsa-p256.signed.bin")

    static func package(_ files: [(name: String, index: Int, board: String)], members: [(String, String)]) throws -> URL {
        let entries = files.map { #"{"file":"\#($0.name)","image_index":"\#($0.index)","board":"\#($0.board)","type":"application"}"# }
        let manifest = Data(("{\"format-version\":0,\"files\":[" + entries.joined(separator: ",") + "]}").utf8)
        var contents: [(name: String, bytes: Data)] = [("manifest.json", manifest)]
        for (name, path) in members { contents.append((name, try Data(contentsOf: URL(fileURLWithPath: path)))) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-package-\(UUID().uuidString).zip")
        try ZipFixture.archive(contents).write(to: url)
        return url
    }

    @Test("both cores are updated and confirmed against a simulator that models NCSDK-34106")
    func twoCores() async throws {
        let url = try Self.package(
            [("app.bin", 0, "nrf5340dk/nrf5340/cpuapp"), ("net.bin", 1, "nrf5340dk/nrf5340/cpunet")],
            members: [("app.bin", Self.application), ("net.bin", Self.network)])
        defer { try? FileManager.default.removeItem(at: url) }
        let result = try await CLI.run(["-c", "sim?images=2&ncs-34106", "--json", "dfu", url.path])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let json = try result.json()
        #expect(json["package"] as? Bool == true)
        #expect(json["uploaded"] as? [Int] == [0, 1])
        #expect(json["marked"] as? [Int] == [1, 0])
        #expect(json["running"] as? Bool == true)
        #expect(json["confirmed"] as? Bool == true)
        let images = try #require(json["images"] as? [[String: Any]])
        for index in [0, 1] {
            let primary = try #require(images.first { ($0["image"] as? Int ?? 0) == index && $0["slot"] as? Int == 0 })
            #expect(primary["active"] as? Bool == true && primary["confirmed"] as? Bool == true)
        }
        let app = try #require(images.first { ($0["image"] as? Int ?? 0) == 0 && $0["slot"] as? Int == 0 })
        #expect(app["hash"] as? String == "bbbb0742c8f06e0d32ad81f346c9aaf5ac370c48da21ecbdf7b29b38f276a620")
    }

    @Test("a network core image larger than its slot is refused before any upload, naming the core and the sizes")
    func networkCoreTooLarge() async throws {
        // The application image (6.6 KB) fits both cores' slots; the network core's (49.8 KB) does
        // not fit image 1's 32 KiB slot, whose max_image_size is 28 KiB (one sector for swap).
        let url = try Self.package(
            [("app.bin", 0, "nrf5340dk/nrf5340/cpuapp"), ("net.bin", 1, "nrf5340dk/nrf5340/cpunet")],
            members: [("app.bin", Self.network), ("net.bin", Self.application)])
        defer { try? FileManager.default.removeItem(at: url) }
        let result = try await CLI.run(["-c", "sim?images=2&image-slot-size=1:32768", "--json", "dfu", url.path])
        #expect(result.status == 5, "stdout: \(result.stdout) stderr: \(result.stderr)")
        let json = try result.json()
        #expect(json["ok"] as? Bool == false)
        let message = try #require(json["message"] as? String)
        #expect(message.contains("network core"), "\(message)")
        #expect(message.contains("49815 bytes"), "\(message)")
        #expect(message.contains("28672 bytes for image 1"), "\(message)")
        #expect(message.contains("nothing was uploaded"))
        #expect(!result.stderr.contains("upload_started"), "an upload started: \(result.stderr)")
        // The same package with room for it goes through.
        let fits = try await CLI.run(["-c", "sim?images=2&image-slot-size=1:131072", "dfu", url.path])
        #expect(fits.status == 0, "stderr: \(fits.stderr)")
    }

    @Test("a manifest that lists one image number twice is refused with exit 2")
    func duplicateIndex() async throws {
        let url = try Self.package(
            [("app.bin", 0, "nrf5340dk/nrf5340/cpuapp"), ("net.bin", 0, "nrf5340dk/nrf5340/cpunet")],
            members: [("app.bin", Self.application), ("net.bin", Self.network)])
        defer { try? FileManager.default.removeItem(at: url) }
        let result = try await CLI.run(["-c", "sim?images=2", "dfu", url.path])
        #expect(result.status == 2, "stdout: \(result.stdout) stderr: \(result.stderr)")
        #expect(result.stderr.contains("image_index 0 twice"))
    }

    @Test("a package through MCUboot serial recovery over a PTY: each image to its primary slot, one reset, both cores run")
    func throughRecovery() async throws {
        let url = try Self.package(
            [("app.bin", 0, "nrf5340dk/nrf5340/cpuapp"), ("net.bin", 1, "nrf5340dk/nrf5340/cpunet")],
            members: [("app.bin", Self.application), ("net.bin", Self.network)])
        defer { try? FileManager.default.removeItem(at: url) }
        let (server, connection) = try CLI.startSimulator(["--pty", "--recovery", "--images", "2"])
        defer { server.terminate() }
        let result = try await CLI.run(["-c", connection, "--json", "dfu", url.path])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let json = try result.json()
        #expect(json["uploaded"] as? [Int] == [1, 0])
        #expect(json["marked"] as? [Int] == [])
        #expect(json["running"] as? Bool == true)
        let images = try #require(json["images"] as? [[String: Any]])
        for index in [0, 1] {
            #expect(images.contains { ($0["image"] as? Int ?? 0) == index && $0["slot"] as? Int == 0 && $0["active"] as? Bool == true })
        }
        let events = result.stderr.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(events.contains { $0["event"] as? String == "recovery" })
        #expect(events.filter { $0["event"] as? String == "reset" }.count == 1)
        #expect(!events.contains { $0["event"] as? String == "marked" })
    }
}
