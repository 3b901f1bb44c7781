import Foundation

/// Locates files in `Tests/Fixtures`.
enum ImageFixture {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    static func json(_ name: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent(name)))
        guard let root = object as? [String: Any] else { throw CocoaError(.fileReadCorruptFile) }
        return root
    }
}

/// Parses "0x…" or decimal JSON values.
func jsonInt(_ value: Any?) -> Int? {
    if let n = value as? Int { return n }
    if let s = value as? String {
        if s.hasPrefix("0x") { return Int(s.dropFirst(2), radix: 16) }
        return Int(s)
    }
    return nil
}
