/// One decoded CBOR data item (RFC 8949), restricted to what SMP needs.
///
/// Integers keep CBOR's split between unsigned and negative so that the full
/// 64-bit range of both major types round-trips.
public indirect enum CBORValue: Sendable, Hashable {
    /// Major type 0: an unsigned integer.
    case unsigned(UInt64)
    /// Major type 1: the integer `-1 - n`.
    case negative(UInt64)
    /// Major type 2: a byte string.
    case bytes([UInt8])
    /// Major type 3: a UTF-8 text string.
    case text(String)
    /// Major type 4: an array.
    case array([CBORValue])
    /// Major type 5: a map, with its entries in wire order.
    case map(CBORMap)
    /// Major type 6: a tagged item.
    case tagged(UInt64, CBORValue)
    /// `true` or `false`.
    case bool(Bool)
    /// `null`.
    case null
    /// `undefined`.
    case undefined
    /// Any other simple value (major type 7, values 0–19 and 32–255).
    case simple(UInt8)
    /// A half, single or double precision float.
    case float(Double)
}

extension CBORValue {
    /// Creates an integer value, choosing the major type from the sign.
    public static func int(_ value: Int64) -> CBORValue {
        value >= 0 ? .unsigned(UInt64(value)) : .negative(UInt64(-1 - value))
    }

    /// The value as a signed 64-bit integer, if it is an integer that fits.
    public var int64: Int64? {
        switch self {
        case .unsigned(let u): return u <= UInt64(Int64.max) ? Int64(u) : nil
        case .negative(let n): return n <= UInt64(Int64.max) ? -1 - Int64(n) : nil
        default: return nil
        }
    }

    /// The value as an `Int`, if it is an integer that fits.
    public var int: Int? { int64.flatMap { Int(exactly: $0) } }

    /// The value as an unsigned integer, if it is a non-negative integer.
    public var uint64: UInt64? {
        if case .unsigned(let u) = self { return u }
        return nil
    }

    /// The text, if this is a text string.
    public var string: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    /// The bytes, if this is a byte string.
    public var byteString: [UInt8]? {
        if case .bytes(let b) = self { return b }
        return nil
    }

    /// The boolean, if this is `true` or `false`.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The entries, if this is a map.
    public var mapValue: CBORMap? {
        if case .map(let m) = self { return m }
        return nil
    }

    /// The elements, if this is an array.
    public var arrayValue: [CBORValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The item inside any number of tags.
    public var untagged: CBORValue {
        var value = self
        while case .tagged(_, let inner) = value { value = inner }
        return value
    }
}

extension CBORValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: CBORValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (CBORValue, CBORValue)...) {
        self = .map(CBORMap(elements.map { CBORMap.Entry(key: $0.0, value: $0.1) }))
    }
}

/// A CBOR map that keeps its entries in order, as they were decoded or added.
///
/// SMP maps have text keys; lookups by text key are the common case.
public struct CBORMap: Sendable, Hashable {
    /// One key/value pair.
    public struct Entry: Sendable, Hashable {
        public var key: CBORValue
        public var value: CBORValue
        public init(key: CBORValue, value: CBORValue) {
            self.key = key
            self.value = value
        }
    }

    /// The entries in order.
    public var entries: [Entry]

    public init(_ entries: [Entry] = []) { self.entries = entries }

    /// The number of entries.
    public var count: Int { entries.count }

    /// The first value stored under a text key.
    public subscript(key: String) -> CBORValue? {
        get {
            for entry in entries {
                if case .text(let k) = entry.key, k == key { return entry.value }
            }
            return nil
        }
        set {
            if let index = entries.firstIndex(where: { $0.key == .text(key) }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append(Entry(key: .text(key), value: newValue))
            }
        }
    }

    /// The text keys of the map, in order.
    public var textKeys: [String] { entries.compactMap { $0.key.string } }
}
