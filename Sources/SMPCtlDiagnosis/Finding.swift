// The one finding type of every check: `diagnose` (device facts), `doctor` (a build folder) and
// `image inspect` (a file), with one severity order.

/// How much a finding matters, ordered from least to most: `info < warning < error`.
public enum Severity: String, Sendable, Hashable, Comparable, CaseIterable {
    /// Worth knowing; nothing fails because of it.
    case info
    /// Something that may make an update fail or behave unexpectedly.
    case warning
    /// Something that makes an update fail, or a check that failed.
    case error

    private var rank: Int {
        switch self {
        case .info: 0
        case .warning: 1
        case .error: 2
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }
}

/// One thing a check found.
public struct Finding: Sendable, Hashable {
    /// Where in a file a finding points: the file, a line when known, and the key (option, partition, property).
    public struct Location: Sendable, Hashable, CustomStringConvertible {
        public var file: String
        public var line: Int?
        public var key: String?

        public init(file: String, line: Int? = nil, key: String? = nil) {
            self.file = file
            self.line = line
            self.key = key
        }

        /// `file:line (key)`.
        public var description: String {
            var text = file
            if let line { text += ":\(line)" }
            if let key { text += " (\(key))" }
            return text
        }
    }

    /// A stable identifier, such as `pending-slot-blocks-upload`, `slot-size-mismatch` or `hash-mismatch`.
    public var id: String
    public var severity: Severity
    /// One line: what was found.
    public var summary: String
    /// Why it matters for an update, when the check says.
    public var why: String?
    /// What to do about it, when there is something to do.
    public var fix: String?
    /// Firmware settings involved (Kconfig options).
    public var settings: [String]
    /// Where it was found, for findings about files.
    public var location: Location?
    /// Keys of the public reports the check is based on (``DoctorReferences``).
    public var references: [String]

    public init(
        id: String, severity: Severity, summary: String, why: String? = nil, fix: String? = nil,
        settings: [String] = [], location: Location? = nil, references: [String] = []
    ) {
        self.id = id
        self.severity = severity
        self.summary = summary
        self.why = why
        self.fix = fix
        self.settings = settings
        self.location = location
        self.references = references
    }
}

extension Sequence where Element == Finding {
    /// The worst severity among the findings, or `nil` when there are none.
    public var worstSeverity: Severity? { map(\.severity).max() }
}
