import ArgumentParser
import Foundation
import SMPCtlFiles
import SMPCtlDiagnosis
import SMPCtlImage

struct ImageInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Check an image file offline: header, TLVs, hash, signature, slot fit; recognize files that are not images.",
        discussion: """
            Reads the MCUboot header and every TLV, recomputes the image hash, and with --key checks the \
            signature (ECDSA P-256/P-384, Ed25519, RSA-2048/3072 PSS) and the KEYHASH TLV. With \
            --slot-size it checks that the image plus the MCUboot trailer fit the slot; the trailer is \
            estimated for swap-move/swap-scratch as max-sectors x 3 x 8 bytes of swap status plus 48 bytes \
            (3120 bytes for 128 sectors). Files that are not images (zephyr.bin, Intel HEX, ELF, \
            dfu_application.zip, truncated or re-padded images) are named, with what to upload instead.

            Exit status: 0 the image is good; 2 the file is not a valid image; 5 a check failed (hash \
            mismatch, bad signature or key, too large for the slot, no SHA-256 hash TLV).
            """)

    // Offline: `--json` only, no connection options.
    @OptionGroup var output: OutputOptions

    @Argument(help: "The file to inspect.", completion: Completion.anyImageFile) var file: String

    @Option(help: ArgumentHelp("Check the signature with this public key (PEM, as `imgtool getpub -e pem` writes it).", valueName: "pem"),
        completion: Completion.publicKey)
    var key: String?

    @Option(name: .customLong("slot-size"), help: ArgumentHelp("Check that the image and the MCUboot trailer fit a slot of this size (decimal, 0x hex, or with K/M).", valueName: "bytes"))
    var slotSize: String?

    @Option(name: .customLong("max-sectors"), help: ArgumentHelp("BOOT_MAX_IMG_SECTORS of the device's MCUboot, for the trailer size.", valueName: "n"))
    var maxSectors: Int = 128

    func validate() throws {
        guard (1...65536).contains(maxSectors) else { throw ValidationError("--max-sectors must be between 1 and 65536") }
        if let slotSize, Self.parseSize(slotSize) == nil {
            throw ValidationError("--slot-size must be a positive size such as 262144, 0x40000 or 256K")
        }
    }

    /// Parses `262144`, `0x40000`, `256K`, `1M`.
    static func parseSize(_ text: String) -> Int? {
        var body = text.trimmingCharacters(in: .whitespaces).lowercased()
        var scale = 1
        if body.hasSuffix("k") || body.hasSuffix("kib") {
            scale = 1024
            body = String(body.prefix { $0 != "k" })
        } else if body.hasSuffix("m") || body.hasSuffix("mib") {
            scale = 1024 * 1024
            body = String(body.prefix { $0 != "m" })
        }
        let value = body.hasPrefix("0x") ? Int(body.dropFirst(2), radix: 16) : Int(body)
        guard let value, value > 0, value <= (1 << 32) / scale else { return nil }
        return value * scale
    }

    func run() async throws {
        let output = Output(json: self.output.json)
        var options = ImageInspectionOptions(slotSize: slotSize.flatMap(Self.parseSize))
        options.trailer = MCUbootTrailerEstimate(maxSectors: maxSectors)
        if let key {
            do {
                let data: Data
                do {
                    data = try RegularFile.read(key, limit: 64 * 1024)
                } catch {
                    if case .tooLarge = error.kind { throw ImageKeyError("the key file is larger than 64 KiB") }
                    throw ImageKeyError(error.description)
                }
                options.key = try ImageVerificationKey(pem: String(decoding: data, as: UTF8.self))
                options.keyName = key
            } catch {
                output.fail(status: .usage, message: "cannot use key \(key): \(error)", fields: ["error": "input"])
                throw CommandFailure(status: .usage)
            }
        }
        let inspection: ImageInspection
        do {
            inspection = try ImageInspector.inspect(path: file, options: options)
        } catch {
            output.fail(status: .usage, message: error.description, fields: ["error": "input"])
            throw CommandFailure(status: .usage)
        }
        ImageReport.lines(inspection).forEach(output.line)
        let status = ImageReport.status(inspection)
        output.document(ImageReport.json(inspection, status: status))
        if status != .success { throw CommandFailure(status: status) }
    }
}

/// Human and JSON renderings of an image inspection.
enum ImageReport {
    static func status(_ inspection: ImageInspection) -> ExitStatus {
        switch inspection.verdict {
        case .good: .success
        case .notAnImage: .usage
        case .checkFailed: .verification
        }
    }

    static func hex32(_ value: UInt32) -> String { "0x" + String(format: "%08x", value) }

    static func lines(_ inspection: ImageInspection) -> [String] {
        var lines = ["file:     \(inspection.name) (\(inspection.fileSize) bytes)", "kind:     \(inspection.kind.title)"]
        if let image = inspection.image {
            lines += [
                "header:",
                "  magic                 \(hex32(image.magic))",
                "  load address          \(hex32(image.loadAddress))",
                "  header size           0x\(String(image.headerSize, radix: 16)) (\(image.headerSize) bytes)",
                "  protected TLV size    \(image.protectedTLVSize) bytes",
                "  image size            \(image.imageSize) bytes",
                "  flags                 \(hex32(image.flags.rawValue)) (\(image.flags.description))",
                "  version               \(image.versionString)",
                "TLVs:",
            ]
            for tlv in image.tlvs {
                let name = (tlv.type.name ?? "?").padding(toLength: 12, withPad: " ", startingAt: 0)
                let type = "0x" + String(format: "%02x", tlv.type.rawValue)
                let value = tlv.value.count <= 64 ? hexString(tlv.value) : hexString(Array(tlv.value.prefix(32))) + "…"
                lines.append("  \(tlv.area == .protected ? "protected  " : "unprotected") \(type) \(name) \(String(tlv.length).leftPad(4)) B  \(value)")
            }
            if let algorithm = inspection.hashAlgorithm, let computed = inspection.computedHash {
                let verdict = inspection.hashMatches == true ? "matches the hash TLV" : "DOES NOT match the hash TLV"
                lines.append("hash:     \(algorithm.rawValue.uppercased()) \(hexString(computed)) \(verdict)")
            } else {
                lines.append("hash:     no hash TLV")
            }
            if let signature = inspection.signature {
                let state = signature.valid.map { $0 ? "OK: " : "FAILED: " } ?? ""
                lines.append("signature: \(signature.tlvName): \(state)\(signature.detail)")
            } else if image.signatureTLV == nil {
                lines.append("signature: none")
            }
            if let check = inspection.keyCheck {
                lines.append("key:      \(check.tlvName) \(check.matches ? "matches the key" : "DOES NOT match the key (expected \(hexString(check.expected)))")")
            }
            if let fit = inspection.slotFit {
                let trailer = inspection.hasTrailer ? "trailer included in the file" : "trailer \(fit.trailerBytes) B: \(inspection.trailer.explanation)"
                lines.append("slot:     \(fit.fits ? "fits" : "DOES NOT fit"): \(fit.imageBytes) B + \(fit.trailerBytes) B of \(fit.slotSize) B (\(fit.spare) B spare; \(trailer))")
            }
        }
        for entry in inspection.packageImages {
            var text = "package:  image \(entry.imageIndex.map(String.init) ?? "?") \(entry.core): \(entry.file)"
            if let version = entry.imageVersion ?? entry.manifestVersion { text += " version \(version)" }
            if let hash = entry.imageHash { text += " hash \(hexString(hash))" }
            if let problem = entry.problem { text += " (\(problem))" }
            lines.append(text)
        }
        for finding in inspection.findings {
            let label: String
            switch inspection.kind(of: finding) {
            case .invalid: label = "error"
            case .failed: label = "FAILED"
            case .warning: label = "warning"
            case .note: label = "note"
            }
            lines.append("\(label): \(finding.summary)")
            if let advice = finding.fix { lines.append("  → \(advice)") }
        }
        switch inspection.verdict {
        case .good: lines.append("result:   OK")
        case .notAnImage: lines.append("result:   not a valid MCUboot image")
        case .checkFailed: lines.append("result:   check failed")
        }
        return lines
    }

    static func json(_ inspection: ImageInspection, status: ExitStatus) -> JSONValue {
        var object: [String: JSONValue] = [
            "ok": .bool(inspection.verdict == .good), "file": .string(inspection.name), "size": .int(inspection.fileSize),
            "kind": .string(inspection.kind.rawValue), "verdict": .string(inspection.verdict.rawValue),
            "exit_status": .int(Int(status.rawValue)),
            "findings": .array(inspection.findings.map { finding in
                [
                    "level": .string(inspection.kind(of: finding).rawValue), "code": .string(finding.id),
                    "message": .string(finding.summary), "advice": finding.fix.json,
                ]
            }),
        ]
        if inspection.verdict != .good {
            // As every error document: the kind, and no upload (inspect never uploads).
            object["error"] = .string(status == .usage ? "invalid-image" : "verification")
            object["upload_progress"] = .null
        }
        if let error = inspection.parseError {
            object["parse_error"] = ["code": .string(error.code.rawValue), "reason": .string(error.reason), "offset": error.offset.json]
        }
        if let image = inspection.image {
            object["header"] = [
                "magic": .string(hex32(image.magic)), "load_address": .int(Int(image.loadAddress)),
                "header_size": .int(image.headerSize), "protected_tlv_size": .int(image.protectedTLVSize),
                "image_size": .int(image.imageSize), "flags": .int(Int(image.flags.rawValue)),
                "flag_names": .array(image.flags.names.map(JSONValue.string)), "version": .string(image.versionString),
            ]
            object["tlvs"] = .array(image.tlvs.map { tlv in
                [
                    "area": .string(tlv.area.rawValue), "type": .int(Int(tlv.type.rawValue)), "name": tlv.type.name.json,
                    "offset": .int(tlv.offset), "length": .int(tlv.length), "value": .string(hexString(tlv.value)),
                ]
            })
            object["hash"] = [
                "algorithm": inspection.hashAlgorithm.map { .string($0.rawValue) } ?? .null,
                "tlv": inspection.storedHash.map { .string(hexString($0)) } ?? .null,
                "computed": inspection.computedHash.map { .string(hexString($0)) } ?? .null,
                "matches": inspection.hashMatches.map(JSONValue.bool) ?? .null,
            ]
            object["image_hash"] = (image.sha256TLV ?? image.hashTLV).map { .string(hexString($0)) } ?? .null
            object["signature"] = inspection.signature.map { signature in
                [
                    "type": .string(signature.tlvName), "key_type": signature.keyType.json,
                    "valid": signature.valid.map(JSONValue.bool) ?? .null, "detail": .string(signature.detail),
                ]
            } ?? (image.signatureTLV == nil ? .null : ["type": .string(image.signatureTypeName ?? "?"), "valid": .null])
            object["key_check"] = inspection.keyCheck.map { check in
                [
                    "tlv": .string(check.tlvName), "matches": .bool(check.matches),
                    "expected": .string(hexString(check.expected)), "found": .string(hexString(check.found)),
                ]
            } ?? .null
            object["has_trailer"] = .bool(inspection.hasTrailer)
            object["slot"] = inspection.slotFit.map { fit in
                [
                    "slot_size": .int(fit.slotSize), "image_bytes": .int(fit.imageBytes),
                    "trailer_bytes": .int(fit.trailerBytes), "fits": .bool(fit.fits), "spare": .int(fit.spare),
                    "trailer_assumption": .string(inspection.trailer.explanation),
                ]
            } ?? .null
        }
        if inspection.kind == .dfuPackage {
            object["package"] = .array(inspection.packageImages.map { entry in
                [
                    "file": .string(entry.file), "image_index": entry.imageIndex.json, "core": .string(entry.core),
                    "board": entry.board.json, "soc": entry.soc.json, "manifest_version": entry.manifestVersion.json,
                    "image_version": entry.imageVersion.json, "size": entry.size.json,
                    "image_hash": entry.imageHash.map { .string(hexString($0)) } ?? .null, "problem": entry.problem.json,
                ]
            })
        }
        return .object(object)
    }
}
