/// Something that happens on a transport's receive side.
public enum SMPTransportEvent: Sendable {
    /// One whole SMP packet (header and body) arrived.
    case packet([UInt8])
    /// Bytes that were not SMP, such as console log lines on a shared UART.
    case console([UInt8])
    /// Received bytes that could not be decoded (bad CRC, bad framing).
    case invalid(String)
    /// The link is gone; nothing more will arrive until the transport is opened again.
    case disconnected(SMPTransportError)
}

/// A link to one SMP device. Every transport (UDP, serial, BLE, in-process) implements it.
///
/// A transport is opened with a continuation that receives its events, sends whole SMP
/// packets, and can be closed and opened again (after a device reset, for example).
public protocol SMPTransport: Sendable {
    /// A short description of the link for messages, such as `udp 127.0.0.1:1337`.
    var description: String { get }
    /// What the path carries: the largest write, whether a packet may span writes, and the bytes
    /// of the device's buffer that the framing takes. The client sizes requests from it.
    var framing: SMPFraming { get async }
    /// Opens the link; received events go to `events` until `close()`.
    func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError)
    /// Sends one whole SMP packet.
    func send(_ packet: [UInt8]) async throws(SMPTransportError)
    /// Closes the link. Calling it on a closed transport does nothing.
    func close() async
    /// A model of the link's speed when the transport knows it (a serial baud rate, a BLE MTU),
    /// used to estimate what faster firmware settings would gain.
    var linkModel: LinkModel? { get async }
}

extension SMPTransport {
    public var linkModel: LinkModel? { get async { nil } }
}

/// What a transport's path carries, for sizing requests.
public struct SMPFraming: Sendable, Hashable {
    /// The largest packet (header included) one write or datagram carries.
    public var maximumWrite: Int
    /// Whether the transport can split one packet across several writes (BLE). The client
    /// makes packets larger than ``maximumWrite`` only when the device's buffer shows that it
    /// reassembles them.
    public var splitsAcrossWrites: Bool
    /// The largest packet the transport sends at all (header included).
    public var maximumPacket: Int
    /// Bytes of the device's receive buffer (`buf_size`) that the framing itself uses: 4 on
    /// serial, where Zephyr decodes the length and CRC16 into the same net_buf as the packet
    /// (`subsys/mgmt/mcumgr/transport/src/serial_util.c`, `mcumgr_serial_decode_frag`).
    public var deviceBufferOverhead: Int
    /// Whether ``maximumWrite`` is only what the socket takes, not what the path delivers: a UDP
    /// path with no `?mtu=` may lose larger datagrams on the way (IP fragments that the device
    /// does not reassemble) or at the device (`CONFIG_MCUMGR_TRANSPORT_UDP_MTU`). The client then
    /// learns the largest packet that gets through before it relies on large packets.
    public var learnsLargestPacket: Bool

    public init(maximumWrite: Int, splitsAcrossWrites: Bool = false, maximumPacket: Int? = nil,
        deviceBufferOverhead: Int = 0, learnsLargestPacket: Bool = false)
    {
        self.maximumWrite = maximumWrite
        self.splitsAcrossWrites = splitsAcrossWrites
        self.maximumPacket = maximumPacket ?? maximumWrite
        self.deviceBufferOverhead = deviceBufferOverhead
        self.learnsLargestPacket = learnsLargestPacket
    }
}

/// A transport-level failure, with an errno or a description of what the link said.
public struct SMPTransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable, Hashable {
        /// The address or path is not valid.
        case invalidAddress
        /// The link could not be opened.
        case openFailed
        /// The link is not open.
        case notConnected
        /// The peer or the link went away.
        case disconnected
        /// Sending failed.
        case sendFailed
        /// A packet is larger than the path carries.
        case packetTooLarge
        /// No answer in time.
        case timedOut
        /// The peer refused: nothing listens on the port (ICMP port unreachable).
        case refused
    }

    public var code: Code
    public var reason: String
    /// The `errno` behind the failure, if a system call failed.
    public var errno: Int32?

    public init(_ code: Code, _ reason: String, errno: Int32? = nil) {
        self.code = code
        self.reason = reason
        self.errno = errno
    }

    public var description: String {
        if let errno { return "\(reason) (\(SystemError.describe(errno)))" }
        return reason
    }
}
