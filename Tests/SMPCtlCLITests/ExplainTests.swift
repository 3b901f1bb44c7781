import Foundation
import Testing

/// `smpctl explain`, offline and for logs, and the explanations printed by failing commands.
@Suite("explain")
struct ExplainTests {
    static let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")

    @Test("rc 5 on a v1 upload names ENOENT and the unsigned image")
    func enoentUpload() throws {
        let result = try CLI.run(["explain", "5", "--op", "upload", "--smp-version", "1"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("MGMT_ERR_ENOENT"))
        let firstCause = try #require(result.stdout.components(separatedBy: "1. ").dropFirst().first)
        #expect(firstCause.contains("not a signed MCUboot image"))
        #expect(firstCause.contains("zephyr.bin"))
        #expect(result.stdout.contains("NO_TLVS"))
    }

    @Test("image group rc 8 on test names HASH_NOT_FOUND; plain rc 8 names ENOTSUP")
    func rcEight() throws {
        let group = try CLI.run(["explain", "8", "--group", "image", "--op", "test"])
        #expect(group.status == 0)
        #expect(group.stdout.contains("HASH_NOT_FOUND"))
        #expect(!group.stdout.contains("ENOTSUP:"))
        let byNumber = try CLI.run(["explain", "8", "--group", "1", "--op", "confirm"])
        #expect(byNumber.stdout.contains("HASH_NOT_FOUND"))
        let plain = try CLI.run(["explain", "8"])
        #expect(plain.status == 0)
        #expect(plain.stdout.contains("MGMT_ERR_ENOTSUP"))
        #expect(plain.stdout.contains("not compiled into the firmware"))
    }

    @Test("--json carries the explanation fields")
    func json() throws {
        let result = try CLI.run(["explain", "10", "--group", "image", "--op", "upload", "--json"])
        let explanation = try #require(try result.json()["explanation"] as? [String: Any])
        #expect(explanation["name"] as? String == "IMG_MGMT_ERR_FLASH_OPEN_FAILED")
        #expect((explanation["meaning"] as? String)?.isEmpty == false)
        let causes = try #require(explanation["causes"] as? [[String: Any]])
        #expect(causes.first?["id"] as? String == "external-flash-no-driver")
        #expect((explanation["next_steps"] as? [String])?.isEmpty == false)
        let settings = try #require(explanation["settings"] as? [[String: Any]])
        #expect(settings.contains { $0["name"] as? String == "CONFIG_PM_OVERRIDE_EXTERNAL_DRIVER_CHECK" })
        #expect((explanation["sources"] as? [[String: Any]])?.isEmpty == false)
    }

    @Test("failures by name, and bad arguments")
    func failuresAndUsage() throws {
        let timeout = try CLI.run(["explain", "timeout-first-chunk"])
        #expect(timeout.status == 0)
        #expect(timeout.stdout.contains("erases the whole secondary slot"))
        #expect(try CLI.run(["explain", "bogus"]).status == 2)
        #expect(try CLI.run(["explain", "5", "--op", "dance"]).status == 2)
        #expect(try CLI.run(["explain"]).status == 2)
    }

    @Test("explain --log explains the MCUboot and mcumgr lines of a boot log")
    func bootLog() throws {
        let result = try CLI.run(["explain", "--log", CLI.path("Tests/Fixtures/logs/mcuboot-external-flash.log")])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("line 3: Failed reading sectors; BOOT_MAX_IMG_SECTORS=512 - too small?"))
        #expect(result.stdout.contains("line 4: Cannot upgrade: not a compatible amount of sectors"))
        #expect(result.stdout.contains("line 8: Failed to open flash area (-19)"))
        #expect(result.stdout.contains("line 9: Image upload inspect failed: 5"))
        #expect(result.stdout.contains("line 10: Hash not Found (8)"))
        #expect(result.stdout.contains("no driver for it"))
        #expect(result.stdout.contains("CONFIG_BOOT_MAX_IMG_SECTORS"))

        let link = try CLI.run(["--json", "explain", "--log", CLI.path("Tests/Fixtures/logs/build-link-error.log")])
        let findings = try #require(try link.json()["findings"] as? [[String: Any]])
        #expect(findings.count == 1)
        #expect(findings.first?["pattern"] as? String == "device-dts-ord")
        #expect(findings.first?["line"] as? Int == 3)

        let rejected = try CLI.run(["explain", "--log", CLI.path("Tests/Fixtures/logs/mcuboot-rejects-image.log")])
        #expect(rejected.stdout.contains("Image in the secondary slot is not valid!"))
        #expect(rejected.stdout.contains("signed with another key"))
        #expect(rejected.stdout.contains("Unable to find bootable image"))

        #expect(try CLI.run(["explain", "--log", "/nonexistent/boot.log"]).status == 2)
    }

    @Test("a failing dfu explains FLASH_OPEN_FAILED with the external-flash driver cause")
    func flashOpenFailedOnline() throws {
        let result = try CLI.run(["-c", "sim?fail=image:upload:err=10", "dfu", Self.image])
        #expect(result.status == 4)
        #expect(result.stderr.contains("IMG_MGMT_ERR_FLASH_OPEN_FAILED"))
        #expect(result.stderr.contains("during upload"))
        let firstCause = try #require(result.stderr.components(separatedBy: "1. ").dropFirst().first)
        #expect(firstCause.contains("external (QSPI/SPI NOR) flash"))
        #expect(firstCause.contains("driver"))
        #expect(result.stderr.contains("next step:"))
    }

    @Test("a slot too small explains image too large, also in --json")
    func tooLargeOnline() throws {
        let human = try CLI.run(["-c", "sim?secondary-slot-size=16384&no-slot-info", "dfu", Self.image])
        #expect(human.status == 4)
        #expect(human.stderr.contains("INVALID_IMAGE_TOO_LARGE"))
        #expect(human.stderr.contains("larger than the secondary slot"))

        let json = try CLI.run(["-c", "sim?secondary-slot-size=16384&no-slot-info", "--json", "dfu", Self.image])
        let document = try json.json()
        #expect(document["ok"] as? Bool == false)
        #expect(document["error"] as? String == "device")
        #expect(document["exit_status"] as? Int == 4)
        #expect(document["message"] is String)
        #expect((document["device_error"] as? [String: Any])?["rc"] as? Int == 30)
        let explanation = try #require(document["explanation"] as? [String: Any])
        #expect(explanation["name"] as? String == "IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE")
        #expect(explanation["operation"] as? String == "upload")
        let causes = try #require(explanation["causes"] as? [[String: Any]])
        #expect(causes.first?["id"] as? String == "image-too-large")
        #expect(explanation["next_steps"] is [String])
        #expect(explanation["settings"] is [[String: Any]])
    }

    @Test("a v1 ENOENT from the simulator names the unsigned image")
    func enoentOnline() throws {
        let result = try CLI.run(["-c", "sim?fail=image:upload:rc=5", "--smp-version", "1", "image", "upload", Self.image])
        #expect(result.status == 4)
        #expect(result.stderr.contains("MGMT_ERR_ENOENT"))
        #expect(result.stderr.contains("not a signed MCUboot image"))
    }

    @Test("a timeout during the upload explains the slot erase (the first chunk waits longer, so a later chunk is dropped)")
    func timeoutOnline() throws {
        let result = try CLI.run(["-c", "sim?drop=7", "--timeout", "0.5", "--retries", "0", "image", "upload", Self.image])
        #expect(result.status == 3)
        #expect(result.stderr.contains("erases the whole secondary slot"))
    }

    @Test("codes by the names smpctl prints, and unknown codes exit non-zero")
    func namesAndUnknown() throws {
        let tooLarge = try CLI.run(["explain", "IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE", "--op", "upload"])
        #expect(tooLarge.status == 0, "stderr: \(tooLarge.stderr)")
        #expect(tooLarge.stdout.contains("rc 30 IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE"))
        #expect(tooLarge.stdout.contains("larger than the secondary slot"))
        let enoent = try CLI.run(["explain", "mgmt_err_enoent"])
        #expect(enoent.status == 0)
        #expect(enoent.stdout.contains("rc 5 MGMT_ERR_ENOENT"))
        let unknown = try CLI.run(["explain", "99"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("unknown code 99"))
        #expect(try CLI.run(["explain", "99", "--group", "image"]).status == 1)
    }
}
