/// What a server answers to one request packet.
public struct SMPServerReply: Sendable {
    /// Response packets to send back, in order; empty when the response is dropped.
    public var responses: [[UInt8]]
    /// Cut the link after sending the responses (a simulated disconnect).
    public var disconnect: Bool

    public init(responses: [[UInt8]], disconnect: Bool = false) {
        self.responses = responses
        self.disconnect = disconnect
    }
}

/// Something that answers SMP request packets: the device simulator, or a test double.
public protocol SMPPacketServer: Sendable {
    /// Handles one request packet and returns the reply.
    func handle(_ packet: [UInt8]) async -> SMPServerReply
}
