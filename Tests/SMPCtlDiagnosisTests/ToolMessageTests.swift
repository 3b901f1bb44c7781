import Foundation
import SMPCtlDiagnosis
import SMPCtlProtocol
import Testing

/// The error text other clients print (Tests/Fixtures/tool-messages/<tool>.txt: the exact lines, from their
/// sources) is recognized, and its explanation names the cause.
@Suite("other tools' messages")
struct ToolMessageTests {
    struct Fixture: Sendable, CustomStringConvertible {
        var tool: String
        var id: String
        /// The top cause id, or the code's name when the code has no causes.
        var expected: String?
        var line: String
        var description: String { "\(tool) \(id): \(line.prefix(80))" }
    }

    static let tools = ["mcumgr", "smpclient", "smpmgr", "nrf-connect-device-manager", "bluez", "mcumgr-toolkit"]
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tool-messages")

    static func fixtures(_ tool: String) throws -> [Fixture] {
        let text = try String(contentsOf: directory.appendingPathComponent("\(tool).txt"), encoding: .utf8)
        return text.split(whereSeparator: \.isNewline).compactMap { row in
            guard !row.hasPrefix("#") else { return nil }
            let fields = row.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { return nil }
            return Fixture(tool: tool, id: String(fields[0]), expected: fields[1] == "-" ? nil : String(fields[1]), line: String(fields[2]))
        }
    }

    static let all: [Fixture] = tools.flatMap { (try? fixtures($0)) ?? [] }

    @Test("every tool message has a fixture line, and the fixtures cover each tool")
    func coverage() throws {
        let knowledge = try Knowledge.load()
        let ids = Set(Self.all.map(\.id))
        for message in knowledge.toolMessageIDs {
            #expect(ids.contains(message.id), "tool message \(message.id) has no fixture line")
            #expect(Self.tools.contains(message.tool), "tool message \(message.id) names unknown tool \(message.tool)")
        }
        let counts = knowledge.toolMessageCounts
        #expect(counts["mcumgr", default: 0] >= 9)
        #expect(counts["smpclient", default: 0] + counts["smpmgr", default: 0] >= 20)
        #expect(counts["nrf-connect-device-manager", default: 0] >= 25)
        #expect(counts["bluez", default: 0] >= 8)
        #expect(counts["mcumgr-toolkit", default: 0] >= 5)
        #expect(Self.all.count >= knowledge.toolMessageIDs.count)
    }

    @Test("each fixture line is recognized as its message and names the cause", arguments: all)
    func recognized(_ fixture: Fixture) throws {
        let knowledge = try Knowledge.load()
        let result = knowledge.explain(text: fixture.line)
        let finding = try #require(
            result.findings.first { $0.patternID == fixture.id }, "\(fixture.id) does not recognize \"\(fixture.line)\": \(result.findings.map { $0.patternID ?? $0.explanation.name })")
        #expect(finding.kind == .toolMessage)
        #expect(finding.tool == fixture.tool)
        #expect(finding.explanation.isKnown)
        #expect(!finding.explanation.meaning.isEmpty)
        #expect(!finding.explanation.sources.isEmpty, "\(fixture.id) cites no source")
        // The message's own source: a file in the tool's repository.
        #expect(finding.explanation.sources.contains { $0.url.hasPrefix("https://github.com/") && !$0.url.contains("zephyrproject-rtos") })
        if let expected = fixture.expected {
            let named = finding.explanation.causes.first?.id == expected || finding.explanation.name == expected
            #expect(named, "\(fixture.id): expected \(expected), got \(finding.explanation.name) / \(finding.explanation.causes.first?.id ?? "no cause")")
        }
        if case .log = finding.explanation.subject {
            #expect(!finding.explanation.causes.isEmpty)
            #expect(!finding.explanation.nextSteps.isEmpty)
        }
    }

    @Test("codes in other tools' printed forms are the right code")
    func printedCodes() throws {
        let knowledge = try Knowledge.load()
        func subject(_ text: String) -> Explanation.Subject? { knowledge.explain(text: text).findings.first?.explanation.subject }
        #expect(subject("Error: 6") == .smp(6))
        #expect(subject("Mcu Mgr Error: 9 (group: 1)") == .group(.image, 9))
        #expect(subject("Mcu Mgr Error: NO_ENTRY (5)") == .smp(5))
        #expect(subject("Bad state (RC: 6)") == .smp(6))
        #expect(subject("rc=<IMG_MGMT_ERR.INVALID_IMAGE_TOO_LARGE: 30>") == .group(.image, 30))
        #expect(subject("There is no free slot to place the image") == .group(.image, 9))
        #expect(subject("Image too large (30)") == .group(.image, 30))
        #expect(subject("Error: Device returned error code: IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE") == .group(.image, 30))
        #expect(knowledge.explain(text: "Device returned error code: IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE").findings.first?.tool == "mcumgr-toolkit")
        // Over v1, Go mcumgr's rc carries the translated image codes.
        let v1 = try #require(knowledge.explain(text: "Error: 6").findings.first)
        #expect(v1.explanation.smpVersion == 1)
        #expect(v1.explanation.possibleGroupCodes.contains { $0.name == "IMG_MGMT_ERR_NO_FREE_SLOT" })
        // A group number too large for a group id, or an rc with too many digits, is not a code.
        #expect(knowledge.explain(text: "Mcu Mgr Error: 9 (group: 99999)").findings.isEmpty)
        #expect(knowledge.explain(text: "Error: 99999999999999999999").findings.isEmpty)
        // An unknown rc read from a message is reported as unknown.
        let unknown = try #require(knowledge.explain(text: "Error: 77").findings.first)
        #expect(!unknown.explanation.isKnown)
    }

    @Test("a pasted log from several tools: each thing once, in order, with the lines it repeats on")
    func pastedLog() throws {
        let knowledge = try Knowledge.load()
        let log = """
            $ mcumgr --conntype ble --connstring peer_name=Zephyr image upload app.signed.bin
            Error: NMP timeout
            [00:00:01.204,040] <err> mcumgr_img_grp: Failed to open flash area (-19)
            $ smpmgr --ble Zephyr upgrade app.signed.bin
            ERROR    Timeout waiting for response
            smpclient.exceptions.SMPUploadError: err=Err[IMG_MGMT_ERR](group=<GroupId.IMAGE_MANAGEMENT: 1>, rc=<IMG_MGMT_ERR.NO_FREE_SLOT: 9>)
            then smpctl said IMG_MGMT_ERR_NO_FREE_SLOT and bluetoothctl said
            Failed to write: org.bluez.Error.NotPermitted
            org.bluez.Error.NotPermitted: Not paired
            Error: NMP timeout
            """
        let result = knowledge.explain(text: log)
        let keys = result.findings.map { $0.patternID ?? $0.explanation.name }
        // The NMP timeout and smpmgr's timeout both explain the same failure: it is reported once.
        #expect(result.findings.first?.patternID == "mcumgr-nmp-timeout")
        #expect(result.findings.first?.repeatLines == [5, 10])
        #expect(result.findings.first?.occurrences == 3)
        #expect(!keys.contains("smpmgr-timeout"))
        // NO_FREE_SLOT in smpclient's form and by smpctl's name is one finding.
        #expect(result.findings.filter { $0.explanation.subject == .group(.image, 9) }.count == 1)
        let lines = result.findings.map(\.line)
        #expect(lines == lines.sorted())
        #expect(result.findings.contains { $0.patternID == "bluez-not-paired" && $0.line == 9 })
        #expect(result.findings.contains { $0.kind == .logLine && $0.line == 3 })
        #expect(result.allKnown)
        #expect(result.ignoredBytes == 0)
    }

    @Test("code names in text, unknown names, and the bounds on pasted text")
    func namesAndBounds() throws {
        let knowledge = try Knowledge.load()
        let named = knowledge.explain(text: "upload failed: IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE; see MGMT_ERR_EBADSTATE")
        #expect(named.findings.map(\.explanation.subject) == [.group(.image, 30), .smp(6)])
        #expect(named.findings.allSatisfy { $0.kind == .codeName })
        let unknown = knowledge.explain(text: "IMG_MGMT_ERR_NOT_A_THING and CONFIG_MCUMGR_TRANSPORT_BT")
        #expect(unknown.findings.count == 1)
        #expect(unknown.findings.first?.explanation.isKnown == false)
        #expect(!unknown.allKnown)
        // Nothing recognizable.
        #expect(knowledge.explain(text: "hello world\n\n").findings.isEmpty)
        // More than the cap: the rest is ignored and counted.
        let huge = String(repeating: "x", count: Knowledge.maximumLogSize + 100)
        #expect(knowledge.explain(text: huge).ignoredBytes == 100)
        // More distinct findings than reported: the rest are counted, not listed.
        let many = (0..<(Knowledge.maximumFindings + 30)).map { "IMG_MGMT_ERR_MADE_UP_\($0)" }.joined(separator: "\n")
        let capped = knowledge.explain(text: many)
        #expect(capped.findings.count == Knowledge.maximumFindings)
        #expect(capped.omittedFindings == 30)
        // A line repeated a thousand times keeps a bounded list of repeat lines.
        let repeated = knowledge.explain(text: String(repeating: "Error: NMP timeout\n", count: 1000))
        #expect(repeated.findings.count == 1)
        #expect(repeated.findings.first?.occurrences == 1000)
        #expect(repeated.findings.first?.repeatLines.count == Knowledge.maximumRepeatLines)
    }

    @Test("hostile pasted text: CRLF, NUL bytes, invalid UTF-8, and a line longer than is read")
    func hostileText() throws {
        let knowledge = try Knowledge.load()
        let crlf = knowledge.explain(text: "Error: NMP timeout\r\norg.bluez.Error.Failed: Failed to initiate write\r\n")
        #expect(crlf.findings.map(\.line) == [1, 2])
        let nul = knowledge.explain(text: "\u{0}\u{0}Error: NMP timeout\u{0}")
        #expect(nul.findings.first?.patternID == "mcumgr-nmp-timeout")
        let bytes: [UInt8] = [0xFF, 0xFE, 0xC0] + Array("Mcu Mgr Error: 9 (group: 1)".utf8) + [0xED, 0xA0, 0x80]
        let invalid = knowledge.explain(text: String(decoding: bytes, as: UTF8.self))
        #expect(invalid.findings.first?.explanation.subject == .group(.image, 9))
        // Only the first part of a long line is read: a message past it is not found, one before it is.
        let padding = String(repeating: "x", count: 100_000)
        #expect(knowledge.explain(text: padding + " Error: NMP timeout").findings.isEmpty)
        #expect(knowledge.explain(text: "NMP timeout " + padding).findings.count == 1)
        // A group number that does not fit 16 bits, or digits beyond any code, are not codes.
        #expect(knowledge.explain(text: "Unknown error (1, group 70000)").findings.isEmpty)
        #expect(knowledge.explain(text: "<IMG_MGMT_ERR.X: 99999999999>").findings.isEmpty)
    }

    @Test("a knowledge file with a bad tool message is rejected")
    func validation() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/SMPCtlDiagnosis/Knowledge/knowledge.json")
        let data = try Data(contentsOf: url)
        var json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var messages = try #require(json["tool_messages"] as? [[String: Any]])
        func attempt(_ change: ([String: Any]) -> [String: Any]) throws -> KnowledgeError? {
            var copy = messages
            copy[0] = change(copy[0])
            json["tool_messages"] = copy
            let changed = try JSONSerialization.data(withJSONObject: json)
            do throws(KnowledgeError) {
                _ = try Knowledge(json: changed)
                return nil
            } catch {
                return error
            }
        }
        #expect(try attempt { $0 } == nil)
        #expect(try attempt { var m = $0; m["pattern"] = "("; return m } != nil)
        #expect(try attempt { var m = $0; m["explains"] = ["failure": "nope"]; return m } != nil)
        #expect(try attempt { var m = $0; m["explains"] = ["rc_capture": 3]; return m } != nil)
        #expect(try attempt { var m = $0; m["explains"] = ["rc_capture": 1]; m["pattern"] = "no groups"; return m } != nil)
        #expect(try attempt { var m = $0; m["sources"] = [String](); return m } != nil)
        #expect(try attempt { var m = $0; m["explains"] = ["name_capture": 2]; m["pattern"] = "(A)"; return m } != nil)
        #expect(try attempt { var m = $0; m["sources"] = ["no-such-source"]; return m } != nil)
        messages[1]["id"] = messages[0]["id"]
        #expect(try attempt { $0 } != nil)
    }
}
