/// SMP console framing: how SMP packets travel over a UART or a shell console.
///
/// A packet `P` becomes the stream `len16_BE(len(P) + 2) || P || crc16_BE(P)`, which is
/// base64-encoded and cut into lines. The first line starts with `0x06 0x09`, later lines
/// with `0x04 0x14`; every line ends with `0x0A`.
public enum SMPSerialFraming: Sendable {
    /// The largest line Zephyr accepts, markers and newline included (`MCUMGR_SERIAL_MAX_FRAME`).
    public static let defaultMaxFrameLength = 127

    /// Marker bytes that start the first line of a packet.
    public static let firstFrameMarker: [UInt8] = [0x06, 0x09]
    /// Marker bytes that start every following line of a packet.
    public static let continuationFrameMarker: [UInt8] = [0x04, 0x14]
    /// The line terminator.
    public static let lineFeed: UInt8 = 0x0A

    /// The largest packet the 16-bit length prefix can describe.
    public static let maxEncodablePacketLength = Int(UInt16.max) - 2

    /// CRC-16/XMODEM (poly 0x1021, init 0, no reflection, no final xor), as Zephyr's
    /// `crc16_itu_t(0, …)`.
    public static func crc16(_ bytes: some Collection<UInt8>) -> UInt16 {
        let contiguous = bytes.withContiguousStorageIfAvailable { buffer in
            crcTable.withUnsafeBufferPointer { table in
                var crc: UInt16 = 0
                for byte in buffer {
                    crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
                }
                return crc
            }
        }
        if let contiguous { return contiguous }
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ crcTable[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    /// Base64 characters per line for a line bound: whole 4-character groups, as the `smp`
    /// Python library computes it (`((max - 4) / 4) * 4`, so 120 for 127), at least 4.
    public static func base64CharactersPerFrame(maxFrameLength: Int) -> Int {
        let bound = max(maxFrameLength, 8)
        return max(4, ((bound - 4) / 4) * 4)
    }

    /// Frames a packet: all lines, concatenated, each ending with `0x0A`.
    ///
    /// Each line holds at most ``base64CharactersPerFrame(maxFrameLength:)`` base64 characters,
    /// so it is at most `maxFrameLength` bytes long (for `maxFrameLength` ≥ 7).
    /// Packets longer than ``maxEncodablePacketLength`` cannot be described by the length prefix;
    /// the caller must not pass them (the prefix would wrap).
    public static func encode(packet: [UInt8], maxFrameLength: Int = defaultMaxFrameLength) -> [UInt8] {
        var stream: [UInt8] = []
        stream.reserveCapacity(packet.count + 4)
        let prefix = UInt16(truncatingIfNeeded: packet.count + 2)
        stream.append(UInt8(prefix >> 8))
        stream.append(UInt8(prefix & 0xFF))
        stream.append(contentsOf: packet)
        let crc = crc16(packet)
        stream.append(UInt8(crc >> 8))
        stream.append(UInt8(crc & 0xFF))

        let perFrame = base64CharactersPerFrame(maxFrameLength: maxFrameLength)
        let total = encodedLength(packetLength: packet.count, maxFrameLength: maxFrameLength)
        return [UInt8](unsafeUninitializedCapacity: total) { out, count in
            stream.withUnsafeBufferPointer { input in
                alphabet.withUnsafeBufferPointer { table in
                    let groupsPerFrame = perFrame / 4
                    var groupsLeft = 0
                    var o = 0
                    var i = 0
                    while i < input.count {
                        if groupsLeft == 0 {
                            let marker = o == 0 ? firstFrameMarker : continuationFrameMarker
                            if o > 0 {
                                out[o] = lineFeed
                                o += 1
                            }
                            out[o] = marker[0]
                            out[o + 1] = marker[1]
                            o += 2
                            groupsLeft = groupsPerFrame
                        }
                        encodeGroup(input, at: i, table: table, into: out, at: o)
                        i += 3
                        o += 4
                        groupsLeft -= 1
                    }
                    out[o] = lineFeed
                    count = o + 1
                }
            }
        }
    }

    /// The exact number of bytes ``encode(packet:maxFrameLength:)`` produces for a packet of
    /// `packetLength` bytes.
    public static func encodedLength(packetLength: Int, maxFrameLength: Int = defaultMaxFrameLength) -> Int {
        let n = min(max(0, packetLength), Int.max / 8)
        let characters = 4 * ((n + 4 + 2) / 3)
        let perFrame = base64CharactersPerFrame(maxFrameLength: maxFrameLength)
        let frames = (characters + perFrame - 1) / perFrame
        return characters + 3 * frames
    }

    // MARK: Base64

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let padding: UInt8 = 0x3D  // "="
    private static let invalid: UInt8 = 0xFF

    /// Maps an ASCII byte to its 6-bit value, or 0xFF.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, character) in alphabet.enumerated() {
            table[Int(character)] = UInt8(value)
        }
        return table
    }()

    private static let crcTable: [UInt16] = (0..<256).map { index -> UInt16 in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }

    /// Writes the 4 base64 characters of the (up to) 3 bytes at `input[i...]`, `=`-padded.
    @inline(__always)
    private static func encodeGroup(
        _ input: UnsafeBufferPointer<UInt8>, at i: Int, table: UnsafeBufferPointer<UInt8>,
        into out: UnsafeMutableBufferPointer<UInt8>, at o: Int
    ) {
        let rest = input.count - i
        let b0 = UInt32(input[i])
        let b1 = rest > 1 ? UInt32(input[i + 1]) : 0
        let b2 = rest > 2 ? UInt32(input[i + 2]) : 0
        let value = b0 << 16 | b1 << 8 | b2
        out[o] = table[Int(value >> 18 & 0x3F)]
        out[o + 1] = table[Int(value >> 12 & 0x3F)]
        out[o + 2] = rest > 1 ? table[Int(value >> 6 & 0x3F)] : padding
        out[o + 3] = rest > 2 ? table[Int(value & 0x3F)] : padding
    }

    /// Standard base64 with `=` padding.
    static func base64Encode(_ bytes: [UInt8]) -> [UInt8] {
        let length = (bytes.count + 2) / 3 * 4
        return [UInt8](unsafeUninitializedCapacity: length) { out, count in
            bytes.withUnsafeBufferPointer { input in
                alphabet.withUnsafeBufferPointer { table in
                    var i = 0
                    var o = 0
                    while i < input.count {
                        encodeGroup(input, at: i, table: table, into: out, at: o)
                        i += 3
                        o += 4
                    }
                    count = o
                }
            }
        }
    }

    /// Strict base64 decoding of whole 4-character groups; padding only in the last group.
    /// Returns `nil` for malformed text.
    static func base64Decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var valid = true
        let decoded = [UInt8](unsafeUninitializedCapacity: text.count / 4 * 3) { out, count in
            count = 0
            text.withUnsafeBufferPointer { input in
                decodeTable.withUnsafeBufferPointer { table in
                    var i = 0
                    var o = 0
                    while i < input.count {
                        let c2 = input[i + 2], c3 = input[i + 3]
                        let v0 = table[Int(input[i])], v1 = table[Int(input[i + 1])]
                        let v2 = table[Int(c2)], v3 = table[Int(c3)]
                        let isLast = i + 4 == input.count
                        guard v0 != invalid, v1 != invalid else {
                            valid = false
                            return
                        }
                        let high = UInt32(v0) << 18 | UInt32(v1) << 12
                        if v2 != invalid, v3 != invalid {
                            let value = high | UInt32(v2) << 6 | UInt32(v3)
                            out[o] = UInt8(truncatingIfNeeded: value >> 16)
                            out[o + 1] = UInt8(truncatingIfNeeded: value >> 8)
                            out[o + 2] = UInt8(truncatingIfNeeded: value)
                            o += 3
                        } else if v2 != invalid, c3 == padding, isLast {
                            let value = high | UInt32(v2) << 6
                            out[o] = UInt8(truncatingIfNeeded: value >> 16)
                            out[o + 1] = UInt8(truncatingIfNeeded: value >> 8)
                            o += 2
                        } else if c2 == padding, c3 == padding, isLast {
                            out[o] = UInt8(truncatingIfNeeded: high >> 16)
                            o += 1
                        } else {
                            valid = false
                            return
                        }
                        i += 4
                    }
                    count = o
                }
            }
        }
        return valid ? decoded : nil
    }
}

/// Incremental decoder of SMP console framing, tolerant of console output on the same line.
///
/// Feed it bytes as they arrive; it splits them into lines on `0x0A`. Lines starting with
/// `0x06 0x09` start a packet, lines starting with `0x04 0x14` continue it, and any other line
/// is reported as console text. Each frame's base64 is decoded on its own, so both the `smp`
/// library's and Zephyr's way of cutting frames are accepted. A trailing `0x0D` before the
/// newline is ignored. Memory stays bounded: see ``maxBufferedCount``.
public struct SMPSerialDecoder: Sendable {
    /// What the decoder found in the input.
    public enum Event: Sendable, Hashable {
        /// A whole SMP packet (header and body), with its length prefix and CRC checked and removed.
        case packet([UInt8])
        /// A complete line that is not an SMP frame, without its `0x0A` (or `0x0D 0x0A`) terminator.
        case consoleText([UInt8])
        /// A packet or line was dropped: CRC mismatch, bad base64, impossible length prefix,
        /// a packet over ``SMPSerialDecoder/maxPacketLength``, or a line over
        /// ``SMPSerialDecoder/maxLineLength``.
        case error(SMPDecodingError)
    }

    /// The largest packet (header and body) accepted.
    public let maxPacketLength: Int
    /// The longest line buffered, terminator excluded; longer lines are dropped and reported.
    public let maxLineLength: Int

    /// The current, not yet terminated line.
    private var line: [UInt8] = []
    /// Whether the current line overflowed and is being skipped until its newline.
    private var discardingLine = false
    /// Decoded bytes of the packet in progress, length prefix included.
    private var stream: [UInt8] = []
    /// The decoded byte count the packet in progress needs (2 + length prefix), when one is in progress.
    private var expectedStreamLength: Int?

    /// Creates a decoder.
    ///
    /// - Parameters:
    ///   - maxPacketLength: the largest packet accepted; a larger length prefix is reported as
    ///     ``SMPDecodingError/Code/bodyTooLarge`` before anything of it is buffered.
    ///   - maxLineLength: the longest line kept (at least 8 is used).
    public init(maxPacketLength: Int = 16384, maxLineLength: Int = 1024) {
        self.maxPacketLength = max(0, maxPacketLength)
        self.maxLineLength = max(8, maxLineLength)
    }

    /// Bytes currently held: the partial line plus the decoded part of the packet in progress.
    public var bufferedCount: Int { line.count + stream.count }

    /// The most ``bufferedCount`` can ever reach.
    public var maxBufferedCount: Int { maxLineLength + maxPacketLength + 4 }

    /// Drops any partial line and packet.
    public mutating func reset() {
        line = []
        discardingLine = false
        resetPacket()
    }

    /// Consumes bytes and returns what they completed, in input order.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> [Event] {
        let input = Array(bytes)
        var events: [Event] = []
        var start = 0
        while start < input.count {
            if let newline = input[start...].firstIndex(of: SMPSerialFraming.lineFeed) {
                appendToLine(input[start..<newline], events: &events)
                finishLine(events: &events)
                start = newline + 1
            } else {
                appendToLine(input[start...], events: &events)
                break
            }
        }
        return events
    }

    private mutating func resetPacket() {
        stream = []
        expectedStreamLength = nil
    }

    private mutating func appendToLine(_ chunk: ArraySlice<UInt8>, events: inout [Event]) {
        guard !discardingLine, !chunk.isEmpty else { return }
        let room = maxLineLength - line.count
        if chunk.count <= room {
            line.append(contentsOf: chunk)
            return
        }
        line.append(contentsOf: chunk.prefix(room))
        let wasFrame = Self.hasMarker(line, SMPSerialFraming.firstFrameMarker)
            || Self.hasMarker(line, SMPSerialFraming.continuationFrameMarker)
        if wasFrame { resetPacket() }
        events.append(.error(SMPDecodingError(
            .lineTooLong,
            "\(wasFrame ? "an SMP frame" : "a console line") longer than \(maxLineLength) bytes was dropped")))
        line = []
        discardingLine = true
    }

    private mutating func finishLine(events: inout [Event]) {
        if discardingLine {
            discardingLine = false
            return
        }
        var end = line.count
        if end > 0, line[end - 1] == 0x0D { end -= 1 }
        if Self.hasMarker(line, SMPSerialFraming.firstFrameMarker) {
            processFrame(line[2..<max(2, end)], first: true, events: &events)
        } else if Self.hasMarker(line, SMPSerialFraming.continuationFrameMarker) {
            processFrame(line[2..<max(2, end)], first: false, events: &events)
        } else {
            events.append(.consoleText(Array(line[0..<end])))
        }
        line.removeAll(keepingCapacity: true)
    }

    private static func hasMarker(_ line: [UInt8], _ marker: [UInt8]) -> Bool {
        line.count >= 2 && line[0] == marker[0] && line[1] == marker[1]
    }

    private mutating func processFrame(_ text: ArraySlice<UInt8>, first: Bool, events: inout [Event]) {
        if first {
            resetPacket()
        } else if expectedStreamLength == nil {
            return  // a continuation with no packet in progress, as Zephyr does: ignored
        }
        guard let decoded = SMPSerialFraming.base64Decode(text) else {
            resetPacket()
            events.append(.error(SMPDecodingError(.invalidBase64, "an SMP frame's base64 is malformed")))
            return
        }
        if first {
            guard decoded.count >= 2 else {
                events.append(.error(SMPDecodingError(
                    .invalidFrameLength, "the first SMP frame holds \(decoded.count) bytes, too few for a length")))
                return
            }
            let prefix = Int(decoded[0]) << 8 | Int(decoded[1])
            guard prefix >= 2 else {
                events.append(.error(SMPDecodingError(
                    .invalidFrameLength, "length prefix \(prefix) is smaller than the 2 CRC bytes")))
                return
            }
            guard prefix - 2 <= maxPacketLength else {
                events.append(.error(SMPDecodingError(
                    .bodyTooLarge, "a packet of \(prefix - 2) bytes exceeds the limit of \(maxPacketLength)")))
                return
            }
            expectedStreamLength = prefix + 2
            stream.reserveCapacity(prefix + 2)
        }
        guard let expected = expectedStreamLength else { return }
        guard stream.count + decoded.count <= expected else {
            resetPacket()
            events.append(.error(SMPDecodingError(
                .invalidFrameLength, "SMP frames carry more bytes than the length prefix \(expected - 2) says")))
            return
        }
        stream.append(contentsOf: decoded)
        guard stream.count == expected else { return }

        let packet = Array(stream[2..<(expected - 2)])
        let sent = UInt16(stream[expected - 2]) << 8 | UInt16(stream[expected - 1])
        let computed = SMPSerialFraming.crc16(packet)
        resetPacket()
        if sent == computed {
            events.append(.packet(packet))
        } else {
            events.append(.error(SMPDecodingError(
                .crcMismatch,
                "CRC \(Self.hex(sent)) received, \(Self.hex(computed)) computed over \(packet.count) bytes")))
        }
    }

    private static func hex(_ value: UInt16) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
