import SMPCtlTestSupport
import Testing
@testable import SMPCtlProtocol

@Suite("SMP serial framing: encoding, CRC and fixture vectors")
struct SerialFramingTests {
    typealias S = SerialTestSupport

    static let frameVectorNames = ["serial-echo-request-v2", "serial-upload-first-chunk"]

    static func vector(_ name: String) throws -> [String: Any] {
        let all = try Fixture.vectors("serial-framing.json")
        return try #require(all.first { $0["name"] as? String == name })
    }

    static func hexList(_ vector: [String: Any], _ key: String) throws -> [[UInt8]] {
        let list = try #require(vector[key] as? [String])
        return list.map { [UInt8](hex: $0) }
    }

    @Test func crcCheckValue() {
        // The CRC-16/XMODEM catalogue check value.
        #expect(SMPSerialFraming.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(SMPSerialFraming.crc16([UInt8]()) == 0)
    }

    @Test func workedExampleFromReference() {
        let packet = [UInt8](hex: "0a00000900002a00a161646568656c6c6f")
        #expect(packet.count == 17)
        #expect(SMPSerialFraming.crc16(packet) == 0x0A38)
        let expectedLine: [UInt8] = [0x06, 0x09] + Array("ABMKAAAJAAAqAKFhZGVoZWxsbwo4".utf8) + [0x0A]
        #expect(SMPSerialFraming.encode(packet: packet) == expectedLine)
        #expect(S.stream(packet) == [0x00, 0x13] + packet + [0x0A, 0x38])
        var decoder = SMPSerialDecoder()
        #expect(decoder.feed(expectedLine) == [.packet(packet)])
        #expect(decoder.bufferedCount == 0)
    }

    @Test(arguments: frameVectorNames)
    func fixtureVector(name: String) throws {
        let v = try Self.vector(name)
        let packet = [UInt8](hex: try #require(v["smp_packet_hex"] as? String))
        #expect(packet.count == v["smp_packet_len"] as? Int)
        let crc = [UInt8](hex: try #require(v["crc16_hex"] as? String))
        let computed = SMPSerialFraming.crc16(packet)
        #expect([UInt8(computed >> 8), UInt8(computed & 0xFF)] == crc)

        let libFrames = try Self.hexList(v, "frames_smp_lib_hex")
        let zephyrFrames = try Self.hexList(v, "frames_zephyr_style_hex")
        let lib = libFrames.flatMap { $0 }
        let zephyr = zephyrFrames.flatMap { $0 }

        // Encoding reproduces the smp library's frames byte for byte.
        let encoded = SMPSerialFraming.encode(packet: packet)
        #expect(encoded == lib)
        #expect(SMPSerialFraming.encodedLength(packetLength: packet.count) == lib.count)
        // Our Zephyr-style helper matches the fixture, so it can generate more cases.
        #expect(S.zephyrFrames(packet) == zephyr)

        // The length prefix and the whole unencoded stream.
        let unencoded = [UInt8](hex: try #require(v["unencoded_body_hex"] as? String))
        #expect(S.stream(packet) == unencoded)
        let prefix = [UInt8](hex: try #require(v["length_prefix_hex"] as? String))
        let firstText = try #require(libFrames.first).dropFirst(2).dropLast()
        let firstDecoded = try #require(SMPSerialFraming.base64Decode(firstText))
        #expect(Array(firstDecoded.prefix(2)) == prefix)
        #expect(Int(prefix[0]) << 8 | Int(prefix[1]) == packet.count + 2)

        // Each frame's base64 is whole 4-char groups and every line fits 127 bytes.
        for frame in libFrames + zephyrFrames {
            #expect(frame.count <= 127)
            #expect((frame.count - 3) % 4 == 0)
        }

        // Decoding either framing, all at once and frame by frame.
        for frames in [libFrames, zephyrFrames] {
            var decoder = SMPSerialDecoder()
            #expect(decoder.feed(frames.flatMap { $0 }) == [.packet(packet)])
            var byFrame = SMPSerialDecoder()
            var events: [SMPSerialDecoder.Event] = []
            for frame in frames { events += byFrame.feed(frame) }
            #expect(events == [.packet(packet)])
            #expect(byFrame.bufferedCount == 0)
        }
    }

    @Test func capturedV1ErrorResponse() throws {
        let v = try Self.vector("serial-captured-v1-error-response")
        let base64 = try #require(v["base64"] as? String)
        let decodedHex = [UInt8](hex: try #require(v["decoded_hex"] as? String))
        #expect(v["crc_ok"] as? Bool == true)
        let lengthPrefix = try #require(v["length_prefix"] as? Int)
        #expect(Int(decodedHex[0]) << 8 | Int(decodedHex[1]) == lengthPrefix)

        let expected = Array(decodedHex[2..<(decodedHex.count - 2)])
        let frame: [UInt8] = [0x06, 0x09] + Array(base64.utf8) + [0x0A]
        var decoder = SMPSerialDecoder()
        #expect(decoder.feed(frame) == [.packet(expected)])
        // Receiver check as Zephyr does it: CRC over P || crc is zero.
        #expect(SMPSerialFraming.crc16(decodedHex[2...]) == 0)
        let packet = try SMPPacket(decoding: expected)
        #expect(packet.header.operation == .writeResponse)
        #expect(packet.header.group == .image)
        #expect(packet.header.sequence == 0xA3)
        // And our encoder would produce the same line.
        #expect(SMPSerialFraming.encode(packet: expected) == frame)
    }

    @Test(arguments: [127, 128, 100, 64, 20, 12, 8, 7, 1, 0, -5])
    func encodedLengthIsExact(maxFrameLength: Int) {
        for length in 0...3000 {
            let packet = [UInt8](repeating: UInt8(truncatingIfNeeded: length), count: length)
            let encoded = SMPSerialFraming.encode(packet: packet, maxFrameLength: maxFrameLength)
            let predicted = SMPSerialFraming.encodedLength(packetLength: length, maxFrameLength: maxFrameLength)
            if encoded.count != predicted {
                Issue.record("length \(length), max \(maxFrameLength): encoded \(encoded.count), predicted \(predicted)")
                return
            }
        }
    }

    @Test func charactersPerFrame() {
        #expect(SMPSerialFraming.base64CharactersPerFrame(maxFrameLength: 127) == 120)
        #expect(SMPSerialFraming.base64CharactersPerFrame(maxFrameLength: 128) == 124)
        #expect(SMPSerialFraming.base64CharactersPerFrame(maxFrameLength: 8) == 4)
        #expect(SMPSerialFraming.base64CharactersPerFrame(maxFrameLength: Int.min) == 4)
        #expect(SMPSerialFraming.base64CharactersPerFrame(maxFrameLength: Int.max) % 4 == 0)
    }

    @Test(arguments: [127, 61, 20, 8])
    func roundTrips(maxFrameLength: Int) {
        var rng = SplitMix64(seed: 0x5E81A1 &+ UInt64(maxFrameLength))
        var decoder = SMPSerialDecoder()
        var failures = 0
        for length in 0...2100 {
            let packet = rng.bytes(length)
            let encoded = SMPSerialFraming.encode(packet: packet, maxFrameLength: maxFrameLength)
            let lineOK = S.framesAreWellFormed(encoded, maxLine: maxFrameLength)
            let events = decoder.feed(encoded)
            if !lineOK || events != [.packet(packet)] || decoder.bufferedCount != 0 {
                failures += 1
                if failures < 5 { Issue.record("length \(length), max \(maxFrameLength): \(events.map(Seen.init))") }
            }
        }
        #expect(failures == 0)
    }

    @Test func zephyrStyleRoundTrips() {
        var rng = SplitMix64(seed: 0x2E9)
        var decoder = SMPSerialDecoder()
        var failures = 0
        for length in 0...2100 {
            let packet = rng.bytes(length)
            let frames = S.zephyrFrames(packet)
            // Concatenated base64 equals the smp library's.
            let text = S.lines(frames).flatMap { $0.dropFirst(2).dropLast() }
            let libText = S.lines(SMPSerialFraming.encode(packet: packet)).flatMap { $0.dropFirst(2).dropLast() }
            let events = decoder.feed(frames)
            if text != libText || events != [.packet(packet)] { failures += 1 }
        }
        #expect(failures == 0)
    }
}
