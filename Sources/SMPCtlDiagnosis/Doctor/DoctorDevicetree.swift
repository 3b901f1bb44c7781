// A devicetree source reader good enough for the final `zephyr/zephyr.dts` that Zephyr writes:
// nodes with labels and unit addresses, `chosen`, `status`, `compatible`, `reg`, erase sizes and
// fixed partitions. It also accepts overlay-style `&label { ... };` blocks and skips directives.

/// One devicetree node.
@_spi(Fuzzing) public struct DoctorDTNode: Sendable {
    /// The node name with its unit address, such as `partition@c000`.
    public var name: String
    /// Labels such as `slot1_partition`.
    public var labels: [String]
    /// The full path, such as `/soc/qspi@40029000/mx25r6435f@0`.
    public var path: String
    /// Index of the parent in ``DoctorDevicetree/nodes`` (nil for the root).
    public var parent: Int?
    /// Properties by name: the raw value text (empty for a boolean property).
    public var properties: [String: String] = [:]
    /// The line each property is on.
    public var propertyLines: [String: Int] = [:]
    /// The line the node opens on.
    public var line: Int

    /// The first string of `compatible`, and all of them.
    public var compatibles: [String] { DoctorDevicetree.strings(properties["compatible"] ?? "") }
    /// `status`, "okay" when absent.
    public var status: String { DoctorDevicetree.strings(properties["status"] ?? "").first ?? "okay" }
    /// Whether `status` is "okay" (or absent).
    public var isOkay: Bool { status == "okay" || status == "ok" }
    /// The cells of a `< ... >` property.
    public func cells(_ property: String) -> [UInt64] { DoctorDevicetree.cells(properties[property] ?? "") }
}

/// A parsed devicetree.
@_spi(Fuzzing) public struct DoctorDevicetree: Sendable {
    /// The file, relative to the build folder.
    public var file: String
    /// All nodes; index 0 is the root.
    public var nodes: [DoctorDTNode]
    /// `chosen` properties: name → raw value (`&label` or a path string), with lines.
    public var chosen: [String: String] = [:]
    public var chosenLines: [String: Int] = [:]

    static let maxNodes = 20_000
    static let maxDepth = 64

    /// Parses devicetree source text.
    public init(file: String, text: String) {
        self.file = file
        nodes = [DoctorDTNode(name: "/", labels: [], path: "/", parent: nil, line: 1)]
        var tokens = Tokenizer(text: text)
        var stack: [Int] = [0]
        var pendingLabels: [String] = []
        var words: [(String, Int)] = []
        while let token = tokens.next() {
            switch token.kind {
            case .word:
                if token.text.hasSuffix(":") && words.isEmpty && token.text.count > 1 {
                    pendingLabels.append(String(token.text.dropLast()))
                } else {
                    words.append((token.text, token.line))
                }
            case .open:
                let parentIndex = stack.last ?? 0
                let name = words.last?.0 ?? ""
                let line = words.last?.1 ?? token.line
                words.removeAll()
                if stack.count > Self.maxDepth || nodes.count >= Self.maxNodes {
                    tokens.skipBlock()
                    pendingLabels.removeAll()
                    continue
                }
                if name == "/" {
                    stack.append(0)
                } else if name.hasPrefix("&") {
                    let label = String(name.dropFirst())
                    stack.append(nodes.firstIndex { $0.labels.contains(label) } ?? 0)
                } else {
                    let parentPath = nodes[parentIndex].path
                    let path = parentPath == "/" ? "/" + name : parentPath + "/" + name
                    if let existing = nodes.firstIndex(where: { $0.path == path }) {
                        nodes[existing].labels.append(contentsOf: pendingLabels)
                        stack.append(existing)
                    } else {
                        nodes.append(DoctorDTNode(name: name, labels: pendingLabels, path: path, parent: parentIndex, line: line))
                        stack.append(nodes.count - 1)
                    }
                }
                pendingLabels.removeAll()
            case .close:
                if stack.count > 1 { stack.removeLast() }
                words.removeAll()
                pendingLabels.removeAll()
            case .semicolon:
                defer { words.removeAll(); pendingLabels.removeAll() }
                guard let first = words.first, !first.0.hasPrefix("/") else { continue }
                let current = stack.last ?? 0
                let value = words.dropFirst().map(\.0).filter { $0 != "=" }.joined(separator: " ")
                nodes[current].properties[first.0] = value
                nodes[current].propertyLines[first.0] = first.1
                if nodes[current].name == "chosen" {
                    chosen[first.0] = value
                    chosenLines[first.0] = first.1
                }
            }
        }
    }

    /// The node a label names.
    public func node(label: String) -> DoctorDTNode? { nodes.first { $0.labels.contains(label) } }

    /// The node a chosen property points at (`&label` or a path).
    public func chosenNode(_ name: String) -> DoctorDTNode? {
        guard let value = chosen[name]?.trimmingSpaces() else { return nil }
        if value.hasPrefix("&") { return node(label: String(value.dropFirst())) }
        let path = Self.strings(value).first ?? value
        return nodes.first { $0.path == path }
    }

    /// The parent of a node.
    public func parent(of node: DoctorDTNode) -> DoctorDTNode? { node.parent.map { nodes[$0] } }

    /// Whether the node and every ancestor are enabled.
    public func isEnabled(_ node: DoctorDTNode) -> Bool {
        var current: DoctorDTNode? = node
        var steps = 0
        while let each = current, steps < Self.maxDepth {
            if !each.isOkay { return false }
            current = parent(of: each)
            steps += 1
        }
        return true
    }

    /// The nearest ancestor (or the node itself) that has `property`.
    public func inherited(_ property: String, from node: DoctorDTNode) -> DoctorDTNode? {
        var current: DoctorDTNode? = node
        var steps = 0
        while let each = current, steps < Self.maxDepth {
            if each.properties[property] != nil { return each }
            current = parent(of: each)
            steps += 1
        }
        return nil
    }

    /// Nodes with a compatible string.
    public func nodes(compatible: String) -> [DoctorDTNode] { nodes.filter { $0.compatibles.contains(compatible) } }

    /// The quoted strings of a property value.
    static func strings(_ value: String) -> [String] {
        var result: [String] = []
        var current = ""
        var inside = false
        var escaped = false
        for character in value {
            if inside {
                if escaped { current.append(character); escaped = false; continue }
                if character == "\\" { escaped = true; continue }
                if character == "\"" { result.append(current); current = ""; inside = false; continue }
                current.append(character)
            } else if character == "\"" {
                inside = true
            }
        }
        return result
    }

    /// The numeric cells of `< ... >` groups; references and expressions are skipped.
    static func cells(_ value: String) -> [UInt64] {
        var result: [UInt64] = []
        var inside = false
        var word = ""
        func flush() {
            if !word.isEmpty, let number = doctorInteger(word) { result.append(number) }
            word = ""
        }
        for character in value {
            switch character {
            case "<": inside = true; word = ""
            case ">": flush(); inside = false
            case " ", "\n", "\t", "(", ")": if inside { flush() }
            default: if inside { word.append(character) }
            }
        }
        return result
    }

    struct Token {
        enum Kind { case word, open, close, semicolon }
        var kind: Kind
        var text: String
        var line: Int
    }

    /// Splits devicetree source into words, braces and semicolons; a `<...>`, `[...]` or quoted
    /// string is one word. Comments and preprocessor lines are dropped.
    struct Tokenizer {
        let characters: [Character]
        var index = 0
        var line = 1

        init(text: String) { characters = Array(text.prefix(8 * 1024 * 1024)) }

        func peek(_ offset: Int = 0) -> Character? {
            index + offset < characters.count ? characters[index + offset] : nil
        }

        mutating func advance() {
            if index < characters.count, characters[index] == "\n" { line += 1 }
            index += 1
        }

        mutating func skipBlock() {
            var depth = 1
            while let token = next() {
                if token.kind == .open { depth += 1 }
                if token.kind == .close { depth -= 1; if depth == 0 { return } }
            }
        }

        mutating func next() -> Token? {
            while let character = peek() {
                if character == " " || character == "\t" || character == "\r" || character == "\n" {
                    advance()
                } else if character == "/" && peek(1) == "*" {
                    advance(); advance()
                    while let each = peek(), !(each == "*" && peek(1) == "/") { advance() }
                    advance(); advance()
                } else if character == "/" && peek(1) == "/" {
                    while let each = peek(), each != "\n" { advance() }
                } else if character == "#" && (index == 0 || characters[index - 1] == "\n") && peek(1) != "a" && peek(1) != "s" {
                    // A preprocessor line (#include, #define); `#address-cells` and `#size-cells` are properties.
                    while let each = peek(), each != "\n" { advance() }
                } else {
                    break
                }
            }
            guard let character = peek() else { return nil }
            let start = line
            switch character {
            case "{": advance(); return Token(kind: .open, text: "{", line: start)
            case "}": advance(); return Token(kind: .close, text: "}", line: start)
            case ";": advance(); return Token(kind: .semicolon, text: ";", line: start)
            case "=": advance(); return Token(kind: .word, text: "=", line: start)
            case ",": advance(); return Token(kind: .word, text: ",", line: start)
            case "\"", "<", "[":
                let close: Character = character == "\"" ? "\"" : character == "<" ? ">" : "]"
                var text = String(character)
                advance()
                while let each = peek() {
                    text.append(each)
                    advance()
                    if each == "\\" && close == "\"", let escaped = peek() { text.append(escaped); advance(); continue }
                    if each == close { break }
                }
                return Token(kind: .word, text: text, line: start)
            default:
                var text = ""
                while let each = peek(), !" \t\r\n{};=\"<[".contains(each) {
                    text.append(each)
                    advance()
                    if each == ":" { break }
                }
                if text.isEmpty { advance(); return next() }
                return Token(kind: .word, text: text, line: start)
            }
        }
    }
}
