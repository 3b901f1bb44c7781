// The MCUboot checks of `ImageInspector`: header, TLVs, hash, signature, slot fit.

import Foundation
import SMPCtlFiles
import SMPCtlImage

extension ImageInspector {
    static func inspectImage(_ bytes: [UInt8], into result: inout ImageInspection, options: ImageInspectionOptions) {
        let image: MCUbootImage
        do {
            image = try MCUbootImage(parsing: bytes)
        } catch {
            result.kind = .damagedImage
            result.parseError = error
            switch error.code {
            case .truncated:
                result.add(
                    .invalid, "truncated", "the file is cut short: \(error.reason)",
                    advice: "The copy or download was incomplete; copy zephyr.signed.bin again from the build folder")
            case .badHeaderSize:
                result.add(
                    .invalid, "bad-header-size", error.reason,
                    advice: "Sign the image again with imgtool --header-size 0x200 (CONFIG_ROM_START_OFFSET)")
            default:
                result.add(
                    .invalid, "damaged", "the MCUboot header is present but the image is damaged: \(error.description)",
                    advice: "Rebuild or sign it again. " + signedImageAdvice)
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
                    result.add(
                        .note, "hash-not-checkable",
                        "the payload is encrypted and the hash covers the plaintext, so it cannot be checked here")
                } else {
                    result.add(
                        .failed, "hash-mismatch",
                        "the hash TLV does not match the contents: the image was changed after signing (corrupt or tampered)",
                        advice: "Copy the image again from the build folder, or rebuild and sign it; MCUboot refuses it as it is")
                }
            }
            if image.sha256TLV == nil {
                result.add(
                    .failed, "no-sha256",
                    "the image has only a \(entry.type.name ?? "non-SHA-256") hash TLV; Zephyr's image management lists only the SHA-256 TLV (0x10), so the device shows no hash for it and reports HASH_NOT_FOUND (8) when it is tested or confirmed",
                    advice: "Sign with SHA-256 (imgtool's default; drop --sha 384/512) unless the device's MCUboot and Zephyr are built for that hash")
            } else if image.sha256TLVCount > 1 {
                result.add(
                    .failed, "several-sha256", "the image has \(image.sha256TLVCount) SHA-256 TLVs; Zephyr refuses such images",
                    advice: "Sign the unsigned image once, not an already signed one")
            }
        } else {
            result.add(
                .invalid, "no-hash", "the image has no hash TLV: MCUboot cannot validate it and the device cannot list it",
                advice: "Sign it with imgtool (west build does this when CONFIG_BOOTLOADER_MCUBOOT=y)")
        }

        checkSignature(image, encrypted: encrypted, into: &result, options: options)
        checkTail(image, bytes, into: &result)

        if let slotSize = options.slotSize {
            let fit = ImageSlotFit(
                slotSize: slotSize, imageBytes: result.fileSize, trailerBytes: result.hasTrailer ? 0 : options.trailer.size)
            result.slotFit = fit
            if !fit.fits {
                result.add(
                    .failed, "too-large-for-slot",
                    result.hasTrailer
                        ? "the padded file is \(fit.imageBytes) bytes, more than the \(slotSize)-byte slot"
                        : "the image (\(fit.imageBytes) bytes) and the MCUboot trailer (\(fit.trailerBytes) bytes) need \(fit.imageBytes + fit.trailerBytes) bytes; the slot has \(slotSize), \(-fit.spare) too few",
                    advice: "Make the image smaller (disable logging, debug options) or enlarge the slot partitions; swap-move also needs one spare sector")
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
                result.add(
                    .invalid, "wrong-header-size",
                    "the header says the application starts at 0x\(String(start, radix: 16)) (ih_hdr_size), but its vector table is at \(hex) after zero padding: the application was linked for a \(hex)-byte header and signed with a different --header-size",
                    advice: "Sign it with imgtool --header-size \(hex) (the application's CONFIG_ROM_START_OFFSET) and without --pad-header, or upload the zephyr.signed.bin that the build made")
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
            result.add(
                .warning, "unsigned",
                "the image has no signature TLV; an MCUboot built with signature checking (the default) refuses it",
                advice: "Sign it with the key the device's MCUboot was built with (imgtool sign -k KEY.pem)")
            if let key = options.key {
                result.signature = ImageSignatureCheck(tlvName: "none", keyType: key.typeName, valid: false, detail: "no signature to check")
                result.add(.failed, "no-signature", "--key was given but the image has no signature")
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
            result.add(.failed, "ecdsa224", "the image is signed with ECDSA P-224, which MCUboot no longer supports")
            return
        }
        guard signature.type == key.signatureTLVType else {
            result.signature = ImageSignatureCheck(
                tlvName: tlvName, keyType: key.typeName, valid: false,
                detail: "the image is signed with \(tlvName), \(keyName) is a key of type \(key.typeName)")
            result.add(
                .failed, "key-type-mismatch",
                "the image is signed with \(tlvName) but \(keyName) is a key of type \(key.typeName): MCUboot built with this key refuses it",
                advice: "Sign with a key of the type the device's MCUboot expects (CONFIG_BOOT_SIGNATURE_TYPE_*)")
            return
        }
        if pure {
            result.signature = ImageSignatureCheck(
                tlvName: tlvName, keyType: key.typeName, valid: nil, detail: "pure signature (SIG_PURE) over the image: not checked")
            result.add(.note, "pure-signature", "the signature is a pure signature (SIG_PURE); smpctl does not check those")
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
            result.add(
                .failed, "bad-signature",
                tampered
                    ? "the \(tlvName) signature does not verify with \(keyName): the image was modified after signing"
                    : "the \(tlvName) signature does not verify with \(keyName): it was signed with another key",
                advice: "Sign it with the key the device's MCUboot was built with (CONFIG_BOOT_SIGNATURE_KEY_FILE); MCUboot refuses it otherwise")
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
                result.add(
                    .failed, "keyhash-mismatch",
                    "the KEYHASH TLV is not the hash of \(keyName): the image was signed with a different key",
                    advice: "Use the public key of the signing key, or sign the image with the device's key")
            }
        } else if let stored = image.tlvs.first(where: { $0.type == .publicKey }) {
            let check = ImageKeyCheck(tlvName: "PUBKEY", matches: stored.value == publicBytes, expected: publicBytes, found: stored.value)
            result.keyCheck = check
            if !check.matches {
                result.add(
                    .failed, "pubkey-mismatch", "the PUBKEY TLV is not \(keyName): the image was signed with a different key")
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
            result.add(
                .warning, "padded-with-trailer",
                "the file is padded to \(bytes.count) bytes and ends with an MCUboot trailer (imgtool --pad): uploading it writes the trailer too, so MCUboot may swap to it at the next reset before it is tested, and the upload is \(extra) bytes longer",
                advice: "For SMP uploads sign without --pad, --test or --confirm (zephyr.signed.bin); smpctl dfu marks the image itself")
        } else if bytes[image.imageEndOffset...].allSatisfy({ $0 == 0xFF }) {
            result.add(.note, "erased-padding", "\(extra) bytes of 0xff padding follow the TLVs")
        } else {
            result.add(
                .warning, "extra-bytes", "\(extra) bytes that are not part of the image follow the TLV area",
                advice: "Upload the image as imgtool wrote it")
        }
    }
}
