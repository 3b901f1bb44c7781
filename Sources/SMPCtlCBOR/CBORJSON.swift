/// JSON text to CBOR values and CBOR values to JSON or diagnostic text, bounded and typed.
///
/// JSON (RFC 8259) maps to CBOR as RFC 8949 §6.2 suggests: objects to maps with text keys,
/// arrays to arrays, strings to text, `true`/`false`/`null` to simple values, integers in the
/// 64-bit range to major types 0 and 1, other numbers to floats. JSON has no byte strings: a
/// string written `h'0a0b'` is taken as the bytes 0a 0b (CBOR diagnostic notation), so that
/// requests with byte fields can be written; every other string is text.
public enum CBORJSON {
    /// Why JSON text could not be read.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The byte offset in the text where reading stopped.
        public var offset: Int
        public var reason: String
        public init(offset: Int, reason: String) {
            self.offset = offset
            self.reason = reason
        }
        public var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    /// The longest text read (64 KiB: an SMP body is at most 65535 bytes).
    public static let maximumLength = 65_536
    /// The deepest nesting of arrays and objects.
    public static let maximumDepth = 16

    /// Reads one JSON value (surrounding whitespace allowed) as a CBOR value.
    public static func parse(_ text: String) throws(ParseError) -> CBORValue {
        let bytes = Array(text.utf8)
        guard bytes.count <= maximumLength else {
            throw ParseError(offset: maximumLength, reason: "longer than \(maximumLength) bytes")
        }
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw ParseError(offset: parser.position, reason: "text after the value") }
        return value
    }

    struct Parser {
        let bytes: [UInt8]
        var position = 0

        mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        func fail(_ reason: String) -> ParseError { ParseError(offset: position, reason: reason) }

        mutating func expect(_ literal: String) throws(ParseError) {
            for byte in literal.utf8 {
                guard position < bytes.count, bytes[position] == byte else { throw fail("expected \(literal)") }
                position += 1
            }
        }

        mutating func value(depth: Int) throws(ParseError) -> CBORValue {
            guard depth <= CBORJSON.maximumDepth else { throw fail("nested deeper than \(CBORJSON.maximumDepth)") }
            guard position < bytes.count else { throw fail("unexpected end") }
            switch bytes[position] {
            case UInt8(ascii: "{"):
                position += 1
                var map = CBORMap()
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                    position += 1
                    return .map(map)
                }
                while true {
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let key = try string()
                    guard map[key] == nil else { throw fail("duplicate key \"\(key)\"") }
                    skipWhitespace()
                    try expect(":")
                    skipWhitespace()
                    map.entries.append(CBORMap.Entry(key: .text(key), value: try value(depth: depth + 1)))
                    skipWhitespace()
                    guard position < bytes.count else { throw fail("unexpected end in an object") }
                    if bytes[position] == UInt8(ascii: ",") {
                        position += 1
                        continue
                    }
                    try expect("}")
                    return .map(map)
                }
            case UInt8(ascii: "["):
                position += 1
                var array: [CBORValue] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                    position += 1
                    return .array(array)
                }
                while true {
                    skipWhitespace()
                    array.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard position < bytes.count else { throw fail("unexpected end in an array") }
                    if bytes[position] == UInt8(ascii: ",") {
                        position += 1
                        continue
                    }
                    try expect("]")
                    return .array(array)
                }
            case UInt8(ascii: "\""):
                let text = try string()
                if let bytes = Self.diagnosticBytes(text) { return .bytes(bytes) }
                return .text(text)
            case UInt8(ascii: "t"):
                try expect("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try expect("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try expect("null")
                return .null
            default:
                return try number()
            }
        }

        /// `h'…'` with an even number of hex digits, as bytes.
        static func diagnosticBytes(_ text: String) -> [UInt8]? {
            let scalars = Array(text.utf8)
            guard scalars.count >= 3, scalars[0] == UInt8(ascii: "h"), scalars[1] == UInt8(ascii: "'"),
                scalars[scalars.count - 1] == UInt8(ascii: "'")
            else { return nil }
            let digits = scalars[2..<(scalars.count - 1)]
            guard digits.count % 2 == 0 else { return nil }
            var out: [UInt8] = []
            var high: UInt8?
            for digit in digits {
                guard let nibble = hexValue(digit) else { return nil }
                if let h = high {
                    out.append(h << 4 | nibble)
                    high = nil
                } else {
                    high = nibble
                }
            }
            return out
        }

        static func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }

        mutating func string() throws(ParseError) -> String {
            position += 1  // the opening quote
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() throws(ParseError) {
                guard !raw.isEmpty else { return }
                guard let text = String(validating: raw, as: UTF8.self) else { throw ParseError(offset: position, reason: "invalid UTF-8") }
                scalars.append(contentsOf: text.unicodeScalars)
                raw.removeAll()
            }
            while true {
                guard position < bytes.count else { throw fail("unterminated string") }
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    try flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    try flush()
                    guard position < bytes.count else { throw fail("unterminated escape") }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            try expect("\\u")
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                        scalars.append(scalar)
                    default: throw fail("invalid escape")
                    }
                case 0x00..<0x20:
                    throw fail("control character in a string")
                default:
                    raw.append(byte)
                }
            }
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard position < bytes.count, let nibble = Self.hexValue(bytes[position]) else { throw fail("expected 4 hex digits") }
                value = value << 4 | UInt32(nibble)
                position += 1
            }
            return value
        }

        mutating func number() throws(ParseError) -> CBORValue {
            let start = position
            var isInteger = true
            if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
            let digitsStart = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
            guard position > digitsStart else { throw ParseError(offset: start, reason: "expected a value") }
            if bytes[digitsStart] == UInt8(ascii: "0"), position - digitsStart > 1 { throw fail("leading zero") }
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                isInteger = false
                position += 1
                let fraction = position
                while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
                guard position > fraction else { throw fail("expected digits after the point") }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                isInteger = false
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
                let exponent = position
                while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
                guard position > exponent else { throw fail("expected exponent digits") }
            }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            if isInteger {
                if bytes[start] == UInt8(ascii: "-") {
                    // -1 - n for n in 0...UInt64.max: the magnitude less one must fit in 64 bits.
                    if let magnitude = UInt64(text.dropFirst()), magnitude >= 1 { return .negative(magnitude - 1) }
                    if text == "-0" { return .unsigned(0) }
                } else if let value = UInt64(text) {
                    return .unsigned(value)
                }
                throw ParseError(offset: start, reason: "integer \(text) is outside CBOR's 64-bit range")
            }
            guard let value = Double(text), value.isFinite else { throw ParseError(offset: start, reason: "number \(text) is not finite") }
            return .float(value)
        }
    }
}

extension CBORValue {
    /// The value in CBOR diagnostic notation (RFC 8949 §8): `{"off": 0, "data": h'0a0b'}`.
    public var diagnostic: String {
        switch self {
        case .unsigned(let u): return String(u)
        case .negative(let n): return n == UInt64.max ? "-18446744073709551616" : "-" + String(n + 1)
        case .bytes(let b):
            let digits: [Character] = Array("0123456789abcdef")
            var text = "h'"
            for byte in b {
                text.append(digits[Int(byte >> 4)])
                text.append(digits[Int(byte & 0xF)])
            }
            return text + "'"
        case .text(let t): return Self.quoted(t)
        case .array(let a): return "[" + a.map(\.diagnostic).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.entries.map { $0.key.diagnostic + ": " + $0.value.diagnostic }.joined(separator: ", ") + "}"
        case .tagged(let tag, let inner): return "\(tag)(\(inner.diagnostic))"
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .undefined: return "undefined"
        case .simple(let s): return "simple(\(s))"
        case .float(let d):
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
            return String(d)
        }
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
