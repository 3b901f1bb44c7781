import Foundation
public import SMPCtlProtocol

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
