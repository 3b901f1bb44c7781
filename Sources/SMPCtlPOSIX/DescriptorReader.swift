#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
import SMPCtlLocking
public import SMPCtlTransport

/// Reads a file descriptor on the shared ``ReadinessLoop`` and hands every chunk to a closure.
///
/// The closure runs on the loop thread; it must be quick and thread-safe. After `stop()` returns
/// it is not called again, and the caller may close the descriptor.
package final class DescriptorReader: Sendable {
    /// What the reader reports.
    package enum Output: Sendable {
        case bytes([UInt8])
        case closed(Int32?)
    }

    private let watch: UInt64
    private let loop: ReadinessLoop

    /// Starts reading `fd`, up to `bufferSize` bytes per read.
    ///
    /// For datagram and seqpacket sockets pass `datagrams: true`: an empty read is then an empty
    /// datagram, not end of file, unless the peer hung up (a BlueZ `AcquireNotify` socket). A
    /// refused datagram (`ECONNREFUSED`, ICMP port unreachable on a connected UDP socket) ends
    /// the reader with that code, so the client fails at once instead of timing out.
    package init(fd: Int32, bufferSize: Int, datagrams: Bool = false, loop: ReadinessLoop = .shared,
        onOutput: @escaping @Sendable (Output) -> Void)
    {
        let size = max(1, bufferSize)
        // The loop runs one handler at a time, so one buffer serves every read.
        let buffer = LockedValue([UInt8](repeating: 0, count: size))
        self.loop = loop
        watch = loop.add(fd: fd) { revents in
            if revents & Int16(POLLNVAL) != 0 {
                onOutput(.closed(EBADF))
                return false
            }
            // A datagram socket is read until it is empty (up to 16 datagrams): the answers to a
            // window of requests often wait together, and each poll round costs a pass over every
            // descriptor. A stream gets one read per round, as before.
            var result: Result<[UInt8], Errno> = .success([])
            for _ in 0..<(datagrams ? 16 : 1) {
                result = buffer.withLock { buffer -> Result<[UInt8], Errno> in
                    buffer.withUnsafeMutableBytes { raw in
                        valueOrErrno {
                            datagrams ? recv(fd, raw.baseAddress, size, Int32(MSG_DONTWAIT)) : read(fd, raw.baseAddress, size)
                        }.map { Array(raw.prefix($0)) }
                    }
                }
                guard datagrams, case .success(let bytes) = result, !bytes.isEmpty else { break }
                onOutput(.bytes(bytes))
            }
            if datagrams, case .success(let bytes) = result, !bytes.isEmpty { return true }
            switch result {
            case .success(let bytes) where !bytes.isEmpty:
                onOutput(.bytes(bytes))
                return true
            case .success:
                let hungUp = revents & Int16(POLLHUP | POLLERR) != 0
                if datagrams, !hungUp {
                    onOutput(.bytes([]))
                    return true
                }
                // End of file: the other side of a PTY, a stream or a seqpacket socket closed.
                onOutput(.closed(nil))
                return false
            case .failure(let error) where error.code == EAGAIN || error.code == EWOULDBLOCK:
                return true
            case .failure(let error):
                onOutput(.closed(error.code))
                return false
            }
        }
    }

    /// Stops reading; the closure is not called after this returns.
    package func stop() async {
        await loop.remove(watch)
    }
}

/// Writes all of `bytes` to `fd`, waiting with poll when the descriptor is full.
package func writeAll(fd: Int32, _ bytes: [UInt8]) throws(SMPTransportError) {
    if case .failure(let error) = FileDescriptor(rawValue: fd).writeAll(bytes) {
        throw SMPTransportError(.sendFailed, "write failed", errno: error.code)
    }
}

/// Sends one datagram on a connected socket; returns `errno` on failure (`EMSGSIZE` when only
/// part of it went). Waits at most a few seconds while the socket's buffer is full.
package func sendDatagram(fd: Int32, _ bytes: [UInt8]) -> Int32? {
    for _ in 0..<10 {
        let sent = valueOrErrno { bytes.withUnsafeBytes { send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) } }
        switch sent {
        case .success(let count): return count == bytes.count ? nil : EMSGSIZE
        case .failure(let error) where error.code == EAGAIN || error.code == EWOULDBLOCK:
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = valueOrErrno { poll(&descriptor, 1, 1000) }
        case .failure(let error): return error.code
        }
    }
    return EAGAIN
}

/// Closes a descriptor (a name that does not clash with `close()` methods).
package func closeDescriptor(_ fd: Int32) {
    FileDescriptor(rawValue: fd).close()
}

/// A transport's open descriptor and its reader thread, swapped and closed as one.
package final class OpenDescriptor: Sendable {
    private struct State {
        var fd: Int32 = -1
        var reader: DescriptorReader?
    }

    private let state = LockedValue(State())

    /// The open descriptor, or `nil` when closed.
    package var fd: Int32? {
        let fd = state.withLock { $0.fd }
        return fd >= 0 ? fd : nil
    }

    /// Records a newly opened descriptor and the thread reading it.
    package func install(fd: Int32, reader: DescriptorReader) {
        state.withLock {
            $0.fd = fd
            $0.reader = reader
        }
    }

    /// Stops the reader and closes the descriptor; does nothing when already closed.
    package func close() async {
        let (fd, reader) = state.withLock { s in
            defer {
                s.fd = -1
                s.reader = nil
            }
            return (s.fd, s.reader)
        }
        await reader?.stop()
        if fd >= 0 { closeDescriptor(fd) }
    }
}
