import Foundation

/// Locates files in `Tests/Fixtures`.
enum Fixture {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(name))
    }

    /// The `vectors` array of a JSON vector file.
    static func vectors(_ name: String) throws -> [[String: Any]] {
        let object = try JSONSerialization.jsonObject(with: data(name))
        guard let root = object as? [String: Any], let vectors = root["vectors"] as? [[String: Any]] else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return vectors
    }
}

