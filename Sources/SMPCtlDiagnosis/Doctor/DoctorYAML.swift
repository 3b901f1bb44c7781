// The YAML that the nRF Connect SDK Partition Manager writes (`partitions.yml`) and that people
// write by hand (`pm_static.yml`, `domains.yaml`), read with Yams (libyaml). Build folders can
// come from anyone, so the text is bounded before Yams sees it (size, lines, an estimate of the
// node count and the nesting, anchors and aliases counted, no alias inside a mapping key, where
// Yams would hash its whole expansion), and the tree is bounded while it is turned into
// ``DoctorYAMLNode`` values (depth, and nodes counted with aliases expanded, so an alias bomb
// stops at the limit instead of filling memory).

import Yams

/// A node of a YAML document read by ``DoctorYAML``.
@_spi(Fuzzing) public indirect enum DoctorYAMLNode: Sendable, Equatable {
    case scalar(String)
    case sequence([DoctorYAMLNode])
    /// Keys in file order, each with the 1-based line it was written on.
    case mapping([DoctorYAMLEntry])

    /// The value under `key`, when this is a mapping.
    public subscript(key: String) -> DoctorYAMLNode? {
        guard case .mapping(let entries) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    /// The scalar text, when this is a scalar.
    public var scalar: String? {
        if case .scalar(let text) = self { return text }
        return nil
    }

    /// The scalars of a sequence (or a lone scalar as a one-element list).
    public var strings: [String] {
        switch self {
        case .scalar(let text): [text]
        case .sequence(let items): items.compactMap(\.scalar)
        case .mapping: []
        }
    }

    /// The entries, when this is a mapping.
    public var entries: [DoctorYAMLEntry] {
        if case .mapping(let entries) = self { return entries }
        return []
    }
}

/// One `key: value` pair of a mapping and the line it is on.
@_spi(Fuzzing) public struct DoctorYAMLEntry: Sendable, Equatable {
    public var key: String
    public var value: DoctorYAMLNode
    public var line: Int
}

/// Why a YAML document was not read.
@_spi(Fuzzing) public struct DoctorYAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The 1-based line of the problem, when there is one.
    public var line: Int?
    public var reason: String

    public init(line: Int?, _ reason: String) {
        self.line = line
        self.reason = reason
    }

    public var description: String { line.map { "line \($0): \(reason)" } ?? reason }
}

/// Reads YAML documents within bounds.
@_spi(Fuzzing) public enum DoctorYAML {
    /// The largest document read.
    public static let maximumBytes = 1 << 20
    /// The most lines read.
    public static let maximumLines = 50_000
    /// The deepest nesting of sequences and mappings.
    public static let maximumDepth = 32
    /// The most nodes, with every alias expanded where it is used.
    public static let maximumNodes = 100_000
    /// The most anchors and aliases together (Partition Manager writes a few dozen at most).
    public static let maximumAliases = 256

    /// Parses `text` into a node (an empty mapping for an empty document).
    public static func parse(_ text: String) throws(DoctorYAMLError) -> DoctorYAMLNode {
        try prescan(text)
        let root: Node?
        do {
            // UTF-8 given explicitly: the default reads an environment variable and prints.
            root = try Yams.compose(yaml: text, .default, .default, .utf8)
        } catch {
            throw Self.error(from: error)
        }
        guard let root else { return .mapping([]) }
        var budget = maximumNodes
        return try convert(root, depth: 0, budget: &budget)
    }

    // MARK: Before Yams: the text itself.

    /// Bounds what Yams will build: size, lines, an estimate of the nodes (one per line and one
    /// per flow comma), nesting (indentation levels, `- ` items and flow brackets), anchors and
    /// aliases. An alias where a mapping key may stand (before a `:` on its line, or any `? ` key)
    /// is refused: Yams checks keys for duplicates by hashing them, and an alias key would be
    /// hashed with its whole expansion. Over-counting is fine here; Partition Manager files are
    /// nowhere near the bounds.
    static func prescan(_ text: String) throws(DoctorYAMLError) {
        guard text.utf8.count <= maximumBytes else {
            throw DoctorYAMLError(line: nil, "larger than \(maximumBytes / 1024) KiB, far more than a partition file")
        }
        var lineNumber = 0
        var aliases = 0
        var estimatedNodes = 0
        var indents: [Int] = []
        var flowDepth = 0
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            guard lineNumber <= maximumLines else {
                throw DoctorYAMLError(line: lineNumber, "more than \(maximumLines) lines")
            }
            let bytes = Array(line)
            let indent = bytes.prefix { $0 == UInt8(ascii: " ") }.count
            guard indent < bytes.count, bytes[indent] != UInt8(ascii: "#"), bytes[indent] != UInt8(ascii: "\r") else { continue }
            estimatedNodes += 1
            while let last = indents.last, last >= indent { indents.removeLast() }
            indents.append(indent)
            var dashes = 0
            var position = indent
            while position + 1 < bytes.count, bytes[position] == UInt8(ascii: "-"), bytes[position + 1] == UInt8(ascii: " ") {
                dashes += 1
                position += 2
                while position < bytes.count, bytes[position] == UInt8(ascii: " ") { position += 1 }
            }
            var aliasSeen = false
            var previous = UInt8(ascii: " ")
            for (index, byte) in bytes.enumerated() {
                let next = index + 1 < bytes.count ? bytes[index + 1] : UInt8(ascii: " ")
                let startsToken = isSpace(previous) || previous == UInt8(ascii: "[") || previous == UInt8(ascii: "{")
                    || previous == UInt8(ascii: ",") || previous == UInt8(ascii: ":")
                switch byte {
                case UInt8(ascii: "*") where startsToken && !isSpace(next):
                    aliases += 1
                    aliasSeen = true
                case UInt8(ascii: "&") where startsToken && !isSpace(next):
                    aliases += 1
                case UInt8(ascii: "?") where startsToken && isSpace(next):
                    throw DoctorYAMLError(line: lineNumber, "explicit `? ` mapping keys are not read in build files")
                case UInt8(ascii: ":") where aliasSeen:
                    throw DoctorYAMLError(line: lineNumber, "an alias in a mapping key is not read in build files")
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    flowDepth += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    flowDepth = max(0, flowDepth - 1)
                case UInt8(ascii: ","):
                    estimatedNodes += 1
                default:
                    break
                }
                guard flowDepth <= maximumDepth else {
                    throw DoctorYAMLError(line: lineNumber, "nested deeper than \(maximumDepth) levels")
                }
                previous = byte
            }
            guard indents.count + dashes <= maximumDepth else {
                throw DoctorYAMLError(line: lineNumber, "nested deeper than \(maximumDepth) levels")
            }
            guard aliases <= maximumAliases else {
                throw DoctorYAMLError(line: lineNumber, "more than \(maximumAliases) anchors and aliases")
            }
            guard estimatedNodes <= maximumNodes else {
                throw DoctorYAMLError(line: lineNumber, "more than \(maximumNodes) values")
            }
        }
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
    }

    // MARK: After Yams: the tree.

    /// Turns a Yams node into a ``DoctorYAMLNode``, counting every node it produces (an alias
    /// shares its node in Yams, but is copied here) against `budget`.
    static func convert(_ node: Node, depth: Int, budget: inout Int) throws(DoctorYAMLError) -> DoctorYAMLNode {
        budget -= 1
        guard budget >= 0 else {
            throw DoctorYAMLError(line: node.mark?.line, "more than \(maximumNodes) values once aliases are expanded")
        }
        guard depth <= maximumDepth else {
            throw DoctorYAMLError(line: node.mark?.line, "nested deeper than \(maximumDepth) levels")
        }
        switch node {
        case .scalar(let scalar):
            return .scalar(scalar.string)
        case .sequence(let sequence):
            var items: [DoctorYAMLNode] = []
            for item in sequence { items.append(try convert(item, depth: depth + 1, budget: &budget)) }
            return .sequence(items)
        case .mapping(let mapping):
            var entries: [DoctorYAMLEntry] = []
            for (key, value) in mapping {
                // Build files have text keys; a collection as a key names nothing the doctor reads.
                guard case .scalar(let name) = key else {
                    throw DoctorYAMLError(line: key.mark?.line, "a mapping key that is not text")
                }
                let converted = try convert(value, depth: depth + 1, budget: &budget)
                entries.append(DoctorYAMLEntry(key: name.string, value: converted, line: key.mark?.line ?? 0))
            }
            return .mapping(entries)
        case .alias(let alias):
            // compose() resolves aliases to their nodes; an unresolved one names nothing.
            throw DoctorYAMLError(line: alias.mark?.line, "an unresolved alias")
        }
    }

    /// The line and problem of a Yams error.
    static func error(from error: any Error) -> DoctorYAMLError {
        guard let yaml = error as? YamlError else { return DoctorYAMLError(line: nil, "\(error)") }
        switch yaml {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return DoctorYAMLError(line: mark.line, problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return DoctorYAMLError(line: context.mark.line, "duplicate key \(duplicates.joined(separator: ", "))")
        case .reader(let problem, _, _, _):
            return DoctorYAMLError(line: nil, problem)
        default:
            return DoctorYAMLError(line: nil, "not valid YAML")
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" || first == "\r" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" || last == "\r" { slice.removeLast() }
        return String(slice)
    }
}

/// Parses the integers Partition Manager and Kconfig write: `0xc000`, `49152`, `0x100000 # 1 MB`.
func doctorInteger(_ text: String?) -> UInt64? {
    guard var text = text?.trimmingSpaces(), !text.isEmpty else { return nil }
    if text.hasPrefix("\"") && text.hasSuffix("\"") && text.count >= 2 { text = String(text.dropFirst().dropLast()) }
    let lower = text.lowercased()
    if lower.hasPrefix("0x") { return UInt64(lower.dropFirst(2), radix: 16) }
    return UInt64(lower)
}
