import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlFiles
import SMPCtlProtocol

/// The image `image test` and `image confirm` act on: a full hash, a prefix of a hash the device
/// lists (unique among its images), an image file (its SHA-256 hash TLV), or `--slot N`.
struct ImageSelection: ParsableArguments {
    @Argument(
        help: ArgumentHelp(
            "The image: its hash as `image list` shows it (64 hex digits, or a unique prefix of at least 4), or a signed image file.",
            valueName: "hash|file"),
        completion: Completion.signedImage)
    var target: String?

    @Option(help: ArgumentHelp("The image in this slot instead (as `image list` numbers them).", valueName: "n"))
    var slot: Int?

    @Option(name: .customLong("image"), help: ArgumentHelp("With --slot: the image number (default 0; 1 is the nRF5340 network core).", valueName: "n"))
    var imageNumber: Int = 0

    /// The shortest prefix taken: shorter ones match too much by chance.
    static let minimumPrefix = 4

    func validate() throws {
        if target != nil, slot != nil { throw ValidationError("give a hash or file, or --slot, not both") }
        if let slot, !(0...255).contains(slot) { throw ValidationError("--slot must be between 0 and 255") }
        guard (0...255).contains(imageNumber) else { throw ValidationError("--image must be between 0 and 255") }
    }

    /// What is known before asking the device: a whole hash, or a file's hash.
    enum Request: Equatable {
        case none
        case hash([UInt8])
        case prefix(String)
        case slot(image: Int, slot: Int)
    }

    /// Reads a file's hash, or parses the hash or prefix; typed errors for the rest.
    func request() throws(SMPClientError) -> Request {
        if let slot { return .slot(image: imageNumber, slot: slot) }
        guard let target else { return .none }
        if RegularFile.isRegular(target) {
            let file = try FirmwareFile(path: target)
            return .hash(try FirmwareImageIdentity(file: file).hash)
        }
        let hex = target.lowercased().filter { $0 != ":" }
        guard !hex.isEmpty, hex.count <= 64, hex.allSatisfy(\.isHexDigit) else {
            throw .invalidInput("\"\(target)\" is neither a file nor an image hash (hex digits, as `image list` shows them)")
        }
        if hex.count == 64, let bytes = parseHex(hex) { return .hash(bytes) }
        guard hex.count >= Self.minimumPrefix else {
            throw .invalidInput("a hash prefix needs at least \(Self.minimumPrefix) hex digits")
        }
        return .prefix(hex)
    }

    /// The hash to send: a prefix or slot is looked up in the device's image list.
    static func resolve(_ request: Request, images: [ImageManagement.SlotState]) throws(SMPClientError) -> [UInt8]? {
        switch request {
        case .none:
            return nil
        case .hash(let hash):
            return hash
        case .prefix(let prefix):
            let matches = images.filter { $0.hash.map { hexString($0).hasPrefix(prefix) } ?? false }
            let distinct = Set(matches.compactMap(\.hash))
            guard let only = distinct.first else {
                throw .invalidInput("no image on the device has a hash starting with \(prefix) (see `smpctl image list`)")
            }
            guard distinct.count == 1 else {
                let listed = matches.map { "image \($0.image) slot \($0.slot): \($0.hash.map(hexString) ?? "")" }
                throw .invalidInput("\(prefix) matches \(distinct.count) images; give more digits: \(listed.joined(separator: "; "))")
            }
            return only
        case .slot(let image, let slot):
            guard let entry = images.first(where: { $0.image == image && $0.slot == slot }) else {
                throw .invalidInput("the device lists no image in slot \(slot) of image \(image) (see `smpctl image list`)")
            }
            guard let hash = entry.hash else {
                throw .invalidInput("the device lists no hash for slot \(slot) of image \(image)")
            }
            return hash
        }
    }
}
