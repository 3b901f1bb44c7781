import Foundation
import Testing

@testable import SMPCtlDiagnosis

/// Values in build files that no flash can have become findings; the doctor never traps on them
/// (issue #13: `(size + page - 1)` overflowed and trapped with SIGILL).
@Suite("doctor: hostile values in build files")
struct DoctorHardeningTests {
    /// A copy of the `max-img-sectors-too-small` fixture (child image, external secondary slot,
    /// CONFIG_BOOT_MAX_IMG_SECTORS=128) with `edit` applied to one file.
    static func build(editing relative: String, _ edit: (String) -> String) throws -> URL {
        let source = DoctorTests.builds.appendingPathComponent("max-img-sectors-too-small")
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("smpctl-doctor-\(UUID().uuidString)").appendingPathComponent("project")
        try FileManager.default.createDirectory(at: folder.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source, to: folder)
        let build = folder.appendingPathComponent("build")
        let file = build.appendingPathComponent(relative)
        let text = try String(contentsOf: file, encoding: .utf8)
        let edited = edit(text)
        #expect(edited != text, "the edit of \(relative) changed nothing")
        try Data(edited.utf8).write(to: file)
        return build
    }

    static func replacing(_ old: String, with new: String) -> (String) -> String {
        { $0.replacingOccurrences(of: old, with: new) }
    }

    /// The `size:` line of mcuboot_primary.
    static func primarySize(_ value: String) -> (String) -> String {
        { text in
            var lines = text.components(separatedBy: "\n")
            guard let start = lines.firstIndex(of: "mcuboot_primary:") else { return text }
            for index in lines.indices where index > start && lines[index].hasPrefix("  size:") {
                lines[index] = "  size: \(value)"
                break
            }
            return lines.joined(separator: "\n")
        }
    }

    @Test("a partition size that needs 64 bits is a finding at its line", arguments: [
        "0xffffffffffffffff", "0xfffffffffffff000", "18446744073709551615", "0x100000000",
    ])
    func hugePartition(_ size: String) throws {
        let build = try Self.build(editing: "partitions.yml", Self.primarySize(size))
        let report = try #require(Doctor.examine(path: build.path))
        let finding = try #require(report.findings.first { $0.id == "value-out-of-range" })
        #expect(finding.severity == .error)
        #expect(finding.location?.file == "partitions.yml")
        #expect(finding.location?.key == "mcuboot_primary")
        #expect(finding.location?.line != nil)
        #expect(finding.summary.contains("32-bit"))
    }

    @Test("a huge partition in pm_static.yml is a finding too")
    func hugeStaticPartition() throws {
        let build = try Self.build(editing: "partitions.yml", Self.primarySize("0xffffffffffffffff"))
        // Without partitions.yml the doctor works from pm_static.yml beside the build folder.
        let text = try String(contentsOf: build.appendingPathComponent("partitions.yml"), encoding: .utf8)
        try FileManager.default.removeItem(at: build.appendingPathComponent("partitions.yml"))
        try Data(text.utf8).write(to: build.deletingLastPathComponent().appendingPathComponent("pm_static.yml"))
        let report = try #require(Doctor.examine(path: build.path))
        #expect(report.build.pmStaticFile == "../pm_static.yml")
        let finding = try #require(report.findings.first { $0.id == "value-out-of-range" })
        #expect(finding.location?.file == "../pm_static.yml")
    }

    @Test("a partition whose end passes 4 GiB is a finding")
    func wrappingEnd() throws {
        let build = try Self.build(editing: "partitions.yml", Self.replacing("  address: 0xc000\n  end_address: 0xc200", with: "  address: 0xfffffffffffff000\n  end_address: 0xc200"))
        let report = try #require(Doctor.examine(path: build.path))
        #expect(report.findings.contains { $0.id == "value-out-of-range" && $0.location?.key == "mcuboot_pad" })
    }

    @Test("a huge erase-block-size in zephyr.dts is a finding, and 4 KiB pages are assumed")
    func hugeEraseBlock() throws {
        let build = try Self.build(
            editing: "mcuboot/zephyr/zephyr.dts", Self.replacing("erase-block-size = < 0x1000 >", with: "erase-block-size = < 0xffffffffffffffff >"))
        let report = try #require(Doctor.examine(path: build.path))
        let finding = try #require(report.findings.first { $0.id == "value-out-of-range" })
        #expect(finding.location?.file == "mcuboot/zephyr/zephyr.dts")
        #expect(finding.location?.line == 28)
        // The sector check still runs, with the page it can trust.
        #expect(report.findings.contains { $0.id == "max-img-sectors-too-small" })
    }

    @Test("a huge flash page size in MCUboot's .config is a finding", arguments: ["0xffffffffffffffff", "18446744073709551615"])
    func hugePageSize(_ value: String) throws {
        let build = try Self.build(
            editing: "mcuboot/zephyr/.config",
            Self.replacing("CONFIG_NORDIC_QSPI_NOR_FLASH_LAYOUT_PAGE_SIZE=4096", with: "CONFIG_NORDIC_QSPI_NOR_FLASH_LAYOUT_PAGE_SIZE=\(value)"))
        let report = try #require(Doctor.examine(path: build.path))
        let finding = try #require(report.findings.first { $0.id == "value-out-of-range" })
        #expect(finding.location?.file == "mcuboot/zephyr/.config")
        #expect(finding.location?.key == "CONFIG_NORDIC_QSPI_NOR_FLASH_LAYOUT_PAGE_SIZE")
    }

    @Test("sector counts round up without overflow")
    func sectorArithmetic() {
        #expect(Doctor.sectors(UInt64.max, of: 4096) == UInt64.max / 4096 + 1)
        #expect(Doctor.sectors(UInt64.max, of: 1) == UInt64.max)
        #expect(Doctor.sectors(1, of: UInt64.max) == 1)
        #expect(Doctor.sectors(0x80000, of: 0x1000) == 128)
        #expect(Doctor.sectors(5, of: 0) == 5)
        #expect(!Doctor.fitsFlashMap(DoctorPartition(name: "x", address: UInt64.max, size: 2, region: "flash_primary", line: 1)))
        #expect(Doctor.fitsFlashMap(DoctorPartition(name: "x", address: 0xF000_0000, size: 0x1000_0000, region: "flash_primary", line: 1)))
    }
}
