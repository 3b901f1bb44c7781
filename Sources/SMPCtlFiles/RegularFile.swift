// The one way smpctl opens a file that a user named or a build folder holds: without blocking,
// and only when it is a regular file. A FIFO with no writer, a socket, a terminal or a device
// node would otherwise block `open(2)` or `read(2)` forever, or stream without end.

public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file could not be read.
public struct RegularFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Nothing at the path.
        case missing
        /// Something that is not a regular file: what it is ("a FIFO (named pipe)", "a directory").
        case notRegular(String)
        /// Larger than the limit the caller set.
        case tooLarge(limit: Int)
        /// Permission denied, an I/O error, and the like.
        case unreadable
    }

    public var path: String
    public var kind: Kind
    /// The system's words for it, when it has some (strerror).
    public var reason: String

    public init(path: String, kind: Kind, reason: String = "") {
        self.path = path
        self.kind = kind
        self.reason = reason
    }

    public var description: String {
        switch kind {
        case .missing: "cannot open \(path): \(reason.isEmpty ? "No such file or directory" : reason)"
        case .notRegular(let what): "\(path) is \(what), not a regular file; smpctl reads only regular files"
        case .tooLarge(let limit): "\(path) is larger than \(limit) bytes"
        case .unreadable: "cannot read \(path): \(reason)"
        }
    }
}

/// Opening and reading regular files only.
public enum RegularFile {
    /// Opens `path` for reading. The open itself cannot block (`O_NONBLOCK`, so a FIFO without a
    /// writer opens at once), then `fstat` refuses anything that is not a regular file before a
    /// single byte is read. The handle closes its descriptor when released.
    public static func open(_ path: String) throws(RegularFileError) -> FileHandle {
        guard !path.isEmpty else { throw RegularFileError(path: path, kind: .missing) }
        let fd = path.withCString { pointer in
            systemOpen(pointer, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        }
        guard fd >= 0 else {
            let code = errno
            throw RegularFileError(path: path, kind: code == ENOENT || code == ENOTDIR ? .missing : .unreadable, reason: message(code))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw RegularFileError(path: path, kind: .unreadable, reason: message(code))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw RegularFileError(path: path, kind: .notRegular(describe(mode: info.st_mode)))
        }
        // Regular files ignore O_NONBLOCK, but reads should block normally all the same.
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Reads up to `count` bytes at `offset` of an open file straight into a new array (one copy,
    /// from the kernel), fewer at the end of the file. `pread` leaves the file position alone
    /// and is retried when a signal interrupts it.
    public static func read(_ handle: FileHandle, path: String, offset: Int, count: Int) throws(RegularFileError)
        -> [UInt8]
    {
        guard offset >= 0, count >= 0 else {
            throw RegularFileError(path: path, kind: .unreadable, reason: "offset \(offset) or count \(count) is negative")
        }
        let fd = handle.fileDescriptor
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = 0
            while initialized < count, let base = buffer.baseAddress {
                let got = pread(fd, base + initialized, count - initialized, off_t(offset + initialized))
                if got > 0 {
                    initialized += got
                } else if got == 0 {
                    break
                } else if errno != EINTR {
                    failure = errno
                    break
                }
            }
        }
        guard failure == 0 else { throw RegularFileError(path: path, kind: .unreadable, reason: message(failure)) }
        return bytes
    }

    /// Reads a whole regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int) throws(RegularFileError) -> Data {
        let handle = try open(path)
        defer { try? handle.close() }
        let bound = max(0, limit)
        let data: Data
        do {
            // One byte past the limit tells a file at the limit from a larger one.
            data = try handle.read(upToCount: bound < Int.max ? bound + 1 : bound) ?? Data()
        } catch {
            throw RegularFileError(path: path, kind: .unreadable, reason: error.localizedDescription)
        }
        guard data.count <= bound else { throw RegularFileError(path: path, kind: .tooLarge(limit: bound)) }
        return data
    }

    /// Whether `path` names a regular file (symbolic links followed), without opening it.
    public static func isRegular(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        return info.st_mode & S_IFMT == S_IFREG
    }

    private static func describe(mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFDIR: "a directory"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        default: "not a regular file"
        }
    }

    private static func message(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}

#if canImport(Glibc) || canImport(Musl)
private func systemOpen(_ path: UnsafePointer<CChar>, _ flags: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.open(path, flags)
    #else
    Musl.open(path, flags)
    #endif
}
#else
private func systemOpen(_ path: UnsafePointer<CChar>, _ flags: Int32) -> Int32 {
    Darwin.open(path, flags)
}
#endif
