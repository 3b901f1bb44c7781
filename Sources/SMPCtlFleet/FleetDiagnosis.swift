// A client failure as a report entry: its kind, the device's code and name, and the knowledge
// base's explanation (what it means, the likely causes, the next step).

public import SMPCtlClient
public import SMPCtlDiagnosis
import SMPCtlProtocol
import SMPCtlTransport

public enum FleetDiagnosis {
    /// The knowledge base's explanation of a client failure, if it has one.
    public static func explanation(for error: SMPClientError, operation: OperationKind?) -> Explanation? {
        guard let knowledge = try? Knowledge.load() else { return nil }
        switch error {
        case .device(let deviceError):
            return knowledge.explain(deviceError: deviceError.codeTableError, operation: operation)
        case .timedOut(_, _, _, let malformed) where malformed > 0:
            // Something answered, so "nothing that speaks SMP" would mislead; the message says what came.
            return nil
        case .timedOut(let group, let command, _, _):
            let isUpload = group == .image && command == 1
            return knowledge.explain(failure: isUpload ? .timeoutFirstChunk : .timeout, operation: operation ?? OperationKind(group: group, command: command))
        case .transport(let transportError):
            let reason = transportError.reason.lowercased()
            if reason.contains("authenticat") || reason.contains("encrypt") || reason.contains("not permitted") {
                return knowledge.explain(failure: .authenticationRequired, operation: operation)
            }
            switch transportError.code {
            case .disconnected, .notConnected: return knowledge.explain(failure: .disconnected, operation: operation)
            case .timedOut: return knowledge.explain(failure: .timeout, operation: operation)
            default: return nil
            }
        case .verificationFailed(let failure, _):
            switch failure {
            case .noAnswerAfterReset: return knowledge.explain(failure: .noReconnectAfterReset, operation: operation)
            case .notRunningAfterReset: return knowledge.explain(failure: .reverted, operation: operation)
            case .uploadNotListed: return knowledge.explain(failure: .uploadNotListed, operation: operation)
            case .notConfirmed, .offsetBeyondSent, .dataMismatch, .contradictoryImageList, .imageTooLarge: return nil
            }
        case .invalidInput(let text):
            if text.contains("not a signed MCUboot image") || text.contains("has no hash TLV") {
                return knowledge.explain(failure: .notSignedFile, operation: operation)
            }
            return nil
        case .malformedResponse, .stalled, .deviceLimit, .deadlineExceeded, .cancelled:
            return nil
        }
    }

    /// The short name of an error's kind, as `--json` output uses it.
    public static func kind(_ error: SMPClientError) -> String {
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

    /// The `smpctl explain` command that prints an explanation in full.
    public static func moreCommand(_ explanation: Explanation) -> String {
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

    /// A failure as it goes into the journal and reports.
    public static func report(_ error: SMPClientError, operation: OperationKind? = nil) -> FleetFailureReport {
        var report = FleetFailureReport(kind: kind(error), message: error.description)
        if case .verificationFailed(let failure, _) = error { report.check = failure.rawValue }
        if case .device(let deviceError) = error {
            report.rc = deviceError.rawCode
            report.errorName = deviceError.entry?.name
            if case .group(let group, _) = deviceError.kind { report.group = Int(group.rawValue) }
        }
        if let explanation = explanation(for: error, operation: operation) {
            report.explanation = FleetExplanationReport(
                name: explanation.label, meaning: explanation.meaning, causes: explanation.causes.map(\.text),
                nextSteps: explanation.nextSteps, more: moreCommand(explanation))
        }
        return report
    }
}
