// The result of inspecting a file: its kind, the findings, and a DFU package's images.

import Foundation
import SMPCtlFiles
public import SMPCtlImage

/// What kind of file was inspected.
public enum ImageFileKind: String, Sendable, Hashable, CaseIterable {
    /// A structurally valid MCUboot image.
    case mcubootImage = "mcuboot-image"
    /// Starts with the MCUboot magic but is cut short or damaged.
    case damagedImage = "damaged-mcuboot-image"
    /// No MCUboot header, but the start looks like an application (a vector table): zephyr.bin.
    case rawBinary = "raw-binary"
    /// Intel HEX text (zephyr.hex, zephyr.signed.hex, merged.hex).
    case intelHex = "intel-hex"
    /// An ELF object (zephyr.elf).
    case elf
    /// A ZIP DFU package with a manifest.json (dfu_application.zip).
    case dfuPackage = "dfu-package"
    /// Another ZIP archive.
    case zip
    /// An empty file.
    case empty
    /// Anything else.
    case unknown

    /// A short human name.
    public var title: String {
        switch self {
        case .mcubootImage: "MCUboot image"
        case .damagedImage: "damaged MCUboot image"
        case .rawBinary: "raw binary without an MCUboot header"
        case .intelHex: "Intel HEX file"
        case .elf: "ELF file"
        case .dfuPackage: "DFU package (ZIP with manifest.json)"
        case .zip: "ZIP archive"
        case .empty: "empty file"
        case .unknown: "unrecognized data"
        }
    }
}

/// What an inspection finding says about the file, beyond its ``Severity``: whether the file is no
/// usable image at all, or an image whose check failed. The verdict and exit status follow from it.
public enum ImageFindingKind: String, Sendable, Hashable {
    /// The file is not a usable image (bad input): an error.
    case invalid
    /// The file is an image but a check failed (hash, signature, key, slot size): an error.
    case failed
    /// Worth knowing; the image may still work.
    case warning
    /// Information.
    case note

    /// The severity of a finding of this kind.
    public var severity: Severity {
        switch self {
        case .invalid, .failed: .error
        case .warning: .warning
        case .note: .info
        }
    }
}

/// One image listed in a DFU package's manifest.json.
public struct DFUPackageImage: Sendable, Hashable {
    /// The file name inside the ZIP.
    public var file: String
    /// `image_index`: the `--image` number to upload it with.
    public var imageIndex: Int?
    public var board: String?
    public var soc: String?
    public var type: String?
    /// `version_MCUBOOT` from the manifest.
    public var manifestVersion: String?
    public var loadAddress: Int?
    public var size: Int?
    /// Which core, derived from the index and board.
    public var core: String
    /// Version from the image header inside the ZIP.
    public var imageVersion: String?
    /// The image hash TLV of the image inside the ZIP.
    public var imageHash: [UInt8]?
    /// Why the entry could not be read or is not a valid image.
    public var problem: String?
}

/// Settings for an inspection.
public struct ImageInspectionOptions: Sendable {
    /// The key to check the signature and KEYHASH with.
    public var key: ImageVerificationKey?
    /// Where the key came from, for messages.
    public var keyName: String?
    /// The slot size to check the image against.
    public var slotSize: Int?
    /// The trailer size assumption for the slot check.
    public var trailer = MCUbootTrailerEstimate()

    public init(key: ImageVerificationKey? = nil, keyName: String? = nil, slotSize: Int? = nil,
        trailer: MCUbootTrailerEstimate = MCUbootTrailerEstimate())
    {
        self.key = key
        self.keyName = keyName
        self.slotSize = slotSize
        self.trailer = trailer
    }
}

/// Everything learned about one file.
public struct ImageInspection: Sendable {
    /// The overall result.
    public enum Verdict: String, Sendable, Hashable {
        /// A valid image and every requested check passed.
        case good
        /// Not a usable image file.
        case notAnImage = "not-an-image"
        /// A valid image with a failed check.
        case checkFailed = "check-failed"
    }

    public var name: String
    public var fileSize: Int
    public var kind: ImageFileKind
    /// The parsed image, when the file is one.
    public var image: MCUbootImage?
    /// Why the MCUboot parser refused the file.
    public var parseError: MCUbootImageError?
    /// The hash algorithm of the hash TLV.
    public var hashAlgorithm: MCUbootHashAlgorithm?
    /// The hash TLV value.
    public var storedHash: [UInt8]?
    /// The hash of the hashed region.
    public var computedHash: [UInt8]?
    public var signature: ImageSignatureCheck?
    public var keyCheck: ImageKeyCheck?
    /// Whether the file carries an MCUboot trailer after the TLVs (imgtool --pad).
    public var hasTrailer = false
    public var slotFit: ImageSlotFit?
    public var trailer: MCUbootTrailerEstimate
    /// The images of a DFU package.
    public var packageImages: [DFUPackageImage] = []
    /// What was found; `summary` is the message, `fix` the advice.
    public internal(set) var findings: [Finding] = []
    /// The ids of the findings that say the file is not a usable image (``ImageFindingKind/invalid``).
    public internal(set) var invalidFindingIDs: Set<String> = []

    /// Whether the hash TLV matches the contents (`nil` when there is no image or no hash TLV).
    public var hashMatches: Bool? {
        guard let storedHash, let computedHash else { return nil }
        return storedHash == computedHash
    }

    /// The overall result from the findings.
    public var verdict: Verdict {
        if kind != .mcubootImage || !invalidFindingIDs.isEmpty { return .notAnImage }
        if findings.contains(where: { $0.severity == .error }) { return .checkFailed }
        return .good
    }

    /// The findings that make the verdict bad.
    public var problems: [Finding] { findings.filter { $0.severity == .error } }

    /// Whether `finding` says the file is no image at all, a failed check, a warning or a note.
    public func kind(of finding: Finding) -> ImageFindingKind {
        switch finding.severity {
        case .error: invalidFindingIDs.contains(finding.id) ? .invalid : .failed
        case .warning: .warning
        case .info: .note
        }
    }

    /// Records a finding of `kind`: `message` is its summary, `advice` what to do.
    mutating func add(_ kind: ImageFindingKind, _ id: String, _ message: String, advice: String? = nil) {
        findings.append(Finding(id: id, severity: kind.severity, summary: message, fix: advice))
        if kind == .invalid { invalidFindingIDs.insert(id) }
    }

    /// One paragraph for an upload refusal: what the file is, what is wrong, what to upload.
    public var refusal: String {
        let what = problems.first ?? findings.first
        var text = "\(name) is not a signed MCUboot image that can be uploaded"
        switch kind {
        case .mcubootImage: break
        case .unknown: text += " (it holds \(kind.title))"
        case .elf, .empty: text += " (it is an \(kind.title))"
        default: text += " (it is a \(kind.title))"
        }
        if let what {
            text += ": \(what.summary)"
            if let advice = what.fix { text += ". \(advice)" }
        }
        return text
    }
}

/// Why a file could not be read at all.
public struct ImageInspectorError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// Inspects firmware files: MCUboot images and the files people upload by mistake.
