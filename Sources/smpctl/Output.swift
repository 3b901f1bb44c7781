import Foundation
import Synchronization
import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlProtocol

/// Writes results for people or, with `--json`, for scripts.
struct Output: Sendable {
    let json: Bool

    /// Whether standard error is a terminal (progress bars go there).
    static let stderrIsTerminal = isatty(STDERR_FILENO) == 1

    static func diagnostic(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Prints a human line (not in JSON mode).
    func line(_ text: String) {
        guard !json else { return }
        print(text)
    }

    /// Prints the command's JSON document (in JSON mode).
    func document(_ value: JSONValue) {
        guard json else { return }
        print(value.text)
    }

    /// Writes a progress event: a JSON line on standard error in JSON mode.
    func event(_ value: JSONValue) {
        guard json else { return }
        Self.diagnostic(value.text)
    }

    /// Reports a failure that is not a device or transport error.
    func fail(status: ExitStatus, message: String, fields: [String: JSONValue] = [:]) {
        if json {
            var object = fields
            object["ok"] = false
            object["message"] = .string(message)
            object["exit_status"] = .int(Int(status.rawValue))
            print(JSONValue.object(object).text)
        } else {
            Self.diagnostic("smpctl: error: \(message)")
        }
    }

    /// Reports a client failure with the device's own code and name, and the knowledge base's
    /// explanation: what the code means in this operation, the likely causes and the next step.
    func report(_ error: SMPClientError, operation: OperationKind? = nil) {
        let status = ExitStatus(error)
        var fields: [String: JSONValue] = ["error": .string(Self.kind(error))]
        if case .device(let deviceError) = error {
            fields["device_error"] = Self.json(deviceError)
        }
        if case .verificationFailed(let failure, _) = error {
            fields["check"] = .string(failure.rawValue)
        }
        if case .timedOut(_, _, _, let malformed) = error {
            fields["malformed_answers"] = .int(malformed)
        }
        if case .cancelled = error {
            fail(status: status, message: Interruption.message, fields: fields)
            return
        }
        let explanation = ExplanationFormat.explanation(for: error, operation: operation)
        if let explanation { fields["explanation"] = ExplanationFormat.json(explanation) }
        fail(status: status, message: error.description, fields: fields)
        if !json, let explanation {
            for line in ExplanationFormat.lines(explanation, causeLimit: 3, indent: "  ") { Self.diagnostic(line) }
            Self.diagnostic("  more: \(Self.moreCommand(explanation))")
        }
    }

    /// The `smpctl explain` command that prints the full explanation.
    static func moreCommand(_ explanation: Explanation) -> String {
        var words = ["smpctl", "explain"]
        switch explanation.subject {
        case .smp(let rc): words.append(String(rc))
        case .group(let group, let rc): words += [String(rc), "--group", group.name ?? String(group.rawValue)]
        case .failure(let failure): words.append(failure.rawValue)
        case .log: break
        }
        if let operation = explanation.operation { words += ["--op", operation.rawValue] }
        if let version = explanation.smpVersion { words += ["--smp-version", String(version)] }
        return words.joined(separator: " ")
    }

    static func kind(_ error: SMPClientError) -> String {
        switch error {
        case .device: "device"
        case .malformedResponse: "malformed-response"
        case .transport: "transport"
        case .timedOut: "timeout"
        case .verificationFailed: "verification"
        case .invalidInput: "input"
        case .stalled: "stalled"
        case .deviceLimit: "device-limit"
        case .deadlineExceeded: "deadline"
        case .cancelled: "interrupted"
        }
    }

    static func json(_ error: SMPDeviceError) -> JSONValue {
        var object: [String: JSONValue] = [
            "smp_version": .int(Int(error.version.rawValue) + 1),
            "request_group": .int(Int(error.requestGroup.rawValue)),
            "command": .int(Int(error.command)),
            "rc": .int(error.rawCode),
            "name": error.entry.map { .string($0.name) } ?? .null,
            "meaning": error.entry.map { .string($0.meaning) } ?? .null,
            "reason": error.reason.json,
        ]
        switch error.kind {
        case .smp: object["kind"] = "smp"
        case .group(let group, _):
            object["kind"] = "group"
            object["group"] = .int(Int(group.rawValue))
        }
        return .object(object)
    }
}

/// Upload progress for people and scripts: a one-line bar on standard error (on a terminal), and
/// with `--json` an `upload` event; both at most ten times a second, plus the final one.
final class ProgressBar: Sendable {
    private let lastDraw = Mutex(-1.0)
    private let enabled: Bool
    private let label: String
    private let output: Output?

    init(label: String, enabled: Bool, output: Output? = nil) {
        self.label = label
        self.enabled = enabled
        self.output = output
    }

    func update(_ progress: UploadProgress) {
        Interruption.record(progress)
        guard enabled || output?.json == true else { return }
        let now = Date().timeIntervalSince1970
        let due = lastDraw.withLock { last in
            guard progress.offset == progress.total || now - last >= 0.1 else { return false }
            last = now
            return true
        }
        guard due else { return }
        output?.event(["event": "upload", "offset": .int(progress.offset), "total": .int(progress.total)])
        guard enabled else { return }
        let width = 30
        let fraction = progress.total > 0 ? Double(progress.offset) / Double(progress.total) : 1
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var text = "\r\(label) [\(bar)] \(Int(fraction * 100))% \(formatBytes(progress.offset))/\(formatBytes(progress.total)) \(formatBytes(Int(progress.rate)))/s"
        if let remaining = progress.remaining, progress.offset < progress.total {
            text += " ETA \(Int(remaining.rounded()))s"
        }
        text += "\u{1B}[K"  // clear what a longer earlier line left
        if progress.offset == progress.total { text += "\n" }
        FileHandle.standardError.write(Data(text.utf8))
    }
}

func formatBytes(_ count: Int) -> String {
    if count >= 1 << 20 { return String(format: "%.1f MiB", Double(count) / 1_048_576) }
    if count >= 1 << 10 { return String(format: "%.1f KiB", Double(count) / 1024) }
    return "\(count) B"
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// Parses a hex string such as an image hash.
func parseHex(_ text: String) -> [UInt8]? {
    let clean = text.lowercased().filter { !$0.isWhitespace && $0 != ":" }
    guard clean.count % 2 == 0, clean.count <= 256 else { return nil }
    var bytes: [UInt8] = []
    var index = clean.startIndex
    while index < clean.endIndex {
        let next = clean.index(index, offsetBy: 2)
        guard let byte = UInt8(clean[index..<next], radix: 16) else { return nil }
        bytes.append(byte)
        index = next
    }
    return bytes
}
