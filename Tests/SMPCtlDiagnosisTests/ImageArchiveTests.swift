import Foundation
import Testing
import SMPCtlZipFixtures

@testable import SMPCtlDiagnosis

/// The bounds on DFU packages (issue #13): entries inflate once, the total per archive and the
/// manifest's file count are bounded, and sizes are counted as bytes come, not taken from headers.
@Suite("DFU package archives")
struct ImageArchiveTests {
    static func signedImage() throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path("ecdsa-p256.signed.bin")))
    }

    @Test("the nRF Connect SDK package still reads, with CRC-checked members")
    func realPackage() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path("dfu_application.zip"))))
        let archive = try ImageArchive(bytes: bytes)
        let manifest = try #require(archive.entry(named: "manifest.json"))
        #expect(try JSONSerialization.jsonObject(with: Data(archive.extract(manifest))) is [String: Any])
        for entry in archive.entries { _ = try archive.extract(entry) }
    }

    @Test("a member listed many times is inflated once")
    func inflatedOnce() throws {
        let image = try Self.signedImage()
        let zip = try ZipFixture.archive([
            ("manifest.json", ZipFixture.manifest(listing: "app_update.bin", times: 40)), ("app_update.bin", image),
        ])
        let archive = try ImageArchive(data: zip)
        let member = try #require(archive.entry(named: "app_update.bin"))
        for _ in 0..<10 { #expect(try archive.extract(member) == [UInt8](image)) }
        #expect(archive.extractedBytes == image.count)

        let result = ImageInspector.inspect(bytes: [UInt8](zip), name: "many.zip")
        #expect(result.kind == .dfuPackage)
        #expect(result.packageImages.count == 40)
        #expect(result.packageImages.allSatisfy { $0.problem == nil && $0.imageHash != nil })
    }

    @Test("the manifest's file count is bounded")
    func manifestCount() throws {
        let zip = try ZipFixture.archive([
            ("manifest.json", ZipFixture.manifest(listing: "app_update.bin", times: ImageInspector.maximumManifestFiles + 1)),
            ("app_update.bin", try Self.signedImage()),
        ])
        let result = ImageInspector.inspect(bytes: [UInt8](zip), name: "bomb.zip")
        #expect(result.kind == .dfuPackage)
        #expect(result.packageImages.isEmpty)
        #expect(result.findings.contains { $0.id == "dfu-package" && $0.summary.contains("lists 65 files") })
    }

    @Test("all members together are bounded")
    func totalBound() throws {
        let size = 48 << 20
        let zip = try ZipFixture.archive([("a.bin", Data(count: size)), ("b.bin", Data(count: size)), ("c.bin", Data(count: size))])
        let archive = try ImageArchive(data: zip)
        #expect(try archive.extract(archive.entries[0]).count == size)
        #expect(try archive.extract(archive.entries[1]).count == size)
        #expect(archive.extractedBytes == 2 * size)
        #expect {
            try archive.extract(archive.entries[2])
        } throws: { error in
            "\(error)".contains("\(ImageArchive.maximumTotalSize) bytes from one archive")
        }
        // What was extracted can still be read again.
        #expect(try archive.extract(archive.entries[0]).count == size)
    }

    @Test("an entry larger than the bound is refused from its directory entry")
    func entryBound() throws {
        let zip = try ZipFixture.archive([("big.bin", Data(count: ImageArchive.maximumEntrySize + 1))])
        let archive = try ImageArchive(data: zip)
        #expect(throws: ImageArchiveError.self) { try archive.extract(archive.entries[0]) }
        #expect(archive.extractedBytes == 0)
    }

    /// Offset of the last record with signature `PK kind next` (1, 2: central directory header; 5, 6: end record).
    static func lastRecord(_ bytes: [UInt8], _ kind: UInt8, _ next: UInt8) throws -> Int {
        var index = bytes.count - 4
        while index >= 0 {
            if bytes[index] == 0x50, bytes[index + 1] == 0x4B, bytes[index + 2] == kind, bytes[index + 3] == next { return index }
            index -= 1
        }
        throw ImageArchiveError("no record PK \(kind) \(next)")
    }

    /// Offset of the central directory header of the (only) entry.
    static func centralHeader(_ bytes: [UInt8]) throws -> Int { try lastRecord(bytes, 1, 2) }

    @Test("a directory entry that understates the size stops extraction at that size")
    func lyingSize() throws {
        var bytes = [UInt8](try ZipFixture.archive([("app_update.bin", Data(count: 1 << 20))]))
        let header = try Self.centralHeader(bytes)
        // Claim 1000 bytes in the central directory; the deflate stream holds 1 MiB.
        bytes.replaceSubrange((header + 24)..<(header + 28), with: [0xE8, 0x03, 0, 0])
        let archive = try ImageArchive(bytes: bytes)
        #expect(archive.entries[0].uncompressedSize == 1000)
        #expect {
            try archive.extract(archive.entries[0])
        } throws: { error in
            "\(error)".contains("more than the 1000 bytes")
        }
    }

    @Test("a damaged member fails its CRC-32 check")
    func crc() throws {
        var bytes = [UInt8](try ZipFixture.archive([("app_update.bin", try Self.signedImage())]))
        let header = try Self.centralHeader(bytes)
        bytes[header + 16] ^= 0xFF
        let archive = try ImageArchive(bytes: bytes)
        #expect {
            try archive.extract(archive.entries[0])
        } throws: { error in
            "\(error)".contains("CRC-32")
        }
    }

    @Test("ZIP64 markers are refused before they are read")
    func zip64() throws {
        let good = [UInt8](try ZipFixture.archive([("app_update.bin", Data(count: 100))]))
        let header = try Self.centralHeader(good)
        for field in [20, 24, 42] {
            var bytes = good
            bytes.replaceSubrange((header + field)..<(header + field + 4), with: [0xFF, 0xFF, 0xFF, 0xFF])
            #expect(throws: ImageArchiveError.self, "field \(field)") { try ImageArchive(bytes: bytes) }
        }
        // An end record preceded by a ZIP64 locator.
        let end = try Self.lastRecord(good, 5, 6)
        var located = Array(good[..<end])
        located += [0x50, 0x4B, 6, 7] + [UInt8](repeating: 0xFF, count: 16)
        located += good[end...]
        #expect(throws: ImageArchiveError.self) { try ImageArchive(bytes: located) }
    }

    @Test("cut and flipped archives give errors, never traps")
    func damaged() throws {
        let zip = [UInt8](try ZipFixture.archive([
            ("manifest.json", ZipFixture.manifest(listing: "app_update.bin", times: 2)), ("app_update.bin", try Self.signedImage()),
        ]))
        for cut in stride(from: 0, to: zip.count, by: 61) {
            if let archive = try? ImageArchive(bytes: Array(zip.prefix(cut))) {
                for entry in archive.entries { _ = try? archive.extract(entry) }
            }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var bytes = zip
            for _ in 0..<4 { bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
            if let archive = try? ImageArchive(bytes: bytes) {
                for entry in archive.entries { _ = try? archive.extract(entry) }
            }
            _ = ImageInspector.inspect(bytes: bytes, name: "flipped.zip")
        }
    }
}
