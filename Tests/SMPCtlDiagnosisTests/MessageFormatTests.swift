import Foundation
import SMPCtlDiagnosis
import Testing

/// Every warning and error format of MCUboot and Zephyr's mcumgr listed in Tests/Fixtures/message-formats
/// must be recognized by a log pattern of the knowledge base, with a cause and a next step.
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

    static let allFormats: [Format] = (try? formats("mcuboot") + formats("zephyr-mcumgr")) ?? []

    /// A printed line for a printf format: each conversion becomes a plausible value (`negative` picks the sign of integers).
    static func sample(_ format: String, negative: Bool) -> String {
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
        #expect(Self.sample("Image in %s slot at 0x%x: %d (%zu)", negative: true) == "Image in secondary slot at 0x1f000: -5 (3)")
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
        let insufficient = try #require(knowledge.explain(log: "E: Insufficient version in secondary slot").first)
        #expect(insufficient.explanation.settings.contains { $0.name == "CONFIG_MCUBOOT_DOWNGRADE_PREVENTION" })
    }
}
