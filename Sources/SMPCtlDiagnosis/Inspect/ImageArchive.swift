// DFU packages (dfu_application.zip) read with ZIPFoundation: stored and deflated entries,
// CRC-32 checked. The caller has read the file (bounded, as a regular file); ZIPFoundation reads
// the central directory from a private, unlinked copy of those bytes (tmpfile), because its
// in-memory backing traps when an offset points past the end of the data. This file adds the
// bounds a hostile archive needs: the entry count, the size of each entry and of everything
// extracted from one archive, each entry inflated at most once (a failure is kept too), bytes
// counted as they are inflated (a header can lie about the size), and ZIP64 refused before
// ZIPFoundation converts a 64-bit offset.
//
// Members are not extracted with `Archive.extract`: on Linux, ZIPFoundation 0.9.20 inflates by
// reading the archive file in 16 KiB chunks past the member's compressed size, tells zlib each
// chunk holds 16 KiB even when the read came back short (so it inflates uninitialized heap bytes
// after the end of the file), and loops forever when the file ends before the deflate stream does
// (an empty read skips `inflate`, so the loop's condition never changes; upstream pull request
// weichsel/ZIPFoundation#389). `Fuzz/Findings/archive-timeout-13k.zip` hung `fuzz-archive` so.
// Here the member's bytes are sliced from memory (local header checked, within the data), handed
// to ZIPFoundation's `Data.decompress` in one piece of exactly `compressedSize` bytes, and asking
// for more than that is an error: each member costs at most its compressed bytes in and its
// declared size out.

public import Foundation
import SMPCtlLocking
import ZIPFoundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// Position in the central directory (names need not be unique).
    public var index: Int
}

/// A ZIP archive read from bytes in memory.
public struct ImageArchive: Sendable {
    /// The largest entry extracted (bounds memory when an entry claims a huge size).
    public static let maximumEntrySize = 64 * 1024 * 1024
    /// The most bytes extracted from one archive, all entries together.
    public static let maximumTotalSize = 128 * 1024 * 1024
    /// The most entries an archive may list (a DFU package has a handful).
    public static let maximumEntries = 1024

    /// The archive's bytes.
    public let data: Data
    /// The files, in central directory order.
    public let entries: [ImageArchiveEntry]
    /// Per entry: where its local header is, and whether ZIPFoundation takes it for a file.
    private let members: [Member]
    private let state: LockedValue<ExtractionState>

    /// The archive's bytes as an array.
    public var bytes: [UInt8] { [UInt8](data) }

    /// Bytes inflated (or copied, for stored entries) from this archive so far, failed extractions
    /// included; each entry counts once, however often it is extracted.
    public var extractedBytes: Int { state.withLock { $0.produced } }

    /// Compressed bytes handed to the inflater (or copied) so far; each entry counts once, and at
    /// most its directory's `compressedSize`.
    public var consumedBytes: Int { state.withLock { $0.consumed } }

    /// Whether `bytes` start like a ZIP file (a local header or an empty archive).
    public static func looksLikeZip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x50 && bytes[1] == 0x4B
            && ((bytes[2] == 3 && bytes[3] == 4) || (bytes[2] == 5 && bytes[3] == 6))
    }

    /// Reads the central directory.
    public init(bytes: [UInt8]) throws(ImageArchiveError) {
        try self.init(data: Data(bytes))
    }

    /// Reads the central directory.
    public init(data: Data) throws(ImageArchiveError) {
        let records = try ZIP64Refusal.check(data)
        var entries: [ImageArchiveEntry] = []
        var members: [Member] = []
        try DirectoryCopy.withArchive(copying: data) { (archive: Archive) throws(ImageArchiveError) in
            for entry in archive {
                guard entries.count < Self.maximumEntries else {
                    throw ImageArchiveError("the archive lists more than \(Self.maximumEntries) entries")
                }
                let index = entries.count
                // ZIPFoundation walks the same directory records in the same order; one it reads
                // beyond those counted is refused below.
                guard index < records.count else { break }
                entries.append(ImageArchiveEntry(
                    name: entry.path, method: entry.isCompressed ? 8 : 0,
                    compressedSize: Int(clamping: entry.compressedSize), uncompressedSize: Int(clamping: entry.uncompressedSize),
                    crc32: entry.checksum, index: index))
                members.append(Member(localHeader: records[index].localHeader, isFile: entry.type == .file))
            }
        }
        // ZIPFoundation stops quietly at a directory entry it cannot read.
        guard entries.count == records.count else {
            throw ImageArchiveError("the central directory lists \(records.count) entries but only \(entries.count) can be read")
        }
        self.data = data
        self.entries = entries
        self.members = members
        state = LockedValue(ExtractionState())
    }

    /// The entry called `name` (the last path component is compared when no full match exists).
    public func entry(named name: String) -> ImageArchiveEntry? {
        entries.first { $0.name == name }
            ?? entries.first { $0.name.split(separator: "/").last.map(String.init) == name }
    }

    /// Extracts and CRC-checks an entry. An entry is inflated once; later calls return the same
    /// bytes, or the same error. Past ``maximumEntrySize`` for the entry, ``maximumTotalSize`` for
    /// the archive, the size its directory entry declares, or its compressed bytes, extraction
    /// stops with an error.
    public func extract(_ entry: ImageArchiveEntry) throws(ImageArchiveError) -> [UInt8] {
        guard entries.indices.contains(entry.index), entries[entry.index] == entry else {
            throw ImageArchiveError("\(entry.name) is not an entry of this archive")
        }
        let member = members[entry.index]
        let outcome = state.withLock { (state: inout ExtractionState) -> Result<[UInt8], ImageArchiveError> in
            if let known = state.outcomes[entry.index] { return known }
            var work = Work()
            let outcome: Result<[UInt8], ImageArchiveError>
            do throws(ImageArchiveError) {
                outcome = .success(try Self.inflate(entry, member, from: data, spent: state.produced, work: &work))
            } catch {
                outcome = .failure(error)
            }
            // Both at most maximumTotalSize / the data's size: inflate keeps within the budget left.
            state.produced += work.produced
            state.consumed += work.consumed
            state.outcomes[entry.index] = outcome
            return outcome
        }
        return try outcome.get()
    }

    /// Inflates (or copies) one entry within the budgets left, counting what it reads and writes.
    private static func inflate(
        _ entry: ImageArchiveEntry, _ member: Member, from data: Data, spent: Int, work: inout Work
    ) throws(ImageArchiveError) -> [UInt8] {
        guard entry.uncompressedSize <= maximumEntrySize else {
            throw ImageArchiveError("\(entry.name) is larger than \(maximumEntrySize) bytes")
        }
        guard entry.uncompressedSize <= maximumTotalSize - spent else {
            throw ImageArchiveError(
                "extracting \(entry.name) (\(entry.uncompressedSize) bytes) would take more than \(maximumTotalSize) bytes from one archive")
        }
        guard member.isFile else { throw ImageArchiveError("\(entry.name) is not a file in the archive") }
        let (method, compressed) = try member.contents(of: entry, in: data)
        let limit = entry.uncompressedSize
        var output = Data()
        output.reserveCapacity(limit)
        let checksum: UInt32
        switch method {
        case 0:
            guard compressed.count == limit else {
                throw ImageArchiveError("\(entry.name) is stored with \(compressed.count) bytes, the directory says \(limit)")
            }
            work.consumed = compressed.count
            work.produced = compressed.count
            output = compressed
            checksum = compressed.crc32(checksum: 0)
        case 8:
            guard !compressed.isEmpty else {
                guard limit == 0, entry.crc32 == 0 else { throw ImageArchiveError("\(entry.name) has no deflate data") }
                return []
            }
            // One piece of exactly compressedSize bytes (ZIPFoundation's Linux inflater takes
            // every piece to be bufferSize long); a second request means the deflate stream goes
            // on past the member's bytes. Bytes out are counted as they come: past the declared
            // size extraction stops, whatever the local header or the deflate stream say.
            do {
                checksum = try Data.decompress(
                    size: Int64(compressed.count), bufferSize: compressed.count, skipCRC32: false,
                    provider: { position, _ in
                        guard position == 0, work.consumed == 0 else { throw Truncated() }
                        work.consumed = compressed.count
                        return compressed
                    },
                    consumer: { chunk in
                        guard chunk.count <= limit - output.count else { throw Overrun() }
                        output.append(chunk)
                        work.produced = output.count
                    })
            } catch is Overrun {
                throw ImageArchiveError("\(entry.name) inflates to more than the \(limit) bytes its directory entry says")
            } catch is Truncated {
                throw ImageArchiveError("\(entry.name): its deflate stream does not end within its \(compressed.count) compressed bytes")
            } catch {
                throw ImageArchiveError("\(entry.name) cannot be extracted: \(error)")
            }
        default:
            throw ImageArchiveError("\(entry.name) uses compression method \(method); only stored and deflate are supported")
        }
        guard checksum == entry.crc32 else { throw ImageArchiveError("\(entry.name) fails its CRC-32 check") }
        guard output.count == limit else {
            throw ImageArchiveError("\(entry.name) inflates to \(output.count) bytes, the directory says \(limit)")
        }
        return [UInt8](output)
    }

    private struct Overrun: Error {}
    private struct Truncated: Error {}

    /// What one extraction read and wrote.
    private struct Work {
        var consumed = 0
        var produced = 0
    }

    /// Where an entry's data is.
    private struct Member: Sendable {
        /// Offset of the local file header (from the central directory, below the data's size).
        var localHeader: Int
        var isFile: Bool

        /// The compression method of the local header and the entry's `compressedSize` bytes
        /// after it, all within `data`.
        func contents(of entry: ImageArchiveEntry, in data: Data) throws(ImageArchiveError) -> (method: Int, bytes: Data) {
            let base = data.startIndex
            let count = data.count
            guard localHeader >= 0, localHeader <= count - 30 else {
                throw ImageArchiveError("\(entry.name): its local header at \(localHeader) is outside the archive")
            }
            func le16(_ at: Int) -> Int { Int(data[base + at]) | Int(data[base + at + 1]) << 8 }
            guard le16(localHeader) == 0x4B50, le16(localHeader + 2) == 0x0403 else {
                throw ImageArchiveError("\(entry.name): no local header at \(localHeader)")
            }
            let method = le16(localHeader + 8)
            // Each length is at most 0xFFFF and the offset below the data's size: no overflow.
            let start = localHeader + 30 + le16(localHeader + 26) + le16(localHeader + 28)
            guard start <= count, entry.compressedSize <= count - start else {
                throw ImageArchiveError("\(entry.name): its \(entry.compressedSize) bytes of data go past the end of the archive")
            }
            return (method, data.subdata(in: (base + start)..<(base + start + entry.compressedSize)))
        }
    }
}

/// What has been extracted from one archive: each entry's outcome, kept, and the bytes spent.
private struct ExtractionState {
    /// Bytes written by extractions so far (each entry once, failed ones included).
    var produced = 0
    /// Compressed bytes read by extractions so far.
    var consumed = 0
    var outcomes: [Int: Result<[UInt8], ImageArchiveError>] = [:]
}

/// ZIPFoundation's reading of the central directory, from an unlinked temporary copy that is
/// closed again when the directory has been read.
private enum DirectoryCopy {
    static func withArchive(
        copying data: Data, _ body: (Archive) throws(ImageArchiveError) -> Void
    ) throws(ImageArchiveError) {
        guard let file = tmpfile() else { throw ImageArchiveError("cannot make a temporary copy of the archive") }
        defer { fclose(file) }
        let written = data.withUnsafeBytes { raw in raw.baseAddress.map { fwrite($0, 1, raw.count, file) } ?? 0 }
        guard written == data.count, fflush(file) == 0 else {
            throw ImageArchiveError("cannot make a temporary copy of the archive")
        }
        #if os(Linux)
        let path = "/proc/self/fd/\(fileno(file))"
        #else
        let path = "/dev/fd/\(fileno(file))"
        #endif
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw ImageArchiveError("not a readable ZIP archive (\(error))")
        }
        try body(archive)
    }
}

/// ZIPFoundation 0.9.20 turns the 64-bit offsets of ZIP64 records into `off_t` without a check,
/// which traps on a crafted archive. A DFU package is far below 4 GiB, so ZIP64 is refused before
/// ZIPFoundation reads anything: no ZIP64 locator, and no 0xFFFF / 0xFFFFFFFF "see the ZIP64
/// record" value in the end record or in a central directory header. Only those fixed fields
/// are looked at here (and each entry's local header offset kept); ZIPFoundation reads the
/// directory.
enum ZIP64Refusal {
    /// One central directory record, as far as it is read here.
    struct Record {
        /// Offset of the entry's local file header.
        var localHeader: Int
    }

    /// Returns the records the end record declares, in directory order.
    static func check(_ data: Data) throws(ImageArchiveError) -> [Record] {
        let bytes = [UInt8](data)
        guard bytes.count >= 22 else { throw ImageArchiveError("too short for a ZIP archive") }
        // The end record ZIPFoundation uses: the last signature, searched from the end.
        var position = bytes.count - 22
        var end: Int?
        while position >= 0 {
            if le32(bytes, position) == 0x0605_4B50 {
                end = position
                break
            }
            position -= 1
        }
        guard let end else { throw ImageArchiveError("no end-of-central-directory record") }
        if end >= 20, le32(bytes, end - 20) == 0x0706_4B50 {
            throw ImageArchiveError("ZIP64 archives are not supported (a DFU package is far smaller than 4 GiB)")
        }
        let diskFields = [le16(bytes, end + 4), le16(bytes, end + 6), le16(bytes, end + 8), le16(bytes, end + 10)]
        let count = Int(le16(bytes, end + 10))
        let directorySize = le32(bytes, end + 12)
        let directoryOffset = le32(bytes, end + 16)
        guard !diskFields.contains(0xFFFF), directorySize != 0xFFFF_FFFF, directoryOffset != 0xFFFF_FFFF else {
            throw ImageArchiveError("ZIP64 archives are not supported (a DFU package is far smaller than 4 GiB)")
        }
        guard count <= ImageArchive.maximumEntries else {
            throw ImageArchiveError("the archive lists \(count) entries; at most \(ImageArchive.maximumEntries) are read")
        }
        var offset = Int(directoryOffset)
        var records: [Record] = []
        for _ in 0..<count {
            guard offset >= 0, offset <= bytes.count - 46, le32(bytes, offset) == 0x0201_4B50 else {
                throw ImageArchiveError("a central directory entry at \(offset) is damaged")
            }
            let sizes = [le32(bytes, offset + 20), le32(bytes, offset + 24), le32(bytes, offset + 42)]
            guard !sizes.contains(0xFFFF_FFFF), le16(bytes, offset + 34) != 0xFFFF else {
                throw ImageArchiveError("ZIP64 entries are not supported (a DFU package is far smaller than 4 GiB)")
            }
            records.append(Record(localHeader: Int(le32(bytes, offset + 42))))
            // Each length is at most 0xFFFF and the offset below the file's size: no overflow.
            offset += 46 + Int(le16(bytes, offset + 28)) + Int(le16(bytes, offset + 30)) + Int(le16(bytes, offset + 32))
        }
        return records
    }

    static func le16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}
