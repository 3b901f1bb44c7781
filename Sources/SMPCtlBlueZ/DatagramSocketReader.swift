#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
import Foundation
import Synchronization

/// Closes a descriptor (a name that does not clash with `close()` methods).
func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}

/// Reads datagrams from a socket on a dedicated thread, such as BlueZ's `AcquireNotify` socket.
///
/// Each datagram (at most `maximumDatagram` bytes) goes to `onDatagram` on the reader thread, in order.
/// When the peer hangs up or a read fails, `onClosed` runs once and the thread ends.
final class DatagramSocketReader: Sendable {
    private final class Flags: Sendable {
        let stopped = Mutex(false)
        let finished = Mutex(false)
    }

    private let flags = Flags()

    init(fd: Int32, maximumDatagram: Int, name: String, onDatagram: @escaping @Sendable ([UInt8]) -> Void,
        onClosed: @escaping @Sendable (Int32?) -> Void)
    {
        let size = max(1, maximumDatagram)
        let thread = Thread { [flags] in
            var buffer = [UInt8](repeating: 0, count: size)
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while !flags.stopped.withLock({ $0 }) {
                descriptor.revents = 0
                let ready = poll(&descriptor, 1, 50)
                if ready < 0 {
                    if errno == EINTR { continue }
                    onClosed(errno)
                    break
                }
                if ready == 0 || flags.stopped.withLock({ $0 }) { continue }
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, size, Int32(MSG_DONTWAIT)) }
                if count > 0 {
                    onDatagram(Array(buffer[0..<count]))
                } else if count == 0 {
                    // A zero-length read on a seqpacket socket whose peer left is end of file.
                    if descriptor.revents & Int16(POLLHUP) != 0 || descriptor.revents & Int16(POLLERR) != 0 {
                        onClosed(nil)
                        break
                    }
                } else {
                    let code = errno
                    if code == EINTR || code == EAGAIN { continue }
                    onClosed(code)
                    break
                }
            }
            flags.finished.withLock { $0 = true }
        }
        thread.name = name
        thread.start()
    }

    /// Stops the thread and waits briefly until it has (the descriptor stays open; the caller closes it).
    func stop() async {
        flags.stopped.withLock { $0 = true }
        for _ in 0..<100 {
            if flags.finished.withLock({ $0 }) { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// Sends one datagram; returns `errno` on failure.
func sendDatagram(fd: Int32, _ bytes: [UInt8]) -> Int32? {
    while true {
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
        if sent == bytes.count { return nil }
        if sent >= 0 { return EMSGSIZE }
        let code = errno
        if code == EINTR { continue }
        if code == EAGAIN {
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&descriptor, 1, 1000)
            continue
        }
        return code
    }
}

/// A description of an `errno` value.
func describeErrno(_ code: Int32) -> String { String(cString: strerror(code)) }
