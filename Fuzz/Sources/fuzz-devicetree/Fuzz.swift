// The devicetree reader of `smpctl doctor` (SMPCtlDiagnosis DoctorDevicetree: zephyr.dts and
// overlay-style `&label { };` blocks), with the queries the checks make.
//
// Invariants: parsing never traps; node 0 is the root; every parent comes before its child;
// paths are unique; a label finds a node that carries it; lines lie within the file.

import FuzzSupport
@_spi(Fuzzing) import SMPCtlDiagnosis

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: fuzzBytes(data, size), as: UTF8.self)
    let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
    let tree = DoctorDevicetree(file: "zephyr/zephyr.dts", text: text)
    invariant(!tree.nodes.isEmpty && tree.nodes[0].path == "/" && tree.nodes[0].parent == nil, "no root")
    var paths = Set<String>()
    for (index, node) in tree.nodes.enumerated() {
        invariant(paths.insert(node.path).inserted, "path \(node.path) twice")
        if index > 0 {
            guard let parent = node.parent else {
                invariant(false, "node \(node.path) without a parent")
                continue
            }
            invariant(parent >= 0 && parent < index, "parent \(parent) of node \(index)")
        }
        invariant(node.line >= 1 && node.line <= lineCount, "node on line \(node.line) of \(lineCount)")
        for (name, line) in node.propertyLines {
            invariant(node.properties[name] != nil, "a line for a missing property")
            invariant(line >= 1 && line <= lineCount, "\(name) on line \(line) of \(lineCount)")
        }
        for label in node.labels {
            invariant(tree.node(label: label)?.labels.contains(label) == true, "label \(label) does not find its node")
        }
        _ = node.compatibles
        _ = node.isOkay
        _ = node.cells("reg")
        _ = tree.parent(of: node)
        _ = tree.isEnabled(node)
        _ = tree.inherited("#address-cells", from: node)?.cells("#address-cells")
        _ = tree.inherited("erase-block-size", from: node)
        if index >= 64 { break }
    }
    for name in tree.chosen.keys {
        _ = tree.chosenNode(name)
    }
    _ = tree.nodes(compatible: "fixed-partitions")
    return 0
}
