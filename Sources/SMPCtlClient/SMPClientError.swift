public import SMPCtlProtocol
public import SMPCtlTransport

/// Why a client operation failed. Each case maps to one class of exit code in the CLI.
public enum SMPClientError: Error, Sendable, CustomStringConvertible {
    /// The device answered with an error code.
    case device(SMPDeviceError)
    /// The device's answer was not a valid response of the expected type.
    case malformedResponse(SMPDecodingError)
    /// The link failed.
    case transport(SMPTransportError)
    /// No usable answer after every retry. `malformedAnswers` counts the answers that came in
    /// meanwhile but were discarded (undecodable packets, bodies that are not CBOR, answers for
    /// another command): when it is above 0, something on the link answers, but not in valid SMP.
    case timedOut(group: SMPGroupID, command: UInt8, attempts: Int, malformedAnswers: Int = 0)
    /// The device's state after an operation is not what it should be: which check failed, and a sentence.
    case verificationFailed(VerificationFailure, String)
    /// A file or argument the user gave cannot be used.
    case invalidInput(String)
    /// The device answers but makes no progress (an upload offset that does not advance, goes
    /// back, or keeps restarting at 0): what it did.
    case stalled(String)
    /// The device's limits make the operation impossible (a buffer too small for any upload chunk).
    case deviceLimit(String)
    /// The overall deadline (`--deadline`) passed.
    case deadlineExceeded(Duration)
    /// The operation was interrupted (Ctrl-C, SIGTERM, task cancellation).
    case cancelled
    /// A workflow refused to upload before anything was sent (not an image, too large for the slot);
    /// `UploadOptions.force` overrides it.
    case refused(UploadRefusal)

    public var description: String {
        switch self {
        case .device(let error): error.description
        case .malformedResponse(let error): "the device sent a malformed response: \(error.description)"
        case .transport(let error): "transport failure: \(error.description)"
        case .timedOut(let group, let command, let attempts, let malformed) where malformed > 0:
            "no valid response from the device to \(group.name ?? "group \(group.rawValue)") command \(command) after \(attempts) attempt\(attempts == 1 ? "" : "s"): "
                + "it got \(malformed) undecodable or malformed answer\(malformed == 1 ? "" : "s") and discarded \(malformed == 1 ? "it" : "them"), "
                + "so something answers on this link but not with valid SMP responses (check the framing, the baud rate, the SMP version, and that no other program writes to the port)"
        case .timedOut(let group, let command, let attempts, _):
            "no response from the device to \(group.name ?? "group \(group.rawValue)") command \(command) after \(attempts) attempt\(attempts == 1 ? "" : "s")"
        case .verificationFailed(_, let text): "verification failed: \(text)"
        case .invalidInput(let text): text
        case .stalled(let text): "the device makes no progress: \(text)"
        case .deviceLimit(let text): text
        case .deadlineExceeded(let limit): "the operation did not finish within its deadline of \(limit)"
        case .cancelled: "interrupted"
        case .refused(let refusal): refusal.message
        }
    }
}

/// Which check on the device's state failed.
public enum VerificationFailure: String, Sendable, Hashable {
    /// After the upload the device does not list the image's hash.
    case uploadNotListed = "upload-not-listed"
    /// The device came back from the reset without the new image running (no swap, or a revert).
    case notRunningAfterReset = "not-running-after-reset"
    /// The image is not shown as confirmed after confirming it.
    case notConfirmed = "not-confirmed"
    /// The device did not answer again after the reset.
    case noAnswerAfterReset = "no-answer-after-reset"
    /// The device keeps reporting upload offsets beyond the data sent.
    case offsetBeyondSent = "offset-beyond-sent"
    /// The device reports that the uploaded data does not match the file's SHA-256.
    case dataMismatch = "data-mismatch"
    /// An image is larger than its slot on the device (checked before anything is uploaded).
    case imageTooLarge = "image-too-large"
    /// The device's image list contradicts itself (the same slot twice, a malformed hash, impossible flags).
    case contradictoryImageList = "contradictory-image-list"
}
