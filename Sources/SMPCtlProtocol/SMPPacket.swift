/// One SMP message: a header and its body bytes (CBOR for groups 0–63).
public struct SMPPacket: Sendable, Hashable {
    /// The default bound on a body's length: the largest the 16-bit length field can say.
    public static let defaultMaxBodyLength = Int(UInt16.max)

    public var header: SMPHeader
    public var body: [UInt8]

    /// Creates a packet; the header's length is set from the body.
    public init(header: SMPHeader, body: [UInt8]) {
        var header = header
        header.length = UInt16(clamping: body.count)
        self.header = header
        self.body = body
    }

    /// The header followed by the body.
    public var bytes: [UInt8] {
        var out = header.bytes
        out.append(contentsOf: body)
        return out
    }

    /// Decodes one whole packet: exactly 8 + `length` bytes.
    ///
    /// - Parameter maxBodyLength: the largest body accepted; a larger `length` throws ``SMPDecodingError/Code/bodyTooLarge``.
    public init(decoding bytes: [UInt8], maxBodyLength: Int = SMPPacket.defaultMaxBodyLength) throws(SMPDecodingError) {
        let header = try SMPHeader(decoding: bytes)
        let length = Int(header.length)
        guard length <= maxBodyLength else {
            throw SMPDecodingError(.bodyTooLarge, "body of \(length) bytes exceeds the limit of \(maxBodyLength)")
        }
        let available = bytes.count - SMPHeader.size
        guard available == length else {
            throw SMPDecodingError(
                .lengthMismatch, "header says \(length) body bytes, \(available) follow the header")
        }
        self.header = header
        self.body = Array(bytes[SMPHeader.size...])
    }
}
