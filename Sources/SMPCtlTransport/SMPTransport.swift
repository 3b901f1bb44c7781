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
    /// The largest SMP packet (header included) this path carries in one `send`.
    var maximumPacketSize: Int { get async }
    /// Opens the link; received events go to `events` until `close()`.
    func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError)
    /// Sends one whole SMP packet.
    func send(_ packet: [UInt8]) async throws(SMPTransportError)
    /// Closes the link. Calling it on a closed transport does nothing.
    func close() async
    /// A model of the link's speed when the transport knows it (a serial baud rate, a BLE MTU),
    /// used to estimate what faster firmware settings would gain.
    var linkModel: LinkModel? { get async }
    /// Tells the transport the device's SMP buffer size (mcumgr params `buf_size`), once known.
    ///
    /// A BLE transport uses it to split packets across writes only when the device reassembles them.
    func useDeviceBufferSize(_ bufferSize: Int) async
}

extension SMPTransport {
    public var linkModel: LinkModel? { get async { nil } }
    /// Most transports carry whole packets and ignore the device's buffer size.
    public func useDeviceBufferSize(_ bufferSize: Int) async {}
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
