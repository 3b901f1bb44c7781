import ArgumentParser
import Foundation
import SMPCtlFiles
import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlFleet
import SMPCtlProtocol

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain an SMP error code, a failure, or pasted text: a device log or another tool's error output (offline).",
        discussion: """
            CODE is an SMP return code (rc), or with --group a group error code (the err map of SMP v2). \
            The causes are ranked for the operation given with --op and the SMP version given with \
            --smp-version: the same number means different things in different places (rc 8 is \
            "not supported", image group rc 8 is "hash not found"). CODE may also be a code's name as smpctl prints it (IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE, \
            MGMT_ERR_ENOENT); an unknown code is reported as unknown and exits with status 1. CODE may also name a failure: \
            \(FailureKind.allCases.map(\.rawValue).joined(separator: ", ")). Anything else is taken as pasted \
            text (one line or many; - reads standard input): smpctl finds the MCUboot, Zephyr and NCS log \
            lines in it, the errors that Go mcumgr/newtmgr, smpclient/smpmgr, mcumgr-toolkit, nRF Connect \
            Device Manager and BlueZ/bluetoothctl print, and code names, and explains each once, in the \
            order they first appear; it exits with status 1 when it recognizes nothing or finds an \
            unknown code. With --log, \
            reads a console or boot log (a file, or - for standard input) the same way, but finding \
            nothing in it exits 0. At most 16 MiB of \
            text is read (the rest is ignored, and smpctl says so) and at most \(Knowledge.maximumFindings) \
            distinct findings are reported. --smp-version gives the SMP version of the failing exchange and \
            --json prints the explanation as JSON. Works offline: it takes no connection options.
            """)

    @Argument(help: ArgumentHelp("An SMP rc, a group code (with --group), a code name such as IMG_MGMT_ERR_HASH_NOT_FOUND, a failure name, pasted text, or - to read text from standard input.", valueName: "code|text"))
    var code: String?

    @Option(help: ArgumentHelp("The group of a group error code: a name (os, image, stat, settings, fs, shell, enumeration, zephyr-basic) or a number.", valueName: "name|id"))
    var group: String?

    @Option(name: .customLong("op"), help: ArgumentHelp("The operation that failed: \(OperationKind.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "operation"))
    var operation: String?

    @Option(help: ArgumentHelp("Explain the recognized lines of a console or boot log (- reads standard input).", valueName: "file"),
        completion: .file())
    var log: String?

    /// `--smp-version` (the version of the failing exchange) and `--json`; explain works offline,
    /// so it takes no connection options.
    @OptionGroup var version: SMPVersionOption
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if log == nil, code == nil { throw ValidationError("give a CODE to explain, or --log FILE") }
        if log != nil, code != nil { throw ValidationError("give either a CODE or --log, not both") }
        if let operation, OperationKind(rawValue: operation) == nil {
            throw ValidationError("--op must be one of \(OperationKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let group, SMPGroupID(nameOrNumber: group) == nil, !["enum", "basic"].contains(group.lowercased()) {
            throw ValidationError("unknown group \(group)")
        }
    }

    func run() throws {
        let output = Output(json: output.json)
        let knowledge: Knowledge
        do {
            knowledge = try Knowledge.load()
        } catch {
            output.fail(status: .failure, message: error.description)
            throw CommandFailure(status: .failure)
        }
        if let log {
            try explainText(path: log, knowledge: knowledge, output: output, failWhenEmpty: false)
            return
        }
        guard let code else { return }
        if code == "-" {
            try explainText(path: "-", knowledge: knowledge, output: output, failWhenEmpty: true)
            return
        }
        let op = operation.flatMap(OperationKind.init(rawValue:))
        let explanation: Explanation
        if let number = Int(code), number >= 0 {
            explanation = knowledge.explain(code: number, group: groupID, operation: op, smpVersion: version.smpVersion)
        } else if let named = knowledge.code(named: code) {
            // A code given by the name smpctl prints, e.g. IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE.
            explanation = knowledge.explain(
                code: named.rc, group: named.group.map { SMPGroupID(rawValue: $0) }, operation: op, smpVersion: version.smpVersion)
        } else if let failure = FailureKind(rawValue: code.lowercased()) {
            explanation = knowledge.explain(failure: failure, operation: op)
        } else if Self.looksLikeCodeName(code), !knowledge.explain(text: code).findings.contains(where: \.explanation.isKnown) {
            // Neither smpctl's name nor one of another tool's library (NO_FREE_SLOT, McuMgrErrorCode.BAD_STATE), which
            // the text path below explains.
            output.fail(
                status: .failure,
                message: "unknown code \(code.prefix(80)): not a code name smpctl knows (smpctl info --groups lists the groups; failure names are \(FailureKind.allCases.map(\.rawValue).joined(separator: ", ")))",
                fields: ["error": "unknown-code"])
            throw CommandFailure(status: .failure)
        } else {
            try explainText(text: code, origin: "the text given", knowledge: knowledge, output: output)
            return
        }
        guard explanation.isKnown else {
            // An unknown code is an answer, but not a success: say so and exit non-zero.
            output.fail(status: .failure, message: "\(explanation.name): \(explanation.meaning)", fields: ["error": "unknown-code"])
            throw CommandFailure(status: .failure)
        }
        output.document(["ok": true, "explanation": ExplanationFormat.json(explanation)])
        for line in ExplanationFormat.lines(explanation, causeLimit: nil, indent: "") { output.line(line) }
    }

    private var groupID: SMPGroupID? {
        guard let group else { return nil }
        switch group.lowercased() {
        case "enum": return .enumeration
        case "basic": return .zephyrBasic
        default: return SMPGroupID(nameOrNumber: group)
        }
    }

    /// One word of capitals, digits and underscores with at least two underscores (IMG_MGMT_ERR_X), or a
    /// word ending in _ERR_ something: a code name, not text.
    static func looksLikeCodeName(_ text: String) -> Bool {
        guard text.utf8.count <= 80, text.contains("_"), !text.contains(where: { $0.isWhitespace }) else { return false }
        let upper = text.uppercased()
        guard upper.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" }) else { return false }
        return upper.contains("ERR_") || upper.filter { $0 == "_" }.count >= 2
    }

    private func explainText(path: String, knowledge: Knowledge, output: Output, failWhenEmpty: Bool) throws {
        let data: Data
        let truncated: Bool
        do {
            (data, truncated) = try Self.readCapped(path == "-" ? FileHandle.standardInput : Self.openLog(path))
        } catch let error as RegularFileError {
            // A named file must be a regular file (a FIFO would block); `-` reads standard input.
            let hint = if case .notRegular = error.kind { " (give - to read standard input)" } else { "" }
            output.fail(status: .usage, message: error.description + hint, fields: ["error": "input"])
            throw CommandFailure(status: .usage)
        } catch {
            output.fail(status: .usage, message: "cannot read \(path): \(error.localizedDescription)", fields: ["error": "input"])
            throw CommandFailure(status: .usage)
        }
        try explainText(
            text: String(decoding: data, as: UTF8.self), origin: path == "-" ? "standard input" : path, knowledge: knowledge,
            output: output, inputTruncated: truncated, failWhenEmpty: failWhenEmpty)
    }

    /// Explains what `text` holds; exits 1 when it holds nothing smpctl recognizes (if `failWhenEmpty`) or an unknown code.
    private func explainText(
        text: String, origin: String, knowledge: Knowledge, output: Output, inputTruncated: Bool = false, failWhenEmpty: Bool = true
    ) throws {
        let result = knowledge.explain(text: text)
        let truncated = inputTruncated || result.ignoredBytes > 0
        let unknown = result.findings.filter { !$0.explanation.isKnown }
        let nothing = result.findings.isEmpty
        output.document([
            "ok": .bool(!(nothing && failWhenEmpty) && unknown.isEmpty),
            "truncated": .bool(truncated),
            "omitted_findings": .int(result.omittedFindings),
            "findings": .array(result.findings.map { finding in
                [
                    "line": .int(finding.line), "text": .string(finding.matchedText), "kind": .string(finding.kind.rawValue),
                    "pattern": finding.patternID.json, "tool": finding.tool.json, "occurrences": .int(finding.occurrences),
                    "repeat_lines": .array(finding.repeatLines.map(JSONValue.int)),
                    "explanation": ExplanationFormat.json(finding.explanation),
                ]
            }),
        ])
        if truncated {
            output.line("note: only the first \(Knowledge.maximumLogSize >> 20) MiB of \(origin) were read; the rest is ignored")
        }
        if nothing {
            let message = "no MCUboot or mcumgr line, client error or code name in \(origin) that smpctl recognizes"
            if failWhenEmpty {
                // In --json mode the document above is the answer (ok: false); one document, not two.
                if !output.json { output.fail(status: .failure, message: message) }
                throw CommandFailure(status: .failure)
            }
            output.line(message)
        }
        for (index, finding) in result.findings.enumerated() {
            if index > 0 { output.line("") }
            var head = "line \(finding.line): \(finding.matchedText.prefix(200))"
            if let tool = finding.tool { head += " [\(tool)]" }
            if !finding.repeatLines.isEmpty {
                let more = finding.occurrences - 1 - finding.repeatLines.count
                head += " (again on line\(finding.repeatLines.count > 1 ? "s" : "") \(finding.repeatLines.map(String.init).joined(separator: ", "))\(more > 0 ? " and \(more) more" : ""))"
            }
            output.line(head)
            for line in ExplanationFormat.lines(finding.explanation, causeLimit: 3, indent: "  ") { output.line(line) }
        }
        if result.omittedFindings > 0 {
            output.line("")
            output.line("note: \(result.omittedFindings) more distinct findings are not shown (at most \(Knowledge.maximumFindings))")
        }
        if !unknown.isEmpty {
            if !output.json {
                output.fail(
                    status: .failure, message: "unknown code\(unknown.count > 1 ? "s" : ""): \(unknown.prefix(5).map { $0.matchedText.prefix(40) }.joined(separator: ", "))")
            }
            throw CommandFailure(status: .failure)
        }
    }

    /// Reads at most ``Knowledge/maximumLogSize`` bytes.
    static func openLog(_ path: String) throws -> FileHandle {
        try RegularFile.open(path)
    }

    /// Reads at most ``Knowledge/maximumLogSize`` bytes, and says whether more followed.
    static func readCapped(_ handle: FileHandle) throws -> (Data, truncated: Bool) {
        var data = Data()
        while data.count < Knowledge.maximumLogSize {
            guard let chunk = try handle.read(upToCount: min(1 << 20, Knowledge.maximumLogSize - data.count)), !chunk.isEmpty
            else { return (data, false) }
            data.append(chunk)
        }
        let more = try handle.read(upToCount: 1) ?? Data()
        return (data, !more.isEmpty)
    }
}

/// Renders explanations for people and for `--json`.
enum ExplanationFormat {
    static func lines(_ explanation: Explanation, causeLimit: Int?, indent: String) -> [String] {
        var out: [String] = []
        var context: [String] = []
        if let operation = explanation.operation { context.append("during \(operation.rawValue)") }
        if let version = explanation.smpVersion { context.append("SMP v\(version)") }
        out.append("\(indent)\(explanation.label): \(explanation.meaning)\(context.isEmpty ? "" : " (\(context.joined(separator: ", ")))")")
        for note in explanation.notes { out.append("\(indent)note: \(note)") }
        let causes = causeLimit.map { Array(explanation.causes.prefix($0)) } ?? explanation.causes
        if !causes.isEmpty {
            out.append("\(indent)likely causes, most likely first:")
            for (index, cause) in causes.enumerated() {
                out.append("\(indent)  \(index + 1). \(cause.text)")
                if causeLimit == nil { out.append("\(indent)     check: \(cause.check)") }
            }
            if causes.count < explanation.causes.count {
                out.append("\(indent)  (\(explanation.causes.count - causes.count) more with smpctl explain)")
            }
        }
        if let first = explanation.nextSteps.first {
            if causeLimit == nil {
                out.append("\(indent)next steps:")
                for step in explanation.nextSteps { out.append("\(indent)  - \(step)") }
            } else {
                out.append("\(indent)next step: \(first)")
            }
        }
        if !explanation.settings.isEmpty {
            if causeLimit == nil {
                out.append("\(indent)firmware settings involved:")
                for setting in explanation.settings {
                    out.append("\(indent)  \(setting.name) (\(setting.kind), \(setting.image)): \(setting.note)")
                }
            } else {
                out.append("\(indent)settings: \(explanation.settings.prefix(6).map(\.name).joined(separator: ", "))")
            }
        }
        if causeLimit == nil, !explanation.sources.isEmpty {
            out.append("\(indent)sources:")
            for source in explanation.sources { out.append("\(indent)  \(source.title) <\(source.url)>") }
        }
        return out
    }

    static func json(_ explanation: Explanation) -> JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(explanation.name),
            "meaning": .string(explanation.meaning),
            "known": .bool(explanation.isKnown),
            "operation": explanation.operation.map { .string($0.rawValue) } ?? .null,
            "smp_version": explanation.smpVersion.json,
            "notes": .array(explanation.notes.map(JSONValue.string)),
            "causes": .array(explanation.causes.map { cause in
                [
                    "id": .string(cause.id), "text": .string(cause.text), "weight": .int(cause.weight),
                    "check": .string(cause.check), "settings": .array(cause.settings.map(JSONValue.string)),
                    "sources": .array(cause.sources.map(JSONValue.string)),
                ]
            }),
            "next_steps": .array(explanation.nextSteps.map(JSONValue.string)),
            "settings": .array(explanation.settings.map { setting in
                ["name": .string(setting.name), "kind": .string(setting.kind), "image": .string(setting.image), "note": .string(setting.note)]
            }),
            "sources": .array(explanation.sources.map { source in
                ["id": .string(source.id), "title": .string(source.title), "url": .string(source.url)]
            }),
            "possible_group_codes": .array(explanation.possibleGroupCodes.map { code in
                ["group": .int(Int(code.group.rawValue)), "rc": .int(code.rc), "name": .string(code.name)]
            }),
        ]
        switch explanation.subject {
        case .smp(let rc):
            object["kind"] = "smp"
            object["rc"] = .int(rc)
        case .group(let group, let rc):
            object["kind"] = "group"
            object["group"] = .int(Int(group.rawValue))
            object["rc"] = .int(rc)
        case .failure(let failure):
            object["kind"] = "failure"
            object["failure"] = .string(failure.rawValue)
        case .log(let id):
            object["kind"] = "log"
            object["pattern"] = .string(id)
        }
        return .object(object)
    }

    /// The knowledge base's explanation of a client failure, if it has one.
    /// With `facts` read from the device after the failure, a device error's causes are ranked by its state.
    static func explanation(for error: SMPClientError, operation: OperationKind?, facts: DeviceFacts? = nil) -> Explanation? {
        if let facts, case .device(let deviceError) = error, let knowledge = try? Knowledge.load() {
            return knowledge.explain(deviceError: deviceError.codeTableError, operation: operation, facts: facts)
        }
        return FleetDiagnosis.explanation(for: error, operation: operation)
    }
}
