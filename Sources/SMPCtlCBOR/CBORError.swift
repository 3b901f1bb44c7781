/// A failure to decode CBOR, with where and why.
public struct CBORError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, as a stable code.
    public enum Code: String, Sendable, Hashable {
        /// The input ended inside a data item.
        case truncated
        /// Bytes remain after the single top-level item.
        case trailingBytes
        /// Reserved additional-information values 28–30, or an indefinite length where none is allowed.
        case invalidAdditionalInfo
        /// A break byte (0xFF) where no indefinite container is open.
        case unexpectedBreak
        /// An indefinite-length string contained a chunk of another type.
        case invalidChunk
        /// A text string that is not valid UTF-8.
        case invalidUTF8
        /// A length or count larger than the configured bound or than the remaining input.
        case lengthExceedsLimit
        /// Containers nested deeper than the configured bound.
        case nestingTooDeep
        /// A simple value encoded in two bytes with a value below 32 (RFC 8949 §3.3).
        case invalidSimpleValue
        /// A map holds two keys that are equal in the data model (RFC 8949 §5.6).
        case duplicateMapKey
    }

    public var code: Code
    /// Byte offset in the input where the problem was found.
    public var offset: Int
    /// A human-readable explanation.
    public var reason: String

    public init(_ code: Code, at offset: Int, _ reason: String) {
        self.code = code
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "CBOR \(code.rawValue) at byte \(offset): \(reason)" }
}
