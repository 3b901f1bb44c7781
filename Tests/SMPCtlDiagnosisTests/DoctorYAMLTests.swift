import Foundation
import Testing

@_spi(Fuzzing) @testable import SMPCtlDiagnosis

/// The YAML reader on Yams: the documents Partition Manager writes read as before, hostile ones
/// fail fast with a typed error and a line.
@Suite("doctor: YAML bounds")
struct DoctorYAMLTests {
    /// `levels` anchors, each a flow list of `width` aliases of the one before.
    static func laughs(levels: Int, width: Int) -> String {
        var text = "l0: &l0 [" + Array(repeating: "\"lol\"", count: width).joined(separator: ", ") + "]\n"
        for level in 1..<levels {
            text += "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: width).joined(separator: ", ") + "]\n"
        }
        return text
    }

    static func expectError(_ text: String, line: Int? = nil, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try DoctorYAML.parse(text)
            Issue.record("parsed", sourceLocation: sourceLocation)
        } catch {
            #expect(error.reason.contains(fragment), "\(error)", sourceLocation: sourceLocation)
            if let line { #expect(error.line == line, "\(error)", sourceLocation: sourceLocation) }
        }
    }

    @Test("a billion laughs stops at the node bound, fast")
    func billionLaughs() {
        let start = ContinuousClock.now
        Self.expectError(Self.laughs(levels: 9, width: 9), "once aliases are expanded")
        // 200 aliases in 20 levels would be 10^20 nodes.
        Self.expectError(Self.laughs(levels: 20, width: 10), "once aliases are expanded")
        #expect(ContinuousClock.now - start < .seconds(10))
        // Small expansions are fine.
        #expect((try? DoctorYAML.parse(Self.laughs(levels: 3, width: 3))) != nil)
    }

    @Test("anchors and aliases are counted before Yams builds anything")
    func aliasCount() {
        var text = ""
        for index in 0...DoctorYAML.maximumAliases / 2 { text += "a\(index): &x\(index) 1\nb\(index): *x\(index)\n" }
        Self.expectError(text, "anchors and aliases")
    }

    @Test("an alias in a key, and explicit keys, are refused", arguments: [
        "a: &a [1, 2]\n*a : 1\n", "a: &a [1, 2]\n[*a, *a]: 1\n", "a: &a [1]\n{*a : 1}\n", "? [1, 2]\n: 3\n",
    ])
    func aliasKeys(_ text: String) {
        #expect(throws: DoctorYAMLError.self) { try DoctorYAML.parse(text) }
    }

    @Test("nesting, size and lines are bounded")
    func bounds() {
        Self.expectError(String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000), line: 1, "deeper than 32")
        var block = ""
        for level in 0..<40 { block += String(repeating: " ", count: level) + "k\(level):\n" }
        Self.expectError(block, "deeper than 32")
        Self.expectError(String(repeating: "- ", count: 40) + "x\n", line: 1, "deeper than 32")
        Self.expectError("a: \"" + String(repeating: "x", count: DoctorYAML.maximumBytes) + "\"\n", "larger than")
        Self.expectError(String(repeating: "# comment\n", count: DoctorYAML.maximumLines + 1), "lines")
        Self.expectError("a: [" + String(repeating: "1,", count: DoctorYAML.maximumNodes) + "1]\n", line: 1, "values")
    }

    @Test("errors carry Yams' line")
    func errorLine() {
        Self.expectError("a: 1\nb: 2\nb: 3\n", "duplicate key b")
        Self.expectError("a: 1\nb: [1, 2\nc: 3\n", line: 3, "did not find expected")
        do {
            _ = try DoctorYAML.parse("a: 1\nb:\n  - x\n  y: 2\n")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 4, "\(error)")
        }
    }

    @Test("Partition Manager documents read as before: values, anchors, flow lists, lines")
    func partitionManager() throws {
        let text = """
            # generated
            app:
              address: 0xc200
              region: flash_primary
              size: 0xebe00
            mcuboot_primary:
              address: 0xc000
              orig_span: &id001
              - mcuboot_pad
              - app
              span: *id001
            b0_container: {address: 0x0, size: 0x8000, span: [b0, provision]}
            empty:
            """
        let node = try DoctorYAML.parse(text)
        #expect(node.entries.map(\.key) == ["app", "mcuboot_primary", "b0_container", "empty"])
        #expect(node.entries.map(\.line) == [2, 6, 12, 13])
        #expect(node["app"]?["size"]?.scalar == "0xebe00")
        #expect(node["mcuboot_primary"]?["span"]?.strings == ["mcuboot_pad", "app"])
        #expect(node["b0_container"]?["span"]?.strings == ["b0", "provision"])
        #expect(node["b0_container"]?.entries.first?.line == 12)
        #expect(node["empty"]?.scalar == "")
        #expect(try DoctorYAML.parse("") == .mapping([]))
        #expect(try DoctorYAML.parse("# only a comment\n") == .mapping([]))
    }

    @Test("a pm_static.yml that is not YAML is a finding at its line")
    func unreadableStaticFile() throws {
        let build = try DoctorHardeningTests.build(editing: "partitions.yml") { _ in "app: [unclosed\n" }
        let report = try #require(Doctor.examine(path: build.path))
        let finding = try #require(report.findings.first { $0.id == "unreadable-build-file" })
        #expect(finding.location?.file == "partitions.yml")
        #expect(finding.location?.line != nil)
        #expect(finding.references == ["ncs-partition-manager"])
    }
}
