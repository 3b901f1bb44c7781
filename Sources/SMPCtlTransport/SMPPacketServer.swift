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

/// Something that answers SMP request packets: the device simulator, or a test double.
public protocol SMPPacketServer: Sendable {
    /// Handles one request packet and returns the reply.
    func handle(_ packet: [UInt8]) async -> SMPServerReply
}

/// Delivers replies in order, each no earlier than its `deliverAt`, without blocking the caller.
final class ReplyScheduler: Sendable {
    private let queue: AsyncStream<(SMPServerReply, @Sendable (SMPServerReply) async -> Void)>.Continuation
    private let worker: Task<Void, Never>

    init() {
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
    func schedule(_ reply: SMPServerReply, deliver: @escaping @Sendable (SMPServerReply) async -> Void) {
        queue.yield((reply, deliver))
    }

    deinit {
        queue.finish()
    }
}
