import SMPCtlTestSupport
import Testing
@testable import SMPCtlProtocol

/// Deterministic randomized robustness tests: no traps, bounded memory, bounded packets.
@Suite("Serial decoder and reassembler fuzzing")
struct SerialFuzzTests {
    static let iterations = 200_000

    /// Bytes that matter to the serial decoder, to make random input hit interesting paths.
    static let interesting: [UInt8] = [0x06, 0x09, 0x04, 0x14, 0x0A, 0x0D, 0x3D] + Array("AZaz09+/".utf8)

    /// A random input: pure noise, biased noise, or mutated valid frames.
    static func serialInput(_ rng: inout SplitMix64) -> [UInt8] {
        switch rng.below(4) {
        case 0:
            return rng.bytes(rng.below(64))
        case 1:
            var out: [UInt8] = []
            for _ in 0..<rng.below(96) {
                out.append(rng.below(3) == 0 ? interesting[rng.below(interesting.count)] : rng.byte())
            }
            return out
        default:
            var frames = validFrames[rng.below(validFrames.count)]
            mutate(&frames, &rng, times: rng.below(4))
            return frames
        }
    }

    /// Valid framed packets of assorted sizes and frame lengths, built once.
    static let validFrames: [[UInt8]] = {
        var rng = SplitMix64(seed: 0xF4A3E5)
        var out: [[UInt8]] = []
        for i in 0..<256 {
            let packet = rng.bytes(rng.below(i % 8 == 0 ? 400 : 60))
            out.append(i % 2 == 0
                ? SMPSerialFraming.encode(packet: packet, maxFrameLength: 8 + rng.below(130))
                : SerialTestSupport.zephyrFrames(packet))
        }
        return out
    }()

    static func mutate(_ bytes: inout [UInt8], _ rng: inout SplitMix64, times: Int) {
        for _ in 0..<times {
            switch rng.below(6) {
            case 0 where !bytes.isEmpty:
                bytes[rng.below(bytes.count)] ^= UInt8(1) << UInt8(rng.below(8))
            case 1 where !bytes.isEmpty:
                bytes.removeLast(rng.below(bytes.count))
            case 2:
                bytes.insert(rng.byte(), at: rng.below(bytes.count + 1))
            case 3 where !bytes.isEmpty:
                bytes.remove(at: rng.below(bytes.count))
            case 4 where !bytes.isEmpty:
                bytes.insert(interesting[rng.below(interesting.count)], at: rng.below(bytes.count + 1))
            case 5 where bytes.count > 4:
                let start = rng.below(bytes.count - 2)
                let end = min(bytes.count, start + 1 + rng.below(40))
                bytes.insert(contentsOf: Array(bytes[start..<end]), at: rng.below(bytes.count + 1))
            default:
                break
            }
        }
    }

    @Test func serialDecoderSurvivesRandomInput() {
        var rng = SplitMix64(seed: 0xDEC0DE)
        var decoder = SMPSerialDecoder(maxPacketLength: 300, maxLineLength: 200)
        var oversizePackets = 0, overBound = 0, recoveryFailures = 0
        var packets = 0, errors = 0, texts = 0
        for i in 0..<Self.iterations {
            if i % 5_000 == 0 {
                decoder = SMPSerialDecoder(maxPacketLength: rng.below(600), maxLineLength: 8 + rng.below(300))
            }
            let input = Self.serialInput(&rng)
            // Feed in one or several random pieces.
            var start = 0
            while start <= input.count {
                let end = rng.below(3) == 0 ? min(input.count, start + rng.below(16)) : input.count
                for event in decoder.feed(input[start..<end]) {
                    switch event {
                    case .packet(let p):
                        packets += 1
                        if p.count > decoder.maxPacketLength { oversizePackets += 1 }
                    case .consoleText: texts += 1
                    case .error: errors += 1
                    }
                }
                if decoder.bufferedCount > decoder.maxBufferedCount { overBound += 1 }
                if end == input.count { break }
                start = end
            }
            if i % 1_000 == 999 {
                // After a newline, a clean packet always decodes.
                let clean = rng.bytes(min(decoder.maxPacketLength, rng.below(120)))
                let frames = SMPSerialFraming.encode(packet: clean, maxFrameLength: decoder.maxLineLength + 1)
                let events = decoder.feed([0x0A] + frames)
                if events.last != .packet(clean) { recoveryFailures += 1 }
            }
        }
        #expect(oversizePackets == 0)
        #expect(overBound == 0)
        #expect(recoveryFailures == 0)
        // The corpus really exercises every outcome.
        #expect(packets > 1_000)
        #expect(errors > 10_000)
        #expect(texts > 10_000)
    }

    @Test func reassemblerSurvivesRandomInput() {
        var rng = SplitMix64(seed: 0xB1E)
        var r = SMPReassembler(maxPacketLength: 512)
        var bad = 0, overBound = 0, packets = 0, rejections = 0
        for i in 0..<Self.iterations {
            if i % 5_000 == 0 { r = SMPReassembler(maxPacketLength: rng.below(1200)) }
            var chunk: [UInt8]
            switch rng.below(3) {
            case 0:
                chunk = rng.bytes(rng.below(40))
            case 1:
                // A plausible header with a small length, possibly mutated.
                let length = rng.below(rng.below(4) == 0 ? 65536 : 64)
                chunk = SMPHeader(operation: .readResponse, length: UInt16(length), group: .os,
                    sequence: rng.byte(), command: 0).bytes + rng.bytes(rng.below(min(length, 700) + 1))
                Self.mutate(&chunk, &rng, times: rng.below(2))
            default:
                chunk = [0, 0, 0, 0, 0, 0, 0, 0].prefix(rng.below(9)) + rng.bytes(rng.below(8))
            }
            do {
                for p in try r.append(chunk) {
                    packets += 1
                    if p.count > r.maxPacketLength || p.count < 8 || p.count != 8 + (Int(p[2]) << 8 | Int(p[3])) {
                        bad += 1
                    }
                }
            } catch {
                rejections += 1
                if error.code != .bodyTooLarge || r.bufferedCount != 0 { bad += 1 }
            }
            if r.bufferedCount > r.maxPacketLength { overBound += 1 }
        }
        #expect(bad == 0)
        #expect(overBound == 0)
        #expect(packets > 1_000)
        #expect(rejections > 1_000)
    }
}
