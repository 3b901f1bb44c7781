// `smpctl image inspect` and the checks before every upload: what a file is, whether it is a
// good MCUboot image, and when it is not, what to upload instead.

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

/// One observation about an inspected file.
public struct ImageFinding: Sendable, Hashable {
    /// How much a finding matters.
    public enum Level: String, Sendable, Hashable {
        /// The file is not a usable image (bad input).
        case invalid
        /// The file is an image but a check failed (hash, signature, key, slot size).
        case failed
        /// Worth knowing; the image may still work.
        case warning
        /// Information.
        case note
    }

    public var level: Level
    /// A stable identifier, such as `hash-mismatch` or `raw-binary`.
    public var code: String
    public var message: String
    /// What to do about it.
    public var advice: String?

    public init(_ level: Level, _ code: String, _ message: String, advice: String? = nil) {
        self.level = level
        self.code = code
        self.message = message
        self.advice = advice
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
    public var findings: [ImageFinding] = []

    /// Whether the hash TLV matches the contents (`nil` when there is no image or no hash TLV).
    public var hashMatches: Bool? {
        guard let storedHash, let computedHash else { return nil }
        return storedHash == computedHash
    }

    /// The overall result from the findings.
    public var verdict: Verdict {
        if kind != .mcubootImage || findings.contains(where: { $0.level == .invalid }) { return .notAnImage }
        if findings.contains(where: { $0.level == .failed }) { return .checkFailed }
        return .good
    }

    /// The findings that make the verdict bad.
    public var problems: [ImageFinding] { findings.filter { $0.level == .invalid || $0.level == .failed } }

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
            text += ": \(what.message)"
            if let advice = what.advice { text += ". \(advice)" }
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
public enum ImageInspector {
    /// The largest file read.
    public static let maximumFileSize = 64 * 1024 * 1024

    /// What to upload instead of a build artefact that is not the signed image.
    public static let signedImageAdvice =
        "Upload the signed image from the build folder: build/zephyr/zephyr.signed.bin "
        + "(with sysbuild: build/<application>/zephyr/zephyr.signed.bin; nRF Connect SDK also writes app_update.bin)"

    /// Reads at most ``maximumFileSize`` bytes of `path` and inspects them.
    public static func inspect(path: String, options: ImageInspectionOptions = ImageInspectionOptions())
        throws(ImageInspectorError) -> ImageInspection
    {
        let data: Data
        do {
            // Regular files only: a FIFO or a device would block or never end.
            data = try RegularFile.read(path, limit: maximumFileSize)
        } catch {
            if case .tooLarge = error.kind {
                throw ImageInspectorError(
                    reason: "\(path) is larger than \(maximumFileSize / (1024 * 1024)) MiB; that is not a firmware image")
            }
            throw ImageInspectorError(reason: error.description)
        }
        return inspect(bytes: [UInt8](data), name: path, options: options)
    }

    /// Inspects bytes already in memory.
    public static func inspect(bytes: [UInt8], name: String, options: ImageInspectionOptions = ImageInspectionOptions())
        -> ImageInspection
    {
        var result = ImageInspection(name: name, fileSize: bytes.count, kind: .unknown, trailer: options.trailer)
        if bytes.isEmpty {
            result.kind = .empty
            result.findings.append(ImageFinding(.invalid, "empty", "the file is empty", advice: signedImageAdvice))
            return result
        }
        if bytes.count >= 4, bytes[0] == 0x3D, bytes[1] == 0xB8, bytes[2] == 0xF3, bytes[3] == 0x96 {
            inspectImage(bytes, into: &result, options: options)
        } else if bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]) {
            inspectELF(bytes, into: &result)
        } else if ImageArchive.looksLikeZip(bytes) {
            inspectZip(bytes, into: &result)
        } else if let hex = IntelHex(bytes) {
            inspectHex(hex, into: &result)
        } else {
            inspectOther(bytes, into: &result)
        }
        return result
    }

    // MARK: MCUboot images

    static func inspectImage(_ bytes: [UInt8], into result: inout ImageInspection, options: ImageInspectionOptions) {
        let image: MCUbootImage
        do {
            image = try MCUbootImage(parsing: bytes)
        } catch {
            result.kind = .damagedImage
            result.parseError = error
            switch error.code {
            case .truncated:
                result.findings.append(ImageFinding(
                    .invalid, "truncated", "the file is cut short: \(error.reason)",
                    advice: "The copy or download was incomplete; copy zephyr.signed.bin again from the build folder"))
            case .badHeaderSize:
                result.findings.append(ImageFinding(
                    .invalid, "bad-header-size", error.reason,
                    advice: "Sign the image again with imgtool --header-size 0x200 (CONFIG_ROM_START_OFFSET)"))
            default:
                result.findings.append(ImageFinding(
                    .invalid, "damaged", "the MCUboot header is present but the image is damaged: \(error.description)",
                    advice: "Rebuild or sign it again. " + signedImageAdvice))
            }
            return
        }
        result.kind = .mcubootImage
        result.image = image
        let encrypted = image.flags.contains(.encryptedAES128) || image.flags.contains(.encryptedAES256)

        checkHeaderSize(image, into: &result)

        // Hash.
        if let entry = image.hashTLVEntry {
            result.hashAlgorithm = image.hashAlgorithm
            result.storedHash = entry.value
            result.computedHash = image.computeImageHash()
            if entry.value != result.computedHash {
                if encrypted {
                    result.findings.append(ImageFinding(
                        .note, "hash-not-checkable",
                        "the payload is encrypted and the hash covers the plaintext, so it cannot be checked here"))
                } else {
                    result.findings.append(ImageFinding(
                        .failed, "hash-mismatch",
                        "the hash TLV does not match the contents: the image was changed after signing (corrupt or tampered)",
                        advice: "Copy the image again from the build folder, or rebuild and sign it; MCUboot refuses it as it is"))
                }
            }
            if image.sha256TLV == nil {
                result.findings.append(ImageFinding(
                    .failed, "no-sha256",
                    "the image has only a \(entry.type.name ?? "non-SHA-256") hash TLV; Zephyr's image management lists only the SHA-256 TLV (0x10), so the device shows no hash for it and reports HASH_NOT_FOUND (8) when it is tested or confirmed",
                    advice: "Sign with SHA-256 (imgtool's default; drop --sha 384/512) unless the device's MCUboot and Zephyr are built for that hash"))
            } else if image.sha256TLVCount > 1 {
                result.findings.append(ImageFinding(
                    .failed, "several-sha256", "the image has \(image.sha256TLVCount) SHA-256 TLVs; Zephyr refuses such images",
                    advice: "Sign the unsigned image once, not an already signed one"))
            }
        } else {
            result.findings.append(ImageFinding(
                .invalid, "no-hash", "the image has no hash TLV: MCUboot cannot validate it and the device cannot list it",
                advice: "Sign it with imgtool (west build does this when CONFIG_BOOTLOADER_MCUBOOT=y)"))
        }

        checkSignature(image, encrypted: encrypted, into: &result, options: options)
        checkTail(image, bytes, into: &result)

        if let slotSize = options.slotSize {
            let fit = ImageSlotFit(
                slotSize: slotSize, imageBytes: result.fileSize, trailerBytes: result.hasTrailer ? 0 : options.trailer.size)
            result.slotFit = fit
            if !fit.fits {
                result.findings.append(ImageFinding(
                    .failed, "too-large-for-slot",
                    result.hasTrailer
                        ? "the padded file is \(fit.imageBytes) bytes, more than the \(slotSize)-byte slot"
                        : "the image (\(fit.imageBytes) bytes) and the MCUboot trailer (\(fit.trailerBytes) bytes) need \(fit.imageBytes + fit.trailerBytes) bytes; the slot has \(slotSize), \(-fit.spare) too few",
                    advice: "Make the image smaller (disable logging, debug options) or enlarge the slot partitions; swap-move also needs one spare sector"))
            }
        }
    }

    /// Finds an image whose header size does not match where the application starts.
    static func checkHeaderSize(_ image: MCUbootImage, into result: inout ImageInspection) {
        let bytes = image.bytes
        let start = image.headerSize
        let end = start + image.imageSize
        guard image.imageSize >= 8, !looksLikeVectorTable(bytes, at: start) else { return }
        // Look for the vector table further in, after zero bytes: an application linked for a
        // larger header (CONFIG_ROM_START_OFFSET) signed with a smaller --header-size.
        var offset = start + 0x20
        while offset <= min(end - 8, start + 0x1000) {
            if looksLikeVectorTable(bytes, at: offset), bytes[start..<offset].allSatisfy({ $0 == 0 }) {
                let hex = "0x" + String(offset, radix: 16)
                result.findings.append(ImageFinding(
                    .invalid, "wrong-header-size",
                    "the header says the application starts at 0x\(String(start, radix: 16)) (ih_hdr_size), but its vector table is at \(hex) after zero padding: the application was linked for a \(hex)-byte header and signed with a different --header-size",
                    advice: "Sign it with imgtool --header-size \(hex) (the application's CONFIG_ROM_START_OFFSET) and without --pad-header, or upload the zephyr.signed.bin that the build made"))
                return
            }
            offset += 0x20
        }
    }

    /// A Cortex-M vector table: an initial stack pointer in RAM and a Thumb reset handler.
    static func looksLikeVectorTable(_ bytes: [UInt8], at offset: Int) -> Bool {
        guard offset >= 0, offset + 8 <= bytes.count else { return false }
        let sp = le32(bytes, offset)
        let reset = le32(bytes, offset + 4)
        return (0x1000_0000..<0x4000_0000).contains(sp) && sp % 4 == 0 && reset & 1 == 1 && reset != 0xFFFF_FFFF
            && reset < 0x2000_0000 && reset > 0x40
    }

    static func checkSignature(
        _ image: MCUbootImage, encrypted: Bool, into result: inout ImageInspection, options: ImageInspectionOptions
    ) {
        let pure = image.tlvs.contains { $0.type == .signaturePure }
        guard let signature = image.signatureTLV else {
            result.findings.append(ImageFinding(
                .warning, "unsigned",
                "the image has no signature TLV; an MCUboot built with signature checking (the default) refuses it",
                advice: "Sign it with the key the device's MCUboot was built with (imgtool sign -k KEY.pem)"))
            if let key = options.key {
                result.signature = ImageSignatureCheck(tlvName: "none", keyType: key.typeName, valid: false, detail: "no signature to check")
                result.findings.append(ImageFinding(.failed, "no-signature", "--key was given but the image has no signature"))
            }
            return
        }
        let tlvName = signature.type.name ?? signature.type.description
        guard let key = options.key else {
            result.signature = ImageSignatureCheck(
                tlvName: tlvName, keyType: nil, valid: nil, detail: "not checked (give --key PUB.pem)")
            return
        }
        let keyName = options.keyName ?? "the key"
        checkKeyTLVs(image, key: key, keyName: keyName, into: &result)
        if signature.type == .ecdsa224 {
            result.signature = ImageSignatureCheck(tlvName: tlvName, keyType: key.typeName, valid: nil, detail: "ECDSA-224 is no longer supported by MCUboot")
            result.findings.append(ImageFinding(.failed, "ecdsa224", "the image is signed with ECDSA P-224, which MCUboot no longer supports"))
            return
        }
        guard signature.type == key.signatureTLVType else {
            result.signature = ImageSignatureCheck(
                tlvName: tlvName, keyType: key.typeName, valid: false,
                detail: "the image is signed with \(tlvName), \(keyName) is a key of type \(key.typeName)")
            result.findings.append(ImageFinding(
                .failed, "key-type-mismatch",
                "the image is signed with \(tlvName) but \(keyName) is a key of type \(key.typeName): MCUboot built with this key refuses it",
                advice: "Sign with a key of the type the device's MCUboot expects (CONFIG_BOOT_SIGNATURE_TYPE_*)"))
            return
        }
        if pure {
            result.signature = ImageSignatureCheck(
                tlvName: tlvName, keyType: key.typeName, valid: nil, detail: "pure signature (SIG_PURE) over the image: not checked")
            result.findings.append(ImageFinding(.note, "pure-signature", "the signature is a pure signature (SIG_PURE); smpctl does not check those"))
            return
        }
        if encrypted {
            result.signature = ImageSignatureCheck(
                tlvName: tlvName, keyType: key.typeName, valid: nil, detail: "encrypted payload: the signature covers the plaintext")
            return
        }
        let valid = key.verify(signature: signature.value, of: image)
        result.signature = ImageSignatureCheck(
            tlvName: tlvName, keyType: key.typeName, valid: valid,
            detail: valid ? "valid \(key.typeName) signature with \(keyName)" : "the signature does not verify with \(keyName)")
        if !valid {
            let tampered = result.hashMatches == false
            result.findings.append(ImageFinding(
                .failed, "bad-signature",
                tampered
                    ? "the \(tlvName) signature does not verify with \(keyName): the image was modified after signing"
                    : "the \(tlvName) signature does not verify with \(keyName): it was signed with another key",
                advice: "Sign it with the key the device's MCUboot was built with (CONFIG_BOOT_SIGNATURE_KEY_FILE); MCUboot refuses it otherwise"))
        }
    }

    static func checkKeyTLVs(_ image: MCUbootImage, key: ImageVerificationKey, keyName: String, into result: inout ImageInspection) {
        let publicBytes = key.mcubootPublicBytes
        if let keyHash = image.tlvs.first(where: { $0.type == .keyHash }) {
            let algorithm = MCUbootHashAlgorithm.allCases.first { $0.digestLength == keyHash.length } ?? .sha256
            let expected = algorithm.digest(publicBytes)
            let check = ImageKeyCheck(tlvName: "KEYHASH", matches: expected == keyHash.value, expected: expected, found: keyHash.value)
            result.keyCheck = check
            if !check.matches {
                result.findings.append(ImageFinding(
                    .failed, "keyhash-mismatch",
                    "the KEYHASH TLV is not the hash of \(keyName): the image was signed with a different key",
                    advice: "Use the public key of the signing key, or sign the image with the device's key"))
            }
        } else if let stored = image.tlvs.first(where: { $0.type == .publicKey }) {
            let check = ImageKeyCheck(tlvName: "PUBKEY", matches: stored.value == publicBytes, expected: publicBytes, found: stored.value)
            result.keyCheck = check
            if !check.matches {
                result.findings.append(ImageFinding(
                    .failed, "pubkey-mismatch", "the PUBKEY TLV is not \(keyName): the image was signed with a different key"))
            }
        }
    }

    /// Bytes after the TLV area: an MCUboot trailer (imgtool --pad), erased padding, or junk.
    static func checkTail(_ image: MCUbootImage, _ bytes: [UInt8], into result: inout ImageInspection) {
        let extra = bytes.count - image.imageEndOffset
        guard extra > 0 else { return }
        let magic8: [UInt8] = [0x77, 0xC2, 0x95, 0xF3, 0x60, 0xD2, 0xEF, 0x7F, 0x35, 0x52, 0x50, 0x0F, 0x2C, 0xB6, 0x79, 0x80]
        let magicTail: [UInt8] = [0x2D, 0xE1, 0x5D, 0x29, 0x41, 0x0B, 0x8D, 0x77, 0x67, 0x9C, 0x11, 0x0F, 0x1F, 0x8A]
        let last = Array(bytes.suffix(16))
        if last == magic8 || (last.count == 16 && Array(last.suffix(14)) == magicTail) {
            result.hasTrailer = true
            result.findings.append(ImageFinding(
                .warning, "padded-with-trailer",
                "the file is padded to \(bytes.count) bytes and ends with an MCUboot trailer (imgtool --pad): uploading it writes the trailer too, so MCUboot may swap to it at the next reset before it is tested, and the upload is \(extra) bytes longer",
                advice: "For SMP uploads sign without --pad, --test or --confirm (zephyr.signed.bin); smpctl dfu marks the image itself"))
        } else if bytes[image.imageEndOffset...].allSatisfy({ $0 == 0xFF }) {
            result.findings.append(ImageFinding(.note, "erased-padding", "\(extra) bytes of 0xff padding follow the TLVs"))
        } else {
            result.findings.append(ImageFinding(
                .warning, "extra-bytes", "\(extra) bytes that are not part of the image follow the TLV area",
                advice: "Upload the image as imgtool wrote it"))
        }
    }

    // MARK: Other kinds of file

    static func inspectELF(_ bytes: [UInt8], into result: inout ImageInspection) {
        result.kind = .elf
        var machine = ""
        if bytes.count >= 20 {
            let little = bytes.count > 5 && bytes[5] == 1
            let value = little ? Int(bytes[18]) | Int(bytes[19]) << 8 : Int(bytes[18]) << 8 | Int(bytes[19])
            switch value {
            case 40: machine = " for ARM"
            case 243: machine = " for RISC-V"
            case 94: machine = " for Xtensa"
            case 62: machine = " for x86-64 (a host program, e.g. native_sim)"
            default: machine = ""
            }
        }
        result.findings.append(ImageFinding(
            .invalid, "elf",
            "this is an ELF file\(machine), such as zephyr.elf: the linker output with symbols, for debuggers and programmers, not an MCUboot image",
            advice: signedImageAdvice))
    }

    static func inspectHex(_ hex: IntelHex, into result: inout ImageInspection) {
        result.kind = .intelHex
        let data = hex.firstData
        if data.starts(with: [0x3D, 0xB8, 0xF3, 0x96]) {
            result.findings.append(ImageFinding(
                .invalid, "intel-hex-signed",
                "this is Intel HEX text holding a signed MCUboot image at address 0x\(String(hex.firstAddress, radix: 16)) (such as zephyr.signed.hex); SMP uploads need the binary form",
                advice: "Upload zephyr.signed.bin from the same build folder, or convert this file: objcopy -I ihex -O binary \(result.name) zephyr.signed.bin"))
        } else {
            result.findings.append(ImageFinding(
                .invalid, "intel-hex",
                "this is Intel HEX text (such as zephyr.hex or merged.hex) for a programmer (west flash, nrfjprog), not an MCUboot image",
                advice: signedImageAdvice))
        }
    }

    static func inspectOther(_ bytes: [UInt8], into result: inout ImageInspection) {
        let first = bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
        if bytes.count >= 4, le32(bytes, 0) == MCUbootImage.legacyMagic {
            result.findings.append(ImageFinding(
                .invalid, "legacy-magic", "the file starts with the legacy MCUboot v1 magic 0x96f3b83c, which current MCUboot does not accept",
                advice: "Sign it again with a current imgtool"))
        } else if looksLikeVectorTable(bytes, at: 0) {
            result.kind = .rawBinary
            result.findings.append(ImageFinding(
                .invalid, "raw-binary",
                "the file has no MCUboot header (magic 0x96f3b83d) and starts with an application's vector table: it is an unsigned application binary such as zephyr.bin, which MCUboot will not boot",
                advice: signedImageAdvice))
        } else if bytes.prefix(4).allSatisfy({ $0 == 0xFF }) {
            result.findings.append(ImageFinding(
                .invalid, "erased", "the file starts with 0xff bytes (erased flash, such as a slot dump): no MCUboot header",
                advice: signedImageAdvice))
        } else {
            result.findings.append(ImageFinding(
                .invalid, "no-header",
                "the file has no MCUboot header (expected magic 3d b8 f3 96, found \(first)): it is not a signed image",
                advice: signedImageAdvice))
        }
    }

    /// The largest manifest.json read from a DFU package.
    public static let maximumManifestSize = 1 << 20
    /// The most files a DFU package's manifest.json may list.
    public static let maximumManifestFiles = 64

    static func inspectZip(_ bytes: [UInt8], into result: inout ImageInspection) {
        result.kind = .zip
        let archive: ImageArchive
        do {
            archive = try ImageArchive(bytes: bytes)
        } catch {
            result.findings.append(ImageFinding(.invalid, "zip", "this is a ZIP file that cannot be read: \(error.reason)"))
            return
        }
        guard let manifestEntry = archive.entry(named: "manifest.json") else {
            let binaries = archive.entries.map(\.name).filter { $0.hasSuffix(".bin") }
            result.findings.append(ImageFinding(
                .invalid, "zip",
                "this is a ZIP archive without manifest.json, not an MCUboot image"
                    + (binaries.isEmpty ? "" : "; it contains \(binaries.joined(separator: ", "))"),
                advice: "Extract the signed image (.bin) and upload that"))
            return
        }
        result.kind = .dfuPackage
        var images: [DFUPackageImage] = []
        do {
            guard manifestEntry.uncompressedSize <= maximumManifestSize else {
                throw ImageArchiveError("manifest.json is larger than \(maximumManifestSize) bytes")
            }
            let manifestBytes = try archive.extract(manifestEntry)
            guard let root = try JSONSerialization.jsonObject(with: Data(manifestBytes)) as? [String: Any],
                let files = root["files"] as? [[String: Any]]
            else {
                throw ImageArchiveError("manifest.json has no \"files\" list")
            }
            // A package has an image per core; each listing is checked (and its member inflated once).
            guard files.count <= maximumManifestFiles else {
                throw ImageArchiveError(
                    "manifest.json lists \(files.count) files; a DFU package has a few, and at most \(maximumManifestFiles) are read")
            }
            for file in files {
                images.append(packageImage(file, archive: archive))
            }
        } catch {
            result.findings.append(ImageFinding(
                .invalid, "dfu-package", "this is a DFU package whose manifest.json cannot be read: \(error)",
                advice: "Extract the signed image for each core (app_update.bin) and upload it"))
            return
        }
        result.packageImages = images
        var advice = "Give the package itself to `smpctl dfu \(result.name)`, which updates every core with one reset (network core marked first), or extract the images and update each core with its --image number:"
        for entry in images {
            let index = entry.imageIndex.map(String.init) ?? "?"
            var line = "\n  image \(index) (\(entry.core)"
            if let board = entry.board { line += ", \(board)" }
            line += "): \(entry.file)"
            if let version = entry.imageVersion ?? entry.manifestVersion { line += ", version \(version)" }
            if let problem = entry.problem { line += " [\(problem)]" }
            line += " → unzip \(result.name) \(entry.file) && smpctl dfu --image \(index) \(entry.file)"
            advice += line
        }
        result.findings.append(ImageFinding(
            .invalid, "dfu-package",
            "this is a DFU package (such as dfu_application.zip) with \(images.count) image\(images.count == 1 ? "" : "s"), not a single image; `image upload` takes one image file at a time",
            advice: advice))
    }

    static func packageImage(_ file: [String: Any], archive: ImageArchive) -> DFUPackageImage {
        func string(_ key: String) -> String? {
            if let text = file[key] as? String { return text }
            if let number = file[key] as? NSNumber { return number.stringValue }
            return nil
        }
        func int(_ key: String) -> Int? {
            if let number = file[key] as? NSNumber { return number.intValue }
            return (file[key] as? String).flatMap { Int($0) ?? ($0.hasPrefix("0x") ? Int($0.dropFirst(2), radix: 16) : nil) }
        }
        let name = string("file") ?? "?"
        let index = int("image_index")
        let board = string("board")
        let core: String
        let lowerBoard = (board ?? "").lowercased()
        if lowerBoard.contains("cpunet") || name.contains("net_core") {
            core = "network core"
        } else if lowerBoard.contains("cpuapp") || index == 0 {
            core = "application core"
        } else {
            core = "image \(index.map(String.init) ?? "?")"
        }
        var entry = DFUPackageImage(
            file: name, imageIndex: index, board: board, soc: string("soc"), type: string("type"),
            manifestVersion: string("version_MCUBOOT") ?? string("version"), loadAddress: int("load_address"),
            size: int("size"), core: core)
        guard let member = archive.entry(named: name) else {
            entry.problem = "missing from the ZIP"
            return entry
        }
        do {
            let bytes = try archive.extract(member)
            let image = try MCUbootImage(parsing: bytes)
            entry.imageVersion = image.versionString
            entry.imageHash = image.sha256TLV ?? image.hashTLV
            if !image.hashMatches { entry.problem = "hash mismatch" }
        } catch let error as MCUbootImageError {
            entry.problem = "not a valid MCUboot image: \(error.reason)"
        } catch {
            entry.problem = "cannot extract: \(error)"
        }
        return entry
    }

    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}

/// Just enough Intel HEX to recognise it and read its first bytes.
struct IntelHex {
    var firstAddress = 0
    var firstData: [UInt8] = []

    /// Parses up to the first 64 records; `nil` when the text is not Intel HEX.
    init?(_ bytes: [UInt8]) {
        guard bytes.first == UInt8(ascii: ":") else { return nil }
        let text = String(decoding: bytes.prefix(8192), as: UTF8.self)
        var lines = text.split(whereSeparator: \.isNewline)
        if bytes.count > 8192, !lines.isEmpty { lines.removeLast() }  // may be cut
        guard !lines.isEmpty else { return nil }
        var base = 0
        var sawData = false
        for line in lines.prefix(64) {
            guard line.first == ":", line.count >= 11, line.count % 2 == 1 else { return nil }
            var record: [UInt8] = []
            var index = line.index(after: line.startIndex)
            while index < line.endIndex {
                let next = line.index(index, offsetBy: 2)
                guard let byte = UInt8(line[index..<next], radix: 16) else { return nil }
                record.append(byte)
                index = next
            }
            let count = Int(record[0])
            guard record.count == count + 5 else { return nil }
            let address = Int(record[1]) << 8 | Int(record[2])
            let payload = Array(record[4..<(4 + count)])
            switch record[3] {
            case 0x00:
                if !sawData {
                    firstAddress = base + address
                    sawData = true
                }
                if firstData.count < 64, base + address == firstAddress + firstData.count { firstData += payload }
            case 0x02 where count == 2: base = (Int(payload[0]) << 8 | Int(payload[1])) << 4
            case 0x04 where count == 2: base = (Int(payload[0]) << 8 | Int(payload[1])) << 16
            default: break
            }
        }
    }
}
