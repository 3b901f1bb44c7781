import SMPCtlTestSupport
import Foundation
import Testing
import SMPCtlCBOR
import SMPCtlProtocol

/// Counts what the fuzzer saw, so a run that never exercises a path fails.
struct FuzzStats {
    var inputs = 0
    var cborAccepted = 0
    var cborRejected = 0
    var packetsAccepted = 0
    var responsesDecoded = 0
    var deviceErrors = 0
    var malformed = 0
}

enum Fuzz {
    /// Full packets of every golden vector.
    static let packets: [[UInt8]] = {
        var out: [[UInt8]] = []
        for file in Golden.files {
            for vector in (try? GoldenVector.load(file)) ?? [] { out.append(vector.packet) }
        }
        return out
    }()

    /// Bodies of the golden vectors plus a few more SMP shapes.
    static let bodies: [[UInt8]] = packets.map { Array($0.dropFirst(SMPHeader.size)) } + [
        [UInt8](hex: "bf6862756f5f73697a6519080069627566f636f756e7404ff"),
        CBOREncoder.encode(["buf_size": 2475, "buf_count": 4]),
        CBOREncoder.encode(["images": [["image": 0, "slots": [["slot": 0, "size": 393_216, "upload_image_id": 0],
                                                             ["slot": 1, "size": 393_216]],
                                        "max_image_size": 392_704]]]),
        [UInt8](hex: "9f018202039f0405ffff"), [UInt8](hex: "5f42010243030405ff"),
        [UInt8](hex: "c11a514b67b0"), [UInt8](hex: "fb3ff199999999999a"),
    ]

    static let decoder = CBORDecoder()

    /// One mutation of a seed input.
    static func mutate(_ seed: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = seed
        let rounds = 1 + rng.below(4)
        for _ in 0..<rounds {
            switch rng.below(8) {
            case 0 where !bytes.isEmpty:  // bit flip
                let i = rng.below(bytes.count)
                bytes[i] ^= 1 << UInt8(rng.below(8))
            case 1 where !bytes.isEmpty:  // byte replacement, biased toward CBOR heads
                let interesting: [UInt8] = [0x00, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1F, 0x5B, 0x5F, 0x7F, 0x9B, 0x9F,
                                            0xBB, 0xBF, 0xDF, 0xF8, 0xF9, 0xFB, 0xFF, 0x1C, 0x80, 0xA0]
                bytes[rng.below(bytes.count)] = rng.below(2) == 0 ? interesting[rng.below(interesting.count)] : rng.byte()
            case 2:  // insertion
                let i = rng.below(bytes.count + 1)
                let count = 1 + rng.below(4)
                bytes.insert(contentsOf: (0..<count).map { _ in rng.byte() }, at: i)
            case 3 where !bytes.isEmpty:  // deletion
                let i = rng.below(bytes.count)
                bytes.removeSubrange(i..<min(bytes.count, i + 1 + rng.below(4)))
            case 4:  // truncation
                bytes = Array(bytes.prefix(rng.below(bytes.count + 1)))
            case 5 where bytes.count >= 4:  // SMP length-field corruption
                let length = rng.below(3) == 0 ? bytes.count - 8 + rng.below(5) - 2 : rng.below(0x1_0000)
                bytes[2] = UInt8(truncatingIfNeeded: length >> 8)
                bytes[3] = UInt8(truncatingIfNeeded: length)
            case 6 where !bytes.isEmpty:  // CBOR argument corruption: make a head claim a huge length
                let i = rng.below(bytes.count)
                bytes[i] = (bytes[i] & 0xE0) | [24, 25, 26, 27, 31][rng.below(5)]
            case 7:  // splice another seed in
                let other = bodies[rng.below(bodies.count)]
                let i = rng.below(bytes.count + 1)
                bytes.insert(contentsOf: other.prefix(rng.below(other.count + 1)), at: i)
            default:
                bytes.append(rng.byte())
            }
        }
        return bytes
    }

    static func random(_ rng: inout SplitMix64) -> [UInt8] {
        (0..<rng.below(301)).map { _ in rng.byte() }
    }

    /// Feeds `input` to every decoder and checks the storage bound.
    static func run(_ input: [UInt8], _ stats: inout FuzzStats) {
        stats.inputs += 1
        var units = 0
        do {
            _ = try decoder.decode(input, allocationUnits: &units)
            stats.cborAccepted += 1
        } catch {
            stats.cborRejected += 1
        }
        if units > input.count {
            Issue.record("CBOR decoder reserved \(units) units for \(input.count) bytes: \(input.hex)")
        }
        _ = try? SMPHeader(decoding: input)
        let packet: SMPPacket
        if let decoded = try? SMPPacket(decoding: input, maxBodyLength: 2048) {
            stats.packetsAccepted += 1
            packet = decoded
        } else {
            // Still exercise the response decoders with the input as a body.
            packet = SMPPacket(
                header: SMPHeader(operation: .readResponse, length: 0, group: .image, sequence: 0, command: 0),
                body: input)
        }
        response(OSManagement.EchoResponse.self, packet, &stats)
        response(ImageManagement.StateResponse.self, packet, &stats)
        response(ImageManagement.UploadResponse.self, packet, &stats)
        response(OSManagement.ParametersResponse.self, packet, &stats)
        response(ImageManagement.SlotInfoResponse.self, packet, &stats)
    }

    static func response<R: SMPResponse>(_ type: R.Type, _ packet: SMPPacket, _ stats: inout FuzzStats) {
        do {
            _ = try SMPResponseDecoder.decode(type, from: packet)
            stats.responsesDecoded += 1
        } catch {
            switch error {
            case .device: stats.deviceErrors += 1
            case .malformed: stats.malformed += 1
            }
        }
    }

    static func campaign(seed: UInt64, count: Int, _ input: (inout SplitMix64) -> [UInt8]) -> FuzzStats {
        var rng = SplitMix64(seed: seed)
        var stats = FuzzStats()
        for _ in 0..<count { run(input(&rng), &stats) }
        return stats
    }
}

@Suite("Decoder fuzzing")
struct DecoderFuzzTests {
    static let perTest = 50_000

    @Test("seeds decode cleanly")
    func seeds() {
        #expect(Fuzz.packets.count == 15)
        var stats = FuzzStats()
        for packet in Fuzz.packets { Fuzz.run(packet, &stats) }
        #expect(stats.packetsAccepted == 15)
        #expect(stats.responsesDecoded > 0)
        #expect(stats.deviceErrors > 0)
    }

    @Test("mutated full packets")
    func mutatedPackets() {
        let stats = Fuzz.campaign(seed: 0x5EED_0001, count: Self.perTest) { rng in
            Fuzz.mutate(Fuzz.packets[rng.below(Fuzz.packets.count)], &rng)
        }
        #expect(stats.inputs == Self.perTest)
        #expect(stats.packetsAccepted > 0)
        #expect(stats.responsesDecoded > 0)
        #expect(stats.deviceErrors > 0)
        #expect(stats.malformed > 0)
    }

    @Test("mutated CBOR bodies")
    func mutatedBodies() {
        let stats = Fuzz.campaign(seed: 0x5EED_0002, count: Self.perTest) { rng in
            Fuzz.mutate(Fuzz.bodies[rng.below(Fuzz.bodies.count)], &rng)
        }
        #expect(stats.inputs == Self.perTest)
        #expect(stats.cborAccepted > 0)
        #expect(stats.cborRejected > 0)
        #expect(stats.responsesDecoded > 0)
    }

    @Test("random bytes of length 0...300")
    func randomBytes() {
        let stats = Fuzz.campaign(seed: 0x5EED_0003, count: Self.perTest) { rng in Fuzz.random(&rng) }
        #expect(stats.inputs == Self.perTest)
        #expect(stats.cborRejected > 0)
    }

    @Test("random bytes behind a valid SMP header")
    func randomBodies() {
        let stats = Fuzz.campaign(seed: 0x5EED_0004, count: Self.perTest) { rng in
            var body = rng.below(2) == 0 ? Fuzz.random(&rng) : Fuzz.mutate(Fuzz.bodies[rng.below(Fuzz.bodies.count)], &rng)
            if body.count > 300 { body = Array(body.prefix(300)) }
            let group = UInt8(rng.below(3))
            return [0x09, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF), 0, group, rng.byte(), 0] + body
        }
        #expect(stats.inputs == Self.perTest)
        #expect(stats.packetsAccepted == Self.perTest)
    }

    @Test("nested definite containers never reserve more than the input")
    func nestedReservations() {
        // Each level declares as many elements as there are bytes left, then the input runs out.
        for depth in 1...16 {
            for size in [8, 64, 300] {
                var input: [UInt8] = []
                for level in 0..<depth {
                    let remaining = size - level * 2 - 2
                    guard remaining > 0 else { break }
                    input += [0x98, UInt8(min(remaining, 255))]
                }
                input += [UInt8](repeating: 0, count: max(0, size - input.count))
                var units = 0
                _ = try? Fuzz.decoder.decode(input, allocationUnits: &units)
                #expect(units <= input.count, "depth \(depth), \(input.count) bytes: \(units) units")
            }
        }
    }

    @Test("random valid values round-trip through the encoder and decoder")
    func roundTrip() throws {
        var rng = SplitMix64(seed: 0x5EED_0005)
        for _ in 0..<5_000 {
            let value = RandomValue.make(&rng, depth: 0)
            let bytes = CBOREncoder.encode(value)
            var units = 0
            let decoded = try Fuzz.decoder.decode(bytes, allocationUnits: &units)
            #expect(units <= bytes.count)
            if !RandomValue.same(decoded, value) {
                Issue.record("\(value) encoded as \(bytes.hex) decoded as \(decoded)")
            }
            #expect(CBOREncoder.encode(decoded) == bytes)
        }
    }
}

/// Generator of random well-formed values in the encoder's domain.
enum RandomValue {
    static func make(_ rng: inout SplitMix64, depth: Int) -> CBORValue {
        let choice = depth > 3 ? rng.below(7) : rng.below(10)
        switch choice {
        case 0: return .unsigned(rng.next() >> UInt64(rng.below(64)))
        case 1: return .negative(rng.next() >> UInt64(rng.below(64)))
        case 2: return .bytes((0..<rng.below(40)).map { _ in rng.byte() })
        case 3:
            let scalars = (0..<rng.below(12)).compactMap { _ in
                Unicode.Scalar(UInt32(rng.below(rng.below(2) == 0 ? 0x80 : 0x11_0000)))
            }
            return .text(String(String.UnicodeScalarView(scalars)))
        case 4:
            switch rng.below(4) {
            case 0: return .bool(rng.below(2) == 0)
            case 1: return .null
            case 2: return .undefined
            default: return .simple(rng.below(2) == 0 ? UInt8(rng.below(20)) : UInt8(32 + rng.below(224)))
            }
        case 5: return .float(randomDouble(&rng))
        case 6: return .tagged(rng.next() >> UInt64(rng.below(64)), .unsigned(UInt64(rng.below(1000))))
        case 7: return .array((0..<rng.below(6)).map { _ in make(&rng, depth: depth + 1) })
        case 8:
            // Keys equal on the wire would make the map invalid (RFC 8949 §5.6): keep the first.
            var seen = Set<[UInt8]>()
            return .map(CBORMap((0..<rng.below(6)).compactMap { _ in
                let entry = CBORMap.Entry(key: make(&rng, depth: depth + 1), value: make(&rng, depth: depth + 1))
                return seen.insert(CBOREncoder.encode(entry.key)).inserted ? entry : nil
            }))
        default: return .tagged(UInt64(rng.below(30)), make(&rng, depth: depth + 1))
        }
    }

    /// Doubles spread over half, single and double precision, including boundaries.
    static func randomDouble(_ rng: inout SplitMix64) -> Double {
        switch rng.below(6) {
        case 0: return Double(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))
        case 1:
            // A random binary16 value, NaN included.
            return Double(halfBitsForTest: UInt16(truncatingIfNeeded: rng.next()))
        case 2: return Double(bitPattern: rng.next())
        case 3: return [0.0, -0.0, 65504, 65505, 65520, -65504, 0x1p-24, 0x1p-25, 0x1.8p-24, 0x1p-14, 0x1.ffcp-15,
                        .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
                        Double(Float.leastNonzeroMagnitude), Double(Float.greatestFiniteMagnitude),
                        Double(Float.leastNormalMagnitude), 1.1, 100_000][rng.below(20)]
        case 4: return Double(rng.below(200_000)) / Double(1 << rng.below(40))
        default: return Double(Int64(bitPattern: rng.next()) >> rng.below(64))
        }
    }

    static func same(_ a: CBORValue, _ b: CBORValue) -> Bool {
        switch (a, b) {
        case (.float(let x), .float(let y)):
            if x.isNaN || y.isNaN { return x.isNaN && y.isNaN }
            return x == y && x.sign == y.sign
        case (.array(let x), .array(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.map(let x), .map(let y)):
            return x.count == y.count && zip(x.entries, y.entries).allSatisfy { same($0.key, $1.key) && same($0.value, $1.value) }
        case (.tagged(let t, let x), .tagged(let u, let y)):
            return t == u && same(x, y)
        case (.simple(let v), _) where v >= 20 && v < 24:
            // simple(20...23) are false, true, null and undefined.
            return CBOREncoder.encode(a) == CBOREncoder.encode(b)
        default:
            return a == b
        }
    }
}

extension Double {
    /// IEEE 754 binary16 to double, written independently of the decoder.
    init(halfBitsForTest bits: UInt16) {
        let sign = bits >> 15 == 1
        let exponent = Int(bits >> 10 & 0x1F)
        let fraction = Int(bits & 0x3FF)
        let magnitude: Double
        switch exponent {
        case 0: magnitude = Double(fraction) * 0x1p-24
        case 31: magnitude = fraction == 0 ? .infinity : .nan
        default: magnitude = Double(1024 + fraction) * Double(sign: .plus, exponent: exponent - 25, significand: 1)
        }
        self = sign ? -magnitude : magnitude
    }
}
