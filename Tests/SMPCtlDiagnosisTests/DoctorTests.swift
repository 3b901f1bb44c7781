import Foundation
import Testing

@_spi(Fuzzing) @testable import SMPCtlDiagnosis

/// Each fixture build folder yields exactly the findings it was written to reproduce.
@Suite("doctor: build-folder checks")
struct DoctorTests {
    static let builds = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/builds")

    static let expected: [String: [String]] = [
        "healthy": [],
        "ext-flash-no-driver-app": ["ext-flash-no-driver-app"],
        "ext-flash-no-driver-mcuboot": ["ext-flash-no-driver-mcuboot"],
        "pm-override-without-driver": ["pm-override-without-driver"],
        "oot-driver-no-has-driver": ["oot-driver-no-has-driver", "oot-driver-no-has-driver"],
        "qspi-implied-node-disabled": ["qspi-driver-without-node"],
        "slot-size-mismatch": ["slot-size-mismatch"],
        "partition-misaligned": ["partition-misaligned"],
        "pm-static-foreign-soc": ["pm-static-foreign-soc"],
        "ext-flash-chosen-conflict": ["ext-flash-chosen-conflict"],
        "pm-ext-flash-missing": ["pm-ext-flash-missing"],
        "max-img-sectors-too-small": ["max-img-sectors-too-small"],
        "unsigned-image": ["unsigned-image"],
        "spi-nor-bus-disabled": ["ext-flash-node-disabled", "spi-nor-bus-unavailable"],
        "sector-size-mismatch": ["sector-size-mismatch"],
        "default-signing-key": ["default-signing-key"],
        "swap-move-image-fits": [],
        "swap-move-image-too-large": ["swap-move-image-too-large"],
        "devicetree-only": [],
        "zephyr-4.3-active-slot": ["zephyr-99762-active-slot"],
        "zephyr-4.2-active-slot-ok": [],
        "devicetree-ext-flash-no-driver-app": ["ext-flash-no-driver-app"],
        "devicetree-sector-size-mismatch": ["sector-size-mismatch"],
        "devicetree-slot-size-mismatch": ["slot-size-mismatch"],
        "devicetree-swap-move-too-large": ["swap-move-image-too-large"],
        "netcore-healthy": [],
        "netcore-image-count": ["netcore-image-count", "netcore-external-needs-multi-image"],
        "netcore-app-image-count": ["netcore-app-image-count"],
        "netcore-secondary-missing": ["netcore-secondary-missing"],
        "netcore-secondaries-overlap": ["netcore-secondaries-overlap"],
        "netcore-multi-image-revert": ["netcore-multi-image-revert"],
        "netcore-image-too-large": ["netcore-image-too-large"],
        "netcore-zip-missing-image": ["netcore-zip-missing-image"],
        "netcore-not-updatable": ["netcore-not-updatable"],
    ]

    static func report(_ name: String) throws -> DoctorReport {
        try #require(Doctor.examine(path: builds.appendingPathComponent(name).appendingPathComponent("build").path))
    }

    @Test("every fixture folder has an expectation and a README")
    func everyFixtureCovered() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.builds.path).filter { !$0.hasPrefix(".") }
        #expect(Set(names) == Set(Self.expected.keys))
        for name in names {
            #expect(FileManager.default.fileExists(atPath: Self.builds.appendingPathComponent(name + "/README.md").path))
        }
    }

    @Test("each fixture yields exactly its finding ids", arguments: Array(expected.keys).sorted())
    func fixture(_ name: String) throws {
        let report = try Self.report(name)
        #expect(report.findings.map(\.id).sorted() == (Self.expected[name] ?? []).sorted(), "\(name)")
        for finding in report.findings {
            #expect(finding.why?.isEmpty == false && finding.fix?.isEmpty == false && finding.location?.file.isEmpty == false)
            #expect(!finding.references.isEmpty)
            for key in finding.references { #expect(DoctorReferences.reference(key) != nil, "unknown reference \(key)") }
        }
    }

    @Test("the layout and where the partitions come from: sysbuild, child image, devicetree only")
    func layouts() throws {
        let sysbuild = try Self.report("healthy").build
        #expect(sysbuild.layout == .sysbuild)
        #expect(sysbuild.partitionSource == .partitionManager)
        let child = try Self.report("slot-size-mismatch").build
        #expect(child.layout == .childImage)
        #expect(child.partitionSource == .partitionManager)
        let devicetree = try Self.report("devicetree-only").build
        #expect(devicetree.layout == .sysbuild)
        #expect(devicetree.partitionSource == .devicetree)
        #expect(devicetree.partitionsFile == "smp_svr/zephyr/zephyr.dts")
        #expect(devicetree.partitions["mcuboot_primary"]?.address == 0xc000)
        #expect(devicetree.partitions["mcuboot_secondary"]?.size == 0x76000)
        #expect(devicetree.partitions["mcuboot_secondary"]?.region == "flash_primary")
        #expect(devicetree.partitions["mcuboot"]?.size == 0xc000)
        let mismatch = try Self.report("devicetree-slot-size-mismatch")
        let finding = try #require(mismatch.findings.first)
        #expect(finding.location?.file == "smp_svr/zephyr/zephyr.dts")
        #expect(finding.fix?.contains("slot1_partition") == true)
        let tooLarge = try #require(try Self.report("devicetree-swap-move-too-large").findings.first)
        #expect(tooLarge.summary.contains("at most 475136 bytes"))
        #expect(try Self.report("swap-move-image-too-large").findings.first?.summary.contains("at most 958464 bytes") == true)
        // The Zephyr version the build records.
        #expect(try Self.report("zephyr-4.3-active-slot").build.zephyrVersion?.description == "4.3.0")
        #expect(try Self.report("healthy").build.zephyrVersion == nil)
    }

    @Test("the healthy build has no error and names the signed image")
    func healthy() throws {
        let report = try Self.report("healthy")
        #expect(report.errorCount == 0)
        #expect(report.build.layout == .sysbuild)
        #expect(report.build.application.directory == "smp_svr")
        #expect(report.build.mcuboot != nil)
        #expect(report.uploadFile == "smp_svr/zephyr/zephyr.signed.bin")
    }

    @Test("multi-core builds: the network core's image, update file and package are read, in sysbuild and child-image layouts")
    func networkCore() throws {
        let healthy = try Self.report("netcore-healthy")
        #expect(healthy.build.layout == .sysbuild)
        let netcore = try #require(healthy.build.networkCore)
        #expect(netcore.imageDirectory == "ipc_radio")
        #expect(netcore.updateFile == "signed_by_mcuboot_and_b0_ipc_radio.bin")
        #expect(netcore.updateFileSize == 4096)
        #expect(netcore.packageFile == "dfu_application.zip")
        #expect(netcore.packageImageIndices == [0, 1])
        #expect(healthy.build.partitions["mcuboot_primary_1"]?.region == "ram_flash")

        let child = try Self.report("netcore-image-count")
        #expect(child.build.layout == .childImage)
        #expect(child.build.networkCore?.imageDirectory == "hci_rpmsg")
        #expect(child.build.networkCore?.updateFile == "zephyr/net_core_app_update.bin")
        let count = try #require(child.findings.first { $0.id == "netcore-image-count" })
        #expect(count.severity == .error)
        #expect(count.location?.file == "mcuboot/zephyr/.config" && count.location?.key == "CONFIG_UPDATEABLE_IMAGE_NUMBER")
        #expect(count.location?.line != nil)
        // The fix is said for the layout found: child_image/mcuboot.conf here, sysbuild.conf in sysbuild builds.
        #expect(count.fix?.contains("child_image/mcuboot.conf") == true && count.fix?.contains("sysbuild.conf") == false)
        let appCount = try #require(try Self.report("netcore-app-image-count").findings.first)
        #expect(appCount.location?.key == "CONFIG_MCUMGR_GRP_IMG_UPDATABLE_IMAGE_NUMBER")

        let tooLarge = try #require(try Self.report("netcore-image-too-large").findings.first)
        #expect(tooLarge.summary.contains("40000 bytes") && tooLarge.summary.contains("mcuboot_secondary_1"))
        let zip = try #require(try Self.report("netcore-zip-missing-image").findings.first)
        #expect(zip.severity == .warning && zip.fix?.contains("SB_CONFIG_DFU_ZIP_NET=y") == true)
        let info = try #require(try Self.report("netcore-not-updatable").findings.first)
        #expect(info.severity == .info)
        #expect(try Self.report("netcore-not-updatable").errorCount == 0)
        // A single-core build has no network core image, and none of these findings.
        #expect(try Self.report("healthy").build.networkCore?.imageDirectory == nil)
    }

    @Test("child-image layouts are detected")
    func childImage() throws {
        let report = try Self.report("slot-size-mismatch")
        #expect(report.build.layout == .childImage)
        #expect(report.build.pmStaticFile == "../pm_static.yml")
        #expect(report.uploadFile == "zephyr/app_update.bin")
        let finding = try #require(report.findings.first)
        #expect(finding.summary.contains("904 KiB") && finding.summary.contains("1024 KiB"))
    }

    @Test("locations point at the option's line")
    func locations() throws {
        let report = try Self.report("max-img-sectors-too-small")
        let finding = try #require(report.findings.first)
        #expect(finding.location?.file == "mcuboot/zephyr/.config")
        #expect(finding.location?.key == "CONFIG_BOOT_MAX_IMG_SECTORS")
        #expect(finding.location?.line != nil)
        #expect(finding.why?.contains("BOOT_MAX_IMG_SECTORS=128 - too small?") == true)
    }

    @Test("a folder without zephyr/.config is not a build folder")
    func notABuild() {
        #expect(Doctor.examine(path: Self.builds.appendingPathComponent("healthy").path) == nil)
        #expect(Doctor.examine(path: "/nonexistent/smpctl-doctor") == nil)
    }

    @Test("the YAML reader follows Partition Manager's anchors, flow lists and comments")
    func yaml() throws {
        let node = try DoctorYAML.parse("""
            #include <autoconf.h>
            mcuboot_primary:
              address: 0xc000  # slot 0
              orig_span: &id001
              - mcuboot_pad
              - app
              span: *id001
            b0_container:
              span: [b0, provision]
            "quoted": 'x: y'
            """)
        #expect(node["mcuboot_primary"]?["address"]?.scalar == "0xc000")
        #expect(node["mcuboot_primary"]?["span"]?.strings == ["mcuboot_pad", "app"])
        #expect(node["b0_container"]?["span"]?.strings == ["b0", "provision"])
        #expect(node["quoted"]?.scalar == "x: y")
        #expect(node.entries.first?.line == 2)
    }

    @Test("the readers survive odd and hostile input")
    func robustness() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab:-&*[]{}\"' \n\t#<>;/=@,0x1")
        for _ in 0..<200 {
            let text = String((0..<Int.random(in: 0..<400, using: &generator)).map { _ in alphabet.randomElement(using: &generator) ?? " " })
            _ = try? DoctorYAML.parse(text)
            _ = DoctorKconfig(file: "x", text: text)
            _ = DoctorDevicetree(file: "x", text: text)
        }
        _ = try? DoctorYAML.parse(String(repeating: "a:\n ", count: 5000))
        _ = DoctorDevicetree(file: "x", text: String(repeating: "n {", count: 5000))
        _ = DoctorDevicetree(file: "x", text: "/* unterminated")
    }

    @Test("the devicetree reader resolves chosen nodes, labels, status and cells")
    func devicetree() {
        let tree = DoctorDevicetree(file: "zephyr.dts", text: """
            /dts-v1/;
            / {
            \tchosen {
            \t\tnordic,pm-ext-flash = &mx25r64;
            \t};
            \tsoc {
            \t\tqspi: qspi@40029000 {
            \t\t\tstatus = "disabled";
            \t\t\tmx25r64: mx25r6435f@0 {
            \t\t\t\tcompatible = "nordic,qspi-nor";
            \t\t\t\treg = < 0x0 >;
            \t\t\t\tstatus = "okay";
            \t\t\t};
            \t\t};
            \t};
            };
            &qspi { status = "okay"; };
            """)
        let node = tree.chosenNode("nordic,pm-ext-flash")
        #expect(node?.path == "/soc/qspi@40029000/mx25r6435f@0")
        #expect(node?.compatibles == ["nordic,qspi-nor"])
        #expect(node.map { tree.isEnabled($0) } == true)
        #expect(tree.chosenLines["nordic,pm-ext-flash"] == 4)
    }
}
