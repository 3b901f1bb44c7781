public import SMPCtlProtocol
public import SMPCtlTransport
import SMPCtlCBOR

/// Settings for an ``SMPClient``.
public struct SMPClientOptions: Sendable {
    /// The longest wait for a response. Below it the wait adapts to the round trips measured on the
    /// link (see ``RoundTripEstimator``); requests given an explicit timeout use that instead.
    public var timeout: Duration = .seconds(20)
    /// The shortest adaptive timeout.
    public var minimumTimeout: Duration = .milliseconds(250)
    /// How many times a request is sent again after a timeout or a malformed answer.
    public var retries: Int = 3
    /// How long, in total, the client waits on a device that answers "busy" (rc 10) before it gives up.
    public var busyBudget: Duration = .seconds(6)
    /// The first wait after "busy"; it doubles up to one second.
    public var busyDelay: Duration = .milliseconds(50)
    /// Use only this SMP version; `nil` starts with v2 and falls back to v1 when the device needs it.
    public var forcedVersion: SMPVersion?
    /// The largest response accepted.
    public var maximumResponseBody = Int(UInt16.max)
    /// Receives diagnostic lines (every frame as hex, ignored responses), for `-v`.
    public var log: (@Sendable (String) -> Void)?
    /// Whether `log` gets every frame as hex. A log that keeps only the other lines (a fleet's
    /// log per device) turns it off, so that no hex is made for it: making it cost most of a
    /// 200-device fleet's CPU time.
    public var logsFrames = true
    /// Receives notable events (retries, busy back-off, reconnects) for progress displays.
    public var notice: (@Sendable (SMPClientNotice) -> Void)?
    /// Upload chunks kept in flight when an upload's ``UploadOptions/window`` is not set (a saved
    /// profile's window); `nil` uses ``SMPClient/defaultUploadWindow``.
    public var uploadWindow: Int?

    public init() {}
}

/// Something a progress display may want to show: the client is retrying or waiting.
public enum SMPClientNotice: Sendable, Hashable {
    /// A request got no answer in time and is sent again.
    case retry(attempt: Int, of: Int)
    /// The device answered busy; the client waits this long.
    case busy(wait: Duration)
    /// The link dropped and the client reconnects.
    case reconnecting(attempt: Int)
    /// The upload continues an earlier one at this offset.
    case resumed(offset: Int)
    /// The path's largest packet was learned (UDP without `?mtu=`).
    case pathLimit(bytes: Int)
    /// Chunks reached the device out of order (a link with several bearers, such as BLE with
    /// EATT): from now on every request fits one write of `writeLimit` bytes.
    case reordering(writeLimit: Int)
}

/// How one request is sent: its timeout, retries and busy budget. `nil` fields take the client's options.
public struct SMPRequestPolicy: Sendable {
    /// A fixed timeout; `nil` uses the adaptive timeout under ``SMPClientOptions/timeout``.
    public var timeout: Duration?
    /// Resends after a timeout or a malformed answer.
    public var retries: Int?
    /// Total time to wait on "busy".
    public var busyBudget: Duration?

    public init(timeout: Duration? = nil, retries: Int? = nil, busyBudget: Duration? = nil) {
        self.timeout = timeout
        self.retries = retries
        self.busyBudget = busyBudget
    }

    /// The client's defaults.
    public static let standard = SMPRequestPolicy()
}

/// What one answer means to the request that is waiting for it, before typed decoding.
enum AnswerClass {
    /// A response to decode (it may carry a device error other than busy or a version mismatch).
    case response(SMPPacket)
    /// rc 10: send again after a back-off.
    case busy(SMPDeviceError)
    /// The device wants the other SMP version; the client switched, send again.
    case versionSwitched
    /// The body is not CBOR: treat it as a lost answer.
    case malformed(SMPDecodingError)
}

/// An SMP client for one device.
///
/// Assigns sequence numbers, matches responses to requests by sequence number, group and
/// command, and allows several requests in flight. A request that is sent again keeps listening
/// on every copy's sequence number, so a late answer to an earlier copy still completes it.
/// Timeouts adapt to the measured round trip (RFC 6298 with Karn's rule). One classification
/// step handles busy, version fallback and malformed answers for single requests and uploads.
public actor SMPClient {
    /// One logical request and every copy of it sent.
    private struct Outstanding {
        let group: SMPGroupID
        let command: UInt8
        /// Sequence numbers of the copies still listening, oldest first.
        var copies: [UInt8]
        /// Copies sent in all (Karn's rule takes no sample once it is above 1).
        var sends = 1
        /// When the first copy was sent, for the round-trip sample.
        let firstSent: ContinuousClock.Instant
        /// Requests ahead of it when it was sent (the device answers in order).
        let queueAhead: Int
        /// `nil` while timed out and not resent.
        var deadline: ContinuousClock.Instant?
        let fixedTimeout: Duration?
        var waiter: CheckedContinuation<Result<SMPPacket, SMPClientError>, Never>?
        /// A result that arrived while nobody waited.
        var ready: Result<SMPPacket, SMPClientError>?
    }

    /// The transport in use.
    public let transport: any SMPTransport
    /// The options in force.
    public let options: SMPClientOptions
    /// The SMP version requests use now; it changes when the device answers in v1.
    public internal(set) var version: SMPVersion
    /// The device's SMP buffer parameters, once read.
    public private(set) var parameters: OSManagement.ParametersResponse?
    /// Whether the device answered the params command (false when it is unsupported).
    public private(set) var parametersSupported = false
    /// The round-trip estimate behind adaptive timeouts.
    public private(set) var roundTrip: RoundTripEstimator
    /// The largest packet the path was seen to carry, when the transport asks the client to
    /// learn it (``SMPFraming/learnsLargestPacket``); see ``learnLargestPacket()``.
    public internal(set) var learnedPacketLimit: Int?
    /// The transport's model of the link, when it has one (BLE, serial): a floor for timeouts.
    private var linkTiming: LinkModel?
    /// Answers received and discarded so far: packets that do not decode, bodies that are not
    /// CBOR, and responses whose sequence number is in flight but whose group or command is not.
    /// A timeout reports how many came in while it waited.
    public internal(set) var discardedAnswers = 0
    /// Answers that came while a request sent before theirs was still unanswered. A device answers
    /// in the order it received requests, so on a link that keeps order this stays 0 unless a
    /// request is lost; several ATT bearers (BLE with EATT) deliver writes and notifications out
    /// of order.
    public private(set) var overtakingAnswers = 0

    private var outstanding: [Int: Outstanding] = [:]
    private var requestBySequence: [UInt8: Int] = [:]
    private var nextRequestID = 0
    private var nextSequence: UInt8 = 0
    private var eventTask: Task<Void, Never>?
    private var timeoutWatch: Task<Void, Never>?
    private var isOpen = false
    private var lastDisconnect: SMPTransportError?

    public init(transport: any SMPTransport, options: SMPClientOptions = SMPClientOptions()) {
        self.transport = transport
        self.options = options
        self.version = options.forcedVersion ?? .v2
        self.roundTrip = RoundTripEstimator(floor: options.minimumTimeout, ceiling: options.timeout)
    }

    /// Opens the transport and starts receiving.
    ///
    /// - Parameter limit: how long the transport's open may take; when it has not ended by then
    ///   it is cancelled and the call throws a transport error `timedOut`. `nil` leaves the bound
    ///   to the transport (a BLE connection's own phase deadlines, for example).
    public func open(within limit: Duration? = nil) async throws(SMPClientError) {
        eventTask?.cancel()
        let (events, continuation) = AsyncStream<SMPTransportEvent>.makeStream()
        if let limit {
            try await Self.openTransport(transport, events: continuation, within: limit)
        } else {
            do {
                try await transport.open(events: continuation)
            } catch {
                throw .transport(error)
            }
        }
        isOpen = true
        lastDisconnect = nil
        linkTiming = await transport.linkModel
        eventTask = Task { [weak self] in
            for await event in events {
                guard let self else { return }
                await self.handle(event)
            }
        }
    }

    /// Closes the transport and fails every request in flight.
    public func close() async {
        isOpen = false
        eventTask?.cancel()
        eventTask = nil
        failAll(.transport(SMPTransportError(.notConnected, "the client was closed")))
        await transport.close()
    }

    /// Closes and opens the transport again, as after a device reset; `limit` bounds the open
    /// as in ``open(within:)``.
    public func reopen(within limit: Duration? = nil) async throws(SMPClientError) {
        await close()
        try await open(within: limit)
    }

    /// Races the transport's open against `limit`. An open that loses is cancelled and awaited
    /// (the task group waits for it), and one that still succeeded on the way out is closed, so
    /// nothing stays open behind the error.
    private static func openTransport(
        _ transport: any SMPTransport, events: AsyncStream<SMPTransportEvent>.Continuation, within limit: Duration
    ) async throws(SMPClientError) {
        enum Outcome: Sendable {
            case opened
            case failed(SMPTransportError)
            case timedOut
        }
        let outcome = await withTaskGroup(of: Outcome.self) { group -> Outcome in
            group.addTask {
                do throws(SMPTransportError) {
                    try await transport.open(events: events)
                    return .opened
                } catch {
                    return .failed(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return .timedOut
            }
            let first = await group.next() ?? .timedOut
            group.cancelAll()
            var openedLate = false
            while let other = await group.next() {
                if case .opened = other { openedLate = true }
            }
            if case .timedOut = first, openedLate { await transport.close() }
            return first
        }
        switch outcome {
        case .opened:
            return
        case .failed(let error):
            throw .transport(error)
        case .timedOut:
            if Task.isCancelled { throw .cancelled }
            throw .transport(SMPTransportError(.timedOut,
                "opening \(transport.description) did not finish within \(limit)"))
        }
    }

    // MARK: - Requests

    /// Sends a request and returns its typed response.
    ///
    /// Timeouts and malformed answers are retried; "busy" is retried after a back-off within the
    /// busy budget; a v1-only device switches the client to v1.
    public func send<Request: SMPRequest>(
        _ request: Request, timeout: Duration? = nil
    ) async throws(SMPClientError) -> Request.Response {
        try await send(request, policy: SMPRequestPolicy(timeout: timeout))
    }

    /// Sends a request under `policy` and returns its typed response.
    public func send<Request: SMPRequest>(
        _ request: Request, policy: SMPRequestPolicy
    ) async throws(SMPClientError) -> Request.Response {
        let retries = policy.retries ?? options.retries
        var malformedLeft = retries
        while true {
            let packet = try await exchange(request, policy: policy)
            do {
                return try SMPResponseDecoder.decode(Request.Response.self, from: packet)
            } catch {
                switch error {
                case .device(let deviceError): throw .device(deviceError)
                case .malformed(let decodingError):
                    // A corrupted answer is a lost answer: ask again within the budget.
                    discardedAnswers += 1
                    guard malformedLeft > 0 else { throw .malformedResponse(decodingError) }
                    malformedLeft -= 1
                    log("malformed answer (\(decodingError)); sending the request again")
                }
            }
        }
    }

    /// Sends a request and returns the response packet, after retries, busy handling and version fallback.
    ///
    /// Device errors other than busy and version mismatch are returned inside the packet for the
    /// caller to decode.
    public func exchange<Request: SMPRequest>(
        _ request: Request, policy: SMPRequestPolicy = .standard
    ) async throws(SMPClientError) -> SMPPacket {
        let retries = policy.retries ?? options.retries
        let clock = ContinuousClock()
        let busyDeadline = clock.now + (policy.busyBudget ?? options.busyBudget)
        var busyWait = options.busyDelay
        var versionSwitches = 0
        var malformedLeft = retries
        let packet = request.packetWithHeaderSpace
        let discardedBefore = discardedAnswers
        while true {
            let sentVersion = version
            let ticket = try await submit(
                group: request.group, command: request.command, operation: request.operation,
                packetWithHeaderSpace: packet, timeout: policy.timeout)
            let packet = try await awaitWithResends(ticket, retries: retries, discardedBefore: discardedBefore)
            switch classify(packet, sentVersion: sentVersion, versionSwitches: &versionSwitches) {
            case .response(let packet): return packet
            case .versionSwitched: continue
            case .malformed(let error):
                guard malformedLeft > 0 else { throw .malformedResponse(error) }
                malformedLeft -= 1
                log("malformed answer (\(error)); sending the request again")
            case .busy(let error):
                guard try await waitOutBusy(until: busyDeadline, wait: &busyWait) else { throw .device(error) }
            }
        }
    }

    /// Waits on a ticket, resending the same request (a new copy) after each timeout, up to `retries`
    /// times. The final timeout counts the answers discarded since `discardedBefore`.
    func awaitWithResends(
        _ ticket: SMPResponseTicket, retries: Int, discardedBefore: Int
    ) async throws(SMPClientError) -> SMPPacket {
        var attempt = 0
        while true {
            do {
                return try await ticket.response()
            } catch .timedOut(let group, let command, _, _) {
                attempt += 1
                guard attempt <= retries else {
                    abandon(ticket)
                    throw .timedOut(
                        group: group, command: command, attempts: attempt, malformedAnswers: discardedAnswers - discardedBefore)
                }
                log("timeout waiting for \(group) command \(command); retry \(attempt) of \(retries)")
                notify(.retry(attempt: attempt, of: retries))
                try await resend(ticket)
            }
        }
    }

    /// Sleeps through one busy back-off; returns false when the busy budget is spent.
    func waitOutBusy(until deadline: ContinuousClock.Instant, wait: inout Duration) async throws(SMPClientError) -> Bool {
        let now = ContinuousClock.now
        guard now < deadline else { return false }
        let pause = min(wait, deadline - now)
        log("device busy; retrying in \(pause)")
        notify(.busy(wait: pause))
        do {
            try await Task.sleep(for: pause)
        } catch {
            throw .cancelled
        }
        wait = min(wait * 2, .seconds(1))
        return true
    }

    /// The one classification step for answers: busy, SMP version fallback, malformed bodies.
    func classify(_ packet: SMPPacket, sentVersion: SMPVersion, versionSwitches: inout Int) -> AnswerClass {
        if packet.header.version == .v1, version != .v1, options.forcedVersion == nil {
            log("device answered with an SMP v1 header; using v1 from now on")
            version = .v1
        }
        let map: CBORMap
        do {
            map = try SMPResponseDecoder.map(from: packet.body)
        } catch {
            discardedAnswers += 1
            return .malformed(error)
        }
        guard let deviceError = try? SMPResponseDecoder.deviceError(in: map, header: packet.header) else {
            return .response(packet)
        }
        if deviceError.kind == .smp(.busy) { return .busy(deviceError) }
        if options.forcedVersion == nil, versionSwitches < 2 {
            if deviceError.kind == .smp(.versionTooNew), sentVersion == .v2 {
                log("device rejects SMP v2; falling back to v1")
                version = .v1
                versionSwitches += 1
                return .versionSwitched
            }
            if deviceError.kind == .smp(.versionTooOld), sentVersion == .v1 {
                log("device requires SMP v2; switching to v2")
                version = .v2
                versionSwitches += 1
                return .versionSwitched
            }
        }
        return .response(packet)
    }

    /// Sends one request now and returns a ticket for its response packet.
    ///
    /// Requests are handed to the transport in the order `submit` is called, so several can be
    /// in flight in a known order (the windowed upload relies on this). The policy's `timeout`
    /// fixes the wait; `nil` uses the adaptive timeout. A timed-out ticket keeps listening until
    /// it is resent (``resend(_:)``), answered or abandoned (``abandon(_:)``); retries and busy
    /// are the caller's to handle, through ``classify(_:sentVersion:versionSwitches:)``'s rules.
    public func submit<Request: SMPRequest>(
        _ request: Request, policy: SMPRequestPolicy = .standard
    ) async throws(SMPClientError) -> SMPResponseTicket {
        try await submit(
            group: request.group, command: request.command, operation: request.operation,
            packetWithHeaderSpace: request.packetWithHeaderSpace, timeout: policy.timeout)
    }

    /// Sends one packet now and returns a ticket for its response (the untyped form of ``submit(_:policy:)``).
    ///
    /// `packetWithHeaderSpace` is the body after ``SMPHeader/size`` bytes that each send
    /// overwrites with the header (``SMPRequest/packetWithHeaderSpace``).
    func submit(
        group: SMPGroupID, command: UInt8, operation: SMPOperation, packetWithHeaderSpace packet: [UInt8],
        timeout: Duration?
    ) async throws(SMPClientError) -> SMPResponseTicket {
        guard isOpen else {
            throw .transport(lastDisconnect ?? SMPTransportError(.notConnected, "the link is not open"))
        }
        let bodyLength = packet.count - SMPHeader.size
        guard bodyLength >= 0 else { throw .invalidInput("a request packet without room for its header") }
        guard bodyLength <= Int(UInt16.max) else {
            throw .invalidInput("a request body of \(bodyLength) bytes does not fit the 16-bit SMP length field")
        }
        let id = nextRequestID
        nextRequestID += 1
        let ahead = outstanding.values.filter { $0.deadline != nil }.count
        let sequence = allocateSequence()
        let now = ContinuousClock.now
        let wait = timeout ?? adaptiveWait(bytes: packet.count, queueAhead: ahead)
        outstanding[id] = Outstanding(
            group: group, command: command, copies: [sequence], firstSent: now, queueAhead: ahead,
            deadline: now + wait, fixedTimeout: timeout, waiter: nil, ready: nil)
        requestBySequence[sequence] = id
        let ticket = SMPResponseTicket(id: id, client: self, header: SMPHeader(
            operation: operation, version: version, length: UInt16(bodyLength), group: group, sequence: sequence,
            command: command),
            packet: packet)
        startTimeoutWatch()
        await transmit(id: id, sequence: sequence, ticket: ticket)
        return ticket
    }

    /// Sends another copy of a ticket's request with a new sequence number; earlier copies keep listening.
    public func resend(_ ticket: SMPResponseTicket) async throws(SMPClientError) {
        guard isOpen else {
            throw .transport(lastDisconnect ?? SMPTransportError(.notConnected, "the link is not open"))
        }
        guard var entry = outstanding[ticket.id] else { return }
        if entry.ready != nil, case .success = entry.ready { return }  // answered meanwhile
        let sequence = allocateSequence()
        entry.copies.append(sequence)
        entry.sends += 1
        // The timeout doubles after a loss (RFC 6298 §5.5) unless the request has a fixed one.
        if entry.fixedTimeout == nil { roundTrip.backOff() }
        let ahead = outstanding.values.filter { $0.deadline != nil }.count
        entry.deadline = ContinuousClock.now
            + (entry.fixedTimeout ?? adaptiveWait(bytes: ticket.packet.count, queueAhead: ahead))
        entry.ready = nil
        outstanding[ticket.id] = entry
        requestBySequence[sequence] = ticket.id
        startTimeoutWatch()
        await transmit(id: ticket.id, sequence: sequence, ticket: ticket)
    }

    /// Starts a request's timeout again, as if it had been sent now behind `queueAhead` requests.
    ///
    /// A device answers in order, so a request waits for those before it: call this when the
    /// one before it is answered. A request that timed out meanwhile and was not resent is
    /// waited for again. Requests with a fixed timeout, and answered ones, are left alone.
    public func restartTimer(_ ticket: SMPResponseTicket, queueAhead: Int) {
        guard var entry = outstanding[ticket.id], entry.fixedTimeout == nil else { return }
        switch entry.ready {
        case .success?: return
        case .failure(.timedOut)?: entry.ready = nil
        case .failure?: return
        case nil: break
        }
        entry.deadline = ContinuousClock.now
            + adaptiveWait(bytes: ticket.packet.count, queueAhead: queueAhead)
        outstanding[ticket.id] = entry
        startTimeoutWatch()
    }

    /// The adaptive timeout for a request of `bytes` bytes with `queueAhead` requests before it.
    ///
    /// The measured round trip (``RoundTripEstimator``) comes from requests of every size, and
    /// on a slow link a small one (mcumgr params) says little about a 2 KiB chunk. Where the
    /// transport models its link, the wait is at least twice the time the model gives for this
    /// request and its answer, for each request in the queue, and never above the ceiling.
    func adaptiveWait(bytes: Int, queueAhead: Int) -> Duration {
        let measured = roundTrip.timeout(queueAhead: queueAhead)
        guard let linkTiming else { return measured }
        let perRequest = linkTiming.transferSeconds(bytes) + linkTiming.transferSeconds(SMPHeader.size + 16)
        let modelled = (2 * perRequest + 0.05) * Double(max(0, queueAhead) + 1)
        let ceiling = options.timeout.seconds * Double(max(0, queueAhead) + 1)
        guard modelled.isFinite, modelled > measured.seconds else { return measured }
        return .milliseconds(Int64((min(modelled, ceiling) * 1000).rounded()))
    }

    /// Stops listening for a ticket's answers.
    public func abandon(_ ticket: SMPResponseTicket) {
        guard let entry = outstanding.removeValue(forKey: ticket.id) else { return }
        for copy in entry.copies { requestBySequence.removeValue(forKey: copy) }
        entry.waiter?.resume(returning: .failure(.transport(SMPTransportError(.notConnected, "the request was abandoned"))))
    }

    private func transmit(id: Int, sequence: UInt8, ticket: SMPResponseTicket) async {
        var header = ticket.header
        header.sequence = sequence
        header.version = version
        // One copy of the encoded request per send, the header written over its room in place.
        var bytes = ticket.packet
        header.write(over: &bytes)
        if options.log != nil, options.logsFrames { log("tx seq \(sequence): \(hex(bytes))") }
        do {
            try await transport.send(bytes)
        } catch {
            deliver(id: id, .failure(.transport(error)), final: true)
        }
    }

    /// Waits for a ticket's next result.
    func result(of id: Int) async -> Result<SMPPacket, SMPClientError> {
        guard var entry = outstanding[id] else {
            return .failure(.transport(lastDisconnect ?? SMPTransportError(.notConnected, "the request was abandoned")))
        }
        if let ready = entry.ready {
            entry.ready = nil
            outstanding[id] = entry
            switch ready {
            case .failure(.timedOut): break  // still listening until resent or abandoned
            default: finish(id)
            }
            return ready
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                guard var current = outstanding[id] else {
                    continuation.resume(returning: .failure(.cancelled))
                    return
                }
                if Task.isCancelled {
                    continuation.resume(returning: .failure(.cancelled))
                    return
                }
                current.waiter = continuation
                outstanding[id] = current
            }
        } onCancel: {
            Task { await self.cancelWait(id) }
        }
    }

    private func cancelWait(_ id: Int) {
        guard var entry = outstanding[id], let waiter = entry.waiter else { return }
        entry.waiter = nil
        outstanding[id] = entry
        waiter.resume(returning: .failure(.cancelled))
    }

    /// Hands a result to the ticket's waiter (or keeps it); answers and link failures end the request.
    private func deliver(id: Int, _ result: Result<SMPPacket, SMPClientError>, final: Bool) {
        guard var entry = outstanding[id] else { return }
        if case .success? = entry.ready, case .failure = result { return }  // the answer stands
        if let waiter = entry.waiter {
            entry.waiter = nil
            outstanding[id] = entry
            if final { finish(id) }
            waiter.resume(returning: result)
        } else {
            // An answer replaces a timeout nobody has read yet.
            entry.ready = result
            if final { entry.deadline = nil }
            outstanding[id] = entry
        }
    }

    private func finish(_ id: Int) {
        guard let entry = outstanding.removeValue(forKey: id) else { return }
        for copy in entry.copies { requestBySequence.removeValue(forKey: copy) }
    }

    /// One task checks every request's deadline, rather than a sleeping task per request:
    /// at thousands of chunks a second, per-request timers would pile up until they expire.
    private func startTimeoutWatch() {
        guard timeoutWatch == nil else { return }
        timeoutWatch = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.timeoutResolution)
                guard let self, await self.expireOverdue() else { return }
            }
        }
    }

    /// How precisely timeouts are applied.
    static let timeoutResolution: Duration = .milliseconds(20)

    /// Reports requests past their deadline; returns whether the watch should go on.
    private func expireOverdue() -> Bool {
        let now = ContinuousClock.now
        var watching = false
        for (id, entry) in outstanding {
            guard let deadline = entry.deadline else { continue }
            guard deadline <= now else {
                watching = true
                continue
            }
            var updated = entry
            updated.deadline = nil
            outstanding[id] = updated
            deliver(id: id, .failure(.timedOut(group: entry.group, command: entry.command, attempts: entry.sends)), final: false)
        }
        if !watching {
            timeoutWatch = nil
            return false
        }
        return true
    }

    private func allocateSequence() -> UInt8 {
        // Skip numbers still listening so a late answer can never match a newer request.
        for _ in 0..<256 {
            let candidate = nextSequence
            nextSequence &+= 1
            if requestBySequence[candidate] == nil { return candidate }
        }
        // Every number is listening (many resent copies): the oldest copy of some request stops
        // listening, so no answer can be matched to two requests.
        let reused = nextSequence
        nextSequence &+= 1
        if let owner = requestBySequence.removeValue(forKey: reused), var entry = outstanding[owner] {
            entry.copies.removeAll { $0 == reused }
            outstanding[owner] = entry
        }
        return reused
    }

    /// Fails every request; a result nobody waits for yet stays readable (an answer that arrived
    /// before the link dropped still stands).
    private func failAll(_ error: SMPClientError) {
        for id in Array(outstanding.keys) { deliver(id: id, .failure(error), final: true) }
        requestBySequence.removeAll()
    }

    private func handle(_ event: SMPTransportEvent) {
        switch event {
        case .packet(let bytes):
            if options.log != nil, options.logsFrames { log("rx: \(hex(bytes))") }
            let packet: SMPPacket
            do {
                packet = try SMPPacket(decoding: bytes, maxBodyLength: options.maximumResponseBody)
            } catch {
                discardedAnswers += 1
                log("ignored an undecodable response: \(error)")
                return
            }
            guard packet.header.operation.isResponse else {
                discardedAnswers += 1
                log("ignored a packet that is not a response (op \(packet.header.operation))")
                return
            }
            guard let id = requestBySequence[packet.header.sequence], let entry = outstanding[id] else {
                log("ignored a response with sequence \(packet.header.sequence), which is not in flight")
                return
            }
            guard entry.group == packet.header.group, entry.command == packet.header.command else {
                discardedAnswers += 1
                log("ignored a response for \(packet.header.group) command \(packet.header.command) with sequence \(packet.header.sequence)")
                return
            }
            // Karn's rule: only a request sent once gives a round-trip sample. Requests with a
            // fixed wait count too: the first upload chunk is often the only full-sized request
            // answered before the first window goes out, and on a slow link its round trip is
            // what the next chunks take (an erase makes it longer, which errs on the safe side).
            if entry.sends == 1 {
                roundTrip.add(sample: ContinuousClock.now - entry.firstSent, queueAhead: entry.queueAhead)
            }
            if outstanding.contains(where: { $0.key < id && $0.value.ready == nil && $0.value.deadline != nil }) {
                overtakingAnswers += 1
            }
            if entry.waiter != nil {
                deliver(id: id, .success(packet), final: true)
            } else {
                var updated = entry
                updated.ready = .success(packet)
                updated.deadline = nil
                outstanding[id] = updated
            }
        case .console(let bytes):
            log("console: \(String(decoding: bytes, as: UTF8.self))")
        case .invalid(let reason):
            discardedAnswers += 1
            log("ignored invalid bytes: \(reason)")
        case .disconnected(let error):
            log("link lost: \(error)")
            isOpen = false
            lastDisconnect = error
            failAll(.transport(error))
        }
    }

    /// Whether the link is open.
    public var isConnected: Bool { isOpen }

    func log(_ text: String) { options.log?(text) }
    func notify(_ notice: SMPClientNotice) { options.notice?(notice) }

    // MARK: - Parameters

    /// Reads the device's buffer parameters; when the device does not support them, safe defaults apply.
    @discardableResult
    ///
    /// With `unansweredIsUnsupported`, no answer under `policy` counts as "not supported" too: MCUboot's
    /// serial recovery before 1.9 never answers an OS command it lacks (boot_serial.c,
    /// boot_serial_input).
    public func readParameters(
        policy: SMPRequestPolicy = .standard, unansweredIsUnsupported: Bool = false
    ) async throws(SMPClientError) -> OSManagement.ParametersResponse {
        do {
            let response = try await send(OSManagement.ParametersRequest(), policy: policy)
            parameters = response
            parametersSupported = true
            return response
        } catch .device(let error) {
            log("mcumgr params not supported (\(error)); using \(Self.defaultBufferSize)-byte buffers")
        } catch .malformedResponse(let error) {
            log("mcumgr params response malformed (\(error)); using defaults")
        } catch .timedOut(let group, let command, let attempts, let malformed) {
            guard unansweredIsUnsupported else {
                throw .timedOut(group: group, command: command, attempts: attempts, malformedAnswers: malformed)
            }
            log("no answer to mcumgr params; using \(Self.defaultBufferSize)-byte buffers")
        }
        let fallback = OSManagement.ParametersResponse(bufferSize: Self.defaultBufferSize, bufferCount: 1)
        parameters = fallback
        parametersSupported = false
        return fallback
    }

    /// The buffer size assumed when the device does not report one (Zephyr's default netbuf size).
    public static let defaultBufferSize = 384

    /// The largest request packet, header included, that both the device and the path accept.
    ///
    /// Computed from the device's `buf_size` and what the transport reports about its framing:
    /// the bytes of the device's buffer that the framing takes (4 on serial), the largest single
    /// write, and whether a packet may span several writes (when the device reassembles, its
    /// buffer is larger than one write).
    /// 0 when the device's buffer is smaller than the framing's own bytes (a buf_size of 0).
    public func maximumRequestSize() async -> Int {
        let device = parameters?.bufferSize ?? Self.defaultBufferSize
        let framing = await transport.framing
        let deviceLimit = max(0, device - framing.deviceBufferOverhead)
        let pathLimit = pathPacketLimit(framing)
        if deviceReassembles(framing) { return min(deviceLimit, pathLimit) }
        return min(deviceLimit, framing.maximumWrite, pathLimit)
    }

    /// The largest packet the path carries: the transport's figure, or, where the client must
    /// learn it, what it learned (Zephyr's default UDP MTU, 1500, until then).
    func pathPacketLimit(_ framing: SMPFraming) -> Int {
        guard framing.learnsLargestPacket else { return framing.maximumPacket }
        return min(framing.maximumPacket, learnedPacketLimit ?? Self.unlearnedDatagramLimit)
    }

    /// The datagram size assumed before the path is learned: `CONFIG_MCUMGR_TRANSPORT_UDP_MTU`'s
    /// default (subsys/mgmt/mcumgr/transport/Kconfig.udp).
    public static let unlearnedDatagramLimit = 1500

    /// Whether a packet may span several writes: the transport can split it and the device's
    /// reported buffer is larger than one write (its transport reassembles).
    private func deviceReassembles(_ framing: SMPFraming) -> Bool {
        let device = parameters?.bufferSize ?? Self.defaultBufferSize
        return framing.splitsAcrossWrites && parametersSupported
            && device - framing.deviceBufferOverhead > framing.maximumWrite
    }

    /// The link model with what the client knows: whether the device reassembles split writes.
    public func linkModel() async -> LinkModel? {
        guard var model = await transport.linkModel else { return nil }
        let framing = await transport.framing
        if framing.splitsAcrossWrites,
            case .ble(let mtu, let interval, let events, let phy, let dataLength, _) = model.medium
        {
            model.medium = .ble(
                mtu: mtu, interval: interval, packetsPerEvent: events, phy: phy, dataLength: dataLength,
                reassembly: deviceReassembles(framing))
        }
        return model
    }
}

/// The pending response to a submitted request.
public struct SMPResponseTicket: Sendable {
    let id: Int
    let client: SMPClient
    let header: SMPHeader
    /// The whole request: room for the header, then the body.
    let packet: [UInt8]

    /// The request's first sequence number.
    public var sequence: UInt8 { header.sequence }

    /// Waits for the response, a timeout, or the link's loss. After a timeout the ticket still
    /// listens: call ``SMPClient/resend(_:)`` and wait again, or ``SMPClient/abandon(_:)``.
    public func response() async throws(SMPClientError) -> SMPPacket {
        try await client.result(of: id).get()
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0xF)])
    }
    return text
}
