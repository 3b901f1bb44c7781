import Foundation
import Testing

/// `smpctl explain`, offline and for logs, and the explanations printed by failing commands.
@Suite("explain")
struct ExplainTests {
    static let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")

    @Test("rc 5 on a v1 upload names ENOENT and the unsigned image")
    func enoentUpload() async throws {
        let result = try await CLI.run(["explain", "5", "--op", "upload", "--smp-version", "1"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("MGMT_ERR_ENOENT"))
        let firstCause = try #require(result.stdout.components(separatedBy: "1. ").dropFirst().first)
        #expect(firstCause.contains("not a signed MCUboot image"))
        #expect(firstCause.contains("zephyr.bin"))
        #expect(result.stdout.contains("NO_TLVS"))
    }

    @Test("image group rc 8 on test names HASH_NOT_FOUND; plain rc 8 names ENOTSUP")
    func rcEight() async throws {
        let group = try await CLI.run(["explain", "8", "--group", "image", "--op", "test"])
        #expect(group.status == 0)
        #expect(group.stdout.contains("HASH_NOT_FOUND"))
        #expect(!group.stdout.contains("ENOTSUP:"))
        let byNumber = try await CLI.run(["explain", "8", "--group", "1", "--op", "confirm"])
        #expect(byNumber.stdout.contains("HASH_NOT_FOUND"))
        let plain = try await CLI.run(["explain", "8"])
        #expect(plain.status == 0)
        #expect(plain.stdout.contains("MGMT_ERR_ENOTSUP"))
        #expect(plain.stdout.contains("not compiled into the firmware"))
    }

    @Test("--json carries the explanation fields")
    func json() async throws {
        let result = try await CLI.run(["explain", "10", "--group", "image", "--op", "upload", "--json"])
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
    func failuresAndUsage() async throws {
        let timeout = try await CLI.run(["explain", "timeout-first-chunk"])
        #expect(timeout.status == 0)
        #expect(timeout.stdout.contains("erases the whole secondary slot"))
        // A word that is no code, name or failure is text; recognizing nothing in it exits 1.
        let bogus = try await CLI.run(["explain", "bogus"])
        #expect(bogus.status == 1)
        #expect(bogus.stderr.contains("that smpctl recognizes"))
        #expect(try await CLI.run(["explain", "5", "--op", "dance"]).status == 2)
        #expect(try await CLI.run(["explain"]).status == 2)
    }

    @Test("explain --log explains the MCUboot and mcumgr lines of a boot log")
    func bootLog() async throws {
        let result = try await CLI.run(["explain", "--log", CLI.path("Tests/Fixtures/logs/mcuboot-external-flash.log")])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("line 3: Failed reading sectors; BOOT_MAX_IMG_SECTORS=512 - too small?"))
        #expect(result.stdout.contains("line 4: Cannot upgrade: not a compatible amount of sectors"))
        #expect(result.stdout.contains("line 8: Failed to open flash area (-19)"))
        #expect(result.stdout.contains("line 9: Image upload inspect failed: 5"))
        #expect(result.stdout.contains("line 10: Hash not Found (8)"))
        #expect(result.stdout.contains("no driver for it"))
        #expect(result.stdout.contains("CONFIG_BOOT_MAX_IMG_SECTORS"))

        let link = try await CLI.run(["--json", "explain", "--log", CLI.path("Tests/Fixtures/logs/build-link-error.log")])
        let findings = try #require(try link.json()["findings"] as? [[String: Any]])
        #expect(findings.count == 1)
        #expect(findings.first?["pattern"] as? String == "device-dts-ord")
        #expect(findings.first?["line"] as? Int == 3)

        let rejected = try await CLI.run(["explain", "--log", CLI.path("Tests/Fixtures/logs/mcuboot-rejects-image.log")])
        #expect(rejected.stdout.contains("Image in the secondary slot is not valid!"))
        #expect(rejected.stdout.contains("signed with another key"))
        #expect(rejected.stdout.contains("Unable to find bootable image"))

        #expect(try await CLI.run(["explain", "--log", "/nonexistent/boot.log"]).status == 2)
    }

    @Test("a failing dfu explains FLASH_OPEN_FAILED with the external-flash driver cause")
    func flashOpenFailedOnline() async throws {
        let result = try await CLI.run(["-c", "sim?fail=image:upload:err=10", "dfu", Self.image])
        #expect(result.status == 4)
        #expect(result.stderr.contains("IMG_MGMT_ERR_FLASH_OPEN_FAILED"))
        #expect(result.stderr.contains("during upload"))
        let firstCause = try #require(result.stderr.components(separatedBy: "1. ").dropFirst().first)
        #expect(firstCause.contains("external (QSPI/SPI NOR) flash"))
        #expect(firstCause.contains("driver"))
        #expect(result.stderr.contains("next step:"))
    }

    @Test("a slot too small explains image too large, also in --json")
    func tooLargeOnline() async throws {
        let human = try await CLI.run(["-c", "sim?secondary-slot-size=16384&no-slot-info", "dfu", Self.image])
        #expect(human.status == 4)
        #expect(human.stderr.contains("INVALID_IMAGE_TOO_LARGE"))
        #expect(human.stderr.contains("larger than the secondary slot"))

        let json = try await CLI.run(["-c", "sim?secondary-slot-size=16384&no-slot-info", "--json", "dfu", Self.image])
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
    func enoentOnline() async throws {
        let result = try await CLI.run(["-c", "sim?fail=image:upload:rc=5", "--smp-version", "1", "image", "upload", Self.image])
        #expect(result.status == 4)
        #expect(result.stderr.contains("MGMT_ERR_ENOENT"))
        #expect(result.stderr.contains("not a signed MCUboot image"))
    }

    @Test("a timeout during the upload explains the slot erase (the first chunk waits longer, so a later chunk is dropped)")
    func timeoutOnline() async throws {
        let result = try await CLI.run(["-c", "sim?drop=7", "--timeout", "0.5", "--retries", "0", "image", "upload", Self.image])
        #expect(result.status == 3)
        #expect(result.stderr.contains("erases the whole secondary slot"))
    }

    @Test("codes by the names smpctl prints, and unknown codes exit non-zero")
    func namesAndUnknown() async throws {
        let tooLarge = try await CLI.run(["explain", "IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE", "--op", "upload"])
        #expect(tooLarge.status == 0, "stderr: \(tooLarge.stderr)")
        #expect(tooLarge.stdout.contains("rc 30 IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE"))
        #expect(tooLarge.stdout.contains("larger than the secondary slot"))
        let enoent = try await CLI.run(["explain", "mgmt_err_enoent"])
        #expect(enoent.status == 0)
        #expect(enoent.stdout.contains("rc 5 MGMT_ERR_ENOENT"))
        let unknown = try await CLI.run(["explain", "99"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("unknown code 99"))
        #expect(try await CLI.run(["explain", "99", "--group", "image"]).status == 1)
    }

    @Test("explain TEXT: a pasted multi-line log from other tools, each thing once, in order")
    func pastedText() async throws {
        let log = """
            Error: NMP timeout
            ERROR    Timeout waiting for response
            no.nordicsemi.android.mcumgr.exception.McuMgrErrorException: Mcu Mgr Error: 9 (group: 1)
            org.bluez.Error.Failed: Failed to initiate write
            Error: NMP timeout
            """
        let result = try await CLI.run(["explain", log])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("line 1: NMP timeout [mcumgr] (again on lines 2, 5)"))
        #expect(result.stdout.contains("line 3: Mcu Mgr Error: 9 (group: 1) [nrf-connect-device-manager]"))
        #expect(result.stdout.contains("image rc 9 IMG_MGMT_ERR_NO_FREE_SLOT"))
        #expect(result.stdout.contains("line 4: Failed to initiate write [bluez]"))
        #expect(result.stdout.contains("ATT MTU minus 3"))
        #expect(result.stdout.components(separatedBy: "no answer from the device").count == 2)
        let order = ["line 1:", "line 3:", "line 4:"].compactMap { result.stdout.range(of: $0)?.lowerBound }
        #expect(order.count == 3 && order == order.sorted())

        let json = try await CLI.run(["--json", "explain", log])
        let document = try json.json()
        #expect(document["ok"] as? Bool == true)
        let findings = try #require(document["findings"] as? [[String: Any]])
        #expect(findings.count == 3)
        #expect(findings.first?["tool"] as? String == "mcumgr")
        #expect(findings.first?["kind"] as? String == "tool-message")
        #expect(findings.first?["repeat_lines"] as? [Int] == [2, 5])
        #expect((findings[1]["explanation"] as? [String: Any])?["name"] as? String == "IMG_MGMT_ERR_NO_FREE_SLOT")
    }

    @Test("explain - reads pasted text from standard input; unknown codes and unrecognized text exit 1")
    func standardInput() async throws {
        let pasted = "[00:00:01.204,040] <err> mcumgr_img_grp: Failed to open flash area (-19)\nsmpctl: error: IMG_MGMT_ERR_FLASH_OPEN_FAILED\n"
        let result = try await CLI.run(["explain", "-"], input: pasted)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("line 1: Failed to open flash area (-19)"))
        #expect(result.stdout.contains("line 2: IMG_MGMT_ERR_FLASH_OPEN_FAILED"))

        let nothing = try await CLI.run(["explain", "-"], input: "all is well\n")
        #expect(nothing.status == 1)
        #expect(nothing.stderr.contains("standard input that smpctl recognizes"))
        let unknownInText = try await CLI.run(["explain", "-"], input: "Error: NMP timeout\nIMG_MGMT_ERR_NOT_A_CODE\n")
        #expect(unknownInText.status == 1)
        #expect(unknownInText.stdout.contains("unknown code IMG_MGMT_ERR_NOT_A_CODE"))
        #expect(unknownInText.stdout.contains("NMP timeout"))
        // --json: one document, ok false, the unknown code among the findings.
        let unknownJSON = try await CLI.run(["--json", "explain", "-"], input: "Error: 77\n")
        #expect(unknownJSON.status == 1)
        let document = try unknownJSON.json()
        #expect(document["ok"] as? Bool == false)
        #expect(((document["findings"] as? [[String: Any]])?.first?["explanation"] as? [String: Any])?["known"] as? Bool == false)
        let nothingJSON = try await CLI.run(["--json", "explain", "nothing to see"])
        #expect(nothingJSON.status == 1)
        #expect(try nothingJSON.json()["findings"] as? [Any] != nil)
        let unknownName = try await CLI.run(["explain", "IMG_MGMT_ERR_NOT_A_CODE"])
        #expect(unknownName.status == 1)
        #expect(unknownName.stderr.contains("unknown code IMG_MGMT_ERR_NOT_A_CODE"))
        // Every name smpctl prints is explained by name.
        for name in ["MGMT_ERR_EBADSTATE", "OS_MGMT_ERR_RTC_NOT_SET", "FS_MGMT_ERR_FILE_NOT_FOUND", "ZEPHYRBASIC_MGMT_ERR_FLASH_OPEN_FAILED"] {
            let named = try await CLI.run(["explain", name])
            #expect(named.status == 0, "\(name): \(named.stderr)")
            #expect(named.stdout.contains(name))
        }
    }

    @Test("a failing upload after a test boot advises confirming first; a pending slot, a reset; -c sim's empty start explains hash not found")
    func deviceStateAdvice() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { server.terminate() }
        let dfu = try await CLI.run(["-c", connection, "dfu", "--mode", "test-only", Self.image])
        #expect(dfu.status == 0, "stderr: \(dfu.stderr)")
        let upload = try await CLI.run(["-c", connection, "image", "upload", Self.image])
        #expect(upload.status == 4)
        #expect(upload.stderr.contains("IMG_MGMT_ERR_NO_FREE_SLOT"))
        let causes = try #require(upload.stderr.components(separatedBy: "likely causes").dropFirst().first)
        #expect(causes.contains("1. The running image 1.1.0 was booted for test and is not confirmed"))
        #expect(upload.stderr.contains("next step: Confirm the running image first"))
        #expect(!upload.stderr.contains("or erase the slot"))
        let json = try await CLI.run(["-c", connection, "--json", "image", "upload", Self.image])
        let explanation = try #require(try json.json()["explanation"] as? [String: Any])
        let ids = try #require((explanation["causes"] as? [[String: Any]])?.compactMap { $0["id"] as? String })
        #expect(ids.first == "state-unconfirmed-test-boot")
        #expect(!ids.contains("slot-pending"))

        // Uploaded and marked for test, not reset yet: the slot is pending, and the advice is to reset.
        let (pendingServer, pendingConnection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { pendingServer.terminate() }
        let hash = "bbbb0742c8f06e0d32ad81f346c9aaf5ac370c48da21ecbdf7b29b38f276a620"
        #expect(try await CLI.run(["-c", pendingConnection, "image", "upload", Self.image]).status == 0)
        #expect(try await CLI.run(["-c", pendingConnection, "image", "test", hash]).status == 0)
        let again = try await CLI.run(["-c", pendingConnection, "image", "upload", Self.image])
        #expect(again.status == 4)
        #expect(again.stderr.contains("marked for test at the next reset"))
        #expect(again.stderr.contains("smpctl reset"))

        // The in-process simulator starts empty for each command: the uploaded image is gone.
        let test = try await CLI.run(["-c", "sim", "image", "test", hash])
        #expect(test.status == 4)
        #expect(test.stderr.contains("IMG_MGMT_ERR_HASH_NOT_FOUND"))
        #expect(test.stderr.contains("1. `-c sim` runs a simulator inside this smpctl process, and it starts empty for each command"))
        #expect(!test.stderr.contains("QSPI"))
    }
}
