import Foundation
import Crypto
import SMPCtlFiles

/// A firmware file read in pieces, so that memory does not grow with its size.
public struct FirmwareFile: Sendable {
    /// The largest file accepted (a bound on anything read from disk).
    public static let maximumLength = 256 * 1024 * 1024

    public let path: String
    public let length: Int
    /// SHA-256 of the whole file: the upload's `sha`.
    public let sha256: [UInt8]

    /// Opens `path`, checks its size and hashes it in 64 KiB pieces.
    public init(path: String) throws(SMPClientError) {
        self.path = path
        let handle = try Self.openRegular(path)
        defer { try? handle.close() }
        var hasher = SHA256()
        var total = 0
        while true {
            let piece: Data
            do {
                piece = try handle.read(upToCount: 65536) ?? Data()
            } catch {
                throw .invalidInput("cannot read \(path): \(error.localizedDescription)")
            }
            if piece.isEmpty { break }
            total += piece.count
            guard total <= Self.maximumLength else {
                throw .invalidInput("\(path) is larger than \(Self.maximumLength) bytes; that is not a firmware image")
            }
            hasher.update(data: piece)
        }
        guard total > 0 else { throw .invalidInput("\(path) is empty") }
        length = total
        sha256 = Array(hasher.finalize())
    }

    /// Reads `count` bytes at `offset` (fewer at the end of the file).
    public func read(offset: Int, count: Int) throws(SMPClientError) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= length else {
            throw .invalidInput("read outside \(path): offset \(offset)")
        }
        let handle = try Self.openRegular(path)
        defer { try? handle.close() }
        do {
            return try RegularFile.read(handle, path: path, offset: offset, count: min(count, length - offset))
        } catch {
            throw .invalidInput(error.description)
        }
    }

    /// Opens a regular file without blocking (a FIFO, socket or device is refused).
    static func openRegular(_ path: String) throws(SMPClientError) -> FileHandle {
        do {
            return try RegularFile.open(path)
        } catch {
            throw .invalidInput(error.description)
        }
    }
}

/// Reads a file sequentially with one open handle, for the upload loop.
final class FirmwareReader {
    private let handle: FileHandle
    private let file: FirmwareFile

    init(file: FirmwareFile) throws(SMPClientError) {
        self.file = file
        handle = try FirmwareFile.openRegular(file.path)
    }

    deinit { try? handle.close() }

    /// Reads `count` bytes at `offset` (fewer at the end of the file) straight into the array
    /// the upload request carries.
    func read(offset: Int, count: Int) throws(SMPClientError) -> [UInt8] {
        guard offset >= 0, offset <= file.length, count >= 0 else {
            throw .invalidInput("offset \(offset) is outside \(file.path)")
        }
        do {
            return try RegularFile.read(handle, path: file.path, offset: offset, count: min(count, file.length - offset))
        } catch {
            throw .invalidInput(error.description)
        }
    }
}
