/// What a server answers to one request packet.
public struct SMPServerReply: Sendable {
    /// Response packets to send back, in order; empty when the response is dropped.
    public var responses: [[UInt8]]
    /// Cut the link after sending the responses (a simulated disconnect).
    public var disconnect: Bool
    /// When to deliver the responses (an emulated slow link); `nil` delivers at once.
    /// Endpoints keep replies in order and never hold up the next request for this.
    public var deliverAt: ContinuousClock.Instant?

    public init(responses: [[UInt8]], disconnect: Bool = false, deliverAt: ContinuousClock.Instant? = nil) {
        self.responses = responses
        self.disconnect = disconnect
        self.deliverAt = deliverAt
    }
}

/// What a UDP endpoint does with a datagram longer than ``SMPServerFrameLimits/udpMTU``.
public enum UDPOversizeHandling: String, Sendable, Hashable, CaseIterable {
    /// Lose it without an answer, as when the IP layer drops a datagram it cannot take whole.
    case drop
    /// Keep its first `udpMTU` bytes, as Zephyr's `zsock_recvfrom` into a `udpMTU`-byte buffer
    /// does: the SMP header then claims more bytes than arrived, which Zephyr answers with
    /// `rc 9` (MGMT_ERR_ECORRUPT, `smp_process_request_packet` in subsys/mgmt/mcumgr/smp/src/smp.c).
    case truncate
}

/// The frame limits of a server's SMP transports, as a Zephyr device applies them. Endpoints
/// lose over-size frames silently (no answer), as Zephyr's transports do.
///
/// Zephyr holds every request in one net_buf of `CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE` bytes,
/// the `buf_size` that mcumgr params reports (subsys/mgmt/mcumgr/transport/src/smp.c
/// `smp_packet_alloc`, grp/os_mgmt/src/os_mgmt.c `os_mgmt_mcumgr_params`):
/// - **serial**: `mcumgr_serial_decode_frag` (transport/src/serial_util.c) base64-decodes each
///   frame into that net_buf's tailroom, which also holds the 2-byte length and the 2-byte CRC,
///   so a packet larger than `netbufSize − 4` fails `base64_decode` and the frame is dropped;
/// - **UDP**: `smp_udp_receive_thread` (transport/src/smp_udp.c) receives into a
///   `CONFIG_MCUMGR_TRANSPORT_UDP_MTU`-byte buffer (default 1500) and copies that into the net_buf;
/// - **BLE**: with `CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY`, `smp_reassembly_collect`
///   (transport/src/smp_reassembly.c) gathers writes until the header's length is reached and
///   refuses a packet over `netbufSize`; without it `smp_bt_chr_write` (transport/src/smp_bt.c)
///   takes each write as one whole packet and refuses a write over the net_buf's tailroom.
public struct SMPServerFrameLimits: Sendable, Hashable {
    /// `CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE`; `nil` takes packets of any size.
    public var netbufSize: Int?
    /// `CONFIG_MCUMGR_TRANSPORT_UDP_MTU`, the largest datagram taken; `nil` takes any.
    public var udpMTU: Int?
    /// What happens to a longer datagram.
    public var udpOversize: UDPOversizeHandling
    /// Whether a BLE request may span several writes (`CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY`).
    public var bleReassembly: Bool

    public init(netbufSize: Int? = nil, udpMTU: Int? = nil, udpOversize: UDPOversizeHandling = .drop,
        bleReassembly: Bool = true)
    {
        self.netbufSize = netbufSize
        self.udpMTU = udpMTU
        self.udpOversize = udpOversize
        self.bleReassembly = bleReassembly
    }

    /// No limits: every frame reaches the server.
    public static let unlimited = SMPServerFrameLimits()

    /// The largest packet (header included) one serial frame sequence can carry: the net_buf
    /// also holds the 2-byte length and the 2-byte CRC (serial_util.c).
    public var serialPacketLimit: Int? { netbufSize.map { max(0, $0 - 4) } }
}

/// Something that answers SMP request packets: the device simulator, or a test double.
public protocol SMPPacketServer: Sendable {
    /// Handles one request packet and returns the reply.
    func handle(_ packet: [UInt8]) async -> SMPServerReply
    /// The frame limits endpoints apply before handing a packet to ``handle(_:)``.
    var frameLimits: SMPServerFrameLimits { get }
}

extension SMPPacketServer {
    /// No limits, unless the server says otherwise.
    public var frameLimits: SMPServerFrameLimits { .unlimited }
}

/// Zephyr's BLE request reassembly (`smp_reassembly_collect` and `smp_bt_chr_write` in
/// subsys/mgmt/mcumgr/transport/src/smp_reassembly.c and smp_bt.c), write by write.
///
/// The first write of a packet must hold the 8-byte header; its length field fixes how many
/// bytes follow. A first write shorter than a header, a packet longer than the net_buf, or a
/// write that goes past the expected length is refused: for a write without response nothing
/// reaches the client, and a refusal after the first write drops the whole packet gathered so
/// far. Without reassembly each write is a packet of its own, refused when over the net_buf.
public struct SMPServerReassembly: Sendable {
    /// What one write did.
    public enum Outcome: Sendable, Hashable {
        /// Gathered; more bytes are expected.
        case incomplete
        /// A whole packet to hand to the SMP layer.
        case packet([UInt8])
        /// Refused; `discarded` bytes gathered before (including this write's) are lost.
        case refused(discarded: Int)
    }

    public let netbufSize: Int?
    public let reassembles: Bool
    private var current: [UInt8]?
    private var expected = 0

    public init(netbufSize: Int?, reassembles: Bool) {
        self.netbufSize = netbufSize
        self.reassembles = reassembles
    }

    /// Whether a packet is partly gathered.
    public var inProgress: Bool { current != nil }

    /// Takes one write.
    public mutating func collect(_ write: [UInt8]) -> Outcome {
        let limit = netbufSize ?? Int.max
        guard reassembles else {
            // smp_bt_chr_write without reassembly: net_buf_tailroom(nb) < len → refused.
            return write.count > limit ? .refused(discarded: write.count) : .packet(write)
        }
        if current == nil {
            // -ENODATA: not enough bytes for the header.
            guard write.count >= 8 else { return .refused(discarded: write.count) }
            let total = (Int(write[2]) << 8 | Int(write[3])) + 8
            // -ENOSR: the packet would not fit the net_buf; -EOVERFLOW: more than the header claims.
            guard write.count <= limit, total <= limit, write.count <= total else {
                return .refused(discarded: write.count)
            }
            current = []
            expected = total
        }
        guard var gathered = current else { return .refused(discarded: write.count) }
        guard write.count <= expected else {
            // -EOVERFLOW on a buffer already started: smp_bt_chr_write drops the whole packet.
            current = nil
            expected = 0
            return .refused(discarded: gathered.count + write.count)
        }
        gathered += write
        expected -= write.count
        if expected == 0 {
            current = nil
            return .packet(gathered)
        }
        current = gathered
        return .incomplete
    }

    /// Drops a partly gathered packet (`smp_reassembly_drop`, as on a disconnect or CCC change).
    public mutating func reset() {
        current = nil
        expected = 0
    }
}

/// Delivers replies in order, each no earlier than its `deliverAt`, without blocking the caller.
package final class ReplyScheduler: Sendable {
    private let queue: AsyncStream<(SMPServerReply, @Sendable (SMPServerReply) async -> Void)>.Continuation
    private let worker: Task<Void, Never>

    package init() {
        let (stream, continuation) = AsyncStream<(SMPServerReply, @Sendable (SMPServerReply) async -> Void)>.makeStream()
        queue = continuation
        worker = Task {
            for await (reply, deliver) in stream {
                if let deadline = reply.deliverAt, deadline > ContinuousClock.now {
                    try? await Task.sleep(until: deadline, clock: .continuous)
                }
                await deliver(reply)
            }
        }
    }

    /// Delivers `reply` with `deliver` once its time has come and every earlier reply is out.
    package func schedule(_ reply: SMPServerReply, deliver: @escaping @Sendable (SMPServerReply) async -> Void) {
        queue.yield((reply, deliver))
    }

    deinit {
        queue.finish()
    }
}
