import Foundation
public import SMPCtlProtocol
#if canImport(Glibc)
import Glibc
#endif

/// What a code, failure or log line means, with its likely causes ranked for the operation.
public struct Explanation: Sendable, Hashable {
    /// What was explained.
    public enum Subject: Sendable, Hashable {
        /// A top-level SMP `rc`.
        case smp(Int)
        /// A group error code (`err {group, rc}`).
        case group(SMPGroupID, Int)
        /// A transport or workflow failure.
        case failure(FailureKind)
        /// A recognized log line, by pattern id.
        case log(String)
    }

    /// A group code that an SMP v1 `rc` may stand for.
    public struct TranslatedCode: Sendable, Hashable {
        public var group: SMPGroupID
        public var rc: Int
        public var name: String
    }

    public var subject: Subject
    /// The code's enum name, or a short title for failures and log lines.
    public var name: String
    public var meaning: String
    /// Whether the knowledge base knows the subject.
    public var isKnown: Bool
    /// The operation the causes were ranked for.
    public var operation: OperationKind?
    /// The SMP version the causes were ranked for.
    public var smpVersion: Int?
    /// Remarks such as "over SMP v1 this stands for several image errors".
    public var notes: [String]
    /// Group codes an SMP v1 `rc` may have been translated from.
    public var possibleGroupCodes: [TranslatedCode]
    /// Likely causes, most likely first.
    public var causes: [Cause]
    /// What to check next, in the order of the causes.
    public var nextSteps: [String]
    /// Firmware settings involved, in the order of the causes.
    public var settings: [FirmwareSetting]
    /// Sources for the causes.
    public var sources: [KnowledgeSource]

    /// A short label for the code: `rc 5 MGMT_ERR_ENOENT` or `image rc 8 IMG_MGMT_ERR_HASH_NOT_FOUND`.
    public var label: String {
        switch subject {
        case .smp(let rc): "rc \(rc) \(name)"
        case .group(let group, let rc): "\(group.name ?? "group \(group.rawValue)") rc \(rc) \(name)"
        case .failure, .log: name
        }
    }
}

/// A log line the knowledge base recognizes.
public struct LogFinding: Sendable, Hashable {
    /// 1-based line number.
    public var line: Int
    /// The part of the line that matched.
    public var matchedText: String
    /// The id of the pattern that matched.
    public var patternID: String
    public var explanation: Explanation
}

extension Knowledge {
    /// The largest log accepted by ``explain(log:)``, in UTF-8 bytes; the rest is ignored.
    public static let maximumLogSize = 16 << 20
    /// Lines longer than this are matched on their first part only.
    static let maximumLineLength = 4096

    /// Explains an SMP-level code (`group` nil) or a group code, for an operation and SMP version.
    public func explain(
        code: Int, group: SMPGroupID? = nil, operation: OperationKind? = nil, smpVersion: Int? = nil
    ) -> Explanation {
        let subject: Explanation.Subject = group.map { .group($0, code) } ?? .smp(code)
        var key = CodeKey(group: group?.rawValue, rc: code)
        if group == nil, code >= 256 { key = CodeKey(group: nil, rc: 256) }
        guard let entry = codes[key] else {
            let table = group.map { "group \($0.name ?? String($0.rawValue))" } ?? "SMP"
            return Explanation(
                subject: subject, name: "unknown code \(code)", meaning: "not a known \(table) error code",
                isKnown: false, operation: operation, smpVersion: smpVersion, notes: [], possibleGroupCodes: [],
                causes: [], nextSteps: [], settings: [], sources: [])
        }
        var meaning = entry.meaning
        if group == nil, code >= 256 { meaning += " (application code \(code - 256))" }
        var notes = entry.notes
        var translated: [Explanation.TranslatedCode] = []
        if let translatesGroup = entry.v1TranslatesGroup, smpVersion != 2, operation?.isImageOperation ?? true {
            let groupID = SMPGroupID(rawValue: translatesGroup)
            translated = entry.v1TranslatedCodes.compactMap { rc in
                codes[CodeKey(group: translatesGroup, rc: rc)].map { .init(group: groupID, rc: rc, name: $0.name) }
            }
            if !translated.isEmpty {
                let list = translated.prefix(6).map { "\($0.name) (\($0.rc))" }.joined(separator: ", ")
                let more = translated.count > 6 ? " and \(translated.count - 6) more" : ""
                notes.append("Over SMP v1, \(groupID.name ?? "group") errors are translated; this rc may stand for \(list)\(more).")
            }
        }
        return assemble(
            subject: subject, name: entry.name, meaning: meaning, notes: notes, translated: translated,
            causes: entry.causes, extraSteps: entry.nextSteps, extraSources: entry.sources,
            operation: operation, smpVersion: smpVersion)
    }

    /// Explains an error a device sent; the operation is inferred from its group and command when not given.
    public func explain(deviceError: SMPDeviceError, operation: OperationKind? = nil) -> Explanation {
        let operation = operation ?? OperationKind(group: deviceError.requestGroup, command: deviceError.command)
        let version = deviceError.version == .v1 ? 1 : 2
        var explanation: Explanation
        switch deviceError.kind {
        case .smp(let rc): explanation = explain(code: rc.rawValue, group: nil, operation: operation, smpVersion: version)
        case .group(let group, let rc): explanation = explain(code: rc, group: group, operation: operation, smpVersion: version)
        }
        if let reason = deviceError.reason, !reason.isEmpty {
            explanation.notes.insert("The device says: \"\(reason.prefix(200))\".", at: 0)
        }
        return explanation
    }

    /// Explains a transport or workflow failure.
    public func explain(failure: FailureKind, operation: OperationKind? = nil) -> Explanation {
        guard let topic = failures[failure.rawValue] else {
            // Unreachable after validation at load; kept total so no input can crash it.
            return Explanation(
                subject: .failure(failure), name: failure.rawValue, meaning: failure.rawValue, isKnown: false,
                operation: operation, smpVersion: nil, notes: [], possibleGroupCodes: [], causes: [], nextSteps: [],
                settings: [], sources: [])
        }
        return assemble(
            subject: .failure(failure), name: topic.name, meaning: topic.meaning, notes: [], translated: [],
            causes: topic.causes, extraSteps: topic.nextSteps, extraSources: topic.sources, operation: operation,
            smpVersion: nil)
    }

    /// Finds the MCUboot and mcumgr lines of a console or boot log that the knowledge base recognizes.
    ///
    /// Reads at most ``maximumLogSize`` bytes; each line is reported once, for the first pattern that matches.
    public func explain(log: String) -> [LogFinding] {
        var text = Substring(log)
        if log.utf8.count > Self.maximumLogSize {
            let end = log.utf8.index(log.utf8.startIndex, offsetBy: Self.maximumLogSize)
            text = log[..<end]
        }
        let compiled: [(LogPattern, NSRegularExpression)] = logPatterns.compactMap { pattern in
            (try? NSRegularExpression(pattern: pattern.pattern)).map { (pattern, $0) }
        }
        var findings: [LogFinding] = []
        var number = 0
        // Split on every newline: "\r\n" is one Character, so splitting on "\n" alone would miss it.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            number += 1
            let line = String(rawLine.prefix(Self.maximumLineLength))
            guard !line.isEmpty else { continue }
            let range = NSRange(line.startIndex..., in: line)
            for (pattern, regex) in compiled {
                guard let match = regex.firstMatch(in: line, range: range), let matched = Range(match.range, in: line)
                else { continue }
                let topic = pattern.topic
                let explanation = assemble(
                    subject: .log(topic.id), name: topic.name, meaning: topic.meaning, notes: [], translated: [],
                    causes: topic.causes, extraSteps: topic.nextSteps, extraSources: topic.sources, operation: nil,
                    smpVersion: nil)
                findings.append(LogFinding(line: number, matchedText: String(line[matched]), patternID: topic.id, explanation: explanation))
                break
            }
        }
        return findings
    }

    private func assemble(
        subject: Explanation.Subject, name: String, meaning: String, notes: [String],
        translated: [Explanation.TranslatedCode], causes all: [Cause], extraSteps: [String], extraSources: [String],
        operation: OperationKind?, smpVersion: Int?
    ) -> Explanation {
        // Stable sort: equal weights keep the order of the file.
        let ranked = all.enumerated()
            .filter { $0.element.applies(to: operation, smpVersion: smpVersion) }
            .sorted { ($0.element.weight, -$0.offset) > ($1.element.weight, -$1.offset) }
            .map(\.element)
        var steps: [String] = []
        var settingNames: [String] = []
        var sourceIDs: [String] = []
        for cause in ranked {
            if !steps.contains(cause.check) { steps.append(cause.check) }
            for name in cause.settings where !settingNames.contains(name) { settingNames.append(name) }
            for id in cause.sources where !sourceIDs.contains(id) { sourceIDs.append(id) }
        }
        for step in extraSteps where !steps.contains(step) { steps.append(step) }
        for id in extraSources where !sourceIDs.contains(id) { sourceIDs.append(id) }
        return Explanation(
            subject: subject, name: name, meaning: meaning, isKnown: true, operation: operation, smpVersion: smpVersion,
            notes: notes, possibleGroupCodes: translated, causes: ranked, nextSteps: steps,
            settings: settingNames.compactMap { settings[$0] }, sources: sourceIDs.compactMap { sources[$0] })
    }
}

/// One thing recognized in pasted text: a log line, another tool's message, or a code given by name.
public struct TextFinding: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// An MCUboot, Zephyr or NCS log line.
        case logLine = "log-line"
        /// A message another client prints.
        case toolMessage = "tool-message"
        /// A code name as smpctl (or Zephyr) prints it, such as `IMG_MGMT_ERR_NO_FREE_SLOT`.
        case codeName = "code-name"
    }

    /// 1-based line of the first occurrence.
    public var line: Int
    /// Later lines where the same thing was found (at most ``Knowledge/maximumRepeatLines``).
    public var repeatLines: [Int]
    /// How many times it was found in all.
    public var occurrences: Int
    /// The part of the line that matched.
    public var matchedText: String
    public var kind: Kind
    /// The log pattern's or tool message's id; `nil` for a code name.
    public var patternID: String?
    /// The tool that prints the message (`mcumgr`, `smpclient`, `smpmgr`, `nrf-connect-device-manager`, `bluez`).
    public var tool: String?
    public var explanation: Explanation
}

/// What ``Knowledge/explain(text:)`` found, in the order it first appears.
public struct TextExplanation: Sendable, Hashable {
    public var findings: [TextFinding]
    /// The UTF-8 bytes of the text that were not read (past ``Knowledge/maximumLogSize``); 0 when all was read.
    public var ignoredBytes: Int
    /// Distinct findings left out past ``Knowledge/maximumFindings``.
    public var omittedFindings: Int
    /// Whether every finding is a known code or message.
    public var allKnown: Bool { findings.allSatisfy(\.explanation.isKnown) }
}

extension Knowledge {
    /// The most distinct findings ``explain(text:)`` reports.
    public static let maximumFindings = 100
    /// The most repeat lines kept per finding.
    public static let maximumRepeatLines = 20

    /// Explains another tool's message by id (a fixture or a finding), `match` giving the captured values.
    ///
    /// `operation` is the step another message on the same line names (a DFU state): codes are ranked for it.
    func explain(toolMessage message: ToolMessage, captures: [String?], operation: OperationKind? = nil) -> Explanation? {
        var explanation: Explanation
        switch message.target {
        case .failure(let failure):
            explanation = explain(failure: failure)
        case .code(let group, let rc):
            explanation = explain(code: rc, group: group.map { SMPGroupID(rawValue: $0) }, operation: operation, smpVersion: message.smpVersion)
        case .capturedCode(let fixedGroup, let rcCapture, let groupCapture):
            func number(_ index: Int) -> Int? {
                guard index < captures.count, let text = captures[index], text.utf8.count <= 6 else { return nil }
                return Int(text)
            }
            guard let rc = number(rcCapture) else { return nil }
            var group = fixedGroup
            if let groupCapture {
                guard let value = number(groupCapture), let id = UInt16(exactly: value) else { return nil }
                group = id
            }
            explanation = explain(code: rc, group: group.map { SMPGroupID(rawValue: $0) }, operation: operation, smpVersion: message.smpVersion)
        case .capturedName(let capture):
            guard capture < captures.count, let name = captures[capture], let code = code(named: name) else { return nil }
            explanation = explain(
                code: code.rc, group: code.group.map { SMPGroupID(rawValue: $0) }, operation: operation, smpVersion: message.smpVersion)
        case .topic(let topic):
            explanation = assemble(
                subject: .log(topic.id), name: topic.name, meaning: topic.meaning, notes: [], translated: [],
                causes: topic.causes, extraSteps: topic.nextSteps, extraSources: topic.sources, operation: nil, smpVersion: nil)
        case .printed(let form):
            guard let printed = explain(printed: form, captures: captures, operation: operation, smpVersion: message.smpVersion)
            else { return nil }
            explanation = printed
        }
        guard explanation.isKnown else { return explanation }
        if let note = message.note { explanation.notes.insert(note, at: 0) }
        if !message.firstCauses.isEmpty {
            let first = explanation.causes.filter { message.firstCauses.contains($0.id) }
            explanation.causes = first + explanation.causes.filter { !message.firstCauses.contains($0.id) }
            let steps = explanation.causes.map(\.check)
            explanation.nextSteps = steps.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                + explanation.nextSteps.filter { !steps.contains($0) }
        }
        for id in message.sources where !explanation.sources.contains(where: { $0.id == id }) {
            if let source = sources[id] { explanation.sources.append(source) }
        }
        return explanation
    }

    // Where the printed forms come from (the tables and tool messages in knowledge.json cite each file):
    // - Android (no.nordicsemi.android.mcumgr): McuMgrErrorException.java prints "Mcu Mgr Error: " + McuMgrErrorCode
    //   ("NO_ENTRY (5)", McuMgrErrorCode.java toString), + the response's rc ("6"), or + a GroupReturnCode
    //   ("9 (group: 1)", response/HasReturnCode.java); the group enums are managers/*Manager.java ReturnCode; the app
    //   prints sample/src/main/res/values/strings_errors.xml ("No free slot (9)") through sample/.../StringUtils.java.
    // - iOS (iOSMcuManagerLibrary): McuManager.swift's McuMgrReturnCode and its description ("Bad state (RC: 6)"),
    //   McuManagerError ("Remote Error: ..."), McuMgrError.returnCode / .groupCode; the group errors are
    //   Managers/*Manager.swift (ImageManagerError, FileSystemManagerError, ...) with their errorDescription.
    /// Reads a code printed by name and/or number (``ToolTarget/printed(_:)``): the name is looked up in the form's
    /// tables; when a number is there too, it must be the name's number, or the finding says that they disagree and is
    /// not taken for either code. `nil` when the captures hold neither.
    func explain(printed form: PrintedForm, captures: [String?], operation: OperationKind? = nil, smpVersion: Int?) -> Explanation? {
        func text(_ index: Int) -> String? {
            guard index < captures.count, let value = captures[index], !value.isEmpty, value.utf8.count <= 120 else { return nil }
            return value
        }
        let numberText = form.numberCaptures.lazy.compactMap(text).first
        let number = numberText.flatMap { $0.utf8.count <= 6 ? Int($0) : nil }
        if numberText != nil, number == nil { return nil }
        let name = form.nameCaptures.lazy.compactMap(text).first
        var tableIDs = form.tables
        if let capture = form.tableCapture, let key = text(capture), let id = form.tableKeys[key] { tableIDs = [id] }
        let tables = tableIDs.compactMap { codeNameTables[$0] }
        func codeLabel(_ group: UInt16?, _ rc: Int) -> String {
            let entry = codes[CodeKey(group: group, rc: rc)]
            let table = group.map { SMPGroupID(rawValue: $0).name ?? "group \($0)" }.map { "\($0) rc" } ?? "rc"
            return "\(table) \(rc)\(entry.map { " \($0.name)" } ?? "")"
        }
        var resolved: (table: CodeNameTable, rc: Int)?
        if let name {
            let matches = tables.compactMap { table in table.names[name].map { (table, $0) } }
            // With a number, the table in which the name has that number wins (FLASH_OPEN_FAILED is 10 in the image
            // group and 2 in the basic group).
            resolved = matches.first { number == nil || $0.1 == number } ?? matches.first
            if resolved == nil, let code = code(named: name) {
                // A name as smpctl (and Zephyr) spells it, such as MGMT_ERR_EBADSTATE.
                if let number, number != code.rc {
                    return mismatch(name: name, number: number, table: "Zephyr's names", group: code.group, expected: code.rc, label: codeLabel)
                }
                return explain(code: code.rc, group: code.group.map { SMPGroupID(rawValue: $0) }, operation: operation, smpVersion: smpVersion)
            }
        }
        // Success printed as an error (Android's "Mcu Mgr Error: OK (0)") hides the real error: a message of its own says so.
        if resolved?.rc == 0 || (resolved == nil && number == 0) { return nil }
        switch (resolved, number) {
        case (let found?, let number?) where found.rc != number:
            return mismatch(name: name ?? "", number: number, table: found.table.title, group: found.table.group, expected: found.rc, label: codeLabel)
        case (let found?, _):
            var explanation = explain(
                code: found.rc, group: found.table.group.map { SMPGroupID(rawValue: $0) }, operation: operation, smpVersion: smpVersion)
            if explanation.isKnown, let name {
                explanation.notes.insert("\(found.table.title) \(name) is \(codeLabel(found.table.group, found.rc)).", at: 0)
            }
            for id in found.table.sources where !explanation.sources.contains(where: { $0.id == id }) {
                if let source = sources[id] { explanation.sources.append(source) }
            }
            return explanation
        case (nil, let number?):
            // The name is not one of the tables' (or there is none): the number alone, in the first table's group.
            var explanation = explain(
                code: number, group: tables.first?.group.map { SMPGroupID(rawValue: $0) }, operation: operation, smpVersion: smpVersion)
            if let name, explanation.isKnown {
                explanation.notes.insert("\"\(name.prefix(48))\" is not a name smpctl knows for this code; the number is explained.", at: 0)
            }
            return explanation
        case (nil, nil):
            guard let name else { return nil }
            return Explanation(
                subject: .log("name:\(name)"), name: "unknown code \(name.prefix(48))",
                meaning: "not a code name of \(tables.map(\.title).prefix(3).joined(separator: ", ")) that smpctl knows",
                isKnown: false, operation: nil, smpVersion: smpVersion, notes: [], possibleGroupCodes: [], causes: [], nextSteps: [],
                settings: [], sources: [])
        }
    }

    /// A printed name and number that are not the same code: neither is taken; both are said.
    private func mismatch(
        name: String, number: Int, table: String, group: UInt16?, expected: Int, label: (UInt16?, Int) -> String
    ) -> Explanation {
        let named = label(group, expected)
        let given = label(group, number)
        return Explanation(
            subject: .log("printed-mismatch:\(name):\(number)"), name: "\(name.prefix(48)) (\(number)): the name and the number disagree",
            meaning: "In \(table), \(name.prefix(48)) is \(expected) (\(named)), but the text gives \(number) (\(given)); smpctl does not guess which one the device sent.",
            isKnown: false, operation: nil, smpVersion: nil,
            notes: ["If the name is right: smpctl explain \(expected)\(group.map { " --group \($0)" } ?? ""). If the number is right: smpctl explain \(number)\(group.map { " --group \($0)" } ?? "")."],
            possibleGroupCodes: [], causes: [],
            nextSteps: ["Copy the line again from the tool's log, or repeat the command with smpctl, which prints the device's code and name together."],
            settings: [], sources: [])
    }

    /// Finds, in any pasted text (a line, several lines, a whole log), the MCUboot and mcumgr log lines, the
    /// messages other clients print, and the codes named as smpctl prints them, and explains each once, in the
    /// order they first appear.
    ///
    /// Reads at most ``maximumLogSize`` bytes and each line's first ``maximumLineLength`` characters; reports
    /// at most ``maximumFindings`` distinct findings and says how many more there were.
    public func explain(text: String) -> TextExplanation {
        var body = Substring(text)
        var ignored = 0
        let total = text.utf8.count
        if total > Self.maximumLogSize {
            let end = text.utf8.index(text.utf8.startIndex, offsetBy: Self.maximumLogSize)
            body = text[..<end]
            ignored = total - body.utf8.count
        }
        let logRegexes: [(LogPattern, NSRegularExpression, [[UInt8]]?)] = logPatterns.compactMap { pattern in
            (try? NSRegularExpression(pattern: pattern.pattern)).map { (pattern, $0, Self.requiredLiterals(pattern.pattern)) }
        }
        let toolRegexes: [(ToolMessage, NSRegularExpression, [[UInt8]]?)] = toolMessages.compactMap { message in
            (try? NSRegularExpression(pattern: message.pattern)).map { (message, $0, Self.requiredLiterals(message.pattern)) }
        }
        // A code name: upper-case words joined by underscores, such as IMG_MGMT_ERR_NO_FREE_SLOT.
        let nameRegex = try? NSRegularExpression(pattern: "\\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+){2,}\\b")
        let namePrefixes = Set(codes.values.compactMap { entry -> String? in
            guard let range = entry.name.range(of: "ERR_") else { return nil }
            return String(entry.name[..<range.upperBound])
        })

        var findings: [TextFinding] = []
        var index: [String: Int] = [:]
        var omitted = Set<String>()
        func record(_ key: String, line: Int, make: () -> TextFinding?) {
            if let at = index[key] {
                findings[at].occurrences += 1
                if findings[at].line != line, findings[at].repeatLines.last != line,
                    findings[at].repeatLines.count < Self.maximumRepeatLines
                {
                    findings[at].repeatLines.append(line)
                }
                return
            }
            guard findings.count < Self.maximumFindings else {
                omitted.insert(key)
                return
            }
            guard let finding = make() else { return }
            index[key] = findings.count
            findings.append(finding)
        }

        var lineCount = 0
        for rawLine in body.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineCount += 1
            let number = lineCount
            let line = String(rawLine.prefix(Self.maximumLineLength))
            guard !line.isEmpty else { continue }
            let range = NSRange(line.startIndex..., in: line)
            let bytes = Array(line.utf8)
            func mayMatch(_ literals: [[UInt8]]?) -> Bool {
                guard let literals else { return true }
                return literals.contains { Self.bytes(bytes, contain: $0) }
            }
            // What this line holds, by the column it starts at, so a line's findings keep their order.
            var hits: [(column: Int, key: String, make: () -> TextFinding?)] = []
            // A DFU state on the line (a failure in TEST) ranks the codes of the line for that step.
            let lineOperation = toolRegexes.first { message, regex, literal in
                message.operation != nil && mayMatch(literal) && regex.firstMatch(in: line, range: range) != nil
            }?.0.operation
            for (message, regex, literal) in toolRegexes {
                guard mayMatch(literal) else { continue }
                guard let match = regex.firstMatch(in: line, range: range), let matched = Range(match.range, in: line) else { continue }
                let captures: [String?] = (0..<match.numberOfRanges).map { group in
                    Range(match.range(at: group), in: line).map { String(line[$0]) }
                }
                guard let explanation = explain(toolMessage: message, captures: captures, operation: lineOperation) else { continue }
                let text = String(line[matched])
                hits.append((match.range.location, Self.key(explanation), {
                    TextFinding(
                        line: number, repeatLines: [], occurrences: 1, matchedText: text, kind: .toolMessage, patternID: message.id,
                        tool: message.tool, explanation: explanation)
                }))
            }
            for (pattern, regex, literal) in logRegexes {
                guard mayMatch(literal) else { continue }
                guard let match = regex.firstMatch(in: line, range: range), let matched = Range(match.range, in: line) else { continue }
                let topic = pattern.topic
                let text = String(line[matched])
                hits.append((match.range.location, "log:\(topic.id)", { [self] in
                    TextFinding(
                        line: number, repeatLines: [], occurrences: 1, matchedText: text, kind: .logLine, patternID: topic.id, tool: nil,
                        explanation: assemble(
                            subject: .log(topic.id), name: topic.name, meaning: topic.meaning, notes: [], translated: [],
                            causes: topic.causes, extraSteps: topic.nextSteps, extraSources: topic.sources, operation: nil, smpVersion: nil))
                }))
                break
            }
            // Every code name smpctl knows, and every prefix of an unknown one, has "ERR_" in it.
            if let nameRegex, Self.bytes(bytes, contain: Array("ERR_".utf8)) {
                for match in nameRegex.matches(in: line, range: range).prefix(16) {
                    guard let matched = Range(match.range, in: line) else { continue }
                    let word = String(line[matched])
                    let explanation: Explanation
                    if let code = codesByName[word] {
                        explanation = explain(code: code.rc, group: code.group.map { SMPGroupID(rawValue: $0) })
                    } else if namePrefixes.contains(where: { word.hasPrefix($0) && word.utf8.count > $0.utf8.count }) {
                        explanation = Explanation(
                            subject: .log("name:\(word)"), name: "unknown code \(word)", meaning: "not a code name smpctl knows",
                            isKnown: false, operation: nil, smpVersion: nil, notes: [], possibleGroupCodes: [], causes: [],
                            nextSteps: [], settings: [], sources: [])
                    } else {
                        continue
                    }
                    hits.append((match.range.location, Self.key(explanation), {
                        TextFinding(
                            line: number, repeatLines: [], occurrences: 1, matchedText: word, kind: .codeName, patternID: nil, tool: nil,
                            explanation: explanation)
                    }))
                }
            }
            var seenOnLine = Set<String>()
            for hit in hits.sorted(by: { $0.column < $1.column }) where seenOnLine.insert(hit.key).inserted {
                record(hit.key, line: number, make: hit.make)
            }
        }
        return TextExplanation(findings: findings, ignoredBytes: ignored, omittedFindings: omitted.count)
    }

    /// Whether `needle` occurs in `haystack`.
    static func bytes(_ haystack: [UInt8], contain needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard haystack.count >= needle.count else { return false }
        #if canImport(Glibc)
        // memchr finds each candidate first byte, memcmp checks the rest: fast even in a debug build.
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                guard let base = h.baseAddress, let first = n.first, let needleBase = n.baseAddress else { return false }
                let last = h.count - n.count
                var start = 0
                while start <= last {
                    guard let found = memchr(base + start, Int32(first), last - start + 1) else { return false }
                    let offset = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(found))
                    if memcmp(base + offset, needleBase, n.count) == 0 { return true }
                    start = offset + 1
                }
                return false
            }
        }
        #else
        return haystack.indices.dropLast(needle.count - 1).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
        #endif
    }

    /// Literals of which every match of `pattern` contains at least one (one per top-level alternative), so a
    /// line with none of them needs no regex; `nil` when that cannot be told (inline flags, an alternative
    /// without a run of 4 plain characters).
    static func requiredLiterals(_ pattern: String) -> [[UInt8]]? {
        guard !pattern.contains("(?") else { return nil }
        // Split at the `|` outside groups, classes and escapes.
        var alternatives: [String] = []
        var current = ""
        var depth = 0
        var inClass = false
        var escaped = false
        for character in pattern {
            if escaped {
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if inClass {
                if character == "]" { inClass = false }
            } else if character == "[" {
                inClass = true
            } else if character == "(" {
                depth += 1
            } else if character == ")" {
                depth -= 1
            } else if character == "|", depth == 0 {
                alternatives.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        alternatives.append(current)
        var literals: [[UInt8]] = []
        for alternative in alternatives {
            guard let literal = requiredLiteral(alternative) else { return nil }
            literals.append(Array(literal.utf8))
        }
        return literals
    }

    /// A run of characters that every match of `pattern` (without top-level alternation) contains.
    static func requiredLiteral(_ pattern: String) -> String? {
        // An alternation inside a group makes the group optional as a whole; groups are skipped below.
        var best = ""
        var run = ""
        func flush() {
            if run.count > best.count { best = run }
            run = ""
        }
        let characters = Array(pattern)
        var index = 0
        while index < characters.count {
            let character = characters[index]
            switch character {
            case "\\":
                guard index + 1 < characters.count else { return nil }
                let next = characters[index + 1]
                if next.isLetter || next.isNumber { flush() } else { run.append(next) }
                index += 2
                continue
            case "?", "*", "+", "{":
                // The character before a quantifier may be absent or repeated.
                if !run.isEmpty { run.removeLast() }
                flush()
                if character == "{" {
                    while index < characters.count, characters[index] != "}" { index += 1 }
                }
            case "(":
                flush()
                var depth = 0
                while index < characters.count {
                    if characters[index] == "\\" { index += 2; continue }
                    if characters[index] == "(" { depth += 1 }
                    if characters[index] == ")" { depth -= 1; if depth == 0 { break } }
                    index += 1
                }
            case "[":
                flush()
                index += 1
                if index < characters.count, characters[index] == "]" { index += 1 }
                while index < characters.count, characters[index] != "]" {
                    if characters[index] == "\\" { index += 1 }
                    index += 1
                }
            case ".", "^", "$", ")", "]", "}":
                flush()
            default:
                run.append(character)
            }
            index += 1
        }
        flush()
        return best.count >= 4 ? best : nil
    }

    /// Findings that explain the same thing are one: the same code, failure or topic.
    static func key(_ explanation: Explanation) -> String {
        switch explanation.subject {
        case .smp(let rc): "smp:\(rc)"
        case .group(let group, let rc): "group:\(group.rawValue):\(rc)"
        case .failure(let failure): "failure:\(failure.rawValue)"
        case .log(let id): "log:\(id)"
        }
    }
}
