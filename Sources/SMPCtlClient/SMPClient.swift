public import SMPCtlProtocol
public import SMPCtlTransport

/// Settings for an ``SMPClient``.
public struct SMPClientOptions: Sendable {
    /// How long to wait for each response.
    public var timeout: Duration = .seconds(3)
    /// How many times a request is sent again after a timeout.
    public var retries: Int = 3
    /// How many times a request answered with "busy" (rc 10) is sent again.
    public var busyRetries: Int = 30
    /// The first wait after "busy"; it doubles up to one second.
    public var busyDelay: Duration = .milliseconds(50)
    /// Use only this SMP version; `nil` starts with v2 and falls back to v1 when the device needs it.
    public var forcedVersion: SMPVersion?
    /// The largest response accepted.
    public var maximumResponseBody = Int(UInt16.max)
    /// Receives diagnostic lines (every frame as hex, ignored responses), for `-v`.
    public var log: (@Sendable (String) -> Void)?

    public init() {}
}

/// An SMP client for one device.
///
/// Assigns sequence numbers, matches responses to requests by sequence number, group and
/// command, and allows several requests in flight. Handles timeouts with bounded retries,
/// "busy" with back-off, and SMP v1/v2 fallback. Responses that do not decode, carry an unknown
/// sequence number or repeat one already answered are logged and ignored.
public actor SMPClient {
    private struct Pending {
        let group: SMPGroupID
        let command: UInt8
        let deliver: AsyncStream<Result<SMPPacket, SMPClientError>>.Continuation
        let deadline: ContinuousClock.Instant

        func resolve(_ result: Result<SMPPacket, SMPClientError>) {
            deliver.yield(result)
            deliver.finish()
        }
    }

    /// The transport in use.
    public let transport: any SMPTransport
    /// The options in force.
    public internal(set) var options: SMPClientOptions
    /// The SMP version requests use now; it changes when the device answers in v1.
    public internal(set) var version: SMPVersion
    /// The device's SMP buffer parameters, once read.
    public private(set) var parameters: OSManagement.ParametersResponse?
    /// Whether the device answered the params command (false when it is unsupported).
    public private(set) var parametersSupported = false

    private var pending: [UInt8: Pending] = [:]
    private var nextSequence: UInt8 = 0
    private var eventTask: Task<Void, Never>?
    private var timeoutWatch: Task<Void, Never>?
    private var isOpen = false
    private var lastDisconnect: SMPTransportError?

    public init(transport: any SMPTransport, options: SMPClientOptions = SMPClientOptions()) {
        self.transport = transport
        self.options = options
        self.version = options.forcedVersion ?? .v2
    }

    /// Opens the transport and starts receiving.
    public func open() async throws(SMPClientError) {
        eventTask?.cancel()
        let (events, continuation) = AsyncStream<SMPTransportEvent>.makeStream()
        do {
            try await transport.open(events: continuation)
        } catch {
            throw .transport(error)
        }
        isOpen = true
        lastDisconnect = nil
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

    /// Closes and opens the transport again, as after a device reset.
    public func reopen() async throws(SMPClientError) {
        await close()
        try await open()
    }

    /// Changes the response timeout.
    public func setTimeout(_ timeout: Duration) { options.timeout = timeout }

    // MARK: - Requests

    /// Sends a request and returns its typed response.
    ///
    /// Timeouts are retried `options.retries` times with a new sequence number; "busy" is
    /// retried after a back-off; a v1-only device switches the client to v1.
    public func send<Request: SMPRequest>(
        _ request: Request, timeout: Duration? = nil
    ) async throws(SMPClientError) -> Request.Response {
        let packet = try await exchange(request, timeout: timeout)
        do {
            return try SMPResponseDecoder.decode(Request.Response.self, from: packet)
        } catch {
            switch error {
            case .device(let deviceError): throw .device(deviceError)
            case .malformed(let decodingError): throw .malformedResponse(decodingError)
            }
        }
    }

    /// Sends a request and returns the response packet, after retries, busy handling and version fallback.
    ///
    /// Device errors other than busy and version mismatch are returned inside the packet for the
    /// caller to decode.
    public func exchange<Request: SMPRequest>(
        _ request: Request, timeout: Duration? = nil
    ) async throws(SMPClientError) -> SMPPacket {
        var busyLeft = options.busyRetries
        var busyWait = options.busyDelay
        var versionSwitches = 0
        while true {
            // The fallback decisions depend on the version this request went out with: a device that
            // answers rc 13 in a v1 header has already switched `version` below.
            let sentVersion = version
            let packet = try await sendWithRetries(request, timeout: timeout ?? options.timeout)
            if packet.header.version == .v1, version != .v1, options.forcedVersion == nil {
                log("device answered with an SMP v1 header; using v1 from now on")
                version = .v1
            }
            guard let map = try? SMPResponseDecoder.map(from: packet.body),
                let deviceError = try? SMPResponseDecoder.deviceError(in: map, header: packet.header)
            else { return packet }
            if deviceError.kind == .smp(.busy), busyLeft > 0 {
                busyLeft -= 1
                log("device busy; retrying in \(busyWait)")
                try? await Task.sleep(for: busyWait)
                busyWait = min(busyWait * 2, .seconds(1))
                continue
            }
            if options.forcedVersion == nil, versionSwitches < 2 {
                if deviceError.kind == .smp(.versionTooNew), sentVersion == .v2 {
                    log("device rejects SMP v2; falling back to v1")
                    version = .v1
                    versionSwitches += 1
                    continue
                }
                if deviceError.kind == .smp(.versionTooOld), sentVersion == .v1 {
                    log("device requires SMP v2; switching to v2")
                    version = .v2
                    versionSwitches += 1
                    continue
                }
            }
            return packet
        }
    }

    private func sendWithRetries<Request: SMPRequest>(
        _ request: Request, timeout: Duration
    ) async throws(SMPClientError) -> SMPPacket {
        let body = request.bodyBytes
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await sendOnce(
                    group: request.group, command: request.command, operation: request.operation, body: body,
                    timeout: timeout)
            } catch .timedOut(let group, let command, _) {
                if attempt > options.retries {
                    throw .timedOut(group: group, command: command, attempts: attempt)
                }
                log("timeout waiting for \(group) command \(command); retry \(attempt) of \(options.retries)")
            }
        }
    }

    /// Sends one packet and waits for the matching response, without retries.
    public func sendOnce(
        group: SMPGroupID, command: UInt8, operation: SMPOperation, body: [UInt8], timeout: Duration
    ) async throws(SMPClientError) -> SMPPacket {
        let ticket = try await submit(
            group: group, command: command, operation: operation, body: body, timeout: timeout)
        return try await ticket.response()
    }

    /// Sends one packet now and returns a ticket for its response.
    ///
    /// Packets are handed to the transport in the order `submit` is called, so several requests
    /// can be in flight in a known order (the windowed upload relies on this).
    public func submit(
        group: SMPGroupID, command: UInt8, operation: SMPOperation, body: [UInt8], timeout: Duration
    ) async throws(SMPClientError) -> SMPResponseTicket {
        guard isOpen else {
            throw .transport(lastDisconnect ?? SMPTransportError(.notConnected, "the link is not open"))
        }
        guard body.count <= Int(UInt16.max) else {
            throw .invalidInput("a request body of \(body.count) bytes does not fit the 16-bit SMP length field")
        }
        let sequence = allocateSequence()
        let packet = SMPPacket(
            header: SMPHeader(
                operation: operation, version: version, length: 0, group: group, sequence: sequence, command: command),
            body: body)
        let bytes = packet.bytes
        if options.log != nil { log("tx seq \(sequence): \(hex(bytes))") }
        let (stream, continuation) = AsyncStream<Result<SMPPacket, SMPClientError>>.makeStream(bufferingPolicy: .bufferingNewest(1))
        pending[sequence] = Pending(
            group: group, command: command, deliver: continuation, deadline: ContinuousClock.now + timeout)
        startTimeoutWatch()
        do {
            try await transport.send(bytes)
        } catch {
            fail(sequence: sequence, with: .transport(error))
        }
        return SMPResponseTicket(sequence: sequence, results: stream)
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

    /// Fails requests past their deadline; returns whether the watch should go on.
    private func expireOverdue() -> Bool {
        let now = ContinuousClock.now
        for (sequence, entry) in pending where entry.deadline <= now {
            fail(sequence: sequence, with: .timedOut(group: entry.group, command: entry.command, attempts: 1))
        }
        if pending.isEmpty {
            timeoutWatch = nil
            return false
        }
        return true
    }

    private func allocateSequence() -> UInt8 {
        // Skip numbers still in flight so a late answer can never match a newer request.
        for _ in 0..<256 {
            let candidate = nextSequence
            nextSequence &+= 1
            if pending[candidate] == nil { return candidate }
        }
        return nextSequence
    }

    private func fail(sequence: UInt8, with error: SMPClientError) {
        guard let entry = pending.removeValue(forKey: sequence) else { return }
        entry.resolve(.failure(error))
    }

    private func failAll(_ error: SMPClientError) {
        let entries = pending
        pending.removeAll()
        for entry in entries.values { entry.resolve(.failure(error)) }
    }

    private func handle(_ event: SMPTransportEvent) {
        switch event {
        case .packet(let bytes):
            if options.log != nil { log("rx: \(hex(bytes))") }
            let packet: SMPPacket
            do {
                packet = try SMPPacket(decoding: bytes, maxBodyLength: options.maximumResponseBody)
            } catch {
                log("ignored an undecodable response: \(error)")
                return
            }
            guard packet.header.operation.isResponse else {
                log("ignored a packet that is not a response (op \(packet.header.operation))")
                return
            }
            guard let entry = pending[packet.header.sequence] else {
                log("ignored a response with sequence \(packet.header.sequence), which is not in flight")
                return
            }
            guard entry.group == packet.header.group, entry.command == packet.header.command else {
                log("ignored a response for \(packet.header.group) command \(packet.header.command) with sequence \(packet.header.sequence)")
                return
            }
            pending.removeValue(forKey: packet.header.sequence)
            entry.resolve(.success(packet))
        case .console(let bytes):
            log("console: \(String(decoding: bytes, as: UTF8.self))")
        case .invalid(let reason):
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

    // MARK: - Parameters

    /// Reads the device's buffer parameters; when the device does not support them, safe defaults apply.
    @discardableResult
    public func readParameters() async throws(SMPClientError) -> OSManagement.ParametersResponse {
        do {
            let response = try await send(OSManagement.ParametersRequest())
            parameters = response
            parametersSupported = true
            await transport.useDeviceBufferSize(response.bufferSize)
            return response
        } catch .device(let error) {
            log("mcumgr params not supported (\(error)); using \(Self.defaultBufferSize)-byte buffers")
        } catch .malformedResponse(let error) {
            log("mcumgr params response malformed (\(error)); using defaults")
        }
        let fallback = OSManagement.ParametersResponse(bufferSize: Self.defaultBufferSize, bufferCount: 1)
        parameters = fallback
        parametersSupported = false
        return fallback
    }

    /// The buffer size assumed when the device does not report one (Zephyr's default netbuf size).
    public static let defaultBufferSize = 384

    /// The largest request packet, header included, that both the device and the path accept.
    public func maximumRequestSize() async -> Int {
        let device = parameters?.bufferSize ?? Self.defaultBufferSize
        return min(device, await transport.maximumPacketSize)
    }
}

/// The pending response to a submitted request.
public struct SMPResponseTicket: Sendable {
    /// The request's sequence number.
    public let sequence: UInt8
    let results: AsyncStream<Result<SMPPacket, SMPClientError>>

    /// Waits for the response, a timeout, or the link's loss.
    public func response() async throws(SMPClientError) -> SMPPacket {
        for await result in results { return try result.get() }
        throw .transport(SMPTransportError(.notConnected, "the request was abandoned"))
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
