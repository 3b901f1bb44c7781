public import SMPCtlDiagnosis
import SMPCtlProtocol
import SMPCtlTransport

extension SMPClientError {
    /// The error as facts Diagnosis explains (`Knowledge.explain(_:operation:)`): the client says what
    /// happened; which explanation fits is Diagnosis's judgement.
    public var failureFacts: FailureFacts {
        switch self {
        case .device(let deviceError):
            return .device(deviceError.codeTableError)
        case .timedOut(let group, let command, _, let malformed):
            return .timedOut(group: group, command: command, malformedAnswers: malformed)
        case .transport(let transportError):
            let link: FailureFacts.LinkFailure
            switch transportError.code {
            case .disconnected, .notConnected: link = .disconnected
            case .timedOut: link = .timedOut
            default: link = .other
            }
            return .transport(reason: transportError.reason, link: link)
        case .verificationFailed(let failure, _):
            switch failure {
            case .noAnswerAfterReset: return .verification(.noAnswerAfterReset)
            case .notRunningAfterReset: return .verification(.notRunningAfterReset)
            case .uploadNotListed: return .verification(.uploadNotListed)
            case .notConfirmed, .offsetBeyondSent, .dataMismatch, .contradictoryImageList, .imageTooLarge: return .verification(.other)
            }
        case .invalidInput(let text):
            return .invalidInput(text)
        case .refused(let refusal):
            return .invalidInput(refusal.message)
        case .malformedResponse, .stalled, .deviceLimit, .deadlineExceeded, .cancelled:
            return .other
        }
    }
}
