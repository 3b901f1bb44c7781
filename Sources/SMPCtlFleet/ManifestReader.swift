// Reading a composed YAML tree with bounds and with the place of every value, so that each
// error says file:line:column and the field.

import Yams

/// Walks Yams nodes for the manifest parser: typed values, bounded sizes, located errors.
final class ManifestReader {
    let file: String
    /// Nodes left to visit; a bound on work for any input.
    private var budget: Int

    init(file: String, nodeBudget: Int) {
        self.file = file
        self.budget = nodeBudget
    }

    func error(_ node: Node?, _ field: String, _ message: String) -> ManifestError {
        ManifestError(file: file, line: node?.mark?.line, column: node?.mark?.column, field: field, message: message)
    }

    private func spend(_ node: Node, _ field: String) throws(ManifestError) {
        budget -= 1
        guard budget >= 0 else {
            throw error(node, field, "the manifest has too many values; at most \(Self.describe(FleetManifest.maximumNodes)) are read")
        }
    }

    static func describe(_ count: Int) -> String { String(count) }

    /// The pairs of a mapping, keys as strings, in order.
    func mapping(_ node: Node, _ field: String, maximum: Int) throws(ManifestError) -> [(key: String, keyNode: Node, value: Node)] {
        try spend(node, field)
        guard let mapping = node.mapping else {
            throw error(node, field, "must be a mapping (key: value), not \(Self.kind(node))")
        }
        guard mapping.count <= maximum else {
            throw error(node, field, "has \(mapping.count) entries; at most \(maximum) are allowed")
        }
        var pairs: [(key: String, keyNode: Node, value: Node)] = []
        pairs.reserveCapacity(mapping.count)
        for (key, value) in mapping {
            try spend(key, field)
            guard let text = key.scalar?.string else {
                throw error(key, field, "keys must be plain text, not \(Self.kind(key))")
            }
            guard text.utf8.count <= FleetManifest.maximumKeyLength else {
                throw error(key, field, "a key is at most \(FleetManifest.maximumKeyLength) bytes")
            }
            pairs.append((text, key, value))
        }
        return pairs
    }

    /// The elements of a sequence.
    func sequence(_ node: Node, _ field: String, maximum: Int) throws(ManifestError) -> [Node] {
        try spend(node, field)
        guard let sequence = node.sequence else {
            throw error(node, field, "must be a list, not \(Self.kind(node))")
        }
        guard sequence.count <= maximum else {
            throw error(node, field, "has \(sequence.count) entries; at most \(maximum) are allowed")
        }
        return Array(sequence)
    }

    /// A scalar's text, of bounded length.
    func string(_ node: Node, _ field: String, maximumLength: Int = FleetManifest.maximumValueLength) throws(ManifestError) -> String {
        try spend(node, field)
        guard let scalar = node.scalar else {
            throw error(node, field, "must be a single value, not \(Self.kind(node))")
        }
        guard scalar.string.utf8.count <= maximumLength else {
            throw error(node, field, "is longer than \(maximumLength) bytes")
        }
        return scalar.string
    }

    /// A non-empty scalar's text.
    func text(_ node: Node, _ field: String, maximumLength: Int = FleetManifest.maximumValueLength) throws(ManifestError) -> String {
        let value = try string(node, field, maximumLength: maximumLength)
        guard !value.isEmpty else {
            throw error(node, field, "must not be empty")
        }
        return value
    }

    /// A decimal integer in `range`.
    func integer(_ node: Node, _ field: String, in range: ClosedRange<Int>) throws(ManifestError) -> Int {
        let value = try string(node, field, maximumLength: 32)
        guard let number = Int(value), range.contains(number) else {
            throw error(node, field, "must be a whole number from \(range.lowerBound) to \(range.upperBound), not \"\(value)\"")
        }
        return number
    }

    /// A number of seconds, more than 0 and at most `maximum`.
    func seconds(_ node: Node, _ field: String, maximum: Double) throws(ManifestError) -> Double {
        let value = try string(node, field, maximumLength: 32)
        guard let number = Double(value), number.isFinite, number > 0, number <= maximum else {
            throw error(node, field, "must be a number of seconds above 0 and at most \(Int(maximum)), not \"\(value)\"")
        }
        return number
    }

    /// true or false (also yes/no, on/off).
    func boolean(_ node: Node, _ field: String) throws(ManifestError) -> Bool {
        let value = try string(node, field, maximumLength: 8).lowercased()
        switch value {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(node, field, "must be true or false, not \"\(value)\"")
        }
    }

    /// One name or a list of names.
    func names(_ node: Node, _ field: String, maximum: Int) throws(ManifestError) -> [String] {
        if node.sequence != nil {
            var out: [String] = []
            for (index, element) in try sequence(node, field, maximum: maximum).enumerated() {
                out.append(try text(element, "\(field)[\(index)]", maximumLength: FleetManifest.maximumKeyLength))
            }
            return out
        }
        return [try text(node, field, maximumLength: FleetManifest.maximumKeyLength)]
    }

    /// Refuses keys the format does not have (a misspelt key would otherwise be ignored).
    func expectOnly(_ allowed: Set<String>, in pairs: [(key: String, keyNode: Node, value: Node)], _ field: String) throws(ManifestError) {
        for pair in pairs where !allowed.contains(pair.key) {
            let prefix = field.isEmpty ? "" : field + "."
            throw error(pair.keyNode, prefix + pair.key, "unknown key; expected one of \(allowed.sorted().joined(separator: ", "))")
        }
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .scalar: "a single value"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }
}

/// Finds YAML anchors (`&name`) outside quotes and comments. Aliases of anchors can make a small
/// file expand without bound (a "billion laughs" document), and the parser hashes mapping keys
/// whole, so a manifest with anchors is refused before it is parsed. Returns the 1-based line and
/// column of the first anchor.
func firstYAMLAnchor(in text: String) -> (line: Int, column: Int)? {
    var line = 1
    for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
        var quote: Character?
        var previous: Character = " "
        var column = 0
        var characters = rawLine.makeIterator()
        var current = characters.next()
        while let character = current {
            column += 1
            let next = characters.next()
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "\"" || character == "'" {
                if " \t[{,:-".contains(previous) { quote = character }
            } else if character == "#", previous == " " || previous == "\t" || column == 1 {
                break
            } else if character == "&" || character == "*", " \t[{,".contains(previous) || column == 1,
                let following = next, !" \t,[]{}".contains(following)
            {
                return (line, column)
            }
            previous = character
            current = next
        }
        line += 1
    }
    return nil
}
