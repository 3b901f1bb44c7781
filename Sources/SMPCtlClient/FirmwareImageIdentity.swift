public import SMPCtlImage

/// What the device will list for an image file: its hash TLV and version.
public struct FirmwareImageIdentity: Sendable {
    /// The image hash (the hash TLV inside the image, not the SHA-256 of the file).
    public var hash: [UInt8]
    /// The version as Zephyr reports it.
    public var version: String
    /// The parsed image.
    public var image: MCUbootImage

    /// Reads and checks a signed MCUboot image: header magic, TLV area, and a hash TLV that matches the contents.
    public init(file: FirmwareFile) throws(SMPClientError) {
        let image: MCUbootImage
        do {
            // Reads the header and the TLV areas only; the hash is computed piece by piece.
            image = try MCUbootImage(reading: file)
        } catch {
            throw .invalidInput("\(file.path) is not a signed MCUboot image: \(error.description)")
        }
        guard let hash = image.sha256TLV ?? image.hashTLV else {
            throw .invalidInput("\(file.path) has no hash TLV; the device cannot list or verify it")
        }
        guard image.hashMatches else {
            throw .invalidInput("\(file.path) is corrupt: its hash TLV does not match its contents")
        }
        self.hash = hash
        self.version = image.versionString
        self.image = image
    }
}

extension FirmwareFile: MCUbootImageSource {
    public var count: Int { length }

    public func read(_ range: Range<Int>) throws(MCUbootImageError) -> [UInt8] {
        do {
            return try read(offset: range.lowerBound, count: range.count)
        } catch {
            throw MCUbootImageError(.truncated, "cannot read \(path): \(error)", offset: range.lowerBound)
        }
    }
}
