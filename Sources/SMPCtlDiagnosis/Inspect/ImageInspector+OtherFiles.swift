// The other kinds of file `ImageInspector` recognises (ELF, DFU ZIP package, Intel HEX, raw
// binaries), each with what to upload instead.

import Foundation
import SMPCtlFiles
import SMPCtlImage

extension ImageInspector {
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
        result.add(
            .invalid, "elf",
            "this is an ELF file\(machine), such as zephyr.elf: the linker output with symbols, for debuggers and programmers, not an MCUboot image",
            advice: signedImageAdvice)
    }

    static func inspectHex(_ hex: IntelHex, into result: inout ImageInspection) {
        result.kind = .intelHex
        let data = hex.firstData
        if data.starts(with: [0x3D, 0xB8, 0xF3, 0x96]) {
            result.add(
                .invalid, "intel-hex-signed",
                "this is Intel HEX text holding a signed MCUboot image at address 0x\(String(hex.firstAddress, radix: 16)) (such as zephyr.signed.hex); SMP uploads need the binary form",
                advice: "Upload zephyr.signed.bin from the same build folder, or convert this file: objcopy -I ihex -O binary \(result.name) zephyr.signed.bin")
        } else {
            result.add(
                .invalid, "intel-hex",
                "this is Intel HEX text (such as zephyr.hex or merged.hex) for a programmer (west flash, nrfjprog), not an MCUboot image",
                advice: signedImageAdvice)
        }
    }

    static func inspectOther(_ bytes: [UInt8], into result: inout ImageInspection) {
        let first = bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
        if bytes.count >= 4, le32(bytes, 0) == MCUbootImage.legacyMagic {
            result.add(
                .invalid, "legacy-magic", "the file starts with the legacy MCUboot v1 magic 0x96f3b83c, which current MCUboot does not accept",
                advice: "Sign it again with a current imgtool")
        } else if looksLikeVectorTable(bytes, at: 0) {
            result.kind = .rawBinary
            result.add(
                .invalid, "raw-binary",
                "the file has no MCUboot header (magic 0x96f3b83d) and starts with an application's vector table: it is an unsigned application binary such as zephyr.bin, which MCUboot will not boot",
                advice: signedImageAdvice)
        } else if bytes.prefix(4).allSatisfy({ $0 == 0xFF }) {
            result.add(
                .invalid, "erased", "the file starts with 0xff bytes (erased flash, such as a slot dump): no MCUboot header",
                advice: signedImageAdvice)
        } else {
            result.add(
                .invalid, "no-header",
                "the file has no MCUboot header (expected magic 3d b8 f3 96, found \(first)): it is not a signed image",
                advice: signedImageAdvice)
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
            result.add(.invalid, "zip", "this is a ZIP file that cannot be read: \(error.reason)")
            return
        }
        guard let manifestEntry = archive.entry(named: "manifest.json") else {
            let binaries = archive.entries.map(\.name).filter { $0.hasSuffix(".bin") }
            result.add(
                .invalid, "zip",
                "this is a ZIP archive without manifest.json, not an MCUboot image"
                    + (binaries.isEmpty ? "" : "; it contains \(binaries.joined(separator: ", "))"),
                advice: "Extract the signed image (.bin) and upload that")
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
            result.add(
                .invalid, "dfu-package", "this is a DFU package whose manifest.json cannot be read: \(error)",
                advice: "Extract the signed image for each core (app_update.bin) and upload it")
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
        result.add(
            .invalid, "dfu-package",
            "this is a DFU package (such as dfu_application.zip) with \(images.count) image\(images.count == 1 ? "" : "s"), not a single image; `image upload` takes one image file at a time",
            advice: advice)
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
