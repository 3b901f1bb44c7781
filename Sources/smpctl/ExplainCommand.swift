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
        abstract: "Explain an SMP error code, a failure, or the MCUboot and mcumgr lines of a device log (offline).",
        discussion: """
            CODE is an SMP return code (rc), or with --group a group error code (the err map of SMP v2). \
            The causes are ranked for the operation given with --op and the SMP version given with \
            --smp-version: the same number means different things in different places (rc 8 is \
            "not supported", image group rc 8 is "hash not found"). CODE may also be a code's name as smpctl prints it (IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE, \
            MGMT_ERR_ENOENT); an unknown code is reported as unknown and exits with status 1. CODE may also name a failure: \
            \(FailureKind.allCases.map(\.rawValue).joined(separator: ", ")). With --log, reads a \
            console or boot log (a file, or - for standard input; at most 16 MiB) and explains each \
            line it recognizes. --smp-version gives the SMP version of the failing exchange and --json \
            prints the explanation as JSON. Works offline: it takes no connection options.
            """)

    @Argument(help: ArgumentHelp("An SMP rc, a group code (with --group), a code name such as IMG_MGMT_ERR_HASH_NOT_FOUND, or a failure name.", valueName: "code"))
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
            try explainLog(path: log, knowledge: knowledge, output: output)
            return
        }
        guard let code else { return }
        let op = operation.flatMap(OperationKind.init(rawValue:))
        let explanation: Explanation
        if let number = Int(code), number >= 0 {
            explanation = knowledge.explain(code: number, group: groupID, operation: op, smpVersion: version.smpVersion)
        } else if code.utf8.count <= 80, let named = knowledge.allCodes.first(where: { $0.name == code.uppercased() }) {
            // A code given by the name smpctl prints, e.g. IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE.
            explanation = knowledge.explain(
                code: named.rc, group: named.group.map { SMPGroupID(rawValue: $0) }, operation: op, smpVersion: version.smpVersion)
        } else if let failure = FailureKind(rawValue: code.lowercased()) {
            explanation = knowledge.explain(failure: failure, operation: op)
        } else {
            output.fail(status: .usage, message: "\(code) is neither a code number nor a failure name (\(FailureKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            throw CommandFailure(status: .usage)
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

    private func explainLog(path: String, knowledge: Knowledge, output: Output) throws {
        let data: Data
        do {
            data = try Self.readCapped(path == "-" ? FileHandle.standardInput : Self.openLog(path))
        } catch let error as RegularFileError {
            // A named file must be a regular file (a FIFO would block); `-` reads standard input.
            let hint = if case .notRegular = error.kind { " (give - to read standard input)" } else { "" }
            output.fail(status: .usage, message: error.description + hint, fields: ["error": "input"])
            throw CommandFailure(status: .usage)
        } catch {
            output.fail(status: .usage, message: "cannot read \(path): \(error.localizedDescription)", fields: ["error": "input"])
            throw CommandFailure(status: .usage)
        }
        let findings = knowledge.explain(log: String(decoding: data, as: UTF8.self))
        output.document([
            "ok": true,
            "findings": .array(findings.map { finding in
                [
                    "line": .int(finding.line), "text": .string(finding.matchedText), "pattern": .string(finding.patternID),
                    "explanation": ExplanationFormat.json(finding.explanation),
                ]
            }),
        ])
        if findings.isEmpty {
            output.line("no MCUboot or mcumgr line in \(path == "-" ? "standard input" : path) that smpctl recognizes")
        }
        for (index, finding) in findings.enumerated() {
            if index > 0 { output.line("") }
            output.line("line \(finding.line): \(finding.matchedText)")
            for line in ExplanationFormat.lines(finding.explanation, causeLimit: 3, indent: "  ") { output.line(line) }
        }
    }

    /// Reads at most ``Knowledge/maximumLogSize`` bytes.
    static func openLog(_ path: String) throws -> FileHandle {
        try RegularFile.open(path)
    }

    static func readCapped(_ handle: FileHandle) throws -> Data {
        var data = Data()
        while data.count < Knowledge.maximumLogSize {
            guard let chunk = try handle.read(upToCount: min(1 << 20, Knowledge.maximumLogSize - data.count)), !chunk.isEmpty
            else { break }
            data.append(chunk)
        }
        return data
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
    static func explanation(for error: SMPClientError, operation: OperationKind?) -> Explanation? {
        FleetDiagnosis.explanation(for: error, operation: operation)
    }
}
