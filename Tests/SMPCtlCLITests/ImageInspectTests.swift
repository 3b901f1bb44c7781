import Foundation
import Testing

/// `smpctl image inspect` and the checks before uploads, run through the real binary.
@Suite("image inspect and upload checks")
struct ImageInspectTests {
    static func fixture(_ name: String) -> String { CLI.path("Tests/Fixtures/images/\(name)") }

    @Test("a good image with its key: exit 0 and the report")
    func goodImage() async throws {
        let result = try await CLI.run([
            "image", "inspect", Self.fixture("ecdsa-p256.signed.bin"), "--key", Self.fixture("ecdsa-p256.pub.pem"),
            "--slot-size", "0x40000",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        for text in ["0x96f3b83d", "header size           0x200", "version               1.2.3", "ECDSA_SIG", "KEYHASH",
            "matches the hash TLV", "valid ECDSA P-256 signature", "fits", "result:   OK"]
        {
            #expect(result.stdout.contains(text), "missing \(text) in \(result.stdout)")
        }
    }

    @Test("--json carries the header, TLVs, hash, signature and slot check")
    func json() async throws {
        let result = try await CLI.run([
            "image", "inspect", "--json", Self.fixture("ed25519.signed.bin"), "--key", Self.fixture("ed25519.pub.pem"),
            "--slot-size", "256K",
        ])
        #expect(result.status == 0)
        let json = try result.json()
        #expect(json["ok"] as? Bool == true)
        #expect(json["kind"] as? String == "mcuboot-image")
        let header = try #require(json["header"] as? [String: Any])
        #expect(header["header_size"] as? Int == 512)
        #expect(header["protected_tlv_size"] as? Int == 12)
        let tlvs = try #require(json["tlvs"] as? [[String: Any]])
        #expect(tlvs.map { $0["name"] as? String } == ["SEC_CNT", "SHA256", "KEYHASH", "ED25519"])
        #expect(tlvs.first?["area"] as? String == "protected")
        let hash = try #require(json["hash"] as? [String: Any])
        #expect(hash["matches"] as? Bool == true)
        #expect(json["image_hash"] as? String == "3698efc67df128f5c9701180ad6b088c4620531f00c0f75dfeee20209ddbb9a6")
        let signature = try #require(json["signature"] as? [String: Any])
        #expect(signature["valid"] as? Bool == true)
        let slot = try #require(json["slot"] as? [String: Any])
        #expect(slot["fits"] as? Bool == true)
        #expect(slot["trailer_bytes"] as? Int == 3120)
    }

    @Test("failed checks exit 5: tampered, wrong key, too large for the slot")
    func failedChecks() async throws {
        let tampered = try await CLI.run(["image", "inspect", Self.fixture("tampered.signed.bin")])
        #expect(tampered.status == 5)
        #expect(tampered.stdout.contains("tampered"))
        let wrongKey = try await CLI.run([
            "image", "inspect", "--json", Self.fixture("other-key.signed.bin"), "--key", Self.fixture("ecdsa-p256.pub.pem"),
        ])
        #expect(wrongKey.status == 5)
        let codes = try (wrongKey.json()["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
        #expect(codes.contains("bad-signature") && codes.contains("keyhash-mismatch"))
        let small = try await CLI.run(["image", "inspect", Self.fixture("ecdsa-p256.signed.bin"), "--slot-size", "8192"])
        #expect(small.status == 5)
        #expect(small.stdout.contains("DOES NOT fit"))
        // A larger BOOT_MAX_IMG_SECTORS makes the trailer larger.
        let sectors = try await CLI.run([
            "image", "inspect", Self.fixture("ecdsa-p256.signed.bin"), "--slot-size", "12288", "--max-sectors", "256",
        ])
        #expect(sectors.status == 5)
    }

    @Test("files that are not images exit 2 with what to upload instead", arguments: [
        ("zephyr.bin", "zephyr.signed.bin"), ("zephyr.signed.hex", "Intel HEX"), ("zephyr.elf", "ELF"),
        ("dfu_application.zip", "smpctl dfu --image 0 app_update.bin"), ("truncated.signed.bin", "cut short"),
        ("wrong-header-size.signed.bin", "--header-size 0x200"),
    ])
    func notImages(file: String, text: String) async throws {
        let result = try await CLI.run(["image", "inspect", Self.fixture(file)])
        #expect(result.status == 2)
        #expect(result.stdout.contains(text), "\(result.stdout)")
    }

    @Test("bad usage: missing file, bad key, bad slot size")
    func usage() async throws {
        #expect(try await CLI.run(["image", "inspect", "/nonexistent/zephyr.signed.bin"]).status == 2)
        #expect(try await CLI.run(["image", "inspect", Self.fixture("ecdsa-p256.signed.bin"), "--key", Self.fixture("zephyr.bin")]).status == 2)
        #expect(try await CLI.run(["image", "inspect", Self.fixture("ecdsa-p256.signed.bin"), "--slot-size", "lots"]).status == 2)
    }

    @Test("image upload refuses a raw zephyr.bin with the advice")
    func uploadRefusesRawBinary() async throws {
        let result = try await CLI.run(["-c", "sim", "image", "upload", Self.fixture("zephyr.bin")])
        #expect(result.status == 2)
        #expect(result.stderr.contains("not a signed MCUboot image"))
        #expect(result.stderr.contains("zephyr.signed.bin"))
        #expect(result.stderr.contains("--force"))
        #expect(!result.stdout.contains("uploaded"))
    }

    @Test("dfu refuses an image larger than the slot before uploading")
    func dfuSlotTooSmall() async throws {
        let result = try await CLI.run([
            "-c", "sim?secondary-slot-size=16384", "--json", "dfu", CLI.path("Examples/images/blinky-1.1.0.signed.bin"),
        ])
        #expect(result.status == 5)
        #expect(result.seconds < 20)
        let json = try result.json()
        #expect(json["error"] as? String == "image-too-large")
        #expect((json["message"] as? String)?.contains("nothing was uploaded") == true)
        #expect(!result.stderr.contains("upload_started"))
        #expect(!result.stderr.contains("\"event\":\"upload\""))
    }

    @Test("with --force the warning says the upload goes ahead, not that nothing was uploaded")
    func forcedWarningWording() async throws {
        let result = try await CLI.run([
            "-c", "sim?secondary-slot-size=16384", "image", "upload", "--force", CLI.path("Examples/images/blinky-1.1.0.signed.bin"),
        ])
        #expect(result.stderr.contains("--force given, so uploading it all the same"), "\(result.stderr)")
        #expect(!result.stderr.contains("nothing was uploaded"))
    }

    @Test("image upload says when the device already holds the image")
    func uploadAlreadyPresent() async throws {
        let (simulator, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { simulator.terminate() }
        let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")
        #expect(try await CLI.run(["-c", connection, "image", "upload", image]).status == 0)
        let again = try await CLI.run(["-c", connection, "image", "upload", image])
        #expect(again.status == 0)
        #expect(again.stdout.contains("already holds this image"))
    }
}
