// A small, bounded ZIP reader for DFU packages (dfu_application.zip): the central directory,
// stored and deflated entries (RFC 1951), CRC-32 checked. No ZIP64, no encryption.

/// Why a ZIP archive could not be read.
public struct ImageArchiveError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// One file in a ZIP archive, as its central directory lists it.
public struct ImageArchiveEntry: Sendable, Hashable {
    public var name: String
    /// 0 stored, 8 deflate.
    public var method: Int
    public var compressedSize: Int
    public var uncompressedSize: Int
    public var crc32: UInt32
    /// Offset of the entry's local header.
    public var localHeaderOffset: Int
}

/// A ZIP archive held in memory.
public struct ImageArchive: Sendable {
    /// The largest entry extracted (bounds memory when an entry claims a huge size).
    public static let maximumEntrySize = 64 * 1024 * 1024

    public let bytes: [UInt8]
    /// The files, in central directory order.
    public let entries: [ImageArchiveEntry]

    /// Whether `bytes` start like a ZIP file (a local header or an empty archive).
    public static func looksLikeZip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x50 && bytes[1] == 0x4B
            && ((bytes[2] == 3 && bytes[3] == 4) || (bytes[2] == 5 && bytes[3] == 6))
    }

    /// Reads the central directory.
    public init(bytes: [UInt8]) throws(ImageArchiveError) {
        self.bytes = bytes
        guard bytes.count >= 22 else { throw ImageArchiveError("too short for a ZIP archive") }
        // The end-of-central-directory record is in the last 22 + 65535 bytes.
        var eocd: Int?
        var position = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65535)
        while position >= lowest {
            if Self.le32(bytes, position) == 0x0605_4B50 {
                eocd = position
                break
            }
            position -= 1
        }
        guard let eocd else { throw ImageArchiveError("no end-of-central-directory record") }
        let count = Int(Self.le16(bytes, eocd + 10))
        let directorySize = Int(Self.le32(bytes, eocd + 12))
        let directoryOffset = Int(Self.le32(bytes, eocd + 16))
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw ImageArchiveError("the central directory lies outside the file (ZIP64 is not supported)")
        }
        var entries: [ImageArchiveEntry] = []
        var offset = directoryOffset
        for _ in 0..<count {
            guard offset <= bytes.count - 46, Self.le32(bytes, offset) == 0x0201_4B50 else {
                throw ImageArchiveError("a central directory entry at \(offset) is damaged")
            }
            let nameLength = Int(Self.le16(bytes, offset + 28))
            let extraLength = Int(Self.le16(bytes, offset + 30))
            let commentLength = Int(Self.le16(bytes, offset + 32))
            let nameStart = offset + 46
            guard nameLength <= bytes.count - nameStart else { throw ImageArchiveError("an entry name runs past the end") }
            let name = String(decoding: bytes[nameStart..<(nameStart + nameLength)], as: UTF8.self)
            entries.append(ImageArchiveEntry(
                name: name, method: Int(Self.le16(bytes, offset + 10)),
                compressedSize: Int(Self.le32(bytes, offset + 20)), uncompressedSize: Int(Self.le32(bytes, offset + 24)),
                crc32: Self.le32(bytes, offset + 16), localHeaderOffset: Int(Self.le32(bytes, offset + 42))))
            offset = nameStart + nameLength + extraLength + commentLength
        }
        self.entries = entries
    }

    /// The entry called `name` (the last path component is compared when no full match exists).
    public func entry(named name: String) -> ImageArchiveEntry? {
        entries.first { $0.name == name }
            ?? entries.first { $0.name.split(separator: "/").last.map(String.init) == name }
    }

    /// Extracts and CRC-checks an entry.
    public func extract(_ entry: ImageArchiveEntry) throws(ImageArchiveError) -> [UInt8] {
        let header = entry.localHeaderOffset
        guard header >= 0, header <= bytes.count - 30, Self.le32(bytes, header) == 0x0403_4B50 else {
            throw ImageArchiveError("the local header of \(entry.name) is damaged")
        }
        let start = header + 30 + Int(Self.le16(bytes, header + 26)) + Int(Self.le16(bytes, header + 28))
        guard start <= bytes.count, entry.compressedSize <= bytes.count - start else {
            throw ImageArchiveError("\(entry.name) runs past the end of the archive")
        }
        guard entry.uncompressedSize <= Self.maximumEntrySize else {
            throw ImageArchiveError("\(entry.name) is larger than \(Self.maximumEntrySize) bytes")
        }
        let data = Array(bytes[start..<(start + entry.compressedSize)])
        let output: [UInt8]
        switch entry.method {
        case 0: output = data
        case 8: output = try Inflater.inflate(data, limit: entry.uncompressedSize)
        default: throw ImageArchiveError("\(entry.name) uses compression method \(entry.method); only stored and deflate are supported")
        }
        guard output.count == entry.uncompressedSize else {
            throw ImageArchiveError("\(entry.name) inflates to \(output.count) bytes, the directory says \(entry.uncompressedSize)")
        }
        guard Self.crc32(output) == entry.crc32 else { throw ImageArchiveError("\(entry.name) fails its CRC-32 check") }
        return output
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }

    static func le16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}

/// A raw DEFLATE decoder (RFC 1951) that stops at `limit` output bytes.
struct Inflater {
    private let input: [UInt8]
    private var position = 0
    private var bitBuffer: UInt32 = 0
    private var bitCount = 0
    private var output: [UInt8] = []
    private let limit: Int

    private struct Huffman {
        var counts = [Int](repeating: 0, count: 16)
        var symbols: [Int] = []

        init(lengths: [Int]) throws(ImageArchiveError) {
            for length in lengths { counts[length] += 1 }
            counts[0] = 0
            var left = 1
            for length in 1...15 {
                left = left * 2 - counts[length]
                guard left >= 0 else { throw ImageArchiveError("deflate: over-subscribed Huffman code") }
            }
            var offsets = [Int](repeating: 0, count: 16)
            for length in 1..<15 { offsets[length + 1] = offsets[length] + counts[length] }
            symbols = [Int](repeating: 0, count: lengths.count)
            for (symbol, length) in lengths.enumerated() where length != 0 {
                symbols[offsets[length]] = symbol
                offsets[length] += 1
            }
        }
    }

    static func inflate(_ input: [UInt8], limit: Int) throws(ImageArchiveError) -> [UInt8] {
        var inflater = Inflater(input: input, limit: limit)
        try inflater.run()
        return inflater.output
    }

    private init(input: [UInt8], limit: Int) {
        self.input = input
        self.limit = limit
    }

    private mutating func bits(_ count: Int) throws(ImageArchiveError) -> Int {
        var value = bitBuffer
        while bitCount < count {
            guard position < input.count else { throw ImageArchiveError("deflate: data ends early") }
            value |= UInt32(input[position]) << UInt32(bitCount)
            position += 1
            bitCount += 8
        }
        bitBuffer = count == 32 ? 0 : value >> UInt32(count)
        bitCount -= count
        return Int(value & ((1 << UInt32(count)) - 1))
    }

    private mutating func decode(_ code: Huffman) throws(ImageArchiveError) -> Int {
        var value = 0, first = 0, index = 0
        for length in 1...15 {
            value |= try bits(1)
            let count = code.counts[length]
            if value - count < first { return code.symbols[index + (value - first)] }
            index += count
            first = (first + count) << 1
            value <<= 1
        }
        throw ImageArchiveError("deflate: invalid Huffman code")
    }

    private static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    private mutating func run() throws(ImageArchiveError) {
        var last = false
        while !last {
            last = try bits(1) == 1
            switch try bits(2) {
            case 0: try stored()
            case 1:
                var lengths = [Int](repeating: 8, count: 288)
                for i in 144..<256 { lengths[i] = 9 }
                for i in 256..<280 { lengths[i] = 7 }
                try codes(Huffman(lengths: lengths), Huffman(lengths: [Int](repeating: 5, count: 30)))
            case 2: try dynamic()
            default: throw ImageArchiveError("deflate: invalid block type")
            }
        }
    }

    private mutating func stored() throws(ImageArchiveError) {
        bitBuffer = 0
        bitCount = 0
        guard position <= input.count - 4 else { throw ImageArchiveError("deflate: stored block header cut off") }
        let length = Int(input[position]) | Int(input[position + 1]) << 8
        let complement = Int(input[position + 2]) | Int(input[position + 3]) << 8
        position += 4
        guard length == (~complement & 0xFFFF) else { throw ImageArchiveError("deflate: stored block length check fails") }
        guard length <= input.count - position else { throw ImageArchiveError("deflate: stored block cut off") }
        guard output.count + length <= limit else { throw ImageArchiveError("deflate: output exceeds the declared size") }
        output += input[position..<(position + length)]
        position += length
    }

    private mutating func dynamic() throws(ImageArchiveError) {
        let literalCount = try bits(5) + 257
        let distanceCount = try bits(5) + 1
        let codeLengthCount = try bits(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else { throw ImageArchiveError("deflate: bad code counts") }
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var codeLengths = [Int](repeating: 0, count: 19)
        for i in 0..<codeLengthCount { codeLengths[order[i]] = try bits(3) }
        let lengthCode = try Huffman(lengths: codeLengths)
        var lengths: [Int] = []
        while lengths.count < literalCount + distanceCount {
            let symbol = try decode(lengthCode)
            switch symbol {
            case 0..<16: lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else { throw ImageArchiveError("deflate: repeat with no previous length") }
                lengths += [Int](repeating: previous, count: 3 + (try bits(2)))
            case 17: lengths += [Int](repeating: 0, count: 3 + (try bits(3)))
            default: lengths += [Int](repeating: 0, count: 11 + (try bits(7)))
            }
        }
        guard lengths.count == literalCount + distanceCount else { throw ImageArchiveError("deflate: too many lengths") }
        try codes(
            Huffman(lengths: Array(lengths[0..<literalCount])),
            Huffman(lengths: Array(lengths[literalCount...])))
    }

    private mutating func codes(_ literals: Huffman, _ distances: Huffman) throws(ImageArchiveError) {
        while true {
            let symbol = try decode(literals)
            if symbol < 256 {
                guard output.count < limit else { throw ImageArchiveError("deflate: output exceeds the declared size") }
                output.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let index = symbol - 257
                guard index < Self.lengthBase.count else { throw ImageArchiveError("deflate: bad length symbol") }
                let length = Self.lengthBase[index] + (try bits(Self.lengthExtra[index]))
                let distanceSymbol = try decode(distances)
                guard distanceSymbol < Self.distanceBase.count else { throw ImageArchiveError("deflate: bad distance symbol") }
                let distance = Self.distanceBase[distanceSymbol] + (try bits(Self.distanceExtra[distanceSymbol]))
                guard distance <= output.count else { throw ImageArchiveError("deflate: distance reaches before the start") }
                guard output.count + length <= limit else { throw ImageArchiveError("deflate: output exceeds the declared size") }
                let start = output.count - distance
                for i in 0..<length { output.append(output[start + i]) }
            }
        }
    }
}
