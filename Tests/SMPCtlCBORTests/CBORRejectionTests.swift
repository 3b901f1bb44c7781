import Testing
import SMPCtlCBOR

/// A malformed input and the error code it must produce.
struct Rejection: Sendable, CustomStringConvertible {
    let hex: String
    let code: CBORError.Code
    let note: String
    var description: String { "\(note): \(hex) -> \(code)" }
}

/// Decodes with the package API, returning the error (or nil) and the storage reserved.
private func attempt(_ bytes: [UInt8], _ decoder: CBORDecoder = CBORDecoder()) -> (error: CBORError?, units: Int) {
    var units = 0
    do {
        _ = try decoder.decode(bytes, allocationUnits: &units)
        return (nil, units)
    } catch {
        return (error, units)
    }
}

enum RejectionCases {
    static let reservedInfo: [Rejection] = (0..<8).flatMap { major in
        (28...30).map { info in
            Rejection(hex: [UInt8(major << 5 | info), 0, 0, 0, 0, 0, 0, 0, 0].hexString,
                      code: .invalidAdditionalInfo, note: "major \(major) with reserved info \(info)")
        }
    }

    static let fixed: [Rejection] = [
        Rejection(hex: "0000", code: .trailingBytes, note: "two items"),
        Rejection(hex: "a000", code: .trailingBytes, note: "map then a byte"),
        Rejection(hex: "9fff00", code: .trailingBytes, note: "indefinite array then a byte"),
        Rejection(hex: "01ff", code: .trailingBytes, note: "break after a top-level item"),
        Rejection(hex: "1f", code: .invalidAdditionalInfo, note: "indefinite unsigned integer"),
        Rejection(hex: "3f", code: .invalidAdditionalInfo, note: "indefinite negative integer"),
        Rejection(hex: "df01", code: .invalidAdditionalInfo, note: "indefinite tag"),
        Rejection(hex: "ff", code: .unexpectedBreak, note: "lone break"),
        Rejection(hex: "8201ff", code: .unexpectedBreak, note: "break inside a definite array"),
        Rejection(hex: "a101ff", code: .unexpectedBreak, note: "break as a definite map value"),
        Rejection(hex: "a1ff01", code: .unexpectedBreak, note: "break as a definite map key"),
        Rejection(hex: "c1ff", code: .unexpectedBreak, note: "break as a tag content"),
        Rejection(hex: "bf6161ff", code: .unexpectedBreak, note: "indefinite map key without value"),
        Rejection(hex: "bf6161016162ff", code: .unexpectedBreak, note: "second key without value"),
        Rejection(hex: "5f6161ff", code: .invalidChunk, note: "text chunk in a byte string"),
        Rejection(hex: "7f4161ff", code: .invalidChunk, note: "byte chunk in a text string"),
        Rejection(hex: "5f01ff", code: .invalidChunk, note: "integer chunk in a byte string"),
        Rejection(hex: "7f80ff", code: .invalidChunk, note: "array chunk in a text string"),
        Rejection(hex: "5f5fffff", code: .invalidChunk, note: "nested indefinite byte string"),
        Rejection(hex: "7f7fffff", code: .invalidChunk, note: "nested indefinite text string"),
        Rejection(hex: "61ff", code: .invalidUTF8, note: "0xff is never UTF-8"),
        Rejection(hex: "61c3", code: .invalidUTF8, note: "lone lead byte"),
        Rejection(hex: "62c328", code: .invalidUTF8, note: "bad continuation"),
        Rejection(hex: "62c0af", code: .invalidUTF8, note: "overlong slash"),
        Rejection(hex: "63eda080", code: .invalidUTF8, note: "UTF-16 surrogate"),
        Rejection(hex: "64f4908080", code: .invalidUTF8, note: "above U+10FFFF"),
        Rejection(hex: "7f616161ffff", code: .invalidUTF8,
                  note: "invalid chunk in an indefinite text string"),
        Rejection(hex: "7f61c361bcff", code: .invalidUTF8, note: "code point split across chunks (RFC 8949 3.2.3)"),
        Rejection(hex: "a1616161ff", code: .invalidUTF8,
                  note: "invalid UTF-8 map value"),
        Rejection(hex: "5bffffffffffffffff", code: .lengthExceedsLimit, note: "2^64-1 byte string"),
        Rejection(hex: "7bffffffffffffffff", code: .lengthExceedsLimit, note: "2^64-1 text string"),
        Rejection(hex: "9bffffffffffffffff", code: .lengthExceedsLimit, note: "2^64-1 element array"),
        Rejection(hex: "bbffffffffffffffff", code: .lengthExceedsLimit, note: "2^64-1 entry map"),
        Rejection(hex: "5b7fffffffffffffff", code: .lengthExceedsLimit, note: "Int.max byte string"),
        Rejection(hex: "5affffffff", code: .lengthExceedsLimit, note: "4 GiB byte string"),
        Rejection(hex: "9a00010001", code: .lengthExceedsLimit, note: "array above the element bound"),
        Rejection(hex: "ba00010001", code: .lengthExceedsLimit, note: "map above the entry bound"),
        Rejection(hex: "5a00ffffff00", code: .truncated, note: "string within the bound but longer than the input"),
        Rejection(hex: "9a0000ffff00", code: .truncated, note: "array within the bound but longer than the input"),
        Rejection(hex: "b9800000", code: .truncated, note: "map within the bound but longer than the input"),
        Rejection(hex: "f800", code: .invalidSimpleValue, note: "two-byte simple 0"),
        Rejection(hex: "f814", code: .invalidSimpleValue, note: "two-byte false"),
        Rejection(hex: "f818", code: .invalidSimpleValue, note: "two-byte simple 24"),
        Rejection(hex: "f81f", code: .invalidSimpleValue, note: "two-byte simple 31"),
        // RFC 8949 §5.6: duplicate keys make a map invalid; {rc: 0, rc: 5} must not read as success.
        Rejection(hex: "a26272630062726305", code: .duplicateMapKey, note: "definite map {rc: 0, rc: 5}"),
        Rejection(hex: "bf6272630062726305ff", code: .duplicateMapKey, note: "indefinite map {rc: 0, rc: 5} (zcbor style)"),
        Rejection(hex: "a20100180100", code: .duplicateMapKey, note: "key 1 encoded as 0x01 and 0x1801"),
        Rejection(hex: "a1616da201000101", code: .duplicateMapKey, note: "duplicate key in a nested map"),
        Rejection(hex: "", code: .truncated, note: "empty input"),
        Rejection(hex: "bf", code: .truncated, note: "open indefinite map"),
        Rejection(hex: "9f01", code: .truncated, note: "unclosed indefinite array"),
        Rejection(hex: "5f4101", code: .truncated, note: "unclosed indefinite byte string"),
    ]

    static let all: [Rejection] = reservedInfo + fixed

    /// Valid items (RFC 8949 Appendix A and SMP bodies) whose every proper prefix is truncated.
    static let validItems: [String] = [
        "1bffffffffffffffff", "3bffffffffffffffff", "1a000f4240", "1903e8", "1818",
        "fb3ff199999999999a", "fa47c35000", "f93c00", "f8ff",
        "c074323031332d30332d32315432303a30343a30305a", "d818456449455446",
        "64f0908591", "4401020304", "5f42010243030405ff", "7f657374726561646d696e67ff",
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        "9f018202039f0405ffff", "83019f0203ff820405", "a26161016162820203",
        "bf61610161629f0203ffff", "826161bf61626163ff", "bf6346756ef563416d7421ff",
        "a56161614161626142616361436164614461656145",
        "bf63657272bf6567726f75700162726308ffff", "a163657272a2627263086567726f757001",
        "bf636f66661912a2656d61746368f5ff",
    ]
}

@Suite("CBOR rejection")
struct CBORRejectionTests {
    @Test("malformed input is rejected with the right code", arguments: RejectionCases.all)
    func rejects(_ rejection: Rejection) {
        let bytes = [UInt8](hexString: rejection.hex)
        let (error, units) = attempt(bytes)
        #expect(error?.code == rejection.code, "\(String(describing: error))")
        #expect(units <= bytes.count)
        // The public entry point agrees.
        #expect(throws: CBORError.self) { try CBORDecoder().decode(bytes) }
    }

    @Test("every error code is produced by some input")
    func everyCodeCovered() {
        let all: Set<CBORError.Code> = [
            .truncated, .trailingBytes, .invalidAdditionalInfo, .unexpectedBreak, .invalidChunk, .invalidUTF8,
            .lengthExceedsLimit, .nestingTooDeep, .invalidSimpleValue, .duplicateMapKey,
        ]
        var produced = Set<CBORError.Code>()
        for rejection in RejectionCases.all {
            if let error = attempt([UInt8](hexString: rejection.hex)).error { produced.insert(error.code) }
        }
        let deep = [UInt8](repeating: 0x81, count: 40) + [0x00]
        if let error = attempt(deep).error { produced.insert(error.code) }
        #expect(produced == all)
    }

    @Test("every proper prefix of a valid item is truncated", arguments: RejectionCases.validItems)
    func truncatedEverywhere(_ hex: String) throws {
        let bytes = [UInt8](hexString: hex)
        _ = try CBORDecoder().decode(bytes)
        for end in 0..<bytes.count {
            let prefix = Array(bytes[..<end])
            let (error, units) = attempt(prefix)
            #expect(error?.code == .truncated, "prefix of \(end) bytes: \(String(describing: error))")
            #expect(units <= prefix.count)
        }
    }

    @Test("huge declared lengths are rejected before any storage is reserved",
          arguments: ["5bffffffffffffffff", "7bffffffffffffffff", "9bffffffffffffffff", "bbffffffffffffffff",
                      "5a7fffffff", "9a7fffffff", "ba7fffffff", "9a0000ffff", "b90fff", "5a00ffffff",
                      "9f5bffffffffffffffffff", "5f5bffffffffffffffffff", "a1615a9bffffffffffffffff"])
    func hugeLengths(_ hex: String) {
        let bytes = [UInt8](hexString: hex)
        let (error, units) = attempt(bytes)
        #expect(error != nil)
        #expect(units <= bytes.count)
        #expect(units <= 3)
    }

    @Test("containers that each claim the rest of the input store no more than the input",
          arguments: ["8b00000900002a00a161726568656c6c6f", "87bf636f66661912", "8383000000",
                      "84848400000000", "a1a1a1a4000000000000000000"])
    func nestedClaims(_ hex: String) {
        // Found by the fuzzer: the decoder used to reserve every declared count up front.
        let bytes = [UInt8](hexString: hex)
        let (error, units) = attempt(bytes)
        #expect(error != nil)
        #expect(units <= bytes.count)
    }

    @Test("nesting deeper than maxDepth is rejected", arguments: [1, 4, 16, 32])
    func nestingDepth(_ maxDepth: Int) throws {
        let decoder = CBORDecoder(maxDepth: maxDepth)
        for opener: UInt8 in [0x81, 0x9F] {
            let closer: [UInt8] = opener == 0x9F ? [UInt8](repeating: 0xFF, count: maxDepth + 1) : []
            let atLimit = [UInt8](repeating: opener, count: maxDepth) + [0x00] + closer.dropLast()
            _ = try decoder.decode(atLimit)
            let tooDeep = [UInt8](repeating: opener, count: maxDepth + 1) + [0x00] + closer
            #expect(attempt(tooDeep, decoder).error?.code == .nestingTooDeep)
        }
        // Maps and tags count too.
        // {0: {0: ... {0: 0}}} with maxDepth + 1 maps.
        let maps: [UInt8] = Array(repeating: [0xA1, 0x00], count: maxDepth + 1).flatMap { $0 } + [0x00]
        #expect(attempt(maps, decoder).error?.code == .nestingTooDeep)
        let mapsAtLimit: [UInt8] = Array(repeating: [0xA1, 0x00], count: maxDepth).flatMap { $0 } + [0x00]
        _ = try decoder.decode(mapsAtLimit)
        let tags = [UInt8](repeating: 0xC1, count: maxDepth + 1) + [0x00]
        #expect(attempt(tags, decoder).error?.code == .nestingTooDeep)
        let tagsAtLimit = [UInt8](repeating: 0xC1, count: maxDepth) + [0x00]
        _ = try decoder.decode(tagsAtLimit)
    }

    @Test("the default depth bound rejects 0x81 repeated")
    func defaultDepth() {
        let bytes = [UInt8](repeating: 0x81, count: 10_000) + [0x00]
        #expect(attempt(bytes).error?.code == .nestingTooDeep)
    }

    @Test("configured string and container bounds")
    func configuredBounds() throws {
        let small = CBORDecoder(maxStringLength: 4, maxContainerCount: 2)
        #expect(try small.decode([UInt8](hexString: "6449455446")) == "IETF")
        #expect(attempt([UInt8](hexString: "6568656c6c6f"), small).error?.code == .lengthExceedsLimit)
        #expect(attempt([UInt8](hexString: "4568656c6c6f"), small).error?.code == .lengthExceedsLimit)
        // Chunks within the bound that add up to more than it.
        #expect(attempt([UInt8](hexString: "7f6368656c626c6fff"), small).error?.code == .lengthExceedsLimit)
        #expect(try small.decode([UInt8](hexString: "820102")) == [1, 2])
        #expect(attempt([UInt8](hexString: "83010203"), small).error?.code == .lengthExceedsLimit)
        #expect(attempt([UInt8](hexString: "9f010203ff"), small).error?.code == .lengthExceedsLimit)
        #expect(attempt([UInt8](hexString: "a3010203040506"), small).error?.code == .lengthExceedsLimit)
        #expect(attempt([UInt8](hexString: "bf010203040506ff"), small).error?.code == .lengthExceedsLimit)
    }

    @Test("two-byte simple values from 32 up are accepted", arguments: [32, 33, 100, 254, 255])
    func twoByteSimple(_ value: Int) throws {
        let bytes: [UInt8] = [0xF8, UInt8(value)]
        #expect(try CBORDecoder().decode(bytes) == .simple(UInt8(value)))
        #expect(CBOREncoder.encode(.simple(UInt8(value))) == bytes)
    }

    @Test("error offsets point at the offending item")
    func offsets() {
        #expect(attempt([UInt8](hexString: "8201ff")).error?.offset == 2)
        #expect(attempt([UInt8](hexString: "0000")).error?.offset == 1)
        #expect(attempt([UInt8](hexString: "bf6161ff")).error?.offset == 3)
        #expect(attempt([UInt8](hexString: "821c00")).error?.offset == 1)
        // The second `rc` key starts at byte 5.
        #expect(attempt([UInt8](hexString: "a26272630062726305")).error?.offset == 5)
    }

    @Test("maps whose keys differ only in type or encoding are kept; a big map stays linear")
    func distinctKeys() throws {
        // {1: 0, "1": 0, h'01': 0, -2: 0}: four different keys.
        let mixed = try CBORDecoder().decode([UInt8](hexString: "a401006131004101002100"))
        #expect(mixed.mapValue?.entries.count == 4)
        // 0.0 and -0.0 are different values; two encodings of 1.5 (half and single) are one.
        #expect(try CBORDecoder().decode([UInt8](hexString: "a2f9000001f9800002")).mapValue?.entries.count == 2)
        #expect(attempt([UInt8](hexString: "a2f93e0001fa3fc0000002")).error?.code == .duplicateMapKey)
        // 65 536 distinct unsigned keys, then the same map with its last key equal to its first.
        var bytes: [UInt8] = [0xBA, 0x00, 0x01, 0x00, 0x00]
        for key in 0..<65_536 {
            bytes += [0x1A, UInt8(key >> 24), UInt8((key >> 16) & 0xFF), UInt8((key >> 8) & 0xFF), UInt8(key & 0xFF), 0xF6]
        }
        let clock = ContinuousClock()
        var decoded: CBORValue?
        let elapsed = try clock.measure { decoded = try CBORDecoder().decode(bytes) }
        #expect(decoded?.mapValue?.entries.count == 65_536)
        #expect(elapsed < .seconds(5))
        bytes.replaceSubrange((bytes.count - 5)..<(bytes.count - 1), with: [0, 0, 0, 0])
        #expect(attempt(bytes).error?.code == .duplicateMapKey)
        #expect(attempt(bytes).error?.offset == bytes.count - 6)
    }
}
