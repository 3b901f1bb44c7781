/// The operation in an SMP header (3 bits).
public enum SMPOperation: UInt8, Sendable, Hashable, CaseIterable {
    case read = 0
    case readResponse = 1
    case write = 2
    case writeResponse = 3

    /// The operation a response to this request carries.
    public var response: SMPOperation {
        switch self {
        case .read, .readResponse: return .readResponse
        case .write, .writeResponse: return .writeResponse
        }
    }

    /// Whether this is a response operation.
    public var isResponse: Bool { self == .readResponse || self == .writeResponse }
}

/// The SMP protocol version carried in header bits 4–3.
///
/// Only v1 (`0b00`) and v2 (`0b01`) are defined; the reserved values are kept so that a
/// server can answer them with "version too new".
public struct SMPVersion: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0b11 }

    /// The original (legacy) protocol: errors are a top-level `rc`.
    public static let v1 = SMPVersion(rawValue: 0)
    /// SMP version 2: group errors come as `err {group, rc}`.
    public static let v2 = SMPVersion(rawValue: 1)

    public static func < (a: SMPVersion, b: SMPVersion) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "v\(Int(rawValue) + 1)" }
}

/// An SMP management group ID. Open: application groups from 64 up are allowed.
public struct SMPGroupID: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt16) { rawValue = value }

    public static let os: SMPGroupID = 0
    public static let image: SMPGroupID = 1
    public static let stat: SMPGroupID = 2
    public static let settings: SMPGroupID = 3
    public static let log: SMPGroupID = 4
    public static let crash: SMPGroupID = 5
    public static let split: SMPGroupID = 6
    public static let run: SMPGroupID = 7
    public static let fs: SMPGroupID = 8
    public static let shell: SMPGroupID = 9
    public static let enumeration: SMPGroupID = 10
    public static let transport: SMPGroupID = 11
    public static let zephyrBasic: SMPGroupID = 63
    /// The first application-defined group.
    public static let perUser: SMPGroupID = 64

    /// The group's name, or `nil` for an unnamed group.
    public var name: String? {
        switch rawValue {
        case 0: "os"
        case 1: "image"
        case 2: "stat"
        case 3: "settings"
        case 4: "log"
        case 5: "crash"
        case 6: "split"
        case 7: "run"
        case 8: "fs"
        case 9: "shell"
        case 10: "enumeration"
        case 11: "transport"
        case 63: "zephyr-basic"
        default: nil
        }
    }

    /// Looks a group up by name or number ("image", "1").
    public init?(nameOrNumber text: String) {
        if let number = UInt16(text) {
            self.init(rawValue: number)
            return
        }
        let lowered = text.lowercased()
        for raw in UInt16(0)...63 where SMPGroupID(rawValue: raw).name == lowered {
            self.init(rawValue: raw)
            return
        }
        if lowered == "enum" || lowered == "basic" {
            self = lowered == "enum" ? .enumeration : .zephyrBasic
            return
        }
        return nil
    }

    public static func < (a: SMPGroupID, b: SMPGroupID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { name.map { "\($0) (\(rawValue))" } ?? "group \(rawValue)" }
}

/// The 8-byte SMP header. Multi-byte fields are big-endian on the wire.
public struct SMPHeader: Sendable, Hashable {
    /// Size of an encoded header in bytes.
    public static let size = 8

    public var operation: SMPOperation
    public var version: SMPVersion
    /// Header flags; none are defined, so 0 is sent.
    public var flags: UInt8
    /// Length of the CBOR body that follows the header.
    public var length: UInt16
    public var group: SMPGroupID
    public var sequence: UInt8
    public var command: UInt8

    public init(
        operation: SMPOperation,
        version: SMPVersion = .v2,
        flags: UInt8 = 0,
        length: UInt16,
        group: SMPGroupID,
        sequence: UInt8,
        command: UInt8
    ) {
        self.operation = operation
        self.version = version
        self.flags = flags
        self.length = length
        self.group = group
        self.sequence = sequence
        self.command = command
    }

    /// The 8 header bytes.
    public var bytes: [UInt8] {
        [
            version.rawValue << 3 | operation.rawValue,
            flags,
            UInt8(length >> 8), UInt8(length & 0xFF),
            UInt8(group.rawValue >> 8), UInt8(group.rawValue & 0xFF),
            sequence,
            command,
        ]
    }

    /// Writes the header over the first 8 bytes of `packet`, which must already have room for
    /// it; returns `false` (and writes nothing) when it has fewer.
    @discardableResult
    public func write(over packet: inout [UInt8]) -> Bool {
        guard packet.count >= Self.size else { return false }
        packet.withUnsafeMutableBufferPointer { out in
            out[0] = version.rawValue << 3 | operation.rawValue
            out[1] = flags
            out[2] = UInt8(length >> 8)
            out[3] = UInt8(length & 0xFF)
            out[4] = UInt8(group.rawValue >> 8)
            out[5] = UInt8(group.rawValue & 0xFF)
            out[6] = sequence
            out[7] = command
        }
        return true
    }

    /// Decodes the first 8 bytes of `bytes`.
    ///
    /// Reserved bits 7–5 of byte 0 are ignored, as Zephyr does.
    public init(decoding bytes: some Collection<UInt8>) throws(SMPDecodingError) {
        guard bytes.count >= Self.size else {
            throw SMPDecodingError(.truncatedHeader, "an SMP header is 8 bytes, got \(bytes.count)")
        }
        var b = [UInt8](repeating: 0, count: Self.size)
        var i = 0
        for byte in bytes.prefix(Self.size) {
            b[i] = byte
            i += 1
        }
        guard let operation = SMPOperation(rawValue: b[0] & 0b111) else {
            throw SMPDecodingError(.invalidOperation, "OP \(b[0] & 0b111) is not read, write or a response")
        }
        self.operation = operation
        self.version = SMPVersion(rawValue: (b[0] >> 3) & 0b11)
        self.flags = b[1]
        self.length = UInt16(b[2]) << 8 | UInt16(b[3])
        self.group = SMPGroupID(rawValue: UInt16(b[4]) << 8 | UInt16(b[5]))
        self.sequence = b[6]
        self.command = b[7]
    }
}
