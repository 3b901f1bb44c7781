// Reader for a Kconfig output file (`zephyr/.config`): `CONFIG_X=value` lines and
// `# CONFIG_X is not set` comments. Unknown lines are ignored.

/// One resolved Kconfig file, as written to `zephyr/.config`.
@_spi(Fuzzing) public struct DoctorKconfig: Sendable {
    /// The file it was read from, relative to the build folder.
    public var file: String
    /// Values by option name (with the `CONFIG_` prefix), strings unquoted; "n" for "is not set".
    public var values: [String: String] = [:]
    /// The 1-based line of each option.
    public var lines: [String: Int] = [:]

    /// Parses `.config` text.
    public init(file: String, text: String) {
        self.file = file
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if index >= 100_000 { break }
            let line = String(raw).trimmingSpaces()
            if line.hasPrefix("# CONFIG_") || line.hasPrefix("# SB_CONFIG_"), line.hasSuffix(" is not set") {
                let name = line.dropFirst(2).prefix { $0 != " " }
                values[String(name)] = "n"
                lines[String(name)] = index + 1
                continue
            }
            guard line.hasPrefix("CONFIG_") || line.hasPrefix("SB_CONFIG_"),
                let equals = line.firstIndex(of: "=")
            else { continue }
            let name = String(line[..<equals])
            var value = String(line[line.index(after: equals)...])
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            values[name] = value
            lines[name] = index + 1
        }
    }

    /// Whether a bool option is `y`.
    public func isEnabled(_ name: String) -> Bool { values[name] == "y" }

    /// An integer option (decimal or hex).
    public func integer(_ name: String) -> UInt64? { doctorInteger(values[name]) }

    /// "file:line" for an option, or the file alone when the option is absent.
    public func location(_ name: String) -> DoctorLocation {
        DoctorLocation(file: file, line: lines[name], key: name)
    }
}
