// DFU packages (dfu_application.zip) read with ZIPFoundation: stored and deflated entries,
// CRC-32 checked. The caller has read the file (bounded, as a regular file); ZIPFoundation reads
// a private, unlinked copy of those bytes (tmpfile), because its in-memory backing traps when an
// offset points past the end of the data. This file adds the bounds a hostile archive needs: the
// entry count, the size of each entry and of everything extracted from one archive, each entry
// inflated at most once, bytes counted as they are inflated (a header can lie about the size),
// and ZIP64 refused before ZIPFoundation converts a 64-bit offset.

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
    private let state: ExtractionState

    /// The archive's bytes as an array.
    public var bytes: [UInt8] { [UInt8](data) }

    /// Bytes inflated from this archive so far (each entry counts once, however often it is extracted).
    public var extractedBytes: Int { state.mutex.withLock { $0.spent } }

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
        let declared = try ZIP64Refusal.check(data)
        let store = try ExtractionState.Store(copying: data)
        var entries: [ImageArchiveEntry] = []
        for entry in store.archive {
            guard entries.count < Self.maximumEntries else {
                throw ImageArchiveError("the archive lists more than \(Self.maximumEntries) entries")
            }
            entries.append(ImageArchiveEntry(
                name: entry.path, method: entry.isCompressed ? 8 : 0,
                compressedSize: Int(clamping: entry.compressedSize), uncompressedSize: Int(clamping: entry.uncompressedSize),
                crc32: entry.checksum, index: entries.count))
        }
        // ZIPFoundation stops quietly at a directory entry it cannot read.
        guard entries.count == declared else {
            throw ImageArchiveError("the central directory lists \(declared) entries but only \(entries.count) can be read")
        }
        self.data = data
        self.entries = entries
        state = ExtractionState(store)
    }

    /// The entry called `name` (the last path component is compared when no full match exists).
    public func entry(named name: String) -> ImageArchiveEntry? {
        entries.first { $0.name == name }
            ?? entries.first { $0.name.split(separator: "/").last.map(String.init) == name }
    }

    /// Extracts and CRC-checks an entry. An entry is inflated once; later calls return the same
    /// bytes. Past ``maximumEntrySize`` for the entry, ``maximumTotalSize`` for the archive, or
    /// the size its directory entry declares, extraction stops with an error.
    public func extract(_ entry: ImageArchiveEntry) throws(ImageArchiveError) -> [UInt8] {
        guard entries.indices.contains(entry.index), entries[entry.index] == entry else {
            throw ImageArchiveError("\(entry.name) is not an entry of this archive")
        }
        return try state.mutex.withLock { (store: inout ExtractionState.Store) throws(ImageArchiveError) -> [UInt8] in
            if let cached = store.cache[entry.index] { return cached }
            let bytes = try Self.inflate(entry, from: store.archive, spent: store.spent)
            store.spent += bytes.count  // at most maximumTotalSize: inflate checked the budget
            store.cache[entry.index] = bytes
            return bytes
        }
    }

    /// Inflates one entry within the budgets left.
    private static func inflate(_ entry: ImageArchiveEntry, from archive: Archive, spent: Int) throws(ImageArchiveError) -> [UInt8] {
        guard entry.uncompressedSize <= maximumEntrySize else {
            throw ImageArchiveError("\(entry.name) is larger than \(maximumEntrySize) bytes")
        }
        guard entry.uncompressedSize <= maximumTotalSize - spent else {
            throw ImageArchiveError(
                "extracting \(entry.name) (\(entry.uncompressedSize) bytes) would take more than \(maximumTotalSize) bytes from one archive")
        }
        guard entry.method == 0 || entry.method == 8 else {
            throw ImageArchiveError("\(entry.name) uses compression method \(entry.method); only stored and deflate are supported")
        }
        var position = 0
        var found: Entry?
        for candidate in archive {
            if position == entry.index {
                found = candidate
                break
            }
            position += 1
        }
        guard let found, found.type == .file else { throw ImageArchiveError("\(entry.name) is not a file in the archive") }
        // Bytes are counted as they come: past the declared size (within the budgets checked
        // above) extraction stops, whatever the local header or the deflate stream say.
        let limit = entry.uncompressedSize
        var output = Data()
        output.reserveCapacity(limit)
        let checksum: UInt32
        do {
            checksum = try archive.extract(found, skipCRC32: false) { chunk in
                guard chunk.count <= limit - output.count else { throw Overrun() }
                output.append(chunk)
            }
        } catch is Overrun {
            throw ImageArchiveError("\(entry.name) inflates to more than the \(limit) bytes its directory entry says")
        } catch {
            throw ImageArchiveError("\(entry.name) cannot be extracted: \(error)")
        }
        guard checksum == entry.crc32 else { throw ImageArchiveError("\(entry.name) fails its CRC-32 check") }
        guard output.count == limit else {
            throw ImageArchiveError("\(entry.name) inflates to \(output.count) bytes, the directory says \(limit)")
        }
        return [UInt8](output)
    }

    private struct Overrun: Error {}
}

/// ZIPFoundation's view of one archive, and what has been extracted from it.
private final class ExtractionState: Sendable {
    struct Store {
        /// The unlinked temporary copy ZIPFoundation reads; closed with the state.
        let file: UnsafeMutablePointer<FILE>
        let archive: Archive
        /// Bytes extracted so far, each entry once.
        var spent = 0
        var cache: [Int: [UInt8]] = [:]

        init(copying data: Data) throws(ImageArchiveError) {
            guard let file = tmpfile() else { throw ImageArchiveError("cannot make a temporary copy of the archive") }
            let written = data.withUnsafeBytes { raw in raw.baseAddress.map { fwrite($0, 1, raw.count, file) } ?? 0 }
            guard written == data.count, fflush(file) == 0 else {
                fclose(file)
                throw ImageArchiveError("cannot make a temporary copy of the archive")
            }
            #if os(Linux)
            let path = "/proc/self/fd/\(fileno(file))"
            #else
            let path = "/dev/fd/\(fileno(file))"
            #endif
            do {
                archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
            } catch {
                fclose(file)
                throw ImageArchiveError("not a readable ZIP archive (\(error))")
            }
            self.file = file
        }
    }

    let mutex: LockedValue<Store>

    init(_ store: consuming sending Store) { mutex = LockedValue(store) }

    deinit { mutex.withLock { _ = fclose($0.file) } }
}

/// ZIPFoundation 0.9.20 turns the 64-bit offsets of ZIP64 records into `off_t` without a check,
/// which traps on a crafted archive. A DFU package is far below 4 GiB, so ZIP64 is refused before
/// ZIPFoundation reads anything: no ZIP64 locator, and no 0xFFFF / 0xFFFFFFFF "see the ZIP64
/// record" value in the end record or in a central directory header. Only those fixed fields
/// are looked at here; ZIPFoundation reads the archive.
enum ZIP64Refusal {
    /// Returns the entry count the end record declares.
    static func check(_ data: Data) throws(ImageArchiveError) -> Int {
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
        for _ in 0..<count {
            guard offset >= 0, offset <= bytes.count - 46, le32(bytes, offset) == 0x0201_4B50 else {
                throw ImageArchiveError("a central directory entry at \(offset) is damaged")
            }
            let sizes = [le32(bytes, offset + 20), le32(bytes, offset + 24), le32(bytes, offset + 42)]
            guard !sizes.contains(0xFFFF_FFFF), le16(bytes, offset + 34) != 0xFFFF else {
                throw ImageArchiveError("ZIP64 entries are not supported (a DFU package is far smaller than 4 GiB)")
            }
            // Each length is at most 0xFFFF and the offset below the file's size: no overflow.
            offset += 46 + Int(le16(bytes, offset + 28)) + Int(le16(bytes, offset + 30)) + Int(le16(bytes, offset + 32))
        }
        return count
    }

    static func le16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}
