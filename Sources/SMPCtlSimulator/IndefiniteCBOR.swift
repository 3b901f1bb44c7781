public import SMPCtlCBOR

/// Encodes CBOR the way Zephyr's zcbor does: maps and arrays with indefinite length
/// (`0xBF … 0xFF`, `0x9F … 0xFF`), everything else in shortest form.
public enum IndefiniteCBOR {
    /// The encoded bytes of `value`.
    public static func encode(_ value: CBORValue) -> [UInt8] {
        var out: [UInt8] = []
        append(value, to: &out)
        return out
    }

    /// Appends `value` with indefinite-length containers.
    public static func append(_ value: CBORValue, to out: inout [UInt8]) {
        switch value {
        case .map(let map):
            out.append(0xBF)
            for entry in map.entries {
                append(entry.key, to: &out)
                append(entry.value, to: &out)
            }
            out.append(0xFF)
        case .array(let elements):
            out.append(0x9F)
            for element in elements { append(element, to: &out) }
            out.append(0xFF)
        case .tagged(let tag, let inner):
            var head = CBOREncoder()
            head.appendHead(major: 6, argument: tag)
            out.append(contentsOf: head.bytes)
            append(inner, to: &out)
        default:
            out.append(contentsOf: CBOREncoder.encode(value))
        }
    }
}
