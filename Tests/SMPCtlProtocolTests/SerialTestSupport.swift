@testable import SMPCtlProtocol


/// Decoder events with the error reduced to its code, for comparisons.
enum Seen: Hashable, CustomStringConvertible {
    case packet([UInt8])
    case text(String)
    case error(SMPDecodingError.Code)

    init(_ event: SMPSerialDecoder.Event) {
        switch event {
        case .packet(let p): self = .packet(p)
        case .consoleText(let t): self = .text(String(decoding: t, as: UTF8.self))
        case .error(let e): self = .error(e.code)
        }
    }

    var description: String {
        switch self {
        case .packet(let p): "packet(\(p.count) bytes)"
        case .text(let t): "text(\(t))"
        case .error(let c): "error(\(c))"
        }
    }
}

extension SMPSerialDecoder {
    /// Feeds and reduces the events.
    mutating func seen(_ bytes: [UInt8]) -> [Seen] { feed(bytes).map(Seen.init) }
}

enum SerialTestSupport {
    /// The unencoded stream `len16 || P || crc16` with an optional CRC corruption.
    static func stream(_ packet: [UInt8], crcXor: UInt16 = 0) -> [UInt8] {
        let length = UInt16(packet.count + 2)
        let crc = SMPSerialFraming.crc16(packet) ^ crcXor
        return [UInt8(length >> 8), UInt8(length & 0xFF)] + packet + [UInt8(crc >> 8), UInt8(crc & 0xFF)]
    }

    /// Frames an arbitrary decoded stream the way the `smp` library does (120 chars per frame).
    static func libFrames(stream: [UInt8], charsPerFrame: Int = 120) -> [UInt8] {
        let text = SMPSerialFraming.base64Encode(stream)
        var out: [UInt8] = []
        var start = 0
        var first = true
        while start < text.count {
            let end = min(start + charsPerFrame, text.count)
            out += first ? [0x06, 0x09] : [0x04, 0x14]
            out += text[start..<end]
            out.append(0x0A)
            first = false
            start = end
        }
        return out
    }

    /// Frames a packet the way Zephyr's `mcumgr_serial_tx_pkt` does: 93 raw bytes in the first
    /// frame (124 chars), 90 in later ones (120 chars), each frame encoded on its own, and the
    /// two CRC bytes never split (the last frame then ends with `XXXX` + `XX==`).
    static func zephyrFrames(_ packet: [UInt8]) -> [UInt8] {
        let s = stream(packet)
        var chunks: [ArraySlice<UInt8>] = []
        var start = 0
        while start < s.count {
            let size = chunks.isEmpty ? 93 : 90
            var end = min(start + size, s.count)
            if s.count - end == 1 { end -= 3 }  // would split the CRC: push a data triple on
            chunks.append(s[start..<end])
            start = end
        }
        var out: [UInt8] = []
        for (i, chunk) in chunks.enumerated() {
            out += i == 0 ? [0x06, 0x09] : [0x04, 0x14]
            out += SMPSerialFraming.base64Encode(Array(chunk))
            out.append(0x0A)
        }
        return out
    }

    /// Splits concatenated frames into lines, terminators kept.
    static func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var current: [UInt8] = []
        for b in bytes {
            current.append(b)
            if b == 0x0A {
                out.append(current)
                current = []
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// Whether `encoded` is a sequence of lines, each at most `maxLine` bytes with whole base64
    /// groups, the first marked `06 09` and the rest `04 14`.
    static func framesAreWellFormed(_ encoded: [UInt8], maxLine: Int) -> Bool {
        var start = 0
        var first = true
        while start < encoded.count {
            guard let newline = encoded[start...].firstIndex(of: 0x0A) else { return false }
            let length = newline - start + 1
            guard length <= maxLine, length >= 7, (length - 3) % 4 == 0 else { return false }
            let marker = (encoded[start], encoded[start + 1])
            guard first ? marker == (0x06, 0x09) : marker == (0x04, 0x14) else { return false }
            first = false
            start = newline + 1
        }
        return !first
    }

    static func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }
}
