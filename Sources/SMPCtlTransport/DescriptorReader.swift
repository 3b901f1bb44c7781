#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
import Foundation
import Synchronization

/// Reads a file descriptor on a dedicated thread and hands every chunk to a closure.
///
/// The thread polls with a short timeout so that `stop()` ends it promptly. The closure runs
/// on the reader thread; it must be quick and thread-safe.
final class DescriptorReader: Sendable {
    /// What the reader reports.
    enum Output: Sendable {
        case bytes([UInt8])
        case closed(Int32?)
    }

    /// Flags shared with the reader thread.
    private final class Flags: Sendable {
        let stopped = Mutex(false)
        let finished = Mutex(false)
    }

    private let flags = Flags()

    /// Starts reading `fd`, up to `bufferSize` bytes per read.
    ///
    /// For datagram sockets pass `datagrams: true`: an empty read is then an empty datagram, not
    /// end of file. A refused datagram (`ECONNREFUSED`, ICMP port unreachable on a connected
    /// socket) ends the reader with that code, so the client fails at once instead of timing out.
    init(fd: Int32, bufferSize: Int, name: String, datagrams: Bool = false,
        onOutput: @escaping @Sendable (Output) -> Void)
    {
        let thread = Thread { [flags] in
            var buffer = [UInt8](repeating: 0, count: bufferSize)
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            loop: while !flags.stopped.withLock({ $0 }) {
                pfd.revents = 0
                let ready = poll(&pfd, 1, 50)
                if ready < 0 {
                    if errno == EINTR { continue }
                    onOutput(.closed(errno))
                    break
                }
                if ready == 0 { continue }
                if flags.stopped.withLock({ $0 }) { break }
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, bufferSize) }
                if count > 0 || (count == 0 && datagrams) {
                    onOutput(.bytes(Array(buffer[0..<count])))
                } else if count == 0 {
                    // End of file: the other side of a PTY or a stream closed.
                    onOutput(.closed(nil))
                    break loop
                } else {
                    let code = errno
                    if code == EINTR || code == EAGAIN { continue }
                    onOutput(.closed(code))
                    break loop
                }
            }
            flags.finished.withLock { $0 = true }
        }
        thread.name = name
        thread.start()
    }

    /// Asks the thread to stop and waits (briefly) until it has.
    func stop() async {
        flags.stopped.withLock { $0 = true }
        for _ in 0..<100 {
            if flags.finished.withLock({ $0 }) { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// Writes all of `bytes` to `fd`, waiting with poll when the descriptor is full.
func writeAll(fd: Int32, _ bytes: [UInt8]) throws(SMPTransportError) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { raw in
            write(fd, raw.baseAddress.map { $0 + offset }, bytes.count - offset)
        }
        if written > 0 {
            offset += written
            continue
        }
        let code = errno
        if written < 0 && (code == EAGAIN || code == EWOULDBLOCK) {
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, 1000)
            continue
        }
        if written < 0 && code == EINTR { continue }
        throw SMPTransportError(.sendFailed, "write failed", errno: code)
    }
}

/// A transport's open descriptor and its reader thread, swapped and closed as one.
final class OpenDescriptor: Sendable {
    private struct State {
        var fd: Int32 = -1
        var reader: DescriptorReader?
    }

    private let state = Mutex(State())

    /// The open descriptor, or `nil` when closed.
    var fd: Int32? {
        let fd = state.withLock { $0.fd }
        return fd >= 0 ? fd : nil
    }

    /// Records a newly opened descriptor and the thread reading it.
    func install(fd: Int32, reader: DescriptorReader) {
        state.withLock {
            $0.fd = fd
            $0.reader = reader
        }
    }

    /// Stops the reader and closes the descriptor; does nothing when already closed.
    func close() async {
        let (fd, reader) = state.withLock { s in
            defer {
                s.fd = -1
                s.reader = nil
            }
            return (s.fd, s.reader)
        }
        await reader?.stop()
        if fd >= 0 { _ = Glibc.close(fd) }
    }
}
