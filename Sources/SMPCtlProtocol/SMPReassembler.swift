/// Reassembles SMP packets from a byte stream cut arbitrarily, such as BLE GATT notifications.
///
/// There is no framing besides the SMP header: a packet is complete after its 8 header bytes
/// and the `length` body bytes the header announces.
public struct SMPReassembler: Sendable {
    /// The largest whole packet (header and body) accepted, at least 8.
    public let maxPacketLength: Int

    /// Bytes of the packet in progress.
    private var buffer: [UInt8] = []
    /// The whole length of the packet in progress, once its header is known.
    private var expectedLength: Int?

    /// Creates a reassembler that accepts packets of at most `maxPacketLength` bytes (header included).
    public init(maxPacketLength: Int) {
        self.maxPacketLength = max(SMPHeader.size, maxPacketLength)
    }

    /// Bytes of the packet in progress held so far.
    public var bufferedCount: Int { buffer.count }

    /// Drops the packet in progress.
    public mutating func reset() {
        buffer = []
        expectedLength = nil
    }

    /// Consumes one fragment and returns every packet it completed, in order.
    ///
    /// - Throws: ``SMPDecodingError/Code/bodyTooLarge`` when a header announces a packet over
    ///   ``maxPacketLength``. The reassembler then resets: the rest of this fragment and any
    ///   packets completed earlier in this same call are dropped, and later input starts a new packet.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(SMPDecodingError) -> [[UInt8]] {
        let input = Array(bytes)
        var packets: [[UInt8]] = []
        var index = 0
        while index < input.count {
            let total: Int
            if let expectedLength {
                total = expectedLength
            } else {
                let take = min(SMPHeader.size - buffer.count, input.count - index)
                buffer.append(contentsOf: input[index..<(index + take)])
                index += take
                guard buffer.count == SMPHeader.size else { break }
                let length = Int(buffer[2]) << 8 | Int(buffer[3])
                total = SMPHeader.size + length
                guard total <= maxPacketLength else {
                    reset()
                    throw SMPDecodingError(
                        .bodyTooLarge, "a packet of \(total) bytes exceeds the limit of \(maxPacketLength)")
                }
                expectedLength = total
                buffer.reserveCapacity(total)
            }
            let take = min(total - buffer.count, input.count - index)
            buffer.append(contentsOf: input[index..<(index + take)])
            index += take
            if buffer.count == total {
                packets.append(buffer)
                buffer = []
                expectedLength = nil
            }
        }
        return packets
    }
}
