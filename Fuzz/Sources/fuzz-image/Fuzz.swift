// MCUboot images (SMPCtlImage) and `image inspect` (SMPCtlDiagnosis ImageInspector and
// ImageSignature): header, TLV areas, hashes, signature TLVs checked with a key, and the other
// file kinds the inspector recognises (ELF, Intel HEX, ZIP, raw binaries).
//
// Invariants: a parsed image's TLVs and areas lie within the input and hold the input's bytes;
// parsing through a source read in small pieces gives the same image and hash as parsing from
// memory; inspection never traps, with or without a key, and its verdict agrees with its findings.

import FuzzSupport
import SMPCtlDiagnosis
import SMPCtlImage

/// The public keys of the signed fixtures, so that signature TLVs are checked by every algorithm.
private let keys: [ImageVerificationKey] = [
    // Tests/Fixtures/images/ecdsa-p256.pub.pem
    """
    -----BEGIN PUBLIC KEY-----
    MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyaTpyFJLyYSNDoTzvQsc5bhcM/ce
    5mtVl3rH/ygCdGWRztFLaxLDZwT4hkVtt/6lZyDMm5R/XhJZM98k2Su6gA==
    -----END PUBLIC KEY-----
    """,
    // Tests/Fixtures/images/ed25519.pub.pem
    """
    -----BEGIN PUBLIC KEY-----
    MCowBQYDK2VwAyEAhs2EblnRHLcIM3pw2NT4mi0kgwjdZXkeDBvQ9iXmCc0=
    -----END PUBLIC KEY-----
    """,
    // Tests/Fixtures/images/rsa-2048.pub.pem
    """
    -----BEGIN PUBLIC KEY-----
    MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlhW41b72Ns7CLYfuTWjd
    wmW3S3Mi0Zgt2wAmJz28KcMCh16arWTK7Wxp6Ok0H70C+Z1BULArK9PF0Mop8O7T
    sz4tiCQo2mdWYxlRDpGGqhG0T4mzXqzeWHup+zk1Z5ZNvOkpCM7jmg4fozrI6IWK
    uWtAs1CoQZ+GDMLS80IXQseufSHh6iv9D6an4Ezw2xqb9V6uZ0lOg3ZcFS6gIGTu
    Sx5LC2m2J+ZdH6Uv6qIPJu2G30Sb05lsop+zY4cxngNVMp2PzpZsF4jQVNqe/JCj
    fUM+SEqMNBofBMSzVZhU4kA1iCn3BMeMDwbcc4HHcyD/VU/mPRnMEpCR689nqMIo
    wQIDAQAB
    -----END PUBLIC KEY-----
    """,
    // Tests/Fixtures/mcuboot-image.json public_key_pem (signs test-image.bin)
    """
    -----BEGIN PUBLIC KEY-----
    MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETP3Y5Kes2rI7Sn5wnkcd/c/P53CV
    arjQp1tr5DcmYu+HIvyd9CX5yT6guMRzDXIwxUCowfaAjbGmmsrm9SFt6w==
    -----END PUBLIC KEY-----
    """,
].compactMap { try? ImageVerificationKey(pem: $0) }

/// An image source that is not an array in memory (as a file read in pieces is), and that checks
/// that every read lies within the input.
private struct PiecewiseSource: MCUbootImageSource {
    let bytes: [UInt8]
    var count: Int { bytes.count }
    func read(_ range: Range<Int>) throws(MCUbootImageError) -> [UInt8] {
        invariant(range.lowerBound >= 0 && range.upperBound <= bytes.count, "read \(range) outside 0..<\(bytes.count)")
        return Array(bytes[range])
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    invariant(keys.count == 4, "a fixture key did not load")
    let bytes = fuzzBytes(data, size)
    checkParse(bytes)

    // The inspector with no key and, in turn, with each key.
    let choice = bytes.count % (keys.count + 1)
    var options = ImageInspectionOptions()
    if choice > 0 {
        options.key = keys[choice - 1]
        options.keyName = "key"
    }
    options.slotSize = bytes.count % 2 == 0 ? 0x8000 : nil
    let inspection = ImageInspector.inspect(bytes: bytes, name: "input", options: options)
    invariant(inspection.fileSize == bytes.count, "file size differs")
    _ = inspection.refusal
    _ = inspection.hashMatches
    for finding in inspection.findings {
        _ = finding.summary
    }
    if inspection.verdict == .good {
        invariant(inspection.problems.isEmpty && inspection.image != nil, "a good verdict without an image or with problems")
    }
    if inspection.signature?.valid == true {
        invariant(inspection.image != nil && options.key != nil, "a valid signature without an image and a key")
    }
    return 0
}

private func checkParse(_ bytes: [UInt8]) {
    let image: MCUbootImage
    do {
        image = try MCUbootImage(parsing: bytes)
    } catch {
        _ = error.description
        if let offset = error.offset { invariant(offset >= 0 && offset <= bytes.count, "error offset outside the input") }
        do {
            _ = try MCUbootImage(reading: PiecewiseSource(bytes: bytes))
            invariant(false, "a source read in pieces parses what memory refused")
        } catch let other {
            invariant(other == error, "sources disagree on the error: \(other) vs \(error)")
        }
        return
    }
    invariant(image.hashedRegionLength <= bytes.count, "hashed region past the end")
    invariant(image.imageEndOffset <= bytes.count, "image end past the end")
    invariant(image.tlvInfoOffset == image.headerSize + image.imageSize + image.protectedTLVSize, "TLV info offset")
    for tlv in image.tlvs {
        invariant(tlv.value.count == tlv.length, "TLV length and value disagree")
        invariant(tlv.offset >= 0 && tlv.offset + 4 + tlv.length <= image.imageEndOffset, "TLV outside the image")
        invariant(Array(bytes[(tlv.offset + 4)..<(tlv.offset + 4 + tlv.length)]) == tlv.value, "TLV value is not the input's")
        _ = tlv.type.description
    }
    let hash = image.computeImageHash()
    invariant(hash.count == image.hashAlgorithm.digestLength, "hash length")
    _ = image.signatureTypeName
    _ = image.versionString

    let streamed: MCUbootImage
    do {
        streamed = try MCUbootImage(reading: PiecewiseSource(bytes: bytes))
    } catch {
        invariant(false, "a source read in pieces refuses what memory parsed: \(error)")
        return
    }
    invariant(streamed.tlvs == image.tlvs, "sources disagree on the TLVs")
    invariant(streamed.computeImageHash() == hash, "sources disagree on the hash")

    if let signature = image.signatureTLV {
        for key in keys {
            let valid = key.verify(signature: signature.value, of: image)
            invariant(key.verify(signature: signature.value, of: streamed) == valid, "sources disagree on the signature")
        }
    }
}
