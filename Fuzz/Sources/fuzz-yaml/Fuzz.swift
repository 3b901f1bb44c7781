// The YAML reader `smpctl doctor` uses for partitions.yml, pm_static.yml and domains.yaml
// (SMPCtlDiagnosis DoctorYAML.parse; only the public entry point and node API are used, so the
// target survives a change of parser).
//
// Invariants: parsing never traps (it may refuse the text with a typed error); every mapping
// entry's line lies within the document.

import FuzzSupport
@_spi(Fuzzing) import SMPCtlDiagnosis

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: fuzzBytes(data, size), as: UTF8.self)
    // Lines as libyaml (under Yams) counts them: LF, CR and CR LF each end a line, and so do NEL
    // (U+0085), LS (U+2028) and PS (U+2029), its line breaks of YAML 1.1. Counting LF alone made a
    // lone CR look like a line past the end (found by this target, 3 December), and counting LF
    // and CR alone did the same for a NEL (4 December).
    let lineCount = yamlLineCount(text)
    let node: DoctorYAMLNode
    do {
        node = try DoctorYAML.parse(text)
    } catch {
        return 0  // Refused: too large, too deep, an alias bomb, or not YAML.
    }
    walk(node, lineCount: lineCount, depth: 0)
    // What the doctor reads from a Partition Manager file.
    for entry in (node["partitions"]?.entries ?? node.entries) {
        _ = entry.value["address"]?.scalar
        _ = entry.value["size"]?.scalar
        _ = entry.value["region"]?.scalar
        _ = entry.value["span"]?.strings
    }
    _ = node["default"]?.scalar
    return 0
}

private func walk(_ node: DoctorYAMLNode, lineCount: Int, depth: Int) {
    invariant(depth <= 1000, "nesting of \(depth)")
    _ = node.scalar
    _ = node.strings
    switch node {
    case .scalar:
        break
    case .sequence(let items):
        for item in items { walk(item, lineCount: lineCount, depth: depth + 1) }
    case .mapping(let entries):
        for entry in entries {
            invariant(entry.line >= 1 && entry.line <= lineCount, "entry \(entry.key) on line \(entry.line) of \(lineCount)")
            invariant(node[entry.key] != nil, "key \(entry.key) does not look up")
            walk(entry.value, lineCount: lineCount, depth: depth + 1)
        }
    }
}

