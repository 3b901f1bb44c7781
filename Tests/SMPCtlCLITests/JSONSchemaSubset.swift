import Foundation

/// A JSON value as the schema checks see it: integers apart from other numbers, booleans apart
/// from numbers (JSONDecoder keeps them apart, unlike JSONSerialization's NSNumber).
indirect enum JSONNode: Decodable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONNode])
    case object([String: JSONNode])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONNode].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONNode].self))
        }
    }

    static func parse(_ text: String) throws -> JSONNode {
        try JSONDecoder().decode(JSONNode.self, from: Data(text.utf8))
    }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): String(value)
        case .integer(let value): String(value)
        case .number(let value): String(value)
        case .string(let value): "\"\(value)\""
        case .array(let values): "[" + values.map(\.description).joined(separator: ",") + "]"
        case .object(let members): "{" + members.keys.sorted().map { "\"\($0)\":\(members[$0]?.description ?? "")" }.joined(separator: ",") + "}"
        }
    }

    subscript(key: String) -> JSONNode? {
        if case .object(let members) = self { return members[key] }
        return nil
    }
}

/// Validates JSON against the subset of JSON Schema (2020-12) that `Schemas/` uses: `type`,
/// `properties`, `required`, `additionalProperties`, `propertyNames`, `items`, `enum`, `const`,
/// `$ref` to `#/$defs/...`, `oneOf`, `anyOf`, `allOf`, `not`, `minimum`, `pattern`. A keyword
/// outside this subset is an error, so the schema can never rely on a check that is not made.
struct JSONSchemaSubset {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static let annotations: Set<String> = ["$schema", "$id", "$defs", "$comment", "title", "description", "examples", "format", "default"]
    static let keywords: Set<String> = [
        "type", "properties", "required", "additionalProperties", "propertyNames", "items", "enum", "const", "$ref",
        "oneOf", "anyOf", "allOf", "not", "minimum", "pattern",
    ]

    let root: JSONNode

    init(schema: JSONNode) throws {
        root = schema
        try Self.checkKeywords(schema, at: "#")
    }

    /// Every keyword in the schema is one this validator implements.
    private static func checkKeywords(_ schema: JSONNode, at path: String) throws {
        guard case .object(let members) = schema else {
            if case .bool = schema { return }
            throw Failure(description: "\(path): a schema is an object or a boolean")
        }
        for (key, value) in members {
            guard keywords.contains(key) || annotations.contains(key) else {
                throw Failure(description: "\(path): keyword \(key) is not in the validated subset")
            }
            switch key {
            case "properties", "$defs":
                guard case .object(let children) = value else { throw Failure(description: "\(path)/\(key) is not an object") }
                for (name, child) in children { try checkKeywords(child, at: "\(path)/\(key)/\(name)") }
            case "items", "additionalProperties", "not", "propertyNames":
                try checkKeywords(value, at: "\(path)/\(key)")
            case "oneOf", "anyOf", "allOf":
                guard case .array(let children) = value else { throw Failure(description: "\(path)/\(key) is not an array") }
                for (index, child) in children.enumerated() { try checkKeywords(child, at: "\(path)/\(key)/\(index)") }
            default:
                break
            }
        }
    }

    /// The schema at `#/$defs/NAME`.
    func definition(_ name: String) throws -> JSONNode {
        guard let node = root["$defs"]?[name] else { throw Failure(description: "no #/$defs/\(name)") }
        return node
    }

    /// The errors of `value` against `#/$defs/NAME` (or the root schema when `name` is nil); empty when it is valid.
    func errors(_ value: JSONNode, against name: String? = nil) throws -> [String] {
        let schema = try name.map(definition) ?? root
        return try errors(value, schema, at: "$")
    }

    private func errors(_ value: JSONNode, _ schema: JSONNode, at path: String) throws -> [String] {
        if case .bool(let allowed) = schema { return allowed ? [] : ["\(path): not allowed"] }
        guard case .object(let rules) = schema else { throw Failure(description: "bad schema at \(path)") }
        var found: [String] = []
        if let reference = rules["$ref"] {
            guard case .string(let text) = reference, text.hasPrefix("#/$defs/") else {
                throw Failure(description: "\(path): only #/$defs/ references are supported")
            }
            found += try errors(value, definition(String(text.dropFirst("#/$defs/".count))), at: path)
        }
        if let type = rules["type"] {
            let names: [String]
            switch type {
            case .string(let name): names = [name]
            case .array(let list): names = list.compactMap { if case .string(let s) = $0 { s } else { nil } }
            default: throw Failure(description: "\(path): bad type")
            }
            if !names.contains(where: { Self.matches(value, type: $0) }) {
                found.append("\(path): \(value) is not of type \(names.joined(separator: "|"))")
                return found
            }
        }
        if let constant = rules["const"], constant != value { found.append("\(path): \(value) is not \(constant)") }
        if case .array(let options)? = rules["enum"], !options.contains(value) {
            found.append("\(path): \(value) is not one of \(options)")
        }
        if let minimum = rules["minimum"], let number = Self.number(value), let bound = Self.number(minimum), number < bound {
            found.append("\(path): \(number) is below \(bound)")
        }
        if case .string(let pattern)? = rules["pattern"], case .string(let text) = value {
            let expression = try NSRegularExpression(pattern: pattern)
            if expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil {
                found.append("\(path): \"\(text)\" does not match \(pattern)")
            }
        }
        if case .object(let members) = value {
            if case .array(let required)? = rules["required"] {
                for case .string(let key) in required where members[key] == nil {
                    found.append("\(path): lacks \"\(key)\"")
                }
            }
            let properties: [String: JSONNode]
            if case .object(let declared)? = rules["properties"] { properties = declared } else { properties = [:] }
            for (key, member) in members {
                if let names = rules["propertyNames"] {
                    found += try errors(.string(key), names, at: "\(path) key \"\(key)\"")
                }
                if let rule = properties[key] {
                    found += try errors(member, rule, at: "\(path).\(key)")
                } else if let extra = rules["additionalProperties"] {
                    found += try errors(member, extra, at: "\(path).\(key)")
                }
            }
        }
        if case .array(let elements) = value, let items = rules["items"] {
            for (index, element) in elements.enumerated() { found += try errors(element, items, at: "\(path)[\(index)]") }
        }
        if case .array(let all)? = rules["allOf"] {
            for rule in all { found += try errors(value, rule, at: path) }
        }
        if case .array(let any)? = rules["anyOf"] {
            let results = try any.map { try errors(value, $0, at: path) }
            if !results.contains(where: \.isEmpty) {
                found.append("\(path): matches none of anyOf: " + results.map { $0.joined(separator: "; ") }.joined(separator: " | "))
            }
        }
        if case .array(let one)? = rules["oneOf"] {
            let results = try one.map { try errors(value, $0, at: path) }
            let matching = results.filter(\.isEmpty).count
            if matching != 1 {
                let why = matching == 0 ? results.map { $0.joined(separator: "; ") }.joined(separator: " | ") : "\(matching) match"
                found.append("\(path): must match exactly one of oneOf: \(why)")
            }
        }
        if let negated = rules["not"], try errors(value, negated, at: path).isEmpty {
            found.append("\(path): matches a schema it must not match")
        }
        return found
    }

    private static func matches(_ value: JSONNode, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("integer", .integer), ("number", .integer), ("number", .number),
            ("string", .string), ("array", .array), ("object", .object):
            true
        default:
            false
        }
    }

    private static func number(_ value: JSONNode) -> Double? {
        switch value {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }
}
