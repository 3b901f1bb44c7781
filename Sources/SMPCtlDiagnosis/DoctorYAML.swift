// A small, tolerant reader for the YAML subset that the nRF Connect SDK Partition Manager writes
// (`partitions.yml`) and that people write by hand (`pm_static.yml`): block mappings, block and
// flow sequences, plain and quoted scalars, comments, and `&anchor`/`*alias` pairs such as
// `orig_span: &id001` / `span: *id001`. Anything else is skipped rather than rejected.

/// A node of the YAML subset read by ``DoctorYAML``.
public indirect enum DoctorYAMLNode: Sendable, Equatable {
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
public struct DoctorYAMLEntry: Sendable, Equatable {
    public var key: String
    public var value: DoctorYAMLNode
    public var line: Int
}

/// Parses the YAML subset; never throws, never traps on odd input.
public enum DoctorYAML {
    static let maxLines = 50_000
    static let maxDepth = 32

    struct Line {
        var indent: Int
        var text: String
        var number: Int
    }

    /// Parses `text` into a node (an empty mapping for an empty or unreadable document).
    public static func parse(_ text: String) -> DoctorYAMLNode {
        var lines: [Line] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if index >= maxLines { break }
            var line = String(raw)
            if line.hasSuffix("\r") { line.removeLast() }
            line = line.replacingTabs()
            let stripped = stripComment(line)
            let trimmed = stripped.trimmingSpaces()
            if trimmed.isEmpty || trimmed == "---" || trimmed == "..." { continue }
            let indent = stripped.prefix { $0 == " " }.count
            lines.append(Line(indent: indent, text: trimmed, number: index + 1))
        }
        var parser = Parser(lines: lines)
        guard !lines.isEmpty else { return .mapping([]) }
        return parser.block(indent: lines[0].indent, depth: 0)
    }

    /// Removes a `#` comment that is not inside quotes. `#include` lines (pm_static.yml may be
    /// run through the C preprocessor) become empty.
    static func stripComment(_ line: String) -> String {
        var inSingle = false
        var inDouble = false
        var previous: Character = " "
        var result = ""
        for character in line {
            if character == "'" && !inDouble { inSingle.toggle() }
            if character == "\"" && !inSingle { inDouble.toggle() }
            if character == "#" && !inSingle && !inDouble && (previous == " " || result.isEmpty) { break }
            result.append(character)
            previous = character
        }
        return result
    }

    struct Parser {
        var lines: [Line]
        var position = 0
        var anchors: [String: DoctorYAMLNode] = [:]

        init(lines: [Line]) { self.lines = lines }

        var current: Line? { position < lines.count ? lines[position] : nil }

        static func isItem(_ text: String) -> Bool { text == "-" || text.hasPrefix("- ") }

        mutating func block(indent: Int, depth: Int) -> DoctorYAMLNode {
            guard let line = current else { return .mapping([]) }
            if depth > DoctorYAML.maxDepth {
                skipDeeper(than: indent - 1)
                return .mapping([])
            }
            if Self.isItem(line.text) { return sequence(indent: line.indent, depth: depth) }
            if splitKey(line.text) == nil {
                position += 1
                return .scalar(unquote(line.text))
            }
            return mapping(indent: line.indent, depth: depth)
        }

        mutating func skipDeeper(than indent: Int) {
            while let line = current, line.indent > indent { position += 1 }
        }

        mutating func mapping(indent: Int, depth: Int) -> DoctorYAMLNode {
            var entries: [DoctorYAMLEntry] = []
            while let line = current, line.indent >= indent {
                if line.indent > indent {
                    // A stray deeper line with no key to hang on.
                    position += 1
                    continue
                }
                if Self.isItem(line.text) { break }
                guard let (key, rest) = splitKey(line.text) else {
                    position += 1
                    continue
                }
                position += 1
                var value = rest
                var anchor: String?
                if value.hasPrefix("&") {
                    let parts = value.split(separator: " ", maxSplits: 1).map(String.init)
                    anchor = String(parts[0].dropFirst())
                    value = parts.count > 1 ? parts[1].trimmingSpaces() : ""
                }
                let node: DoctorYAMLNode
                if !value.isEmpty {
                    node = inlineValue(value, line: line.number)
                } else if let next = current, next.indent > indent {
                    node = block(indent: next.indent, depth: depth + 1)
                } else if let next = current, next.indent == indent, Self.isItem(next.text) {
                    node = sequence(indent: indent, depth: depth + 1)
                } else {
                    node = .scalar("")
                }
                if let anchor { anchors[anchor] = node }
                entries.append(DoctorYAMLEntry(key: key, value: node, line: line.number))
            }
            return .mapping(entries)
        }

        mutating func sequence(indent: Int, depth: Int) -> DoctorYAMLNode {
            var items: [DoctorYAMLNode] = []
            while let line = current, line.indent == indent, Self.isItem(line.text) {
                let content = String(line.text.dropFirst()).trimmingSpaces()
                if content.isEmpty {
                    position += 1
                    if let next = current, next.indent > indent {
                        items.append(block(indent: next.indent, depth: depth + 1))
                    } else {
                        items.append(.scalar(""))
                    }
                } else if splitKey(content) != nil {
                    // "- key: value": read it as a mapping indented past the dash.
                    let inner = indent + 2
                    lines[position] = Line(indent: inner, text: content, number: line.number)
                    items.append(mapping(indent: inner, depth: depth + 1))
                } else {
                    position += 1
                    items.append(inlineValue(content, line: line.number))
                }
            }
            return .sequence(items)
        }

        /// A value written on the key's line; the entries of a flow mapping are on `line` too.
        func inlineValue(_ text: String, line: Int) -> DoctorYAMLNode {
            if text.hasPrefix("*") {
                return anchors[String(text.dropFirst())] ?? .scalar("")
            }
            if text.hasPrefix("[") {
                let inner = text.dropFirst().prefix { $0 != "]" }
                let items = inner.split(separator: ",").map { unquote(String($0).trimmingSpaces()) }.filter { !$0.isEmpty }
                return .sequence(items.map { .scalar($0) })
            }
            if text.hasPrefix("{") {
                let inner = text.dropFirst().prefix { $0 != "}" }
                var entries: [DoctorYAMLEntry] = []
                for part in inner.split(separator: ",") {
                    if let (key, value) = splitKey(String(part).trimmingSpaces()) {
                        entries.append(DoctorYAMLEntry(key: key, value: .scalar(unquote(value)), line: line))
                    }
                }
                return .mapping(entries)
            }
            return .scalar(unquote(text))
        }

        /// Splits `key: value` (or `key:`) at the first colon followed by a space or the end.
        func splitKey(_ text: String) -> (String, String)? {
            var inSingle = false
            var inDouble = false
            var index = text.startIndex
            while index < text.endIndex {
                let character = text[index]
                if character == "'" && !inDouble { inSingle.toggle() }
                if character == "\"" && !inSingle { inDouble.toggle() }
                if character == ":" && !inSingle && !inDouble {
                    let next = text.index(after: index)
                    if next == text.endIndex || text[next] == " " {
                        let key = unquote(String(text[..<index]).trimmingSpaces())
                        let value = next == text.endIndex ? "" : String(text[next...]).trimmingSpaces()
                        return key.isEmpty ? nil : (key, value)
                    }
                }
                index = text.index(after: index)
            }
            return nil
        }

        func unquote(_ text: String) -> String {
            if text.count >= 2, let first = text.first, let last = text.last, first == last, first == "\"" || first == "'" {
                return String(text.dropFirst().dropLast())
            }
            return text
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

    func replacingTabs() -> String {
        contains("\t") ? split(separator: "\t", omittingEmptySubsequences: false).joined(separator: "    ") : self
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
