import SMPCtlTestSupport
import Testing
@testable import SMPCtlProtocol

@Suite("SMP serial decoder: splits, console interleaving, errors and recovery")
struct SerialDecoderTests {
    typealias S = SerialTestSupport

    static let log1 = "[00:00:01.000,000] <inf> main: hello"
    static let log2 = "[00:00:01.250,000] <wrn> flash: slow erase"
    static let log3 = "uart:~$ "

    /// Two packets (one multi-frame, one Zephyr-framed) with console lines before, between and after.
    static func mixedInput() -> (input: [UInt8], expected: [Seen]) {
        var rng = SplitMix64(seed: 7)
        let p1 = [UInt8](hex: "0a00000900002a00a161646568656c6c6f")
        let p2 = [0x0B, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2B, 0x01] + rng.bytes(256)
        let p3 = [UInt8](hex: "0a00000000002c00")  // empty body
        var input: [UInt8] = []
        input += S.ascii(log1 + "\n")
        input += SMPSerialFraming.encode(packet: p1)
        input += S.ascii(log2 + "\r\n")
        input += S.zephyrFrames(p2)
        input += S.ascii("\n")
        input += SMPSerialFraming.encode(packet: p3, maxFrameLength: 16)
        input += S.ascii(log3 + "\n")
        let expected: [Seen] = [.text(log1), .packet(p1), .text(log2), .packet(p2), .text(""), .packet(p3), .text(log3)]
        return (input, expected)
    }

    @Test func allAtOnce() {
        let (input, expected) = Self.mixedInput()
        var decoder = SMPSerialDecoder()
        #expect(decoder.seen(input) == expected)
        #expect(decoder.bufferedCount == 0)
    }

    @Test func oneByteAtATime() {
        let (input, expected) = Self.mixedInput()
        var decoder = SMPSerialDecoder()
        var seen: [Seen] = []
        for byte in input {
            seen += decoder.seen([byte])
            #expect(decoder.bufferedCount <= decoder.maxBufferedCount)
        }
        #expect(seen == expected)
    }

    @Test func splitAtEveryOffset() {
        let (input, expected) = Self.mixedInput()
        var failures: [Int] = []
        for cut in 0...input.count {
            var decoder = SMPSerialDecoder()
            let seen = decoder.seen(Array(input[..<cut])) + decoder.seen(Array(input[cut...]))
            if seen != expected || decoder.bufferedCount != 0 { failures.append(cut) }
        }
        #expect(failures.isEmpty)
    }

    @Test func randomChunking() {
        let (input, expected) = Self.mixedInput()
        var rng = SplitMix64(seed: 99)
        for _ in 0..<200 {
            var decoder = SMPSerialDecoder()
            var seen: [Seen] = []
            var start = 0
            while start < input.count {
                let end = min(input.count, start + rng.below(40))
                seen += decoder.seen(Array(input[start..<end]))
                start = end
            }
            #expect(seen == expected)
        }
    }

    @Test func unterminatedLineIsHeld() {
        var decoder = SMPSerialDecoder()
        #expect(decoder.seen(S.ascii("partial")) == [])
        #expect(decoder.bufferedCount == 7)
        #expect(decoder.seen(S.ascii(" line\n")) == [.text("partial line")])
    }

    @Test func corruptedCRCIsReportedAndNextPacketDecodes() {
        let bad = [UInt8](hex: "0a00000900002a00a161646568656c6c6f")
        let good = [UInt8](hex: "0a00000900002b00a161646568656c6c6f")
        var decoder = SMPSerialDecoder()
        let input = S.libFrames(stream: S.stream(bad, crcXor: 0x0100)) + SMPSerialFraming.encode(packet: good)
        #expect(decoder.seen(input) == [.error(.crcMismatch), .packet(good)])

        // A data bit flipped in a multi-frame packet (base64 stays valid).
        var rng = SplitMix64(seed: 3)
        let big = rng.bytes(400)
        var frames = SMPSerialFraming.encode(packet: big)
        frames[200] = frames[200] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(decoder.seen(frames + SMPSerialFraming.encode(packet: good)) == [.error(.crcMismatch), .packet(good)])
    }

    @Test func badBase64() {
        let good = [UInt8](hex: "0a00000900002b00a161646568656c6c6f")
        var decoder = SMPSerialDecoder()
        // Invalid character, wrong group size, padding in the middle.
        for text in ["ABM*AAAJ", "ABMKAAA", "AB==AAAJ", "A===", "AB=A"] {
            let frame: [UInt8] = [0x06, 0x09] + S.ascii(text) + [0x0A]
            #expect(decoder.seen(frame + SMPSerialFraming.encode(packet: good)) == [.error(.invalidBase64), .packet(good)])
        }
        // Bad base64 in a continuation frame: the packet is dropped and its later frames ignored.
        var rng = SplitMix64(seed: 4)
        let big = rng.bytes(300)
        var lines = S.lines(SMPSerialFraming.encode(packet: big))
        #expect(lines.count == 4)
        lines[1][10] = UInt8(ascii: "!")
        #expect(decoder.seen(lines.flatMap { $0 } + SMPSerialFraming.encode(packet: good))
            == [.error(.invalidBase64), .packet(good)])
    }

    @Test func truncatedPacketThenNewPacket() {
        var rng = SplitMix64(seed: 5)
        let big = rng.bytes(500)
        let good = [UInt8](hex: "0a00000900002b00a161646568656c6c6f")
        let lines = S.lines(SMPSerialFraming.encode(packet: big))
        var decoder = SMPSerialDecoder()
        let truncated = lines.prefix(2).flatMap { $0 }
        #expect(decoder.seen(truncated) == [])
        #expect(decoder.bufferedCount > 0)
        #expect(decoder.seen(SMPSerialFraming.encode(packet: good)) == [.packet(good)])
        #expect(decoder.bufferedCount == 0)
        // A frame cut mid-line followed by a newline and a fresh packet.
        let cut = Array(lines[0].prefix(51))
        #expect(decoder.seen(cut + [0x0A] + SMPSerialFraming.encode(packet: good)) == [.error(.invalidBase64), .packet(good)])
    }

    @Test func continuationWithNothingBufferedIsIgnored() {
        var decoder = SMPSerialDecoder()
        let frame: [UInt8] = [0x04, 0x14] + S.ascii("AAAA") + [0x0A]
        #expect(decoder.seen(frame) == [])
        #expect(decoder.seen([0x04, 0x14, 0x21, 0x0A]) == [])  // even malformed
        #expect(decoder.bufferedCount == 0)
    }

    @Test func impossibleLengthPrefixes() {
        let good = [UInt8](hex: "0a00000900002b00a161646568656c6c6f")
        var decoder = SMPSerialDecoder()
        for stream: [UInt8] in [[], [0x00], [0x00, 0x00], [0x00, 0x01, 0xAA]] {
            let frame = S.libFrames(stream: stream).isEmpty ? [0x06, 0x09, 0x0A] : S.libFrames(stream: stream)
            #expect(decoder.seen(frame + SMPSerialFraming.encode(packet: good)) == [.error(.invalidFrameLength), .packet(good)])
        }
        // More decoded bytes than the prefix announces.
        var stream = S.stream(good)
        stream[1] -= 1
        #expect(decoder.seen(S.libFrames(stream: stream) + SMPSerialFraming.encode(packet: good))
            == [.error(.invalidFrameLength), .packet(good)])
    }

    @Test func oversizePacketRejectedBeforeBuffering() {
        var rng = SplitMix64(seed: 6)
        let big = rng.bytes(600)
        let good = [UInt8](hex: "0a00000900002b00a161646568656c6c6f")
        var decoder = SMPSerialDecoder(maxPacketLength: 512)
        let lines = S.lines(SMPSerialFraming.encode(packet: big))
        #expect(decoder.seen(lines[0]) == [.error(.bodyTooLarge)])
        #expect(decoder.bufferedCount == 0)
        #expect(decoder.seen(lines.dropFirst().flatMap { $0 }) == [])
        #expect(decoder.bufferedCount == 0)
        #expect(decoder.seen(SMPSerialFraming.encode(packet: good)) == [.packet(good)])
        // Exactly at the bound is accepted.
        let limit = rng.bytes(512)
        #expect(decoder.seen(SMPSerialFraming.encode(packet: limit)) == [.packet(limit)])
        // The largest prefix the format allows, with a small bound.
        var small = SMPSerialDecoder(maxPacketLength: 0)
        #expect(small.seen(S.libFrames(stream: [0xFF, 0xFF, 0x00])) == [.error(.bodyTooLarge)])
        #expect(small.seen(SMPSerialFraming.encode(packet: [])) == [.packet([])])
    }

    @Test func overlongLinesAreDroppedWithBoundedMemory() {
        let good = [UInt8](hex: "0a00000900002b00a161646568656c6c6f")
        var decoder = SMPSerialDecoder(maxLineLength: 200)
        var seen: [Seen] = []
        for _ in 0..<100 {
            seen += decoder.seen([UInt8](repeating: UInt8(ascii: "x"), count: 97))
            #expect(decoder.bufferedCount <= 200)
        }
        seen += decoder.seen([0x0A] + SMPSerialFraming.encode(packet: good))
        #expect(seen == [.error(.lineTooLong), .packet(good)])

        // An overlong SMP frame in the middle of a packet drops that packet.
        var rng = SplitMix64(seed: 8)
        let big = rng.bytes(300)
        let frames = SMPSerialFraming.encode(packet: big, maxFrameLength: 500)
        #expect(decoder.seen(frames + SMPSerialFraming.encode(packet: good)) == [.error(.lineTooLong), .packet(good)])
        // An overlong console line between frames does not disturb the packet in progress.
        let lines = S.lines(SMPSerialFraming.encode(packet: big))
        let noisy = lines[0] + [UInt8](repeating: 0x41, count: 1000) + [0x0A] + lines.dropFirst().flatMap { $0 }
        #expect(decoder.seen(noisy) == [.error(.lineTooLong), .packet(big)])
        // A line of exactly the bound is fine.
        let exact = [UInt8](repeating: 0x42, count: 200)
        #expect(decoder.seen(exact + [0x0A]) == [.text(String(repeating: "B", count: 200))])
    }

    @Test func crlfAndNewFirstFrameRestart() {
        let p1 = [UInt8](hex: "0a00000900002a00a161646568656c6c6f")
        var crlf = SMPSerialFraming.encode(packet: p1)
        crlf.insert(0x0D, at: crlf.count - 1)
        var decoder = SMPSerialDecoder()
        #expect(decoder.seen(crlf) == [.packet(p1)])
        // A new first frame in the middle of a packet restarts reassembly.
        var rng = SplitMix64(seed: 9)
        let big = rng.bytes(300)
        let lines = S.lines(SMPSerialFraming.encode(packet: big))
        #expect(decoder.seen(lines[0] + lines[1] + lines.flatMap { $0 }) == [.packet(big)])
    }

    @Test func resetDropsState() {
        var decoder = SMPSerialDecoder()
        let lines = S.lines(SMPSerialFraming.encode(packet: [UInt8](repeating: 1, count: 300)))
        _ = decoder.feed(lines[0] + [0x41, 0x42])
        #expect(decoder.bufferedCount > 0)
        decoder.reset()
        #expect(decoder.bufferedCount == 0)
        #expect(decoder.seen(lines.dropFirst().flatMap { $0 }) == [])
    }
}
