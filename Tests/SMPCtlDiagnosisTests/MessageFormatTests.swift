import Foundation
import SMPCtlDiagnosis
import Testing

/// Every warning and error format listed in Tests/Fixtures/message-formats must be recognized by a log pattern of the
/// knowledge base of its own, with a meaning, a cause, a next step and a source: MCUboot 112 formats (mcuboot.txt),
/// Zephyr mcumgr 49 (zephyr-mcumgr.txt), and 48 of the nRF Connect SDK's Partition Manager and DFU packaging
/// (sdk-nrf-pm.txt: partition_manager*.py, generate_zip.py, the Partition Manager, fw_zip and dfu_multi_image CMake, subsys/partition_manager).
/// C formats are printf strings; the sdk-nrf ones hold Python `{field}`s and CMake `${VAR}`s, given sample values.
@Suite("message formats")
struct MessageFormatTests {
    struct Format: Sendable, CustomStringConvertible {
        var fixture: String
        var text: String
        var file: String
        var description: String { "\(fixture): \(text) (\(file))" }
    }

    /// Patterns that match any line of a log module; a format recognized only by one of them has no pattern of its own.
    static let catchAll: Set<String> = ["img-mgmt-err"]

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/message-formats")

    static func formats(_ name: String) throws -> [Format] {
        let text = try String(contentsOf: fixtures.appendingPathComponent("\(name).txt"), encoding: .utf8)
        var seen = Set<String>()
        return text.split(whereSeparator: \.isNewline).compactMap { line in
            guard !line.hasPrefix("#"), !line.allSatisfy(\.isWhitespace) else { return nil }
            let fields = line.split(separator: "\t", maxSplits: 1)
            let format = String(fields[0])
            guard seen.insert(format).inserted else { return nil }
            return Format(fixture: name, text: format, file: fields.count > 1 ? String(fields[1]) : "?")
        }
    }

    static let allFormats: [Format] = (try? formats("mcuboot") + formats("zephyr-mcumgr") + formats("sdk-nrf-pm")) ?? []

    /// A printed line for a format: each printf conversion, Python f-string/format field (`{name}`, `{{` and `}}` for
    /// braces) and CMake variable (`${NAME}`) becomes a plausible value (`negative` picks the sign of printf integers).
    static func sample(_ format: String, negative: Bool) -> String {
        printfSample(pythonSample(cmakeSample(format)), negative: negative)
    }

    /// A value for a CMake `${NAME}` reference, picked by its name.
    static func cmakeValue(_ name: String) -> String {
        let lower = name.lowercased()
        if lower.contains("slot") || lower.contains("index") { return "1" }
        if lower.contains("size") || lower.contains("pad") { return "0x200" }
        if lower.hasSuffix("cmd") { return "/usr/bin/python3 partition_manager.py --input-files pm.yml" }
        if lower.hasSuffix("dir") { return "/ncs/nrfxlib" }
        return "mcuboot"
    }

    static func cmakeSample(_ format: String) -> String {
        let reference = try! NSRegularExpression(pattern: "\\$\\{([A-Za-z0-9_]+)\\}")
        let ns = format as NSString
        var out = ""
        var last = 0
        for match in reference.matches(in: format, range: NSRange(location: 0, length: ns.length)) {
            out += ns.substring(with: NSRange(location: last, length: match.range.location - last))
            out += cmakeValue(ns.substring(with: match.range(at: 1)))
            last = match.range.location + match.range.length
        }
        return out + ns.substring(from: last)
    }

    /// A value for a Python replacement field, picked by its expression and format spec.
    static func pythonValue(_ field: String) -> String {
        if field.contains("len(") { return "2" }
        if field.hasPrefix("hex(") { return "0x1f000" }
        if field.hasSuffix(":x") { return "1f000" }
        if field.contains("size") { return "0x1f000" }
        if field.contains("span") || field.contains("solution") || field.contains("one_of") || field == "partitions" {
            return "['mcuboot_primary', 'mcuboot_secondary']"
        }
        if field.contains("align") { return "{'start': 4096}" }
        if field == "str(e)" { return "partition mcuboot_pad is empty" }
        if field.isEmpty { return "- placement" }
        return "mcuboot_secondary"
    }

    /// Replaces `{field}` with a value and `{{`/`}}` with a brace; a field ends at its first `}`.
    static func pythonSample(_ format: String) -> String {
        guard format.contains("{") || format.contains("}") else { return format }
        let characters = Array(format)
        var out = ""
        var i = 0
        while i < characters.count {
            let character = characters[i]
            let next = i + 1 < characters.count ? characters[i + 1] : nil
            if character == "{", next == "{" {
                out.append("{"); i += 2
            } else if character == "}", next == "}" {
                out.append("}"); i += 2
            } else if character == "{", let close = characters[(i + 1)...].firstIndex(of: "}") {
                out += pythonValue(String(characters[(i + 1)..<close])); i = close + 1
            } else {
                out.append(character); i += 1
            }
        }
        return out
    }

    static func printfSample(_ format: String, negative: Bool) -> String {
        let conversion = try! NSRegularExpression(pattern: "%[-+ #0]*[0-9]*(\\.[0-9]+)?(hh|h|ll|l|z|j|t)?([diouxXsp%])")
        let ns = format as NSString
        var out = ""
        var last = 0
        for match in conversion.matches(in: format, range: NSRange(location: 0, length: ns.length)) {
            out += ns.substring(with: NSRange(location: last, length: match.range.location - last))
            switch ns.substring(with: match.range(at: 3)) {
            case "d", "i": out += negative ? "-5" : "12"
            case "u", "o": out += "3"
            case "x": out += "1f000"
            case "X": out += "1F000"
            case "p": out += "0x20001a40"
            case "s": out += "secondary"
            default: out += "%"
            }
            last = match.range.location + match.range.length
        }
        return out + ns.substring(from: last)
    }

    @Test("the fixture files list the formats")
    func fixturesPresent() throws {
        #expect(try Self.formats("mcuboot").count >= 100)
        #expect(try Self.formats("zephyr-mcumgr").count >= 45)
        #expect(try Self.formats("sdk-nrf-pm").count >= 45)
        #expect(Self.sample("Image in %s slot at 0x%x: %d (%zu)", negative: true) == "Image in secondary slot at 0x1f000: -5 (3)")
        #expect(Self.sample("Align config already present in {next_part}", negative: false)
            == "Align config already present in mcuboot_secondary")
        #expect(Self.sample("elements in align: {{{keyword}:{align[keyword]}}} is not type of 'int'", negative: false)
            == "elements in align: {mcuboot_secondary:{'start': 4096}} is not type of 'int'")
        #expect(Self.sample("Gaps found ({len(gaps)}): 0x{gap[0]:x}-0x{gap[1]:x}", negative: false) == "Gaps found (2): 0x1f000-0x1f000")
        #expect(Self.sample("MCUboot padding partition size is ${PM_MCUBOOT_PAD_SIZE}", negative: false)
            == "MCUboot padding partition size is 0x200")
    }

    @Test("every format is recognized with a cause and a next step", arguments: allFormats)
    func recognized(_ format: Format) throws {
        let knowledge = try Knowledge.load()
        for negative in [true, false] {
            let line = Self.sample(format.text, negative: negative)
            // Bare, and with the prefixes MCUboot and Zephyr's logger print.
            for printed in [line, "E: \(line)", "[00:00:01.204,040] <err> mcumgr_smp: \(line)"] {
                let finding = try #require(knowledge.explain(log: printed).first, "no pattern recognizes \"\(printed)\" (\(format.file))")
                #expect(!Self.catchAll.contains(finding.patternID), "only a catch-all pattern recognizes \"\(printed)\"")
                #expect(finding.explanation.isKnown)
                #expect(!finding.explanation.meaning.isEmpty)
                #expect(!finding.explanation.causes.isEmpty, "\(finding.patternID) has no cause")
                #expect(!finding.explanation.nextSteps.isEmpty, "\(finding.patternID) has no next step")
                #expect(!finding.explanation.sources.isEmpty, "\(finding.patternID) cites no source")
                // Pasted text finds the same line (its per-pattern literal prefilter must not skip it).
                #expect(knowledge.explain(text: printed).findings.contains { $0.patternID == finding.patternID },
                    "explain(text:) misses \"\(printed)\"")
            }
        }
    }

    @Test("formats that share a pattern share a cause; distinct failures get distinct patterns")
    func grouping() throws {
        let knowledge = try Knowledge.load()
        func id(_ line: String) -> String? { knowledge.explain(log: line).first?.patternID }
        #expect(id("E: Cannot upgrade: more sectors than allowed") == "too-many-sectors-upgrade")
        #expect(id("E: Cannot upgrade: not same sector layout") == "incompatible-sectors")
        #expect(id("E: Bad image magic 0xffffffff; Image=0") == "bad-image-magic")
        #expect(id("E: MAC verification failed -149") == "image-decrypt-failed")
        #expect(id("E: Insufficient version in secondary slot") == "insufficient-version")
        #expect(id("[00:00:02.000,000] <err> mcumgr_img_grp: Failed to write pending flag for slot 1: -5") == "swap-request-write-failed")
        #expect(id("[00:00:02.000,000] <err> smp_udp: Failed to allocate mcumgr buffer") == "smp-netbuf-exhausted")
        #expect(id("I: Starting bootloader") == nil)
        // Partition Manager: the wrapper line with the reason after it is explained by the reason's pattern.
        #expect(id("Partition manager failed: Incorrect amount of gaps found in static configuration. There must be") == "pm-static-layout-gaps")
        #expect(id("Partition manager failed: something new") == "pm-failed")
        #expect(id("Statically defined partitions are not packed at start of region 'external_flash'.") == "pm-static-layout-gaps")
        #expect(id("CMake Warning at nrf/cmake/sysbuild/partition_manager.cmake:107 (message): MCUboot padding partition size is 0x800 but signing uses 0x200, please adjust")
            == "pm-mcuboot-pad-mismatch")
        let gaps = try #require(knowledge.explain(log: "Incorrect amount of gaps found in static configuration. ").first)
        #expect(gaps.explanation.settings.contains { $0.name == "pm_static.yml" })
        #expect(gaps.explanation.settings.contains { $0.name == "PM_STATIC_YML_FILE" })
        let insufficient = try #require(knowledge.explain(log: "E: Insufficient version in secondary slot").first)
        #expect(insufficient.explanation.settings.contains { $0.name == "CONFIG_MCUBOOT_DOWNGRADE_PREVENTION" })
    }
}
