// Errors in a fleet manifest name the file, the line and the field, so that a person with a
// manifest of thousands of devices finds the mistake at once.

/// A manifest that cannot be used: where, which field, and what is wrong.
public struct ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The manifest file as given.
    public var file: String
    /// 1-based line, when the YAML node is known.
    public var line: Int?
    /// 1-based column, when known.
    public var column: Int?
    /// The field, as a path: `devices[3].connection`, `images.app.version`.
    public var field: String
    public var message: String

    public init(file: String, line: Int?, column: Int? = nil, field: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    /// `fleet.yaml:12:5: devices[3].connection: message`
    public var description: String {
        var place = file
        if let line {
            place += ":\(line)"
            if let column { place += ":\(column)" }
        }
        return field.isEmpty ? "\(place): \(message)" : "\(place): \(field): \(message)"
    }
}
