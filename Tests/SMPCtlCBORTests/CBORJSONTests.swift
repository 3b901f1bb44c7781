import SMPCtlCBOR
import Testing

/// JSON text to CBOR (for `smpctl raw --body`) and CBOR diagnostic notation.
@Suite("JSON to CBOR and diagnostic notation")
struct CBORJSONTests {
    @Test("objects, arrays, numbers, strings, literals and h'..' byte strings map to CBOR")
    func mapping() throws {
        let value = try CBORJSON.parse(#" {"off": 0, "neg": -1, "big": 18446744073709551615, "min": -9223372036854775808, "f": 1.5, "t": true, "n": null, "s": "a\u00e9\n", "b": "h'0aFF'", "a": [1, []]} "#)
        let expected: CBORValue = .map(CBORMap([
            .init(key: "off", value: .unsigned(0)), .init(key: "neg", value: .negative(0)),
            .init(key: "big", value: .unsigned(UInt64.max)), .init(key: "min", value: .negative(UInt64(Int64.max))),
            .init(key: "f", value: .float(1.5)), .init(key: "t", value: .bool(true)), .init(key: "n", value: .null),
            .init(key: "s", value: .text("aé\n")), .init(key: "b", value: .bytes([0x0A, 0xFF])),
            .init(key: "a", value: .array([.unsigned(1), .array([])])),
        ]))
        #expect(value == expected)
        // The bytes smpctl sends for a raw echo, as cbor2 encodes {"d": "hi"}.
        #expect(CBOREncoder.encode(try CBORJSON.parse(#"{"d":"hi"}"#)) == [0xA1, 0x61, 0x64, 0x62, 0x68, 0x69])
        #expect(try CBORJSON.parse(#""\ud83d\ude00""#) == .text("😀"))
    }

    @Test("malformed, too deep, too long, duplicate keys and out-of-range integers are typed errors")
    func rejections() {
        for text in [
            "", "{", #"{"a":}"#, #"{"a":1,}"#, "[1 2]", "01", "1.", "-", "tru", #""\x""#, #""abc"#, "{} x",
            #"{"a":1,"a":2}"#, "18446744073709551616", "-18446744073709551618", "1e400", #""\ud800""#,
            String(repeating: "[", count: 20) + String(repeating: "]", count: 20),
            "\"" + String(repeating: "x", count: 70_000) + "\"", "\"\u{01}\"",
        ] {
            #expect(throws: CBORJSON.ParseError.self, "\(text.prefix(40))") { try CBORJSON.parse(text) }
        }
    }

    @Test("diagnostic notation")
    func diagnostic() {
        let value: CBORValue = .map(CBORMap([
            .init(key: "off", value: .unsigned(3)), .init(key: "data", value: .bytes([0x0A, 0x0B])),
            .init(key: "rc", value: .negative(7)), .init(key: "s", value: .text("a\"b")),
        ]))
        #expect(value.diagnostic == #"{"off": 3, "data": h'0a0b', "rc": -8, "s": "a\"b"}"#)
    }
}
