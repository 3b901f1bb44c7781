import Foundation
import Testing

/// `smpctl doctor` end to end: printed cause, exit status and `--json`.
@Suite("smpctl doctor")
struct DoctorCLITests {
    static func build(_ name: String) -> String { CLI.path("Tests/Fixtures/builds/\(name)/build") }

    @Test("an nRF5340 build that updates both cores exits 0 and names its network core image")
    func networkCore() async throws {
        let result = try await CLI.run(["doctor", Self.build("netcore-healthy")])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("(sysbuild, application smp_svr/, MCUboot, network core ipc_radio/, partitions.yml)"))
        // Network core updates off: information, not an error.
        let off = try await CLI.run(["doctor", Self.build("netcore-not-updatable")])
        #expect(off.status == 0 && off.stdout.contains("[netcore-not-updatable]"), "\(off.stdout)")
    }

    @Test("a healthy build exits 0")
    func healthy() async throws {
        let result = try await CLI.run(["doctor", Self.build("healthy")])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("No problems found."))
        #expect(result.stdout.contains("File to upload: smp_svr/zephyr/zephyr.signed.bin"))
    }

    @Test("each field failure prints its cause and exits 5", arguments: [
        ("ext-flash-no-driver-mcuboot", "BOOT_MAX_IMG_SECTORS", "ext-flash-no-driver-mcuboot"),
        ("ext-flash-no-driver-app", "Failed to open flash area", "ext-flash-no-driver-app"),
        ("pm-override-without-driver", "__device_dts_ord_N", "pm-override-without-driver"),
        ("oot-driver-no-has-driver", "PM_EXTERNAL_FLASH_HAS_DRIVER", "oot-driver-no-has-driver"),
        ("qspi-implied-node-disabled", "CONFIG_NCS_SAMPLE_MCUMGR_BT_OTA_DFU", "qspi-driver-without-node"),
        ("slot-size-mismatch", "Hash not found", "slot-size-mismatch"),
        ("partition-misaligned", "erase page", "partition-misaligned"),
        ("pm-static-foreign-soc", "mcuboot_primary_1", "pm-static-foreign-soc"),
        ("ext-flash-chosen-conflict", "zephyr,external-flash", "ext-flash-chosen-conflict"),
        ("pm-ext-flash-missing", "nordic,pm-ext-flash", "pm-ext-flash-missing"),
        ("max-img-sectors-too-small", "Failed reading sectors; BOOT_MAX_IMG_SECTORS=128 - too small?", "max-img-sectors-too-small"),
        ("spi-nor-bus-disabled", "undefined reference to '__device_dts_ord_N'", "spi-nor-bus-unavailable"),
        ("sector-size-mismatch", "slots have non-compatible sectors", "sector-size-mismatch"),
        ("netcore-image-count", "CONFIG_UPDATEABLE_IMAGE_NUMBER=1", "netcore-image-count"),
        ("netcore-secondary-missing", "Failed to open flash area", "netcore-secondary-missing"),
        ("netcore-image-too-large", "40000 bytes", "netcore-image-too-large"),
    ])
    func failure(_ name: String, _ cause: String, _ id: String) async throws {
        let result = try await CLI.run(["doctor", Self.build(name)])
        #expect(result.status == 5, "\(name): \(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("ERROR [\(id)]"), "\(name): \(result.stdout)")
        #expect(result.stdout.contains(cause), "\(name) does not mention \(cause)")
        #expect(result.stdout.contains("Fix: "))
        #expect(result.stdout.contains("See: "))
    }

    @Test("a devicetree-only build says where its partitions come from and is checked like the others")
    func devicetreeOnly() async throws {
        let healthy = try await CLI.run(["doctor", Self.build("devicetree-only")])
        #expect(healthy.status == 0, "stdout: \(healthy.stdout)")
        #expect(healthy.stdout.contains("(sysbuild, application smp_svr/, MCUboot, partitions from smp_svr/zephyr/zephyr.dts)"))
        let tooLarge = try await CLI.run(["doctor", Self.build("devicetree-swap-move-too-large")])
        #expect(tooLarge.status == 5)
        #expect(tooLarge.stdout.contains("[swap-move-image-too-large]"))
    }

    @Test("warnings alone exit 0")
    func warnings() async throws {
        let result = try await CLI.run(["doctor", Self.build("unsigned-image")])
        #expect(result.status == 0)
        #expect(result.stdout.contains("WARNING [unsigned-image]"))
        #expect(result.stdout.contains("zephyr.signed.bin"))
    }

    @Test("--json gives the same findings")
    func json() async throws {
        let result = try await CLI.run(["doctor", Self.build("max-img-sectors-too-small"), "--json"])
        #expect(result.status == 5)
        let object = try result.json()
        #expect(object["ok"] as? Bool == false)
        #expect(object["layout"] as? String == "child-image")
        #expect(object["errors"] as? Int == 1)
        let findings = try #require(object["findings"] as? [[String: Any]])
        let finding = try #require(findings.first)
        #expect(finding["id"] as? String == "max-img-sectors-too-small")
        #expect(finding["severity"] as? String == "error")
        #expect(finding["file"] as? String == "mcuboot/zephyr/.config")
        #expect(finding["key"] as? String == "CONFIG_BOOT_MAX_IMG_SECTORS")
        #expect(finding["line"] as? Int != nil)
        #expect((finding["why"] as? String)?.contains("too small?") == true)
        let references = try #require(finding["references"] as? [[String: Any]])
        #expect(references.contains { ($0["url"] as? String)?.hasPrefix("https://") == true })
    }

    @Test("a folder that is not a build folder exits 2")
    func notABuild() async throws {
        let result = try await CLI.run(["doctor", CLI.path("Tests/Fixtures/builds/healthy")])
        #expect(result.status == 2)
        #expect(result.stderr.contains("not a Zephyr build folder"))
        let json = try await CLI.run(["doctor", "/nonexistent/build", "--json"])
        #expect(json.status == 2)
        #expect(try json.json()["ok"] as? Bool == false)
    }
}
