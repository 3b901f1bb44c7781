/// Decodes CBOR (RFC 8949) with every length and the nesting depth bounded before anything is allocated.
///
/// The decoder accepts definite and indefinite-length strings, arrays and maps (Zephyr's zcbor
/// encoder sends indefinite-length maps), all integer widths, simple values, half/single/double
/// floats and tags. Malformed input throws ``CBORError``; it never traps.
public struct CBORDecoder: Sendable {
    /// What to do with tags.
    public enum TagHandling: Sendable {
        /// Keep tags as ``CBORValue/tagged(_:_:)``.
        case keep
        /// Drop tag numbers and return the tagged item alone.
        case skip
    }

    /// The deepest nesting of arrays, maps and tags accepted.
    public var maxDepth: Int
    /// The largest byte or text string accepted, in bytes.
    public var maxStringLength: Int
    /// The largest array or map accepted, in elements.
    public var maxContainerCount: Int
    /// What to do with tags.
    public var tagHandling: TagHandling

    public init(
        maxDepth: Int = 32,
        maxStringLength: Int = 1 << 24,
        maxContainerCount: Int = 1 << 16,
        tagHandling: TagHandling = .keep
    ) {
        self.maxDepth = maxDepth
        self.maxStringLength = maxStringLength
        self.maxContainerCount = maxContainerCount
        self.tagHandling = tagHandling
    }

    /// Decodes exactly one item that spans all of `bytes`.
    public func decode(_ bytes: some Collection<UInt8>) throws(CBORError) -> CBORValue {
        var units = 0
        return try decode(Array(bytes), allocationUnits: &units)
    }

    /// Decodes one item at the start of `bytes` and returns it with the number of bytes it used.
    public func decodePrefix(_ bytes: [UInt8]) throws(CBORError) -> (value: CBORValue, length: Int) {
        var units = 0
        var reader = Reader(bytes: bytes, decoder: self)
        let value = try reader.item(depth: 0, units: &units)
        return (value, reader.position)
    }

    /// Decodes one item and adds to `allocationUnits` the elements, entries and string bytes it stored.
    ///
    /// Units are counted as items are read (also when decoding fails part-way), so the count never
    /// exceeds the number of input bytes consumed. Tests use it to show that storage is bounded by
    /// the input size.
    package func decode(_ bytes: [UInt8], allocationUnits: inout Int) throws(CBORError) -> CBORValue {
        var reader = Reader(bytes: bytes, decoder: self)
        let value = try reader.item(depth: 0, units: &allocationUnits)
        if reader.position != bytes.count {
            throw CBORError(.trailingBytes, at: reader.position, "\(bytes.count - reader.position) bytes after the item")
        }
        return value
    }
}

extension CBORDecoder {
    /// A cursor over the input. Every read checks the remaining length first.
    fileprivate struct Reader {
        let bytes: [UInt8]
        let decoder: CBORDecoder
        var position = 0

        init(bytes: [UInt8], decoder: CBORDecoder) {
            self.bytes = bytes
            self.decoder = decoder
        }

        var remaining: Int { bytes.count - position }

        mutating func byte() throws(CBORError) -> UInt8 {
            guard position < bytes.count else { throw CBORError(.truncated, at: position, "input ends inside an item") }
            defer { position += 1 }
            return bytes[position]
        }

        mutating func bigEndian(_ count: Int) throws(CBORError) -> UInt64 {
            guard remaining >= count else {
                throw CBORError(.truncated, at: position, "need \(count) argument bytes, \(remaining) left")
            }
            var value: UInt64 = 0
            for i in 0..<count { value = value << 8 | UInt64(bytes[position + i]) }
            position += count
            return value
        }

        /// Reads the argument of an initial byte; `nil` means indefinite length (additional info 31).
        mutating func argument(_ info: UInt8, at start: Int) throws(CBORError) -> UInt64? {
            switch info {
            case 0..<24: return UInt64(info)
            case 24: return try bigEndian(1)
            case 25: return try bigEndian(2)
            case 26: return try bigEndian(4)
            case 27: return try bigEndian(8)
            case 31: return nil
            default: throw CBORError(.invalidAdditionalInfo, at: start, "reserved additional information \(info)")
            }
        }

        /// Checks a declared string length against the bound and the remaining input.
        func checkedLength(_ length: UInt64, at start: Int) throws(CBORError) -> Int {
            guard length <= UInt64(decoder.maxStringLength) else {
                throw CBORError(.lengthExceedsLimit, at: start, "string of \(length) bytes exceeds the limit of \(decoder.maxStringLength)")
            }
            guard length <= UInt64(remaining) else {
                throw CBORError(.truncated, at: start, "string of \(length) bytes but only \(remaining) left")
            }
            return Int(length)
        }

        /// Checks a declared element count; each element takes at least `minimumBytes` of input.
        func checkedCount(_ count: UInt64, minimumBytes: Int, at start: Int) throws(CBORError) -> Int {
            guard count <= UInt64(decoder.maxContainerCount) else {
                throw CBORError(.lengthExceedsLimit, at: start, "container of \(count) elements exceeds the limit of \(decoder.maxContainerCount)")
            }
            guard count <= UInt64(remaining / minimumBytes) else {
                throw CBORError(.truncated, at: start, "container of \(count) elements cannot fit in \(remaining) bytes")
            }
            return Int(count)
        }

        mutating func take(_ length: Int) -> ArraySlice<UInt8> {
            defer { position += length }
            return bytes[position..<(position + length)]
        }

        mutating func atBreak() throws(CBORError) -> Bool {
            guard position < bytes.count else {
                throw CBORError(.truncated, at: position, "indefinite-length item not closed by a break")
            }
            if bytes[position] == 0xFF {
                position += 1
                return true
            }
            return false
        }

        mutating func item(depth: Int, units: inout Int) throws(CBORError) -> CBORValue {
            let start = position
            let initial = try byte()
            let major = initial >> 5
            let info = initial & 0x1F
            switch major {
            case 0:
                guard let value = try argument(info, at: start) else {
                    throw CBORError(.invalidAdditionalInfo, at: start, "an integer cannot have indefinite length")
                }
                return .unsigned(value)
            case 1:
                guard let value = try argument(info, at: start) else {
                    throw CBORError(.invalidAdditionalInfo, at: start, "an integer cannot have indefinite length")
                }
                return .negative(value)
            case 2, 3:
                let data = try string(major: major, info: info, at: start, units: &units)
                if major == 2 { return .bytes(data) }
                guard let text = String(validating: data, as: UTF8.self) else {
                    throw CBORError(.invalidUTF8, at: start, "text string is not valid UTF-8")
                }
                return .text(text)
            case 4:
                try checkDepth(depth, at: start)
                var elements: [CBORValue] = []
                if let declared = try argument(info, at: start) {
                    let count = try checkedCount(declared, minimumBytes: 1, at: start)
                    // Storage grows with the elements actually read, never ahead of them: reserving
                    // the declared count at every level would let nested containers that each claim
                    // the rest of the input reserve many times the input size before failing.
                    for _ in 0..<count {
                        let element = try item(depth: depth + 1, units: &units)
                        units += 1
                        elements.append(element)
                    }
                } else {
                    while try !atBreak() {
                        guard elements.count < decoder.maxContainerCount else {
                            throw CBORError(.lengthExceedsLimit, at: start, "array exceeds the limit of \(decoder.maxContainerCount) elements")
                        }
                        let element = try item(depth: depth + 1, units: &units)
                        units += 1
                        elements.append(element)
                    }
                }
                return .array(elements)
            case 5:
                try checkDepth(depth, at: start)
                var entries: [CBORMap.Entry] = []
                // RFC 8949 §5.6: a map with two equal keys is not valid, and a reader that kept
                // the first or the last would let `{rc: 0, rc: 5}` read as success. Keys are
                // compared in the data model through their shortest encoding (0x01 and 0x1801 are
                // the same key, 0.0 and -0.0 are not); a hash set of those keeps the check linear
                // in the size of the map.
                var seenKeys = Set<[UInt8]>()
                func checkUnique(_ key: CBORValue, at offset: Int) throws(CBORError) {
                    guard seenKeys.insert(CBOREncoder.encode(key)).inserted else {
                        throw CBORError(.duplicateMapKey, at: offset, "map key \(key) appears twice")
                    }
                }
                if let declared = try argument(info, at: start) {
                    let count = try checkedCount(declared, minimumBytes: 2, at: start)
                    // As for arrays: count storage per entry read, not per entry declared.
                    for _ in 0..<count {
                        let keyStart = position
                        let key = try item(depth: depth + 1, units: &units)
                        try checkUnique(key, at: keyStart)
                        let value = try item(depth: depth + 1, units: &units)
                        units += 1
                        entries.append(CBORMap.Entry(key: key, value: value))
                    }
                } else {
                    while try !atBreak() {
                        guard entries.count < decoder.maxContainerCount else {
                            throw CBORError(.lengthExceedsLimit, at: start, "map exceeds the limit of \(decoder.maxContainerCount) entries")
                        }
                        let keyStart = position
                        let key = try item(depth: depth + 1, units: &units)
                        try checkUnique(key, at: keyStart)
                        if position < bytes.count, bytes[position] == 0xFF {
                            throw CBORError(.unexpectedBreak, at: position, "map key without a value")
                        }
                        let value = try item(depth: depth + 1, units: &units)
                        units += 1
                        entries.append(CBORMap.Entry(key: key, value: value))
                    }
                }
                return .map(CBORMap(entries))
            case 6:
                guard let tag = try argument(info, at: start) else {
                    throw CBORError(.invalidAdditionalInfo, at: start, "a tag cannot have indefinite length")
                }
                try checkDepth(depth, at: start)
                let inner = try item(depth: depth + 1, units: &units)
                switch decoder.tagHandling {
                case .keep: return .tagged(tag, inner)
                case .skip: return inner
                }
            default:
                return try simpleOrFloat(info, at: start)
            }
        }

        func checkDepth(_ depth: Int, at start: Int) throws(CBORError) {
            guard depth < decoder.maxDepth else {
                throw CBORError(.nestingTooDeep, at: start, "nesting deeper than \(decoder.maxDepth)")
            }
        }

        mutating func string(major: UInt8, info: UInt8, at start: Int, units: inout Int) throws(CBORError) -> [UInt8] {
            if let declared = try argument(info, at: start) {
                let length = try checkedLength(declared, at: start)
                units += length
                return Array(take(length))
            }
            // Indefinite length: definite chunks of the same major type until a break.
            var data: [UInt8] = []
            while try !atBreak() {
                let chunkStart = position
                let chunkInitial = try byte()
                guard chunkInitial >> 5 == major, chunkInitial & 0x1F != 31 else {
                    throw CBORError(.invalidChunk, at: chunkStart, "indefinite-length string chunk must be a definite string of the same type")
                }
                guard let declared = try argument(chunkInitial & 0x1F, at: chunkStart) else {
                    throw CBORError(.invalidChunk, at: chunkStart, "nested indefinite-length chunk")
                }
                let length = try checkedLength(declared, at: chunkStart)
                guard data.count + length <= decoder.maxStringLength else {
                    throw CBORError(.lengthExceedsLimit, at: chunkStart, "string exceeds the limit of \(decoder.maxStringLength) bytes")
                }
                units += length
                let chunk = take(length)
                // RFC 8949 3.2.3: a code point cannot be split between chunks, so each chunk of a
                // text string must be valid UTF-8 on its own.
                if major == 3, String(validating: chunk, as: UTF8.self) == nil {
                    throw CBORError(.invalidUTF8, at: chunkStart, "text string chunk is not valid UTF-8")
                }
                data.append(contentsOf: chunk)
            }
            return data
        }

        mutating func simpleOrFloat(_ info: UInt8, at start: Int) throws(CBORError) -> CBORValue {
            switch info {
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            case 23: return .undefined
            case 24:
                let value = try byte()
                guard value >= 32 else {
                    throw CBORError(.invalidSimpleValue, at: start, "two-byte simple value \(value) must be at least 32")
                }
                return .simple(value)
            case 25: return .float(Double(halfBits: UInt16(try bigEndian(2))))
            case 26: return .float(Double(Float(bitPattern: UInt32(try bigEndian(4)))))
            case 27: return .float(Double(bitPattern: try bigEndian(8)))
            case 31: throw CBORError(.unexpectedBreak, at: start, "break outside an indefinite-length item")
            case 0..<20: return .simple(info)
            default: throw CBORError(.invalidAdditionalInfo, at: start, "reserved additional information \(info)")
            }
        }
    }
}

extension Double {
    /// Converts IEEE 754 binary16 bits to a double, exactly.
    init(halfBits bits: UInt16) {
        let sign: Double = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = Double(bits & 0x3FF)
        switch exponent {
        case 0: self = sign * mantissa * 0x1p-24
        case 31: self = mantissa == 0 ? sign * .infinity : .nan
        default: self = sign * (1 + mantissa / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }
}
