import Foundation
import SMPCtlTestSupport
import SMPCtlCBOR
import SMPCtlProtocol
import Testing

/// Golden bytes of the file (8), Zephyr basic (63) and OS reset/info messages, from
/// Tests/Fixtures/groups2-vectors.json, which Tests/Fixtures/generate-groups2-vectors.py writes
/// with cbor2, independently of smpctl's encoder.
@Suite("file, Zephyr basic and OS reset/info messages")
struct FileMessageTests {
    static var file: [String: Any] {
        guard let data = try? Fixture.data("groups2-vectors.json"),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return object
    }

    func vector(_ name: String) throws -> String {
        let vectors = try #require(Self.file["vectors"] as? [[String: Any]])
        return try #require(vectors.first { $0["name"] as? String == name }?["hex"] as? String, "no vector \(name)")
    }

    func packet(_ request: some SMPRequest, sequence: UInt8) -> String {
        hexString(request.packet(sequence: sequence).bytes)
    }

    func decode<R: SMPResponse>(_ type: R.Type, _ name: String, command: UInt8, group: SMPGroupID = .fs) throws -> R {
        let header = SMPHeader(operation: .readResponse, version: .v2, length: 0, group: group, sequence: 0, command: command)
        return try SMPResponseDecoder.decode(R.self, from: SMPPacket(header: header, body: [UInt8](hex: try vector(name))))
    }

    static let data: [UInt8] = Array(0..<16)

    @Test("every request encodes to the cbor2 bytes")
    func requests() throws {
        let name = "/lfs/a.bin"
        #expect(packet(FileManagement.UploadRequest(name: name, offset: 0, data: Self.data, length: 5000), sequence: 1)
            == (try vector("fs-upload-first")))
        #expect(packet(FileManagement.UploadRequest(name: name, offset: 70000, data: Self.data), sequence: 2)
            == (try vector("fs-upload-next")))
        #expect(packet(FileManagement.DownloadRequest(name: name, offset: 340), sequence: 3) == (try vector("fs-download")))
        #expect(packet(FileManagement.StatusRequest(name: name), sequence: 4) == (try vector("fs-status")))
        #expect(packet(FileManagement.HashRequest(name: name, type: "sha256", offset: 0, length: 4096), sequence: 5)
            == (try vector("fs-hash-sha256")))
        #expect(packet(FileManagement.HashRequest(name: name), sequence: 6) == (try vector("fs-hash-default")))
        #expect(packet(FileManagement.SupportedHashesRequest(), sequence: 7) == (try vector("fs-supported-hashes")))
        #expect(packet(FileManagement.CloseRequest(), sequence: 8) == (try vector("fs-close")))
        #expect(packet(ZephyrBasicManagement.EraseStorageRequest(), sequence: 9) == (try vector("basic-erase-storage")))
        #expect(packet(OSManagement.ResetRequest(force: true, bootMode: 1), sequence: 10) == (try vector("os-reset-boot-mode")))
        #expect(packet(OSManagement.InfoRequest(format: "a"), sequence: 11) == (try vector("os-info-all")))
    }

    @Test("the chunk size computation is exact: the largest chunk fits the budget and one byte more does not")
    func chunkSizing() {
        for budget in [60, 100, 247, 376, 1024, 1464, 2467, 65_000] {
            for (offset, length) in [(0, 70_000), (0, 5), (1432, nil), (70_000, nil)] as [(Int, Int?)] {
                let name = "/lfs/some/file.bin"
                let n = FileManagement.UploadRequest.largestDataLength(bodyBudget: budget, name: name, offset: offset, length: length)
                guard n > 0 else { continue }
                let body = FileManagement.UploadRequest(
                    name: name, offset: offset, data: [UInt8](repeating: 0xA5, count: n), length: length).bodyBytes
                #expect(body.count <= budget)
                #expect(body.count == FileManagement.UploadRequest.bodyLength(name: name, offset: offset, length: length, dataLength: n))
                let more = FileManagement.UploadRequest.bodyLength(name: name, offset: offset, length: length, dataLength: n + 1)
                #expect(more > budget, "budget \(budget): \(n + 1) bytes would fit too")
            }
        }
    }

    @Test("answers decode: upload offset, download chunk, status, hashes, supported types")
    func answers() throws {
        #expect(try decode(FileManagement.UploadResponse.self, "fs-upload-answer", command: 0).offset == 1432)
        let chunk = try decode(FileManagement.DownloadResponse.self, "fs-download-answer", command: 0)
        #expect(chunk == FileManagement.DownloadResponse(offset: 0, data: Self.data, length: 5000))
        #expect(try decode(FileManagement.StatusResponse.self, "fs-status-answer", command: 1).length == 5000)
        let sha = try decode(FileManagement.HashResponse.self, "fs-hash-sha256-answer", command: 2)
        #expect(sha.type == "sha256" && sha.length == 16 && sha.offset == 0)
        #expect(sha.hex == Self.file["sha256_hex"] as? String)
        let crc = try decode(FileManagement.HashResponse.self, "fs-hash-crc32-answer", command: 2)
        #expect(crc.offset == 4 && crc.length == 12)
        #expect(crc.output == .number(UInt64(try #require(Self.file["crc32_of_data_from_4"] as? Int))))
        let types = try decode(FileManagement.SupportedHashesResponse.self, "fs-supported-answer", command: 3)
        #expect(types.types == [.init(name: "crc32", format: 0, size: 4), .init(name: "sha256", format: 1, size: 32)])
    }

    @Test("the offset mismatch answer is a device error of the file group, and keeps its len")
    func mismatch() throws {
        let header = SMPHeader(operation: .writeResponse, version: .v2, length: 0, group: .fs, sequence: 0, command: 0)
        let body = [UInt8](hex: try vector("fs-offset-mismatch-answer"))
        #expect(throws: SMPResponseError.self) {
            try SMPResponseDecoder.decode(FileManagement.UploadResponse.self, from: SMPPacket(header: header, body: body))
        }
        let map = try SMPResponseDecoder.map(from: body)
        let error = try #require(try SMPResponseDecoder.deviceError(in: map, header: header))
        #expect(error.entry?.name == "FS_MGMT_ERR_FILE_OFFSET_NOT_VALID")
        #expect(try map.optionalUInt("len") == 1000)
    }

    @Test("CRC-32 is the IEEE one (zlib's check value of 123456789)")
    func crc32() throws {
        let expected = try #require(Self.file["crc32_check_123456789"] as? Int)
        #expect(Int(FileManagement.CRC32.checksum(Array("123456789".utf8))) == expected)
        #expect(FileManagement.CRC32.checksum(Array(Self.data[4...])) == UInt32(try #require(Self.file["crc32_of_data_from_4"] as? Int)))
    }

    @Test("answers of the wrong shape are typed errors")
    func rejections() {
        let header = SMPHeader(operation: .readResponse, version: .v2, length: 0, group: .fs, sequence: 0, command: 2)
        for hex in [
            "a0",  // no fields
            "a3647479706566736861323536636c656e01666f757470757463616263",  // output as text
            "a263666f666600646461746101",  // download data as an integer
            "a3636f666600646461746140636c656e1b0000000100000000",  // len 2^32
        ] {
            #expect(throws: SMPResponseError.self) {
                try SMPResponseDecoder.decode(FileManagement.HashResponse.self, from: SMPPacket(header: header, body: [UInt8](hex: hex)))
            }
            #expect(throws: SMPResponseError.self) {
                try SMPResponseDecoder.decode(FileManagement.DownloadResponse.self, from: SMPPacket(header: header, body: [UInt8](hex: hex)))
            }
        }
    }
}
