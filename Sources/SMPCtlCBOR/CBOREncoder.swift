/// Encodes CBOR in shortest form: the smallest integer width for every argument,
/// definite lengths, and the narrowest float that keeps the value exactly.
public struct CBOREncoder: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    public init(reservingCapacity capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// An encoder whose output starts with `count` zero bytes, room for a header that the caller
    /// writes later, so that header and CBOR end up in one buffer without another copy.
    public init(leadingSpace count: Int, reservingCapacity capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(max(0, count) + max(0, capacity))
        bytes.append(contentsOf: repeatElement(0, count: max(0, count)))
    }

    /// Encodes one value and returns its bytes.
    public static func encode(_ value: CBORValue) -> [UInt8] {
        var encoder = CBOREncoder()
        encoder.append(value)
        return encoder.bytes
    }

    /// The number of bytes of an item head (initial byte plus argument) for `argument`.
    public static func headLength(_ argument: UInt64) -> Int {
        switch argument {
        case 0..<24: return 1
        case 24...0xFF: return 2
        case 0x100...0xFFFF: return 3
        case 0x1_0000...0xFFFF_FFFF: return 5
        default: return 9
        }
    }

    /// Appends an item head: major type and argument in shortest form.
    public mutating func appendHead(major: UInt8, argument: UInt64) {
        let m = major << 5
        switch argument {
        case 0..<24:
            bytes.append(m | UInt8(argument))
        case 24...0xFF:
            bytes.append(m | 24)
            bytes.append(UInt8(argument))
        case 0x100...0xFFFF:
            bytes.append(m | 25)
            appendBigEndian(argument, count: 2)
        case 0x1_0000...0xFFFF_FFFF:
            bytes.append(m | 26)
            appendBigEndian(argument, count: 4)
        default:
            bytes.append(m | 27)
            appendBigEndian(argument, count: 8)
        }
    }

    private mutating func appendBigEndian(_ value: UInt64, count: Int) {
        for shift in stride(from: (count - 1) * 8, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    /// Appends a text string.
    public mutating func appendText(_ text: String) {
        let utf8 = text.utf8
        appendHead(major: 3, argument: UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// Appends a byte string.
    public mutating func appendBytes(_ data: some Collection<UInt8>) {
        appendHead(major: 2, argument: UInt64(data.count))
        bytes.append(contentsOf: data)
    }

    /// Appends a value.
    public mutating func append(_ value: CBORValue) {
        switch value {
        case .unsigned(let u): appendHead(major: 0, argument: u)
        case .negative(let n): appendHead(major: 1, argument: n)
        case .bytes(let b): appendBytes(b)
        case .text(let s): appendText(s)
        case .array(let elements):
            appendHead(major: 4, argument: UInt64(elements.count))
            for element in elements { append(element) }
        case .map(let map):
            appendHead(major: 5, argument: UInt64(map.entries.count))
            for entry in map.entries {
                append(entry.key)
                append(entry.value)
            }
        case .tagged(let tag, let inner):
            appendHead(major: 6, argument: tag)
            append(inner)
        case .bool(let b): bytes.append(b ? 0xF5 : 0xF4)
        case .null: bytes.append(0xF6)
        case .undefined: bytes.append(0xF7)
        case .simple(let v):
            if v < 24 {
                bytes.append(0xE0 | v)
            } else {
                bytes.append(0xF8)
                bytes.append(v)
            }
        case .float(let d): appendFloat(d)
        }
    }

    /// Appends a float in the narrowest IEEE 754 width that represents it exactly.
    public mutating func appendFloat(_ value: Double) {
        if value.isNaN {
            bytes.append(contentsOf: [0xF9, 0x7E, 0x00])
        } else if let half = Self.halfBits(exactly: value) {
            bytes.append(0xF9)
            appendBigEndian(UInt64(half), count: 2)
        } else if let single = Float(exactly: value) {
            bytes.append(0xFA)
            appendBigEndian(UInt64(single.bitPattern), count: 4)
        } else {
            bytes.append(0xFB)
            appendBigEndian(value.bitPattern, count: 8)
        }
    }

    /// The binary16 bits of `value` when it converts to half precision without loss.
    static func halfBits(exactly value: Double) -> UInt16? {
        if value.isInfinite { return value < 0 ? 0xFC00 : 0x7C00 }
        if value == 0 { return value.sign == .minus ? 0x8000 : 0 }
        let sign: UInt16 = value.sign == .minus ? 0x8000 : 0
        let magnitude = value.magnitude
        let exponent = magnitude.exponent
        if exponent < -24 || exponent > 15 { return nil }
        if exponent < -14 {
            // Subnormal half: magnitude must be a whole multiple of 2^-24 below 2^-14.
            let scaled = magnitude * 0x1p24
            guard scaled == scaled.rounded(), scaled < 1024 else { return nil }
            return sign | UInt16(scaled)
        }
        // Normal half: 10 fraction bits.
        let significand = magnitude.significand  // in [1, 2)
        let fraction = (significand - 1) * 1024
        guard fraction == fraction.rounded() else { return nil }
        return sign | UInt16(exponent + 15) << 10 | UInt16(fraction)
    }
}
