#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SMPCtlProtocol

/// A bare UDP socket connected to a local endpoint, so these tests do not depend on the client's
/// own transports.
final class RawUDPClient {
    private let fd: Int32

    init?(port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, bytes.count, 0) }
    }

    /// The next datagram, or `nil` when none arrives within `milliseconds`. It waits without
    /// blocking a thread of the cooperative pool, which the endpoint's task needs.
    func receive(milliseconds: Int) async -> [UInt8]? {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while ContinuousClock.now < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) > 0 {
                var buffer = [UInt8](repeating: 0, count: 65536)
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 65536, 0) }
                return count >= 0 ? Array(buffer[0..<count]) : nil
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }
}

/// The terminal side of a pseudo-terminal endpoint, with SMP console framing.
final class RawSerialClient {
    private let fd: Int32
    private var decoder = SMPSerialDecoder(maxPacketLength: 65536)
    private var pending: [[UInt8]] = []

    init?(path: String) {
        fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { return nil }
    }

    deinit { close(fd) }

    func send(packet: [UInt8]) {
        let frame = SMPSerialFraming.encode(packet: packet)
        var offset = 0
        while offset < frame.count {
            let written = frame[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written > 0 {
                offset += written
            } else {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 100)
            }
        }
    }

    /// The next decoded packet, or `nil` when none arrives within `milliseconds`.
    func receive(milliseconds: Int) async -> [UInt8]? {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while pending.isEmpty {
            guard ContinuousClock.now < deadline else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 0) > 0 else {
                try? await Task.sleep(for: .milliseconds(5))
                continue
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            guard count > 0 else { continue }
            for event in decoder.feed(Array(buffer[0..<count])) {
                if case .packet(let packet) = event { pending.append(packet) }
            }
        }
        return pending.removeFirst()
    }
}

/// An echo request packet of exactly `size` bytes (header included), `size` from 14 to 65 000.
func echoPacket(size: Int, sequence: UInt8 = 1) -> [UInt8] {
    // Body: map(1) "d" text(n): 0xA1 0x61 0x64, then a text head of 1, 2 or 3 bytes.
    let fixed = SMPHeader.size + 3
    let textLength: Int
    switch size - fixed {
    case ...24: textLength = size - fixed - 1
    case 25...257: textLength = size - fixed - 2
    default: textLength = size - fixed - 3
    }
    let packet = OSManagement.EchoRequest(String(repeating: "x", count: max(0, textLength)))
        .packet(sequence: sequence).bytes
    return packet
}
