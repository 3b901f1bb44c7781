public import SMPCtlCBOR

/// A failure to decode SMP bytes: a header, a packet, a message body or a transport frame.
public struct SMPDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, as a stable code.
    public enum Code: String, Sendable, Hashable {
        /// Fewer than 8 header bytes.
        case truncatedHeader
        /// The header's length field disagrees with the bytes that follow it.
        case lengthMismatch
        /// The body is larger than the configured bound.
        case bodyTooLarge
        /// An OP value outside 0–3.
        case invalidOperation
        /// The body is not valid CBOR.
        case invalidCBOR
        /// The body is valid CBOR but not the shape the message needs.
        case unexpectedType
        /// A field the message needs is absent.
        case missingField
        /// A serial frame whose CRC does not match.
        case crcMismatch
        /// A serial frame whose base64 is malformed.
        case invalidBase64
        /// A serial packet whose length prefix is impossible.
        case invalidFrameLength
        /// A serial line longer than the decoder's bound; it was dropped.
        case lineTooLong
    }

    public var code: Code
    /// A human-readable explanation.
    public var reason: String
    /// The CBOR error behind an ``Code/invalidCBOR`` failure.
    public var cbor: CBORError?

    public init(_ code: Code, _ reason: String, cbor: CBORError? = nil) {
        self.code = code
        self.reason = reason
        self.cbor = cbor
    }

    public var description: String { "\(code.rawValue): \(reason)" }
}
