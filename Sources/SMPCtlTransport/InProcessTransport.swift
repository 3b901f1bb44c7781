import SMPCtlLocking
public import SMPCtlProtocol

/// A transport to a server in the same process, such as the embedded simulator.
///
/// Requests are handled one at a time in arrival order, as a device's SMP thread does.
/// A reply with `disconnect` cuts the link: the client sees `.disconnected` and must open again.
public final class InProcessTransport: SMPTransport {
    private struct State {
        var events: AsyncStream<SMPTransportEvent>.Continuation?
        var requests: AsyncStream<[UInt8]>.Continuation?
        var worker: Task<Void, Never>?
    }

    private let server: any SMPPacketServer
    private let packetLimit: Int
    private let state = LockedValue(State())

    private let emulatedLink: LinkModel?
    private let bufferOverhead: Int

    /// Creates a transport to `server`; `maximumPacketSize` bounds every request; `linkModel` is the
    /// link the server emulates, if any; `deviceBufferOverhead` is what the server's framing takes
    /// of its buffer (4 for a server that decodes serial console frames, such as MCUboot's recovery).
    public init(
        server: any SMPPacketServer, maximumPacketSize: Int = 65_535 + SMPHeader.size, linkModel: LinkModel? = nil,
        deviceBufferOverhead: Int = 0
    ) {
        self.server = server
        self.packetLimit = maximumPacketSize
        self.emulatedLink = linkModel
        self.bufferOverhead = max(0, deviceBufferOverhead)
    }

    public var linkModel: LinkModel? { emulatedLink }

    public var description: String { "in-process simulator" }
    public var framing: SMPFraming { SMPFraming(maximumWrite: packetLimit, deviceBufferOverhead: bufferOverhead) }

    public func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError) {
        await close()
        let (requests, requestsContinuation) = AsyncStream<[UInt8]>.makeStream()
        let server = self.server
        let scheduler = ReplyScheduler()
        let worker = Task { [weak self] in
            for await request in requests {
                let reply = await server.handle(request)
                if reply.deliverAt != nil {
                    scheduler.schedule(reply) { [weak self] reply in
                        for response in reply.responses { events.yield(.packet(response)) }
                        if reply.disconnect { self?.disconnect(events: events) }
                    }
                    continue
                }
                for response in reply.responses { events.yield(.packet(response)) }
                if reply.disconnect {
                    self?.disconnect(events: events)
                    break
                }
            }
            _ = scheduler
        }
        state.withLock {
            $0.events = events
            $0.requests = requestsContinuation
            $0.worker = worker
        }
    }

    private func disconnect(events: AsyncStream<SMPTransportEvent>.Continuation) {
        state.withLock {
            $0.requests?.finish()
            $0.requests = nil
        }
        events.yield(.disconnected(SMPTransportError(.disconnected, "the simulated device disconnected")))
    }

    public func send(_ packet: [UInt8]) async throws(SMPTransportError) {
        guard packet.count <= packetLimit else {
            throw SMPTransportError(.packetTooLarge, "packet of \(packet.count) bytes exceeds \(packetLimit)")
        }
        guard let requests = state.withLock({ $0.requests }) else {
            throw SMPTransportError(.notConnected, "the in-process link is not open")
        }
        requests.yield(packet)
    }

    public func close() async {
        let worker = state.withLock { s in
            s.requests?.finish()
            s.requests = nil
            s.events = nil
            defer { s.worker = nil }
            return s.worker
        }
        worker?.cancel()
    }
}

