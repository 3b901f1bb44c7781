import SMPCtlTestSupport
import Testing
import SMPCtlCBOR
import SMPCtlProtocol

private func headerError(_ bytes: some Collection<UInt8>) -> SMPDecodingError.Code? {
    do {
        _ = try SMPHeader(decoding: bytes)
        return nil
    } catch {
        return error.code
    }
}

private func packetError(_ bytes: [UInt8], maxBodyLength: Int = SMPPacket.defaultMaxBodyLength) -> SMPDecodingError.Code? {
    do {
        _ = try SMPPacket(decoding: bytes, maxBodyLength: maxBodyLength)
        return nil
    } catch {
        return error.code
    }
}

/// An echo request header (v2 write, group 0, seq 42) with the given length field.
private func header(length: UInt16, byte0: UInt8 = 0x0A) -> [UInt8] {
    [byte0, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 0, 42, 0]
}

@Suite("SMP header and packet rejection")
struct HeaderRejectionTests {
    @Test("fewer than 8 bytes is a truncated header", arguments: 0..<8)
    func truncatedHeader(_ count: Int) {
        let bytes = Array([UInt8](hex: "0a00000900002a00a161646568656c6c6f").prefix(count))
        #expect(headerError(bytes) == .truncatedHeader)
        #expect(packetError(bytes) == .truncatedHeader)
        #expect(headerError(bytes[...]) == .truncatedHeader)
    }

    @Test("a header decodes from any collection, using only its first 8 bytes")
    func headerFromSlice() throws {
        let bytes = [UInt8](hex: "ff0a00000900002a00a1")
        let header = try SMPHeader(decoding: bytes.dropFirst())
        #expect(header == SMPHeader(operation: .write, version: .v2, length: 9, group: .os, sequence: 42, command: 0))
    }

    @Test("length field disagreeing with the body", arguments: [0, 1, 8, 10, 100, 65535])
    func lengthMismatch(_ length: Int) {
        let body = [UInt8](hex: "a161646568656c6c6f")  // 9 bytes
        let packet = header(length: UInt16(length)) + body
        #expect(packetError(packet) == .lengthMismatch)
        // The header alone still decodes: the length is only checked against a body.
        #expect(headerError(packet) == nil)
    }

    @Test("body shorter and longer than the length field")
    func shortAndLongBodies() {
        let packet = [UInt8](hex: "0a00000900002a00a161646568656c6c6f")
        #expect(packetError(packet) == nil)
        for cut in 1...9 {
            #expect(packetError(Array(packet.dropLast(cut))) == .lengthMismatch)
        }
        for extra in 1...5 {
            #expect(packetError(packet + [UInt8](repeating: 0, count: extra)) == .lengthMismatch)
        }
        // Two requests concatenated are not one packet.
        #expect(packetError(packet + packet) == .lengthMismatch)
    }

    @Test("body larger than the configured bound", arguments: [0, 1, 100, 1023, 2047])
    func bodyTooLarge(_ bound: Int) throws {
        let body = [UInt8](repeating: 0x00, count: bound + 1)
        let bytes = header(length: UInt16(bound + 1)) + body
        #expect(packetError(bytes, maxBodyLength: bound) == .bodyTooLarge)
        // Rejected from the header alone, before looking at the body.
        #expect(packetError(header(length: UInt16(bound + 1)), maxBodyLength: bound) == .bodyTooLarge)
        #expect(packetError(bytes, maxBodyLength: bound + 1) == nil)
        let packet = try SMPPacket(decoding: bytes, maxBodyLength: bound + 1)
        #expect(packet.body.count == bound + 1)
        #expect(packet.bytes == bytes)
    }

    @Test("the default bound allows the largest 16-bit length")
    func defaultBound() throws {
        #expect(SMPPacket.defaultMaxBodyLength == 65535)
        let bytes = header(length: 65535) + [UInt8](repeating: 0xF6, count: 65535)
        let packet = try SMPPacket(decoding: bytes)
        #expect(packet.header.length == 65535)
    }

    @Test("OP values 4 to 7 are invalid in every version", arguments: 4..<8)
    func invalidOperation(_ op: Int) {
        for version in 0..<4 {
            let bytes = header(length: 0, byte0: UInt8(version << 3 | op))
            #expect(headerError(bytes) == .invalidOperation)
            #expect(packetError(bytes) == .invalidOperation)
        }
    }

    @Test("all four version values and all four operations round-trip", arguments: 0..<4)
    func versions(_ version: Int) throws {
        for operation in SMPOperation.allCases {
            let byte0 = UInt8(version << 3) | operation.rawValue
            let bytes: [UInt8] = [byte0, 0x5A, 0x12, 0x34, 0xAB, 0xCD, 0xEF, 0x99]
            let header = try SMPHeader(decoding: bytes)
            #expect(header.version.rawValue == UInt8(version))
            #expect(header.operation == operation)
            #expect(header.flags == 0x5A)
            #expect(header.length == 0x1234)
            #expect(header.group == SMPGroupID(rawValue: 0xABCD))
            #expect(header.sequence == 0xEF)
            #expect(header.command == 0x99)
            #expect(header.bytes == bytes)
        }
        #expect(SMPVersion(rawValue: UInt8(version)).description == "v\(version + 1)")
    }

    @Test("reserved bits 7-5 of byte 0 are ignored")
    func reservedTopBits() throws {
        for top in 1..<8 {
            let header = try SMPHeader(decoding: [UInt8(top << 5) | 0x0A, 0, 0, 0, 0, 1, 7, 1])
            #expect(header.operation == .write)
            #expect(header.version == .v2)
            #expect(header.bytes == [0x0A, 0, 0, 0, 0, 1, 7, 1])
        }
    }

    @Test("version constants and ordering")
    func versionConstants() {
        #expect(SMPVersion.v1.rawValue == 0)
        #expect(SMPVersion.v2.rawValue == 1)
        #expect(SMPVersion.v1 < SMPVersion.v2)
        #expect(SMPVersion(rawValue: 5) == .v2)
        #expect(SMPOperation.read.response == .readResponse)
        #expect(SMPOperation.write.response == .writeResponse)
        #expect(SMPOperation.writeResponse.isResponse)
        #expect(!SMPOperation.read.isResponse)
    }

    @Test("group names and lookups")
    func groups() {
        #expect(SMPGroupID(nameOrNumber: "image") == .image)
        #expect(SMPGroupID(nameOrNumber: "IMAGE") == .image)
        #expect(SMPGroupID(nameOrNumber: "1") == .image)
        #expect(SMPGroupID(nameOrNumber: "enum") == .enumeration)
        #expect(SMPGroupID(nameOrNumber: "basic") == .zephyrBasic)
        #expect(SMPGroupID(nameOrNumber: "zephyr-basic") == .zephyrBasic)
        #expect(SMPGroupID(nameOrNumber: "64") == .perUser)
        #expect(SMPGroupID(nameOrNumber: "nope") == nil)
        #expect(SMPGroupID(nameOrNumber: "70000") == nil)
        #expect(SMPGroupID(rawValue: 64).name == nil)
        #expect(SMPGroupID.image.description == "image (1)")
    }

    @Test("a packet sets its header length from the body")
    func packetLength() {
        let packet = SMPPacket(
            header: SMPHeader(operation: .read, length: 999, group: .image, sequence: 1, command: 0), body: [0xA0])
        #expect(packet.header.length == 1)
        #expect(packet.bytes == [UInt8](hex: "0800000100010100a0"))
    }
}

// MARK: - Upload chunk sizing

enum UploadSizing {
    static let offsets = [0, 23, 24, 255, 256, 65535, 65536, 1 << 32]

    static let firsts: [ImageManagement.UploadRequest.FirstChunkFields?] = [
        nil,
        .init(length: 4770, sha: [UInt8](repeating: 0xAB, count: 32), image: 0),
        .init(length: 1 << 20, sha: nil, image: nil, upgrade: true),
        .init(length: 23, sha: [], image: 1, upgrade: true),
        .init(length: 1 << 32, sha: [UInt8](repeating: 1, count: 32), image: 300, upgrade: false),
    ]

    static let dataLengths: [Int] = Array(0...600)
        + [1000, 2000, 4096, 65279, 65280, 65534, 65535, 65536, 65537, 70_000]

    static let budgets: [Int] = Array(0...2100)
        + Array(65_500...65_600) + [100_000, 200_000]
}

@Suite("Upload chunk sizing")
struct UploadSizingTests {
    @Test("bodyLength equals the encoded body length", arguments: UploadSizing.offsets)
    func bodyLength(_ offset: Int) {
        let data = [UInt8](repeating: 0x5A, count: UploadSizing.dataLengths.max() ?? 0)
        for first in UploadSizing.firsts {
            for length in UploadSizing.dataLengths {
                let request = ImageManagement.UploadRequest(offset: offset, data: Array(data[..<length]), first: first)
                let actual = request.bodyBytes.count
                let predicted = ImageManagement.UploadRequest.bodyLength(offset: offset, dataLength: length, first: first)
                if predicted != actual {
                    Issue.record("offset \(offset), \(length) bytes, first \(String(describing: first)): \(predicted) != \(actual)")
                }
            }
        }
    }

    @Test("the encoded body is a map the decoder reads back", arguments: UploadSizing.offsets)
    func bodyDecodes(_ offset: Int) throws {
        for first in UploadSizing.firsts {
            let data: [UInt8] = Array(0..<200)
            let request = ImageManagement.UploadRequest(offset: offset, data: data, first: first)
            let map = try SMPResponseDecoder.map(from: request.bodyBytes)
            #expect(map["off"] == .unsigned(UInt64(offset)))
            #expect(map["data"] == .bytes(data))
            #expect(map["len"] == first.map { .unsigned(UInt64($0.length)) })
            #expect(map["sha"] == first?.sha.map { .bytes($0) })
            #expect(map["image"] == first?.image.map { .unsigned(UInt64($0)) })
            #expect(map["upgrade"] == (first?.upgrade == true ? .bool(true) : nil))
        }
    }

    @Test("largestDataLength is the largest n that fits", arguments: UploadSizing.offsets)
    func largestDataLength(_ offset: Int) {
        typealias Upload = ImageManagement.UploadRequest
        for first in UploadSizing.firsts {
            let empty = Upload.bodyLength(offset: offset, dataLength: 0, first: first)
            for budget in UploadSizing.budgets {
                let n = Upload.largestDataLength(bodyBudget: budget, offset: offset, first: first)
                if empty > budget {
                    if n != 0 { Issue.record("budget \(budget) < \(empty) but n = \(n)") }
                    continue
                }
                let fits = Upload.bodyLength(offset: offset, dataLength: n, first: first)
                let next = Upload.bodyLength(offset: offset, dataLength: n + 1, first: first)
                if n < 0 || fits > budget || next <= budget {
                    Issue.record("offset \(offset), budget \(budget): n = \(n) gives \(fits), n + 1 gives \(next)")
                }
            }
        }
    }

    @Test("a chunk of the largest size encodes within budget")
    func realChunkWithinBudget() {
        let first = ImageManagement.UploadRequest.FirstChunkFields(length: 4770, sha: [UInt8](repeating: 7, count: 32), image: 0)
        for budget in [100, 128, 249, 250, 251, 495, 2048 - 8] {
            let n = ImageManagement.UploadRequest.largestDataLength(bodyBudget: budget, offset: 0, first: first)
            let body = ImageManagement.UploadRequest(offset: 0, data: [UInt8](repeating: 0, count: n), first: first).bodyBytes
            #expect(body.count <= budget)
            let bigger = ImageManagement.UploadRequest(offset: 0, data: [UInt8](repeating: 0, count: n + 1), first: first).bodyBytes
            #expect(bigger.count > budget)
        }
    }
}
