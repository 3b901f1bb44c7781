#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
public import SMPCtlTransport

/// A resolved IPv4 or IPv6 socket address.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    let storage: [UInt8]
    let family: Int32
    public let description: String

    /// Resolves `host` (a name, an IPv4 address, or an IPv6 address with or without brackets) and `port`.
    public static func resolve(host: String, port: UInt16) throws(SMPTransportError) -> SocketAddress {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(bare, String(port), &hints, &result)
        guard status == 0, let first = result else {
            let text = gai_strerror(status).map { String(cString: $0) } ?? "error \(status)"
            throw SMPTransportError(.invalidAddress, "cannot resolve \(host): \(text)")
        }
        defer { freeaddrinfo(result) }
        guard let sockaddrPointer = first.pointee.ai_addr else {
            throw SMPTransportError(.invalidAddress, "no address for \(host)")
        }
        let length = Int(first.pointee.ai_addrlen)
        guard length > 0, length <= MemoryLayout<sockaddr_storage>.size else {
            throw SMPTransportError(.invalidAddress, "the address of \(host) has an unexpected length \(length)")
        }
        let bytes = [UInt8](UnsafeRawBufferPointer(start: UnsafeRawPointer(sockaddrPointer), count: length))
        let display = first.pointee.ai_family == AF_INET6 ? "[\(bare)]:\(port)" : "\(bare):\(port)"
        return SocketAddress(storage: bytes, family: first.pointee.ai_family, description: display)
    }

    init(storage: [UInt8], family: Int32, description: String) {
        self.storage = storage
        self.family = family
        self.description = description
    }

    /// Calls `body` with the address as a `sockaddr`, copied into properly aligned storage.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var aligned = sockaddr_storage()
        withUnsafeMutableBytes(of: &aligned) { raw in
            raw.copyBytes(from: storage.prefix(MemoryLayout<sockaddr_storage>.size))
        }
        return withUnsafePointer(to: &aligned) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(storage.count)) }
        }
    }
}

/// SMP over UDP: one SMP packet per datagram (Zephyr's default port is 1337).
public final class UDPTransport: SMPTransport {
    /// Zephyr's default SMP UDP port.
    public static let defaultPort: UInt16 = 1337

    public let address: SocketAddress
    private let datagramLimit: Int
    private let limitIsKnown: Bool
    private let link = OpenDescriptor()

    /// The largest UDP payload in one IPv4 datagram (65,535 − 20 − 8).
    public static let largestDatagram = 65_507

    /// Creates a transport to `address`. `maximumDatagram` is the path's known limit (`?mtu=`);
    /// `nil` lets the client learn it (see ``SMPFraming/learnsLargestPacket``).
    public init(address: SocketAddress, maximumDatagram: Int? = nil) {
        self.address = address
        self.datagramLimit = min(maximumDatagram ?? Self.largestDatagram, Self.largestDatagram)
        self.limitIsKnown = maximumDatagram != nil
    }

    public var description: String { "udp \(address)" }
    public var framing: SMPFraming {
        SMPFraming(maximumWrite: datagramLimit, learnsLargestPacket: !limitIsKnown)
    }

    public func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError) {
        await close()
        let fd = socket(address.family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SMPTransportError(.openFailed, "cannot create a UDP socket", errno: errno) }
        let connected = address.withSockaddr { connect(fd, $0, $1) }
        guard connected == 0 else {
            let code = errno
            closeDescriptor(fd)
            throw SMPTransportError(.openFailed, "cannot connect the UDP socket to \(address)", errno: code)
        }
        let reader = DescriptorReader(fd: fd, bufferSize: 65536, datagrams: true) { output in
            switch output {
            case .bytes(let datagram): events.yield(.packet(datagram))
            case .closed(let code):
                events.yield(.disconnected(Self.closedError(code, address: self.address)))
            }
        }
        link.install(fd: fd, reader: reader)
    }

    public func send(_ packet: [UInt8]) async throws(SMPTransportError) {
        guard packet.count <= datagramLimit else {
            throw SMPTransportError(.packetTooLarge, "packet of \(packet.count) bytes exceeds the UDP limit of \(datagramLimit)")
        }
        guard let fd = link.fd else { throw SMPTransportError(.notConnected, "the UDP transport is not open") }
        if let code = sendDatagram(fd: fd, packet) {
            if code == ECONNREFUSED { throw Self.closedError(code, address: address) }
            throw SMPTransportError(.sendFailed, "UDP send to \(address) failed", errno: code)
        }
    }

    public func close() async {
        await link.close()
    }

    /// A connected UDP socket reports ICMP "port unreachable" as ECONNREFUSED at once: say so
    /// rather than waiting for timeouts.
    static func closedError(_ code: Int32?, address: SocketAddress) -> SMPTransportError {
        if code == ECONNREFUSED {
            return SMPTransportError(
                .refused,
                "nothing answers on UDP \(address): the host reports the port unreachable. Check the port (Zephyr's default is 1337, CONFIG_MCUMGR_TRANSPORT_UDP_PORT) and that the device's SMP UDP server is running (CONFIG_MCUMGR_TRANSPORT_UDP)",
                errno: code)
        }
        return SMPTransportError(.disconnected, "UDP socket closed", errno: code)
    }
}
