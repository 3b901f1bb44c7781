import Foundation
@_spi(Fuzzing) import SMPCtlDiagnosis
import SMPCtlImage
import Testing

/// Inputs found by the fuzz targets in Fuzz/ (see FUZZING.md), kept as bytes so that each bug
/// stays fixed without the fuzzer.
@Suite("fuzz regressions: diagnosis")
struct DiagnosisFuzzRegressionTests {
    /// An image source that is not an array, as a file read in pieces is.
    struct Source: MCUbootImageSource {
        let bytes: [UInt8]
        var count: Int { bytes.count }
        func read(_ range: Range<Int>) throws(MCUbootImageError) -> [UInt8] { Array(bytes[range]) }
    }

    /// fuzz-image: `verify(signature:of:)` sliced `image.bytes`, which is empty for an image read
    /// from a source, and trapped on any image with a signature TLV.
    @Test("a signature of an image read from a source is checked without trapping")
    func verifyImageReadFromSource() throws {
        // Header (hdr_size 32, no payload), then a TLV area with one 4-byte ECDSA_SIG TLV.
        let crash: [UInt8] = [
            0x3D, 0xB8, 0xF3, 0x96, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x07, 0x69, 0x0C, 0x00, 0x22, 0x00, 0x04, 0x00, 0x30, 0x02, 0x02, 0x00,
        ]
        let key = try ImageFixtures.key("ecdsa-p256.pub.pem")
        let image = try MCUbootImage(reading: Source(bytes: crash))
        let signature = try #require(image.signatureTLV)
        #expect(!key.verify(signature: signature.value, of: image))

        // A good signature verifies the same way from a source as from memory.
        let signed = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path("ecdsa-p256.signed.bin"))))
        let streamed = try MCUbootImage(reading: Source(bytes: signed))
        let good = try #require(streamed.signatureTLV)
        #expect(key.verify(signature: good.value, of: streamed))
        #expect(key.verify(signature: good.value, of: try MCUbootImage(parsing: signed)))
    }

    /// fuzz-yaml: the entries of a flow mapping (`key: {a: 1}`) were given line 0, outside the
    /// 1-based lines the doctor reports findings on.
    @Test("flow mapping entries are on the line they are written on")
    func flowMappingLines() throws {
        func lines(_ node: DoctorYAMLNode) -> [Int] {
            switch node {
            case .scalar: []
            case .sequence(let items): items.flatMap(lines)
            case .mapping(let entries): entries.flatMap { [$0.line] + lines($0.value) }
            }
        }
        // With Yams the cut-off flow mapping is a parse error with a line; if a reader ever
        // accepts it, its entries must still be on line 1.
        let crash: [UInt8] = [0x61, 0x3A, 0x20, 0x7B, 0x30, 0x3A]  // "a: {0:"
        do {
            let node = try DoctorYAML.parse(String(decoding: crash, as: UTF8.self))
            #expect(lines(node).allSatisfy { $0 == 1 })
        } catch {
            #expect(error.line.map { $0 >= 1 } ?? true)
        }

        let text = "app:\n  span: {address: 0x1000, size: 0x2000}\n  list:\n    - {y: 1}\n"
        #expect(try lines(DoctorYAML.parse(text)).allSatisfy { (1...4).contains($0) })
        #expect(try DoctorYAML.parse(text)["app"]?["span"]?.entries.map(\.line) == [2, 2])
    }

    /// A one-entry ZIP written byte by byte: a local header, `member` as the entry's deflate
    /// data, the central directory header and the end record. `declared` is the uncompressed size.
    static func zip(name: String, member: [UInt8], declared: UInt32, crc: UInt32 = 0) -> [UInt8] {
        func le16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF)] }
        func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (8 * $0) & 0xFF) } }
        let nameBytes = Array(name.utf8)
        let sizes = le32(crc) + le32(UInt32(member.count)) + le32(declared)
        var bytes: [UInt8] = [0x50, 0x4B, 3, 4] + le16(20) + le16(0) + le16(8) + le16(0) + le16(0) + sizes
        bytes += le16(nameBytes.count) + le16(0) + nameBytes + member
        let directory = bytes.count
        bytes += [0x50, 0x4B, 1, 2] + le16(20) + le16(20) + le16(0) + le16(8) + le16(0) + le16(0) + sizes
        bytes += le16(nameBytes.count) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(0) + nameBytes
        let directorySize = bytes.count - directory
        bytes += [0x50, 0x4B, 5, 6] + le16(0) + le16(0) + le16(1) + le16(1)
        bytes += le32(UInt32(directorySize)) + le32(UInt32(directory)) + le16(0)
        return bytes
    }

    /// fuzz-archive (timeout): ZIPFoundation 0.9.20 inflates on Linux by reading the archive file
    /// past the member, and loops for ever once the file ends before the deflate stream does. This
    /// member is a stored deflate block that promises 65,535 bytes and holds 11: nothing after it
    /// in the file ends the stream, so `Archive.extract` never returned. It must be an error after
    /// the member's own 16 bytes, and a second extraction must not inflate it again.
    @Test("a deflate stream that goes on past its member's bytes is an error, in bounded work")
    func deflateStreamPastItsMember() throws {
        let member: [UInt8] = [0x00, 0xFF, 0xFF, 0x00, 0x00] + Array("hello world".utf8)
        let bytes = Self.zip(name: "app_update.bin", member: member, declared: 100_000)
        let archive = try ImageArchive(bytes: bytes)
        let entry = try #require(archive.entries.first)
        #expect(entry.compressedSize == member.count)
        for _ in 0..<3 {
            #expect {
                try archive.extract(entry)
            } throws: { error in
                "\(error)".contains("does not end within its 16 compressed bytes")
            }
        }
        // The 16 bytes went in once, and the 11 the stored block holds came out once.
        #expect(archive.consumedBytes == member.count)
        #expect(archive.extractedBytes == 11)

        // The same bytes with an end to the stream (final stored block of 11) extract.
        var good = member
        good[0] = 0x01
        good.replaceSubrange(1..<5, with: [11, 0, 0xF4, 0xFF])
        let crc: UInt32 = 0x0D4A_1185  // CRC-32 of "hello world"
        let whole = try ImageArchive(bytes: Self.zip(name: "app_update.bin", member: good, declared: 11, crc: crc))
        #expect(try whole.extract(whole.entries[0]) == Array("hello world".utf8))
        #expect(whole.consumedBytes == 16)
        #expect(whole.extractedBytes == 11)
    }

    /// fuzz-archive (timeout): the input itself, `Fuzz/Findings/archive-timeout-13k.zip`. Its
    /// net_core_app_update.bin is a deflate stream that has not ended when the file does (13,047
    /// bytes, the entry claims 203,272); the target extracts every entry and then inspects the
    /// package, as `image inspect` does.
    @Test("the archive timeout input is read in bounded work")
    func archiveTimeoutInput() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Findings/archive-timeout-13k.zip").standardizedFileURL.path
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let archive = try ImageArchive(bytes: bytes)
        #expect(archive.entries.map(\.name) == ["app_update.bin", "net_core_app_update.bin", "manifest.json"])
        var failures: [String] = []
        for _ in 0..<2 {
            for entry in archive.entries {
                do { _ = try archive.extract(entry) } catch { failures.append(entry.name + ": " + error.reason) }
            }
        }
        #expect(failures.count == 4)
        #expect(failures.contains { $0.hasPrefix("net_core_app_update.bin") && $0.contains("does not end within its 6203 compressed bytes") })
        #expect(failures.contains { $0.hasPrefix("app_update.bin") && $0.contains("cannot be extracted") })
        // Every entry read once: no more than their compressed bytes in, their declared sizes out.
        #expect(archive.consumedBytes <= archive.entries.reduce(0) { $0 + $1.compressedSize })
        #expect(archive.consumedBytes == 6209 + 6203 + 285)
        #expect(archive.extractedBytes <= archive.entries.reduce(0) { $0 + $1.uncompressedSize })

        let inspection = ImageInspector.inspect(bytes: bytes, name: "dfu_application.zip")
        #expect(inspection.kind == .dfuPackage)
        #expect(inspection.packageImages.count == 2)
        #expect(inspection.packageImages.allSatisfy { $0.problem?.hasPrefix("cannot extract") == true })
    }

    /// The fuzz-archive target trapped on this 924-byte package (4 December run): its central
    /// directory declares sizes that clamp to `Int.max`, and the target summed them unchecked.
    /// The library was right; this keeps it so: the entries are listed, nothing over the bounds
    /// is inflated, every failure is a typed error, and the inspector answers.
    @Test("a package whose directory declares sizes near Int.max is refused entry by entry, without a trap")
    func archiveHugeDeclaredSizes() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Findings/archive-zip64-sizes.zip").standardizedFileURL.path
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count == 924)
        let archive = try ImageArchive(bytes: bytes)
        let declared = archive.entries.map(\.uncompressedSize)
        #expect(archive.entries.contains { $0.uncompressedSize > Int.max / 4 || $0.compressedSize > Int.max / 4 },
            "the input declares sizes near Int.max: \(declared)")
        for entry in archive.entries {
            do {
                let contents = try archive.extract(entry)
                #expect(contents.count == entry.uncompressedSize)
                #expect(contents.count <= ImageArchive.maximumEntrySize)
            } catch {
                #expect(!error.reason.isEmpty, "\(entry.name)")
            }
            if entry.uncompressedSize > ImageArchive.maximumEntrySize {
                #expect(throws: (any Error).self) { try archive.extract(entry) }
            }
        }
        #expect(archive.extractedBytes <= ImageArchive.maximumTotalSize)
        let inspection = ImageInspector.inspect(bytes: bytes, name: "dfu_application.zip")
        _ = inspection.refusal
    }

    /// The fuzz-yaml target's line invariant fired on a partitions.yml with a NEL (U+0085) in it
    /// (4 December run, `Fuzz/Findings/yaml-nel-line-break`): libyaml, under Yams, ends a line at
    /// NEL, LS and PS as YAML 1.1 does, so the entries after one are a line further down than an
    /// LF count says. The doctor reports the reader's lines; this pins what they are.
    @Test("line breaks as libyaml counts them: NEL, LS and PS end a line like LF, CR and CR LF")
    func yamlLineBreaks() throws {
        for (text, expected) in [
            ("a: 1\nb: 2\n", 2), ("a: 1\r\nb: 2\r\n", 2), ("a: 1\rb: 2", 2),
            ("a: 1\u{85}b: 2", 2), ("a: 1\u{2028}b: 2", 2), ("a: 1\u{2029}\nb: 2", 3),
        ] {
            let node = try DoctorYAML.parse(text)
            guard case .mapping(let entries) = node, entries.count == 2 else {
                Issue.record("\(text.debugDescription) did not read as a mapping of two entries: \(node)")
                continue
            }
            #expect(entries[0].line == 1, "\(text.debugDescription)")
            #expect(entries[1].line == expected, "\(text.debugDescription)")
        }
        // The input the target stopped on parses or is refused, without a trap.
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz/Findings/yaml-nel-line-break").standardizedFileURL.path
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        _ = try? DoctorYAML.parse(String(decoding: bytes, as: UTF8.self))
    }
}
