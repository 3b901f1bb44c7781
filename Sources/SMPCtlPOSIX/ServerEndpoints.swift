#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
import Foundation
import SMPCtlLocking
import SMPCtlProtocol
public import SMPCtlTransport

/// Serves an ``SMPPacketServer`` on a UDP socket: one request per datagram, replies to its sender.
public final class UDPServerEndpoint: Sendable {
    /// The port the socket is bound to (the one the system chose when 0 was asked).
    public let boundPort: UInt16
    private let watch: UInt64
    private let inbox: DatagramInbox

    /// Binds `host:port` (port 0 picks a free port) and starts answering with `server`.
    public init(host: String, port: UInt16, server: any SMPPacketServer) throws(SMPTransportError) {
        let address = try SocketAddress.resolve(host: host, port: port)
        let fd = socket(address.family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SMPTransportError(.openFailed, "cannot create a UDP socket", errno: errno) }
        // No SO_REUSEADDR: UDP has no TIME_WAIT to skip, and on Linux it lets a second socket
        // bind a port already in use (and take its datagrams), even one the system chose for port 0.
        guard address.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
            let code = errno
            closeDescriptor(fd)
            throw SMPTransportError(.openFailed, "cannot bind UDP \(address)", errno: code)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        // sin_port and sin6_port sit at the same offset.
        boundPort = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }

        let inbox = DatagramInbox()
        let buffer = LockedValue([UInt8](repeating: 0, count: 65536))
        watch = ReadinessLoop.shared.add(fd: fd) { revents in
            guard revents & Int16(POLLNVAL) == 0 else {
                inbox.finish()
                return false
            }
            // Every datagram waiting (up to 64), not one per poll round: a fleet's simulator
            // polls hundreds of sockets, and each round costs a pass over all of them.
            for _ in 0..<64 {
                var source = sockaddr_storage()
                var sourceLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let received = buffer.withLock { buffer -> [UInt8]? in
                    let count = withUnsafeMutablePointer(to: &source) { sourcePointer in
                        sourcePointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                            buffer.withUnsafeMutableBytes { raw in
                                valueOrErrno { recvfrom(fd, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT), address, &sourceLength) }
                            }
                        }
                    }
                    guard case .success(let length) = count else { return nil }
                    return Array(buffer[0..<length])
                }
                guard let received else { break }
                inbox.push(Datagram(bytes: received, source: source, sourceLength: sourceLength))
            }
            return true
        }
        self.inbox = inbox
        let limits = server.frameLimits
        Task {
            let scheduler = ReplyScheduler()
            while let request = await inbox.next() {
                var packet = request.bytes
                // smp_udp.c (smp_udp_receive_thread): zsock_recvfrom into a
                // CONFIG_MCUMGR_TRANSPORT_UDP_MTU-byte buffer, then net_buf_add_mem into a
                // CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE net_buf. A longer datagram never reaches
                // the SMP layer whole: it is lost, or cut to the buffer (see UDPOversizeHandling).
                if let mtu = limits.udpMTU, packet.count > mtu {
                    guard limits.udpOversize == .truncate else { continue }
                    packet = Array(packet.prefix(mtu))
                }
                if let netbuf = limits.netbufSize, packet.count > netbuf { continue }
                let reply = await server.handle(packet)
                let destination = request
                scheduler.schedule(reply) { reply in
                    var source = destination.source
                    for response in reply.responses {
                        _ = withUnsafePointer(to: &source) { sourcePointer in
                            sourcePointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                                response.withUnsafeBytes {
                                    sendto(fd, $0.baseAddress, response.count, 0, address, destination.sourceLength)
                                }
                            }
                        }
                    }
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
            closeDescriptor(fd)
        }
    }

    /// Stops serving; the socket closes once pending replies are sent.
    public func stop() {
        let watch = self.watch
        let inbox = self.inbox
        Task {
            await ReadinessLoop.shared.remove(watch)
            inbox.finish()
        }
    }
}

/// One received datagram and where it came from.
private struct Datagram: Sendable {
    var bytes: [UInt8]
    var source: sockaddr_storage
    var sourceLength: socklen_t
}

/// Datagrams from the loop thread to the endpoint's task, in order: a queue and at most one waiting
/// reader. It does what an unbounded AsyncStream did here for less: a fleet's simulator passes
/// every request of hundreds of devices through one of these, and AsyncStream's generic storage
/// (unspecialized, with metadata look-ups on each yield and next) was a tenth of its time.
private final class DatagramInbox: Sendable {
    private struct State {
        var queue: [Datagram] = []
        var head = 0
        var reader: CheckedContinuation<Datagram?, Never>?
        var finished = false

        /// The next datagram; `.some(nil)` once finished and drained; `nil` when the reader must wait.
        mutating func take() -> Datagram?? {
            if head < queue.count {
                let datagram = queue[head]
                head += 1
                if head == queue.count {
                    queue.removeAll(keepingCapacity: true)
                    head = 0
                }
                return .some(datagram)
            }
            return finished ? .some(nil) : nil
        }
    }

    private let state = LockedValue(State())

    /// Queues a datagram, or hands it to the waiting reader; dropped after ``finish()``.
    func push(_ datagram: Datagram) {
        let reader = state.withLock { state -> CheckedContinuation<Datagram?, Never>? in
            guard !state.finished else { return nil }
            if let reader = state.reader {
                state.reader = nil
                return reader
            }
            state.queue.append(datagram)
            return nil
        }
        reader?.resume(returning: datagram)
    }

    /// No more datagrams: the reader gets those queued, then `nil`.
    func finish() {
        let reader = state.withLock { state -> CheckedContinuation<Datagram?, Never>? in
            state.finished = true
            defer { state.reader = nil }
            return state.reader
        }
        reader?.resume(returning: nil)
    }

    /// The next datagram, waiting for one; `nil` once finished. One reader at a time.
    func next() async -> Datagram? {
        if let ready = state.withLock({ $0.take() }) { return ready }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Datagram?, Never>) in
            let ready = state.withLock { state -> Datagram?? in
                if let ready = state.take() { return ready }
                state.reader = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// Serves an ``SMPPacketServer`` on a new pseudo-terminal with SMP console framing.
///
/// Clients open ``path`` as a serial port. The server keeps the terminal side open itself, so a
/// client may close and reopen it.
public final class PTYServerEndpoint: Sendable {
    /// The terminal path clients open, such as `/dev/pts/3`.
    public let path: String
    private let master: Int32
    private let slave: Int32
    private let reader: DescriptorReader

    /// Creates the pseudo-terminal and starts answering with `server`.
    ///
    /// `maximumPacketSize` bounds the packets decoded; `nil` takes the server's net_buf limit
    /// (``SMPServerFrameLimits/serialPacketLimit``, `buf_size − 4`), or 8192 without one. A frame
    /// sequence whose length prefix asks for more is dropped without an answer, as Zephyr's
    /// `mcumgr_serial_decode_frag` (subsys/mgmt/mcumgr/transport/src/serial_util.c) fails to
    /// base64-decode it into the net_buf's tailroom and frees the buffer.
    public init(server: any SMPPacketServer, maximumPacketSize: Int? = nil) throws(SMPTransportError) {
        let maximumPacketSize = maximumPacketSize ?? server.frameLimits.serialPacketLimit ?? 8192
        let master = try Self.openPseudoTerminal()
        let path = master.path
        let slave: Int32
        switch FileDescriptor.open(path, O_RDWR | O_NOCTTY) {
        case .success(let descriptor): slave = descriptor.rawValue
        case .failure(let error):
            closeDescriptor(master.fd)
            throw SMPTransportError(.openFailed, "cannot open \(path)", errno: error.code)
        }
        do throws(SMPTransportError) {
            try Terminal.makeRaw(fd: slave, baud: nil)
        } catch {
            closeDescriptor(slave)
            closeDescriptor(master.fd)
            throw error
        }
        let masterFD = master.fd
        self.path = path
        self.master = masterFD
        self.slave = slave
        let (requests, continuation) = AsyncStream<[UInt8]>.makeStream()
        let box = DecoderBox(maxPacketLength: maximumPacketSize)
        reader = DescriptorReader(fd: masterFD, bufferSize: 4096) { output in
            if case .bytes(let bytes) = output {
                for event in box.feed(bytes) {
                    if case .packet(let packet) = event { continuation.yield(packet) }
                }
            }
        }
        Task {
            let scheduler = ReplyScheduler()
            for await request in requests {
                let reply = await server.handle(request)
                scheduler.schedule(reply) { reply in
                    for response in reply.responses {
                        try? writeAll(fd: masterFD, SMPSerialFraming.encode(packet: response))
                    }
                }
            }
        }
    }

    /// Opens `/dev/ptmx` and unlocks the new terminal, as `posix_openpt`, `unlockpt` and `ptsname` do.
    private static func openPseudoTerminal() throws(SMPTransportError) -> (fd: Int32, path: String) {
        // Linux ioctl numbers, the same on every architecture Swift supports here.
        let setLock: UInt = 0x4004_5431  // TIOCSPTLCK
        let getNumber: UInt = 0x8004_5430  // TIOCGPTN
        let fd: Int32
        switch FileDescriptor.open("/dev/ptmx", O_RDWR | O_NOCTTY) {
        case .success(let descriptor): fd = descriptor.rawValue
        case .failure(let error): throw SMPTransportError(.openFailed, "cannot open /dev/ptmx", errno: error.code)
        }
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard ioctl(fd, setLock, &unlock) == 0, ioctl(fd, getNumber, &number) == 0 else {
            let code = errno
            closeDescriptor(fd)
            throw SMPTransportError(.openFailed, "cannot unlock the pseudo-terminal", errno: code)
        }
        return (fd, "/dev/pts/\(number)")
    }

    /// Writes console text to the terminal, as a device's log output would appear.
    public func writeConsole(_ text: String) {
        try? writeAll(fd: master, Array(text.utf8))
    }

    /// Stops serving and closes the terminal.
    public func stop() async {
        await reader.stop()
        closeDescriptor(slave)
        closeDescriptor(master)
    }
}
