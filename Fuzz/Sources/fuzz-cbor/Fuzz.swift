// The CBOR decoder (SMPCtlCBOR), with both configurations smpctl uses: the default (tags kept)
// and the one for device responses (depth 16, tags skipped).
//
// Invariants: decoding never traps; an error's offset lies within the input; decodePrefix reads
// the same item and says it used the whole input; a decoded value re-encodes in shortest form to
// bytes that decode again and re-encode to the same bytes (encode ∘ decode is idempotent; bytes
// are compared rather than values because NaN is not equal to itself).

import FuzzSupport
import SMPCtlCBOR

private let decoders = [
    CBORDecoder(),
    CBORDecoder(maxDepth: 16, tagHandling: .skip),
    CBORDecoder(maxDepth: 4, maxStringLength: 64, maxContainerCount: 8),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    for decoder in decoders {
        check(bytes, decoder)
    }
    return 0
}

private func check(_ bytes: [UInt8], _ decoder: CBORDecoder) {
    let value: CBORValue
    do {
        value = try decoder.decode(bytes)
    } catch {
        invariant(error.offset >= 0 && error.offset <= bytes.count, "error offset \(error.offset) outside the input")
        _ = error.description
        // A prefix read must fail too, or stop before the end (trailing bytes).
        if let prefix = try? decoder.decodePrefix(bytes) {
            invariant(prefix.length < bytes.count, "decodePrefix used the whole input that decode refused")
            invariant(error.code == .trailingBytes, "decodePrefix accepts what decode refused with \(error.code)")
        }
        return
    }
    do {
        let prefix = try decoder.decodePrefix(bytes + [0x00])
        invariant(prefix.length == bytes.count, "decodePrefix length \(prefix.length), input \(bytes.count)")
        invariant(CBOREncoder.encode(prefix.value) == CBOREncoder.encode(value), "decodePrefix decoded another value")
    } catch {
        invariant(false, "decodePrefix failed where decode succeeded: \(error)")
    }
    let encoded = CBOREncoder.encode(value)
    do {
        let again = try decoder.decode(encoded)
        let reencoded = CBOREncoder.encode(again)
        invariant(reencoded == encoded, "re-encoding is not stable")
    } catch {
        invariant(false, "the shortest-form encoding of a decoded value does not decode: \(error)")
    }
    walk(value)
}

/// Exercises the accessors on every node.
private func walk(_ value: CBORValue, depth: Int = 0) {
    _ = value.int64
    _ = value.int
    _ = value.uint64
    _ = value.untagged
    switch value {
    case .array(let elements):
        for element in elements { walk(element, depth: depth + 1) }
    case .map(let map):
        for key in map.textKeys { invariant(map[key] != nil, "text key \(key) does not look up") }
        for entry in map.entries {
            walk(entry.key, depth: depth + 1)
            walk(entry.value, depth: depth + 1)
        }
    case .tagged(_, let inner):
        walk(inner, depth: depth + 1)
    default:
        break
    }
}
