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
    /// No answer after every retry.
    case timedOut(group: SMPGroupID, command: UInt8, attempts: Int)
    /// The device's state after an operation is not what it should be.
    case verificationFailed(String)
    /// A file or argument the user gave cannot be used.
    case invalidInput(String)

    public var description: String {
        switch self {
        case .device(let error): error.description
        case .malformedResponse(let error): "the device sent a malformed response: \(error.description)"
        case .transport(let error): "transport failure: \(error.description)"
        case .timedOut(let group, let command, let attempts):
            "no response from the device to \(group.name ?? "group \(group.rawValue)") command \(command) after \(attempts) attempt\(attempts == 1 ? "" : "s")"
        case .verificationFailed(let text): "verification failed: \(text)"
        case .invalidInput(let text): text
        }
    }
}
