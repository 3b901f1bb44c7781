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
}
