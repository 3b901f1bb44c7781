import Foundation
import SMPCtlDiagnosis
import SMPCtlImage
import SMPCtlProtocol
import Testing

/// Fixtures made with imgtool 2.5.0 (see Tests/Fixtures/images/README.md).
enum ImageFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/images")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func key(_ name: String) throws -> ImageVerificationKey {
        try ImageVerificationKey(pem: String(contentsOfFile: path(name), encoding: .utf8))
    }

    static func inspect(_ name: String, key: String? = nil, slotSize: Int? = nil) throws -> ImageInspection {
        var options = ImageInspectionOptions(slotSize: slotSize)
        if let key {
            options.key = try Self.key(key)
            options.keyName = key
        }
        return try ImageInspector.inspect(path: path(name), options: options)
    }
}

@Suite("image inspector: imgtool-signed images")
struct ImageInspectorSignatureTests {
    @Test("good signatures verify, with the key hash", arguments: [
        ("ecdsa-p256.signed.bin", "ecdsa-p256.pub.pem", "ECDSA_SIG", "ECDSA P-256"),
        ("ed25519.signed.bin", "ed25519.pub.pem", "ED25519", "Ed25519"),
        ("rsa-2048.signed.bin", "rsa-2048.pub.pem", "RSA2048_PSS", "RSA-2048"),
        ("sha512.signed.bin", "ed25519.pub.pem", "ED25519", "Ed25519"),
    ])
    func goodSignature(file: String, key: String, tlv: String, keyType: String) throws {
        let result = try ImageFixtures.inspect(file, key: key)
        #expect(result.kind == .mcubootImage)
        #expect(result.hashMatches == true)
        #expect(result.signature?.tlvName == tlv)
        #expect(result.signature?.keyType == keyType)
        #expect(result.signature?.valid == true)
        #expect(result.keyCheck?.tlvName == "KEYHASH")
        #expect(result.keyCheck?.matches == true)
    }

    @Test("header fields and TLVs of the ECDSA image")
    func header() throws {
        let result = try ImageFixtures.inspect("ecdsa-p256.signed.bin")
        let image = try #require(result.image)
        #expect(image.headerSize == 0x200)
        #expect(image.imageSize == 6000)
        #expect(image.versionString == "1.2.3")
        #expect(image.tlvs.map(\.type) == [.sha256, .keyHash, .ecdsaSignature])
        // `imgtool verify` prints this digest.
        #expect(result.storedHash.map { $0.map { String(format: "%02x", $0) }.joined() }
            == "07aaa0ea3b0829a83d4c7502416bf3f348379d71fd51f351db60e27f40bcc05e")
        #expect(result.verdict == .good)
        #expect(result.signature?.valid == nil)
    }

    @Test("protected TLVs are listed (SEC_CNT in the Ed25519 image)")
    func protectedTLVs() throws {
        let image = try #require(try ImageFixtures.inspect("ed25519.signed.bin").image)
        #expect(image.protectedTLVs.map(\.type) == [.securityCounter])
        #expect(image.protectedTLVs.first?.value == [7, 0, 0, 0])
    }

    @Test("a tampered image fails the hash and the signature")
    func tampered() throws {
        let result = try ImageFixtures.inspect("tampered.signed.bin", key: "ecdsa-p256.pub.pem")
        #expect(result.hashMatches == false)
        #expect(result.signature?.valid == false)
        #expect(result.verdict == .checkFailed)
        #expect(result.findings.contains { $0.id == "hash-mismatch" })
    }

    @Test("an image signed with another key fails the signature and KEYHASH")
    func wrongKey() throws {
        let result = try ImageFixtures.inspect("other-key.signed.bin", key: "ecdsa-p256.pub.pem")
        #expect(result.hashMatches == true)
        #expect(result.signature?.valid == false)
        #expect(result.keyCheck?.matches == false)
        #expect(result.verdict == .checkFailed)
        #expect(result.findings.contains { $0.id == "keyhash-mismatch" })
        // And the right key accepts it.
        #expect(try ImageFixtures.inspect("other-key.signed.bin", key: "other.pub.pem").verdict == .good)
    }

    @Test("a key of the wrong type is reported as such")
    func wrongKeyType() throws {
        let result = try ImageFixtures.inspect("ecdsa-p256.signed.bin", key: "ed25519.pub.pem")
        #expect(result.findings.contains { $0.id == "key-type-mismatch" })
        #expect(result.verdict == .checkFailed)
    }

    @Test("SHA-512 without a SHA-256 TLV fails: Zephyr cannot list it")
    func sha512Only() throws {
        let result = try ImageFixtures.inspect("sha512.signed.bin")
        #expect(result.hashAlgorithm == .sha512)
        #expect(result.hashMatches == true)
        #expect(result.verdict == .checkFailed)
        #expect(result.findings.contains { $0.id == "no-sha256" && $0.summary.contains("HASH_NOT_FOUND") })
    }

    @Test("key files that are not keys are refused")
    func badKey() {
        #expect(throws: ImageKeyError.self) { try ImageVerificationKey(pem: "hello") }
        #expect(throws: ImageKeyError.self) {
            try ImageVerificationKey(pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        }
    }
}

@Suite("image inspector: files that are not images")
struct ImageInspectorWrongFileTests {
    @Test("each wrong file is recognized with the right advice", arguments: [
        ("zephyr.bin", ImageFileKind.rawBinary, "raw-binary", "zephyr.signed.bin"),
        ("zephyr.signed.hex", .intelHex, "intel-hex-signed", "zephyr.signed.bin"),
        ("zephyr.elf", .elf, "elf", "zephyr.signed.bin"),
        ("truncated.signed.bin", .damagedImage, "truncated", "copy zephyr.signed.bin again"),
        ("wrong-header-size.signed.bin", .mcubootImage, "wrong-header-size", "--header-size 0x200"),
        ("dfu_application.zip", .dfuPackage, "dfu-package", "smpctl dfu --image 1 net_core_app_update.bin"),
    ])
    func wrongFile(file: String, kind: ImageFileKind, code: String, advice: String) throws {
        let result = try ImageFixtures.inspect(file)
        #expect(result.kind == kind)
        #expect(result.verdict == .notAnImage)
        let finding = try #require(result.findings.first { $0.id == code }, "\(result.findings)")
        #expect(result.kind(of: finding) == .invalid)
        #expect(finding.severity == .error)
        #expect(finding.fix?.contains(advice) == true, "\(finding.fix ?? "no advice")")
        #expect(result.refusal.contains("is not a signed MCUboot image"))
    }

    @Test("the DFU package's manifest gives each core its image")
    func dfuPackage() throws {
        let result = try ImageFixtures.inspect("dfu_application.zip")
        #expect(result.packageImages.count == 2)
        let app = try #require(result.packageImages.first { $0.imageIndex == 0 })
        #expect(app.file == "app_update.bin")
        #expect(app.core == "application core")
        #expect(app.board == "nrf5340dk_nrf5340_cpuapp")
        #expect(app.imageVersion == "1.2.3")
        #expect(app.problem == nil)
        // The embedded image is the Ed25519 fixture.
        let ed25519 = try ImageFixtures.inspect("ed25519.signed.bin")
        #expect(app.imageHash == ed25519.storedHash)
        let net = try #require(result.packageImages.first { $0.imageIndex == 1 })
        #expect(net.core == "network core")
        #expect(net.file == "net_core_app_update.bin")
    }

    @Test("an image padded with a trailer is valid but warned about")
    func padded() throws {
        let result = try ImageFixtures.inspect("padded.signed.bin", slotSize: 0x8000)
        #expect(result.hasTrailer)
        #expect(result.verdict == .good)
        #expect(result.findings.contains { $0.id == "padded-with-trailer" && result.kind(of: $0) == .warning && $0.severity == .warning })
        #expect(result.slotFit?.fits == true)
        #expect(result.slotFit?.trailerBytes == 0)
    }

    @Test("empty files, erased flash and random data")
    func otherData() {
        #expect(ImageInspector.inspect(bytes: [], name: "e").kind == .empty)
        let erased = ImageInspector.inspect(bytes: [UInt8](repeating: 0xFF, count: 64), name: "x")
        #expect(erased.findings.first?.id == "erased")
        let text = ImageInspector.inspect(bytes: Array("hello world".utf8), name: "t")
        #expect(text.kind == .unknown)
        #expect(text.verdict == .notAnImage)
        #expect(text.findings.first?.fix?.contains("zephyr.signed.bin") == true)
    }

    @Test("damaged ZIP and HEX data never trap")
    func damagedContainers() throws {
        let zip = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path("dfu_application.zip"))))
        for cut in stride(from: 4, to: zip.count, by: 97) {
            _ = ImageInspector.inspect(bytes: Array(zip.prefix(cut)), name: "cut.zip")
        }
        var flipped = zip
        for index in stride(from: 30, to: flipped.count, by: 53) { flipped[index] ^= 0x5A }
        _ = ImageInspector.inspect(bytes: flipped, name: "flipped.zip")
        _ = ImageInspector.inspect(bytes: Array(":10000000ZZ\n".utf8), name: "bad.hex")
    }
}

@Suite("image slot checks")
struct ImageSlotCheckTests {
    @Test("the trailer estimate for 128 sectors and 8-byte alignment")
    func trailer() {
        #expect(MCUbootTrailerEstimate().size == 3120)
        #expect(MCUbootTrailerEstimate(maxSectors: 512).size == 512 * 24 + 48)
    }

    @Test("--slot-size: image plus trailer must fit")
    func slotSize() throws {
        let fits = try ImageFixtures.inspect("ecdsa-p256.signed.bin", slotSize: 6664 + 3120)
        #expect(fits.slotFit?.fits == true)
        #expect(fits.verdict == .good)
        let tooSmall = try ImageFixtures.inspect("ecdsa-p256.signed.bin", slotSize: 6664 + 3119)
        #expect(tooSmall.slotFit?.fits == false)
        #expect(tooSmall.verdict == .checkFailed)
        #expect(tooSmall.findings.contains { $0.id == "too-large-for-slot" })
    }

    @Test("device slot info: max_image_size first, then the slot size")
    func deviceSlotInfo() {
        typealias Info = ImageManagement.SlotInfoResponse
        let info = Info(images: [
            Info.Image(image: 0, slots: [Info.Slot(slot: 0, size: 65536), Info.Slot(slot: 1, size: 65536, uploadImageID: 0)], maxImageSize: 61440),
            Info.Image(image: 1, slots: [Info.Slot(slot: 0, size: 8192), Info.Slot(slot: 1, size: 8192, uploadImageID: 1)]),
        ])
        #expect(ImageSlotCheck.check(length: 61440, image: 0, slotInfo: info) == .fits(limit: 61440, source: "max_image_size"))
        if case .tooLarge(let message) = ImageSlotCheck.check(length: 61441, image: 0, slotInfo: info) {
            #expect(message.contains("61441") && message.contains("61440"))
        } else {
            Issue.record("expected tooLarge")
        }
        #expect(ImageSlotCheck.check(length: 8192, image: 1, slotInfo: info) == .fits(limit: 8192, source: "slot 1 size"))
        if case .tooLarge = ImageSlotCheck.check(length: 9000, image: 1, slotInfo: info) {} else { Issue.record("expected tooLarge") }
        #expect(ImageSlotCheck.check(length: 1, image: 2, slotInfo: info) == .unknown)
    }
}
