// A client failure as a report entry: its kind, the device's code and name, and the knowledge
// base's explanation (what it means, the likely causes, the next step).

public import SMPCtlClient
public import SMPCtlDiagnosis
import SMPCtlProtocol

public enum FleetDiagnosis {
    /// The knowledge base's explanation of a client failure, if it has one (judged in SMPCtlDiagnosis
    /// from the error's facts).
    public static func explanation(for error: SMPClientError, operation: OperationKind?) -> Explanation? {
        guard let knowledge = try? Knowledge.load() else { return nil }
        return knowledge.explain(error.failureFacts, operation: operation)
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
        case .refused(let refusal):
            switch refusal.reason {
            case .notAnImage: "input"
            case .imageTooLarge: "image-too-large"
            }
        }
    }

    /// The `smpctl explain` command that prints an explanation in full.
    public static func moreCommand(_ explanation: Explanation) -> String { explanation.moreCommand }

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
