// Which explanation fits a failed command, judged from facts about the failure. The client turns its
// error into these facts (`SMPClientError.failureFacts`), so Diagnosis needs neither the client nor a transport.

public import SMPCtlProtocol

/// What is known about a failed command, in the terms the knowledge base explains.
public enum FailureFacts: Sendable, Hashable {
    /// What became of the link, for a transport failure.
    public enum LinkFailure: Sendable, Hashable {
        /// The link dropped or was never up.
        case disconnected
        /// The transport itself gave up waiting.
        case timedOut
        case other
    }

    /// A check after the upload or the reset that failed.
    public enum Check: Sendable, Hashable {
        case noAnswerAfterReset, notRunningAfterReset, uploadNotListed, other
    }

    /// The device answered with an error (SMP v1 codes already read in the code table).
    case device(SMPDeviceError)
    /// No answer in time to a request of `group` and `command`; `malformedAnswers` came that could not be read.
    case timedOut(group: SMPGroupID, command: UInt8, malformedAnswers: Int)
    /// The transport failed: its reason, and what became of the link.
    case transport(reason: String, link: LinkFailure)
    /// A check of the device's state after the update failed.
    case verification(Check)
    /// The input (a file) was refused before anything was sent, with the refusal's text.
    case invalidInput(String)
    /// Anything else (a stall, a limit, a deadline, an interruption, a malformed answer).
    case other
}

extension Knowledge {
    /// The explanation of a failed command, if the knowledge base has one that fits.
    public func explain(_ failure: FailureFacts, operation: OperationKind? = nil) -> Explanation? {
        switch failure {
        case .device(let deviceError):
            return explain(deviceError: deviceError, operation: operation)
        case .timedOut(_, _, let malformed) where malformed > 0:
            // Something answered, so "nothing that speaks SMP" would mislead; the message says what came.
            return nil
        case .timedOut(let group, let command, _):
            let isUpload = group == .image && command == 1
            return explain(failure: isUpload ? .timeoutFirstChunk : .timeout, operation: operation ?? OperationKind(group: group, command: command))
        case .transport(let reason, let link):
            let reason = reason.lowercased()
            if reason.contains("authenticat") || reason.contains("encrypt") || reason.contains("not permitted") {
                return explain(failure: .authenticationRequired, operation: operation)
            }
            switch link {
            case .disconnected: return explain(failure: .disconnected, operation: operation)
            case .timedOut: return explain(failure: .timeout, operation: operation)
            case .other: return nil
            }
        case .verification(let check):
            switch check {
            case .noAnswerAfterReset: return explain(failure: .noReconnectAfterReset, operation: operation)
            case .notRunningAfterReset: return explain(failure: .reverted, operation: operation)
            case .uploadNotListed: return explain(failure: .uploadNotListed, operation: operation)
            case .other: return nil
            }
        case .invalidInput(let text):
            if text.contains("not a signed MCUboot image") || text.contains("has no hash TLV") {
                return explain(failure: .notSignedFile, operation: operation)
            }
            return nil
        case .other:
            return nil
        }
    }
}

extension Explanation {
    /// The `smpctl explain` command that prints this explanation in full.
    public var moreCommand: String {
        var words = ["smpctl", "explain"]
        switch subject {
        case .smp(let rc): words.append(String(rc))
        case .group(let group, let rc): words += [String(rc), "--group", group.name ?? String(group.rawValue)]
        case .failure(let failure): words.append(failure.rawValue)
        case .log: break
        }
        if let operation { words += ["--op", operation.rawValue] }
        if let smpVersion { words += ["--smp-version", String(smpVersion)] }
        return words.joined(separator: " ")
    }
}
