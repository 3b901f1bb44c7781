#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// An `errno` value from a failed system call.
package struct Errno: Error, Sendable, Hashable, CustomStringConvertible {
    package let code: Int32
    package init(_ code: Int32) { self.code = code }
    package static var current: Errno { Errno(errno) }
    package var description: String { describeErrno(code) }
}

/// Runs a system call that returns −1 and sets `errno` on failure, again while it fails with
/// `EINTR`; returns its value or the `errno` it failed with. The one place that loops on EINTR.
@inline(__always)
package func valueOrErrno<T: FixedWidthInteger & SignedInteger>(
    retryOnInterrupt: Bool = true, _ call: () -> T
) -> Result<T, Errno> {
    while true {
        let value = call()
        if value != -1 { return .success(value) }
        let code = errno
        if retryOnInterrupt, code == EINTR { continue }
        return .failure(Errno(code))
    }
}

/// A description of an `errno` value.
package func describeErrno(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

/// An open file descriptor. A value type with no ownership rules of its own: whoever opened it
/// closes it, once, after every reader has stopped.
package struct FileDescriptor: Sendable, Hashable {
    package let rawValue: Int32

    package init(rawValue: Int32) { self.rawValue = rawValue }

    /// Opens `path`; `O_CLOEXEC` is always added.
    package static func open(_ path: String, _ flags: Int32) -> Result<FileDescriptor, Errno> {
        valueOrErrno { systemOpen(path, flags | O_CLOEXEC) }.map(FileDescriptor.init(rawValue:))
    }

    /// Closes the descriptor (EINTR is not retried: on Linux the descriptor is gone either way).
    package func close() { _ = systemClose(rawValue) }

    /// Writes all of `bytes`, waiting with poll when the descriptor is full (at most `stallLimit`
    /// polls of a second each without progress).
    package func writeAll(_ bytes: [UInt8], stallLimit: Int = 10) -> Result<Void, Errno> {
        var offset = 0
        var stalls = 0
        while offset < bytes.count {
            let written = valueOrErrno {
                bytes.withUnsafeBytes { raw in systemWrite(rawValue, raw.baseAddress.map { $0 + offset }, bytes.count - offset) }
            }
            switch written {
            case .success(let count):
                offset += count
                stalls = 0
            case .failure(let error) where error.code == EAGAIN || error.code == EWOULDBLOCK:
                stalls += 1
                guard stalls <= stallLimit else { return .failure(error) }
                var descriptor = pollfd(fd: rawValue, events: Int16(POLLOUT), revents: 0)
                _ = valueOrErrno { poll(&descriptor, 1, 1000) }
            case .failure(let error):
                return .failure(error)
            }
        }
        return .success(())
    }
}

// The C functions under names that do not clash with methods called `open`, `close` and `write`.
private func systemOpen(_ path: String, _ flags: Int32) -> Int32 { open(path, flags) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buffer, count) }
