import SMPCtlTestSupport
import Testing
@testable import SMPCtlProtocol

@Suite("SMP reassembler for GATT notifications")
struct ReassemblerTests {
    static func packet(sequence: UInt8, bodyLength: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        let header = SMPHeader(
            operation: .readResponse, length: UInt16(bodyLength), group: .image, sequence: sequence, command: 0)
        return header.bytes + rng.bytes(bodyLength)
    }

    static let packets: [[UInt8]] = [
        packet(sequence: 1, bodyLength: 0, seed: 1),
        packet(sequence: 2, bodyLength: 5, seed: 2),
        packet(sequence: 3, bodyLength: 300, seed: 3),
        packet(sequence: 4, bodyLength: 0, seed: 4),
        packet(sequence: 5, bodyLength: 17, seed: 5),
    ]
    static let stream = packets.flatMap { $0 }

    @Test func allAtOnce() throws {
        var r = SMPReassembler(maxPacketLength: 1024)
        #expect(try r.append(Self.stream) == Self.packets)
        #expect(r.bufferedCount == 0)
    }

    @Test func oneByteAtATime() throws {
        var r = SMPReassembler(maxPacketLength: 1024)
        var out: [[UInt8]] = []
        for byte in Self.stream {
            out += try r.append([byte])
            #expect(r.bufferedCount <= 308)
        }
        #expect(out == Self.packets)
    }

    @Test func splitAtEveryOffset() throws {
        var failures: [Int] = []
        for cut in 0...Self.stream.count {
            var r = SMPReassembler(maxPacketLength: 1024)
            let out = try r.append(Self.stream[..<cut]) + r.append(Self.stream[cut...])
            if out != Self.packets || r.bufferedCount != 0 { failures.append(cut) }
        }
        #expect(failures.isEmpty)
    }

    @Test(arguments: [20, 23, 61, 244, 495])
    func notificationSizedChunks(chunk: Int) throws {
        var r = SMPReassembler(maxPacketLength: 1024)
        var out: [[UInt8]] = []
        var start = 0
        while start < Self.stream.count {
            let end = min(start + chunk, Self.stream.count)
            out += try r.append(Self.stream[start..<end])
            start = end
        }
        #expect(out == Self.packets)
    }

    @Test func twoPacketsInOneNotification() throws {
        var r = SMPReassembler(maxPacketLength: 1024)
        let a = Self.packets[1], b = Self.packets[4]
        #expect(try r.append(a + b) == [a, b])
        // And a packet plus the start of the next.
        #expect(try r.append(a + b.prefix(3)) == [a])
        #expect(r.bufferedCount == 3)
        #expect(try r.append(b.dropFirst(3)) == [b])
    }

    @Test func packetAcrossThreeNotifications() throws {
        var r = SMPReassembler(maxPacketLength: 1024)
        let p = Self.packets[2]
        #expect(try r.append(p[0..<5]) == [])  // header incomplete
        #expect(r.bufferedCount == 5)
        #expect(try r.append(p[5..<150]) == [])
        #expect(r.bufferedCount == 150)
        #expect(try r.append(p[150...]) == [p])
        #expect(r.bufferedCount == 0)
    }

    @Test func zeroLengthBodies() throws {
        var r = SMPReassembler(maxPacketLength: 8)
        let empty = Self.packets[0]
        #expect(empty.count == 8)
        #expect(try r.append(empty + empty + empty) == [empty, empty, empty])
        #expect(try r.append(empty.prefix(8)) == [empty])
        #expect(try r.append([UInt8]()) == [])
    }

    @Test func oversizeLengthIsRejectedAndRecovers() throws {
        var r = SMPReassembler(maxPacketLength: 100)
        let oversize = SMPHeader(operation: .readResponse, length: 93, group: .os, sequence: 9, command: 0).bytes
        #expect(throws: SMPDecodingError.self) { try r.append(oversize) }
        do {
            _ = try r.append([0x01, 0x00] + oversize.dropFirst(2))
            Issue.record("expected bodyTooLarge")
        } catch {
            #expect(error.code == .bodyTooLarge)
        }
        #expect(r.bufferedCount == 0)
        // Header split across fragments, then rejected when complete.
        #expect(try r.append(oversize.prefix(4)) == [])
        #expect(throws: SMPDecodingError.self) { try r.append(oversize.dropFirst(4) + [1, 2, 3]) }
        #expect(r.bufferedCount == 0)
        // Recovery: later input starts a new packet.
        let fits = Self.packets[1]
        #expect(try r.append(fits) == [fits])
        // Exactly at the bound (8 + 92 = 100) is accepted.
        let atBound = SMPHeader(operation: .readResponse, length: 92, group: .os, sequence: 9, command: 0).bytes
            + [UInt8](repeating: 7, count: 92)
        #expect(try r.append(atBound) == [atBound])
        // 0xFFFF with the smallest bound.
        var tiny = SMPReassembler(maxPacketLength: 0)
        #expect(tiny.maxPacketLength == 8)
        #expect(throws: SMPDecodingError.self) { try tiny.append([0, 0, 0xFF, 0xFF, 0, 0, 0, 0]) }
    }

    @Test func resetDropsPartialPacket() throws {
        var r = SMPReassembler(maxPacketLength: 1024)
        let p = Self.packets[2]
        _ = try r.append(p.prefix(20))
        #expect(r.bufferedCount == 20)
        r.reset()
        #expect(r.bufferedCount == 0)
        #expect(try r.append(Self.packets[1]) == [Self.packets[1]])
    }
}
