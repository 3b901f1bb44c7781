import SMPCtlTestSupport
import Foundation
import SMPCtlImage
import Testing

@Suite struct MCUbootImageFixtureTests {
    let file: [UInt8]
    let vector: [String: Any]

    init() throws {
        file = try ImageFixture.bytes("test-image.bin")
        vector = try ImageFixture.json("mcuboot-image.json")
    }

    @Test func headerMatchesVector() throws {
        let image = try MCUbootImage(parsing: file)
        let header = try #require(vector["header"] as? [String: Any])
        let ver = try #require(header["ih_ver"] as? [String: Any])
        #expect(file.count == jsonInt(vector["file_size"]))
        #expect(Int(image.magic) == jsonInt(header["ih_magic"]))
        #expect(Int(image.loadAddress) == jsonInt(header["ih_load_addr"]))
        #expect(image.headerSize == jsonInt(header["ih_hdr_size"]))
        #expect(image.protectedTLVSize == jsonInt(header["ih_protect_tlv_size"]))
        #expect(image.imageSize == jsonInt(header["ih_img_size"]))
        #expect(Int(image.flags.rawValue) == jsonInt(header["ih_flags"]))
        #expect(image.flags.isEmpty && image.isBootable)
        #expect(Int(image.version.major) == jsonInt(ver["iv_major"]))
        #expect(Int(image.version.minor) == jsonInt(ver["iv_minor"]))
        #expect(Int(image.version.revision) == jsonInt(ver["iv_revision"]))
        #expect(Int(image.version.build) == jsonInt(ver["iv_build_num"]))
        #expect(Int(image.headerPadding) == jsonInt(header["_pad1"]))
        #expect(Array(file[0..<32]).hex == header["header_32_bytes_hex"] as? String)
        #expect(image.versionString == vector["version_string_as_reported_by_zephyr_smp"] as? String)
        #expect(image.versionString == "1.2.3.4")
    }

    @Test func tlvAreasMatchVector() throws {
        let image = try MCUbootImage(parsing: file)
        let prot = try #require(vector["protected_tlv_info"] as? [String: Any])
        let unprot = try #require(vector["tlv_info"] as? [String: Any])
        #expect(image.protectedTLVInfoOffset == jsonInt(prot["offset"]))
        #expect(image.protectedTLVSize == jsonInt(prot["it_tlv_tot"]))
        #expect(image.tlvInfoOffset == jsonInt(unprot["offset"]))
        #expect(image.tlvAreaSize == jsonInt(unprot["it_tlv_tot"]))
        #expect(image.imageEndOffset == file.count)

        let expected = try #require(vector["tlvs"] as? [[String: Any]])
        #expect(image.tlvs.count == expected.count)
        for (tlv, want) in zip(image.tlvs, expected) {
            #expect(tlv.area.rawValue == want["area"] as? String)
            #expect(tlv.offset == jsonInt(want["offset"]))
            #expect(Int(tlv.type.rawValue) == jsonInt(want["type"]))
            #expect(tlv.length == jsonInt(want["len"]))
            #expect(tlv.value.hex == want["value_hex"] as? String)
        }
        #expect(image.protectedTLVs.map(\.type) == [.securityCounter])
        #expect(image.unprotectedTLVs.map(\.type) == [.sha256, .keyHash, .ecdsaSignature])
        #expect(image.signatureTypeName == "ECDSA_SIG")
    }

    @Test func hashesMatchVector() throws {
        let image = try MCUbootImage(parsing: file)
        let imageHash = "3f3476eb44ddd881d84d9129dc67a8e0a0cdf66892a153381a17ded173031d05"
        #expect(image.hashedRegionLength == 4620)
        #expect(image.hashAlgorithm == .sha256)
        #expect(image.hashTLV?.hex == imageHash)
        #expect(image.sha256TLV?.hex == imageHash)
        #expect(image.sha256TLV?.hex == vector["image_hash_sha256_tlv_0x10"] as? String)
        #expect(image.computeImageHash().hex == imageHash)
        #expect(image.hashMatches)
        #expect(MCUbootImage.sha256(file).hex == "d38a2812b4bc491c7c9fe045bc849f782285ac36634524b29fa0c1920f301a28")
        #expect(MCUbootImage.sha256(file).hex == vector["sha256_of_whole_file_for_upload_sha_field"] as? String)
    }

    @Test func everyTruncationThrows() {
        for length in 0..<file.count {
            do {
                _ = try MCUbootImage(parsing: Array(file.prefix(length)))
                Issue.record("a file truncated to \(length) bytes parsed")
            } catch {
                let expected: MCUbootImageError.Code = length < 32 ? .tooShort : .truncated
                #expect(error.code == expected, "length \(length)")
            }
        }
    }

    @Test func trailingPaddingIsIgnored() throws {
        let padded = file + [UInt8](repeating: 0xFF, count: 4096)
        let image = try MCUbootImage(parsing: padded)
        #expect(image.hashMatches)
        #expect(image.imageEndOffset == file.count)
    }

    @Test func tamperedPayloadFailsHashCheck() throws {
        var tampered = file
        tampered[0x200 + 100] ^= 0x01
        let image = try MCUbootImage(parsing: tampered)
        #expect(!image.hashMatches)
        #expect(image.sha256TLV?.hex == "3f3476eb44ddd881d84d9129dc67a8e0a0cdf66892a153381a17ded173031d05")
        // A byte of the protected area is hashed too; one in the unprotected area is not.
        var protectedTampered = file
        protectedTampered[4612] ^= 0x01
        #expect(try !MCUbootImage(parsing: protectedTampered).hashMatches)
        var signatureTampered = file
        signatureTampered[4700] ^= 0x01
        #expect(try MCUbootImage(parsing: signatureTampered).hashMatches)
    }

    @Test func structuralErrors() {
        func code(_ bytes: [UInt8]) -> MCUbootImageError.Code? {
            do {
                _ = try MCUbootImage(parsing: bytes)
                return nil
            } catch { return error.code }
        }
        var legacy = file
        legacy[0] = 0x3c
        #expect(code(legacy) == .badMagic)
        var badTLVMagic = file
        badTLVMagic[4620] = 0x00
        #expect(code(badTLVMagic) == .badTLVMagic)
        var badProtectedMagic = file
        badProtectedMagic[4608] = 0x07
        #expect(code(badProtectedMagic) == .badTLVMagic)
        var mismatch = file
        mismatch[4610] = 16  // protected it_tlv_tot 16 vs ih_protect_tlv_size 12
        #expect(code(mismatch) == .protectedSizeMismatch)
        var overrun = file
        overrun[4626] = 0xFF  // SHA-256 TLV length 0x00ff runs past the area
        #expect(code(overrun) == .tlvOverrun)
        var smallHeader = file
        smallHeader[8] = 16
        smallHeader[9] = 0
        #expect(code(smallHeader) == .badHeaderSize)
        var tinyArea = file
        tinyArea[4622] = 2
        tinyArea[4623] = 0
        #expect(code(tinyArea) == .badTLVAreaSize)
        var hugeImage = file
        hugeImage[15] = 0xFF
        #expect(code(hugeImage) == .truncated)
    }
}

@Suite struct MCUbootImageRobustnessTests {
    @Test func zephyrBinWithoutMagicThrowsBadMagic() throws {
        var rng = SplitMix64(seed: 0x2EF1)
        for _ in 0..<100 {
            var bytes = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // A Cortex-M vector table starts with the stack pointer, e.g. 0x20001000.
            bytes.replaceSubrange(0..<4, with: [0x00, 0x10, 0x00, 0x20])
            #expect(throws: MCUbootImageError.self) { try MCUbootImage(parsing: bytes) }
            do {
                _ = try MCUbootImage(parsing: bytes)
            } catch {
                #expect(error.code == .badMagic)
            }
        }
        let erased = [UInt8](repeating: 0xFF, count: 64)
        #expect(throws: MCUbootImageError.self) { try MCUbootImage(parsing: erased) }
    }

    @Test func randomMutationsNeverTrap() throws {
        let file = try ImageFixture.bytes("test-image.bin")
        var rng = SplitMix64(seed: 20_240_601)
        var parsed = 0
        var failed = 0
        let interesting = [0, 8, 9, 10, 11, 12, 13, 14, 15, 4608, 4610, 4611, 4612, 4614, 4620, 4622, 4623, 4626, 4662]
        for _ in 0..<60_000 {
            var bytes = file
            switch rng.next() % 5 {
            case 0:
                // Flip random bytes anywhere.
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    let i = Int(rng.next() % UInt64(bytes.count))
                    bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 1:
                // Hit length and magic fields.
                let i = interesting[Int(rng.next() % UInt64(interesting.count))]
                bytes[i] = UInt8(truncatingIfNeeded: rng.next())
            case 2:
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
            case 3:
                // Random junk with a valid magic.
                let count = Int(rng.next() % 700)
                bytes = [0x3d, 0xb8, 0xf3, 0x96] + (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            default:
                // Shrink the header size / image size so the TLV walk starts at random places.
                let i = Int(rng.next() % 4) + 8
                bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                bytes[Int(rng.next() % 32) + 4600] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                let image = try MCUbootImage(parsing: bytes)
                _ = image.computeImageHash()
                _ = image.hashMatches
                _ = image.signatureTypeName
                #expect(image.hashedRegionLength <= bytes.count)
                parsed += 1
            } catch {
                #expect(!error.reason.isEmpty)
                failed += 1
            }
        }
        #expect(parsed + failed == 60_000)
        #expect(parsed > 0 && failed > 0)
    }
}

@Suite struct MCUbootImageBuilderTests {
    @Test func builtImagesRoundTrip() throws {
        for algorithm in MCUbootHashAlgorithm.allCases {
            let bytes = MCUbootImageBuilder(
                version: MCUbootImageVersion(major: 2, minor: 0, revision: 1), payload: Array(repeating: 0xAB, count: 1000),
                protectedTLVs: [(.securityCounter, [1, 0, 0, 0])], hashAlgorithm: algorithm
            ).build()
            let image = try MCUbootImage(parsing: bytes)
            #expect(image.versionString == "2.0.1")
            #expect(image.hashAlgorithm == algorithm)
            #expect(image.hashTLV?.count == algorithm.digestLength)
            #expect(image.hashMatches)
            #expect((image.sha256TLV != nil) == (algorithm == .sha256))
            #expect(image.signatureTypeName == nil)
        }
        let noHash = try MCUbootImage(parsing: MCUbootImageBuilder(
            version: MCUbootImageVersion(major: 1, minor: 0, revision: 0), payload: [1, 2, 3], hashAlgorithm: nil
        ).build())
        #expect(noHash.hashTLV == nil && !noHash.hashMatches && noHash.hashAlgorithm == .sha256)
        #expect(noHash.computeImageHash().count == 32)
    }

    @Test func versions() {
        #expect(MCUbootImageVersion(string: "1.2.3+4")?.description == "1.2.3.4")
        #expect(MCUbootImageVersion(string: "1.0.0")?.description == "1.0.0")
        #expect(MCUbootImageVersion(string: "1.2.3.0")?.description == "1.2.3")
        #expect(MCUbootImageVersion(string: "256.0.0") == nil)
        #expect(MCUbootImageVersion(string: "a.b") == nil)
        let a = MCUbootImageVersion(major: 1, minor: 2, revision: 3, build: 4)
        let b = MCUbootImageVersion(major: 1, minor: 2, revision: 3, build: 9)
        #expect(a < b && !b.isNewer(than: a) && b.isNewer(than: a, includingBuild: true))
        #expect(MCUbootImageFlags([.nonBootable, .ramLoad]).names == ["NON_BOOTABLE", "RAM_LOAD"])
    }
}
