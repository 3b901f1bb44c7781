import Testing
import SMPCtlCBOR

/// Hex helpers local to the CBOR test target.
extension Array where Element == UInt8 {
    init(hexString: String) {
        var bytes: [UInt8] = []
        var index = hexString.startIndex
        while index < hexString.endIndex, let next = hexString.index(index, offsetBy: 2, limitedBy: hexString.endIndex) {
            bytes.append(UInt8(hexString[index..<next], radix: 16)!)
            index = next
        }
        self = bytes
    }

    var hexString: String {
        let digits = [Character]("0123456789abcdef")
        return String(flatMap { (byte: UInt8) -> [Character] in [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]] })
    }
}

/// One example of RFC 8949 Appendix A (Table 6).
struct RFCExample: Sendable, CustomStringConvertible {
    /// The RFC's diagnostic notation, for test names.
    let diagnostic: String
    let hex: String
    let value: CBORValue
    /// Whether the encoding is the preferred (shortest, definite-length) serialization,
    /// so that encoding `value` must give back `hex` exactly.
    let preferred: Bool

    init(_ diagnostic: String, _ hex: String, _ value: CBORValue, preferred: Bool = true) {
        self.diagnostic = diagnostic
        self.hex = hex
        self.value = value
        self.preferred = preferred
    }

    var description: String { "\(diagnostic) = \(hex)" }
}

private func text(_ s: String) -> CBORValue { .text(s) }
private func bytes(_ hex: String) -> CBORValue { .bytes([UInt8](hexString: hex)) }

enum RFC8949 {
    static let integers: [RFCExample] = [
        RFCExample("0", "00", .unsigned(0)),
        RFCExample("1", "01", .unsigned(1)),
        RFCExample("10", "0a", .unsigned(10)),
        RFCExample("23", "17", .unsigned(23)),
        RFCExample("24", "1818", .unsigned(24)),
        RFCExample("25", "1819", .unsigned(25)),
        RFCExample("100", "1864", .unsigned(100)),
        RFCExample("1000", "1903e8", .unsigned(1000)),
        RFCExample("1000000", "1a000f4240", .unsigned(1_000_000)),
        RFCExample("1000000000000", "1b000000e8d4a51000", .unsigned(1_000_000_000_000)),
        RFCExample("18446744073709551615", "1bffffffffffffffff", .unsigned(UInt64.max)),
        RFCExample("18446744073709551616", "c249010000000000000000", .tagged(2, bytes("010000000000000000"))),
        RFCExample("-18446744073709551616", "3bffffffffffffffff", .negative(UInt64.max)),
        RFCExample("-18446744073709551617", "c349010000000000000000", .tagged(3, bytes("010000000000000000"))),
        RFCExample("-1", "20", .negative(0)),
        RFCExample("-10", "29", .negative(9)),
        RFCExample("-100", "3863", .negative(99)),
        RFCExample("-1000", "3903e7", .negative(999)),
    ]

    static let floats: [RFCExample] = [
        RFCExample("0.0", "f90000", .float(0.0)),
        RFCExample("-0.0", "f98000", .float(-0.0)),
        RFCExample("1.0", "f93c00", .float(1.0)),
        RFCExample("1.1", "fb3ff199999999999a", .float(1.1)),
        RFCExample("1.5", "f93e00", .float(1.5)),
        RFCExample("65504.0", "f97bff", .float(65504.0)),
        RFCExample("100000.0", "fa47c35000", .float(100_000.0)),
        RFCExample("3.4028234663852886e+38", "fa7f7fffff", .float(3.4028234663852886e+38)),
        RFCExample("1.0e+300", "fb7e37e43c8800759c", .float(1.0e+300)),
        RFCExample("5.960464477539063e-8", "f90001", .float(5.960464477539063e-8)),
        RFCExample("0.00006103515625", "f90400", .float(0.00006103515625)),
        RFCExample("-4.0", "f9c400", .float(-4.0)),
        RFCExample("-4.1", "fbc010666666666666", .float(-4.1)),
        RFCExample("Infinity", "f97c00", .float(.infinity)),
        RFCExample("-Infinity", "f9fc00", .float(-.infinity)),
        RFCExample("Infinity (single)", "fa7f800000", .float(.infinity), preferred: false),
        RFCExample("-Infinity (single)", "faff800000", .float(-.infinity), preferred: false),
        RFCExample("Infinity (double)", "fb7ff0000000000000", .float(.infinity), preferred: false),
        RFCExample("-Infinity (double)", "fbfff0000000000000", .float(-.infinity), preferred: false),
    ]

    static let simple: [RFCExample] = [
        RFCExample("false", "f4", .bool(false)),
        RFCExample("true", "f5", .bool(true)),
        RFCExample("null", "f6", .null),
        RFCExample("undefined", "f7", .undefined),
        RFCExample("simple(16)", "f0", .simple(16)),
        RFCExample("simple(255)", "f8ff", .simple(255)),
    ]

    static let tags: [RFCExample] = [
        RFCExample(
            "0(\"2013-03-21T20:04:00Z\")", "c074323031332d30332d32315432303a30343a30305a",
            .tagged(0, text("2013-03-21T20:04:00Z"))),
        RFCExample("1(1363896240)", "c11a514b67b0", .tagged(1, .unsigned(1_363_896_240))),
        RFCExample("1(1363896240.5)", "c1fb41d452d9ec200000", .tagged(1, .float(1_363_896_240.5))),
        RFCExample("23(h'01020304')", "d74401020304", .tagged(23, bytes("01020304"))),
        RFCExample("24(h'6449455446')", "d818456449455446", .tagged(24, bytes("6449455446"))),
        RFCExample(
            "32(\"http://www.example.com\")", "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
            .tagged(32, text("http://www.example.com"))),
    ]

    static let strings: [RFCExample] = [
        RFCExample("h''", "40", .bytes([])),
        RFCExample("h'01020304'", "4401020304", bytes("01020304")),
        RFCExample("\"\"", "60", text("")),
        RFCExample("\"a\"", "6161", text("a")),
        RFCExample("\"IETF\"", "6449455446", text("IETF")),
        RFCExample("\"\\\"\\\\\"", "62225c", text("\"\\")),
        RFCExample("\"\\u00fc\"", "62c3bc", text("\u{00fc}")),
        RFCExample("\"\\u6c34\"", "63e6b0b4", text("\u{6c34}")),
        RFCExample("\"\\ud800\\udd51\"", "64f0908591", text("\u{10151}")),
    ]

    static let oneToTwentyFive: CBORValue = .array((1...25).map { CBORValue.unsigned(UInt64($0)) })

    static let containers: [RFCExample] = [
        RFCExample("[]", "80", .array([])),
        RFCExample("[1, 2, 3]", "83010203", [1, 2, 3]),
        RFCExample("[1, [2, 3], [4, 5]]", "8301820203820405", [1, [2, 3], [4, 5]]),
        RFCExample("[1, ..., 25]", "98190102030405060708090a0b0c0d0e0f101112131415161718181819", oneToTwentyFive),
        RFCExample("{}", "a0", .map(CBORMap())),
        RFCExample(
            "{1: 2, 3: 4}", "a201020304",
            .map(CBORMap([.init(key: 1, value: 2), .init(key: 3, value: 4)]))),
        RFCExample("{\"a\": 1, \"b\": [2, 3]}", "a26161016162820203", ["a": 1, "b": [2, 3]]),
        RFCExample("[\"a\", {\"b\": \"c\"}]", "826161a161626163", ["a", ["b": "c"]]),
        RFCExample(
            "{\"a\": \"A\", ..., \"e\": \"E\"}", "a56161614161626142616361436164614461656145",
            ["a": "A", "b": "B", "c": "C", "d": "D", "e": "E"]),
    ]

    /// Indefinite-length examples; `value` is what they decode to, and the second hex is the
    /// definite encoding the encoder must produce for it.
    static let indefinite: [(RFCExample, String)] = [
        (RFCExample("(_ h'0102', h'030405')", "5f42010243030405ff", bytes("0102030405"), preferred: false),
         "450102030405"),
        (RFCExample("(_ \"strea\", \"ming\")", "7f657374726561646d696e67ff", text("streaming"), preferred: false),
         "6973747265616d696e67"),
        (RFCExample("[_ ]", "9fff", .array([]), preferred: false), "80"),
        (RFCExample("[_ 1, [2, 3], [_ 4, 5]]", "9f018202039f0405ffff", [1, [2, 3], [4, 5]], preferred: false),
         "8301820203820405"),
        (RFCExample("[_ 1, [2, 3], [4, 5]]", "9f01820203820405ff", [1, [2, 3], [4, 5]], preferred: false),
         "8301820203820405"),
        (RFCExample("[1, [2, 3], [_ 4, 5]]", "83018202039f0405ff", [1, [2, 3], [4, 5]], preferred: false),
         "8301820203820405"),
        (RFCExample("[1, [_ 2, 3], [4, 5]]", "83019f0203ff820405", [1, [2, 3], [4, 5]], preferred: false),
         "8301820203820405"),
        (RFCExample(
            "[_ 1, ..., 25]", "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", oneToTwentyFive,
            preferred: false),
         "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
        (RFCExample("{_ \"a\": 1, \"b\": [_ 2, 3]}", "bf61610161629f0203ffff", ["a": 1, "b": [2, 3]], preferred: false),
         "a26161016162820203"),
        (RFCExample("[\"a\", {_ \"b\": \"c\"}]", "826161bf61626163ff", ["a", ["b": "c"]], preferred: false),
         "826161a161626163"),
        (RFCExample("{_ \"Fun\": true, \"Amt\": -2}", "bf6346756ef563416d7421ff", ["Fun": true, "Amt": -2], preferred: false),
         "a26346756ef563416d7421"),
    ]

    static let all: [RFCExample] = integers + floats + simple + tags + strings + containers + indefinite.map(\.0)
}

/// Compares decoded values, treating floats bit-for-bit in sign (so -0.0 is not 0.0).
func sameValue(_ a: CBORValue, _ b: CBORValue) -> Bool {
    switch (a, b) {
    case (.float(let x), .float(let y)):
        if x.isNaN || y.isNaN { return x.isNaN && y.isNaN }
        return x == y && x.sign == y.sign
    case (.array(let x), .array(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { sameValue($0, $1) }
    case (.map(let x), .map(let y)):
        return x.count == y.count
            && zip(x.entries, y.entries).allSatisfy { sameValue($0.key, $1.key) && sameValue($0.value, $1.value) }
    case (.tagged(let t, let x), .tagged(let u, let y)):
        return t == u && sameValue(x, y)
    default:
        return a == b
    }
}

@Suite("RFC 8949 Appendix A")
struct RFC8949Tests {
    @Test("decodes to the expected value", arguments: RFC8949.all)
    func decodes(_ example: RFCExample) throws {
        let decoded = try CBORDecoder().decode([UInt8](hexString: example.hex))
        #expect(sameValue(decoded, example.value), "decoded \(decoded)")
    }

    @Test("preferred serialization re-encodes byte for byte",
          arguments: RFC8949.all.filter(\.preferred))
    func encodesPreferred(_ example: RFCExample) {
        #expect(CBOREncoder.encode(example.value).hexString == example.hex)
    }

    @Test("indefinite-length items encode to their definite form", arguments: RFC8949.indefinite)
    func indefiniteToDefinite(_ example: RFCExample, _ definite: String) throws {
        let decoded = try CBORDecoder().decode([UInt8](hexString: example.hex))
        #expect(CBOREncoder.encode(decoded).hexString == definite)
        // The definite form decodes to the same value.
        #expect(try CBORDecoder().decode([UInt8](hexString: definite)) == decoded)
    }

    @Test("non-preferred float widths shrink to half precision",
          arguments: [("fa7f800000", "f97c00"), ("faff800000", "f9fc00"),
                       ("fb7ff0000000000000", "f97c00"), ("fbfff0000000000000", "f9fc00"),
                       ("fa3f800000", "f93c00"), ("fb3ff0000000000000", "f93c00"),
                       ("fa47c35000", "fa47c35000"), ("fb40f86a0000000000", "fa47c35000")])
    func floatShrinks(_ input: String, _ preferred: String) throws {
        let decoded = try CBORDecoder().decode([UInt8](hexString: input))
        #expect(CBOREncoder.encode(decoded).hexString == preferred)
    }

    @Test("NaN in half, single and double precision", arguments: ["f97e00", "fa7fc00000", "fb7ff8000000000000"])
    func nan(_ hex: String) throws {
        let decoded = try CBORDecoder().decode([UInt8](hexString: hex))
        guard case .float(let d) = decoded else {
            Issue.record("expected a float, got \(decoded)")
            return
        }
        #expect(d.isNaN)
        // Preferred serialization of NaN is the half-precision quiet NaN.
        #expect(CBOREncoder.encode(decoded).hexString == "f97e00")
    }

    @Test("negative zero keeps its sign")
    func negativeZero() throws {
        let decoded = try CBORDecoder().decode([0xF9, 0x80, 0x00])
        guard case .float(let d) = decoded else {
            Issue.record("expected a float, got \(decoded)")
            return
        }
        #expect(d == 0)
        #expect(d.sign == .minus)
        #expect(CBOREncoder.encode(.float(-0.0)) == [0xF9, 0x80, 0x00])
        #expect(CBOREncoder.encode(.float(0.0)) == [0xF9, 0x00, 0x00])
    }

    @Test("tags are dropped with .skip", arguments: RFC8949.tags)
    func tagsSkipped(_ example: RFCExample) throws {
        let decoded = try CBORDecoder(tagHandling: .skip).decode([UInt8](hexString: example.hex))
        guard case .tagged(_, let inner) = example.value else {
            Issue.record("example is not tagged")
            return
        }
        #expect(sameValue(decoded, inner))
        #expect(decoded.untagged == decoded)
    }

    @Test("nested tags are all skipped or all kept")
    func nestedTags() throws {
        // 1(2(3("x")))
        let input: [UInt8] = [0xC1, 0xC2, 0xC3, 0x61, 0x78]
        #expect(try CBORDecoder(tagHandling: .skip).decode(input) == "x")
        let kept = try CBORDecoder().decode(input)
        #expect(kept == .tagged(1, .tagged(2, .tagged(3, "x"))))
        #expect(kept.untagged == "x")
        #expect(CBOREncoder.encode(kept) == input)
    }

    @Test("integer accessors across the 64-bit range")
    func integerAccessors() {
        #expect(CBORValue.unsigned(UInt64.max).int64 == nil)
        #expect(CBORValue.unsigned(UInt64.max).uint64 == UInt64.max)
        #expect(CBORValue.negative(UInt64.max).int64 == nil)
        #expect(CBORValue.negative(UInt64(Int64.max)).int64 == Int64.min)
        #expect(CBORValue.int(Int64.min) == .negative(UInt64(Int64.max)))
        #expect(CBORValue.int(-1) == .negative(0))
        #expect(CBORValue.int(Int64.max) == .unsigned(UInt64(Int64.max)))
        #expect(CBOREncoder.encode(.int(Int64.min)).hexString == "3b7fffffffffffffff")
    }

    @Test("head lengths match the encoder at every width boundary",
          arguments: [UInt64(0), 23, 24, 255, 256, 65535, 65536, 0xFFFF_FFFF, 0x1_0000_0000, UInt64.max])
    func headLength(_ argument: UInt64) {
        var encoder = CBOREncoder()
        encoder.appendHead(major: 0, argument: argument)
        #expect(encoder.bytes.count == CBOREncoder.headLength(argument))
    }

    @Test("decodePrefix reports the length of the first item")
    func decodePrefix() throws {
        let (value, length) = try CBORDecoder().decodePrefix([0x83, 0x01, 0x02, 0x03, 0xF6, 0x00])
        #expect(value == [1, 2, 3])
        #expect(length == 4)
    }
}
