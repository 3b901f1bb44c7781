// Just enough Intel HEX for `ImageInspector` to recognise a .hex file.

/// Just enough Intel HEX to recognise it and read its first bytes.
struct IntelHex {
    var firstAddress = 0
    var firstData: [UInt8] = []

    /// Parses up to the first 64 records; `nil` when the text is not Intel HEX.
    init?(_ bytes: [UInt8]) {
        guard bytes.first == UInt8(ascii: ":") else { return nil }
        let text = String(decoding: bytes.prefix(8192), as: UTF8.self)
        var lines = text.split(whereSeparator: \.isNewline)
        if bytes.count > 8192, !lines.isEmpty { lines.removeLast() }  // may be cut
        guard !lines.isEmpty else { return nil }
        var base = 0
        var sawData = false
        for line in lines.prefix(64) {
            guard line.first == ":", line.count >= 11, line.count % 2 == 1 else { return nil }
            var record: [UInt8] = []
            var index = line.index(after: line.startIndex)
            while index < line.endIndex {
                let next = line.index(index, offsetBy: 2)
                guard let byte = UInt8(line[index..<next], radix: 16) else { return nil }
                record.append(byte)
                index = next
            }
            let count = Int(record[0])
            guard record.count == count + 5 else { return nil }
            let address = Int(record[1]) << 8 | Int(record[2])
            let payload = Array(record[4..<(4 + count)])
            switch record[3] {
            case 0x00:
                if !sawData {
                    firstAddress = base + address
                    sawData = true
                }
                if firstData.count < 64, base + address == firstAddress + firstData.count { firstData += payload }
            case 0x02 where count == 2: base = (Int(payload[0]) << 8 | Int(payload[1])) << 4
            case 0x04 where count == 2: base = (Int(payload[0]) << 8 | Int(payload[1])) << 16
            default: break
            }
        }
    }
}
