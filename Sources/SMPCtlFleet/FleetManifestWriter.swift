// Writes a manifest for a list of devices (the simulator's fleet prints one), quoting every
// value so that any text survives the round trip through the YAML parser.

public enum FleetManifestWriter {
    public struct Device: Sendable {
        public var name: String
        public var connection: String
        public var labels: [(String, String)]

        public init(name: String, connection: String, labels: [(String, String)]) {
            self.name = name
            self.connection = connection
            self.labels = labels
        }
    }

    /// A manifest with one image for every device (through a rule that matches all).
    /// `imagePath` is written as given (relative paths are relative to where the manifest is saved).
    public static func manifest(
        devices: [Device], imageName: String = "app", imagePath: String, version: String, comment: [String] = [],
        defaults: [(String, String)] = []
    ) -> String {
        var out = ""
        for line in comment { out += "# \(line)\n" }
        out += "version: 1\n"
        if !defaults.isEmpty {
            out += "defaults:\n"
            for (key, value) in defaults { out += "  \(key): \(value)\n" }
        }
        out += "images:\n"
        out += "  \(imageName):\n"
        out += "    file: \(quote(imagePath))\n"
        out += "    version: \(quote(version))\n"
        out += "rules:\n"
        out += "  - match: {}\n"
        out += "    images: [\(imageName)]\n"
        out += "devices:\n"
        for device in devices {
            out += "  - name: \(quote(device.name))\n"
            out += "    connection: \(quote(device.connection))\n"
            if !device.labels.isEmpty {
                out += "    labels: {" + device.labels.map { "\(quote($0.0)): \(quote($0.1))" }.joined(separator: ", ") + "}\n"
            }
        }
        return out
    }

    /// A double-quoted YAML scalar.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
