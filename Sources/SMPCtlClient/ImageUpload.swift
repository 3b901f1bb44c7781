import SMPCtlProtocol
import SMPCtlTransport

/// How to upload an image.
public struct UploadOptions: Sendable {
    /// The target image number (`nil` leaves it out: image 0). Image 1 is, for example, the nRF5340 network core.
    public var image: Int?
    /// Ask the device to refuse an image that is not newer than the running one.
    public var upgrade: Bool = false
    /// Round each chunk's data down to a multiple of this (for devices that need aligned writes).
    public var alignment: Int = 1
    /// How long to wait for the first chunk's answer: the device erases the slot then.
    public var firstChunkTimeout: Duration = .seconds(40)
    /// How many times a lost link is reopened during an upload, which then resumes from the device's offset.
    public var reconnectAttempts: Int = 3
    /// How many chunks may be in flight; `nil` takes the device's buffer count less one.
    public var window: Int?
    /// The whole upload must finish within this time (`--deadline`); `nil` for no limit beyond
    /// the progress bounds.
    public var deadline: Duration?
    /// The image's hash TLV, when known: lets the upload see that the device already holds the
    /// whole image when the final answer was lost, instead of uploading it again.
    public var expectedImageHash: [UInt8]?

    public init(image: Int? = nil, upgrade: Bool = false, alignment: Int = 1) {
        self.image = image
        self.upgrade = upgrade
        self.alignment = max(1, alignment)
    }
}

/// Where an upload stands.
public struct UploadProgress: Sendable {
    /// Bytes the device has confirmed.
    public var offset: Int
    /// The file's length.
    public var total: Int
    /// Where this upload started (non-zero when it resumed a previous one).
    public var startOffset: Int
    /// Seconds since the upload began.
    public var elapsed: Double

    /// Bytes per second sent in this session.
    public var rate: Double { elapsed > 0 ? Double(offset - startOffset) / elapsed : 0 }
    /// Estimated seconds left.
    public var remaining: Double? { rate > 0 ? Double(total - offset) / rate : nil }

    public init(offset: Int, total: Int, startOffset: Int, elapsed: Double) {
        self.offset = offset
        self.total = total
        self.startOffset = startOffset
        self.elapsed = elapsed
    }
}

/// What an upload did.
public struct UploadResult: Sendable {
    public var length: Int
    /// The offset the device reported on the first chunk (non-zero when it resumed).
    public var resumedFrom: Int
    /// Chunks sent, retries included.
    public var chunks: Int
    /// The largest data length used per chunk.
    public var chunkSize: Int
    /// Wall time in seconds.
    public var seconds: Double
    /// The device's `match` on the last chunk, if it sent one.
    public var match: Bool?
    /// How many chunks were allowed in flight.
    public var window: Int = 1
}

/// A chunk sent and not yet answered.
struct InFlightChunk: Sendable {
    var range: Range<Int>
    var ticket: SMPResponseTicket
}

extension SMPClient {
    /// Uploads `file` to the device's secondary slot.
    ///
    /// Each chunk is sized so that its encoded request exactly fits the device's buffer and the
    /// path; the first chunk carries `len`, `sha` and the image number. The upload always
    /// continues from the offset the device reports (see ``UploadWindow``). A chunk that gets no
    /// answer is sent again with the rest of the window, and an answer to any copy counts. The
    /// upload ends with the whole file on the device, or with a typed error: the bytes sent
    /// without progress, restarts, timeouts, the busy budget and the optional deadline are bounded.
    public func upload(
        _ file: FirmwareFile, options: UploadOptions = UploadOptions(),
        progress: (@Sendable (UploadProgress) -> Void)? = nil
    ) async throws(SMPClientError) -> UploadResult {
        if parameters == nil { try await readParameters() }
        try await learnLargestPacket()
        let packetLimit = await maximumRequestSize()
        let bodyBudget = packetLimit - SMPHeader.size
        let first = ImageManagement.UploadRequest.FirstChunkFields(
            length: file.length, sha: file.sha256, image: options.image, upgrade: options.upgrade)
        // A device whose buffer cannot hold the first request (its length, hash and some data) can
        // take no upload at all: that is the device's limit, said with its own figure.
        let firstMinimum = min(32, file.length)
        if ImageManagement.UploadRequest.largestDataLength(bodyBudget: bodyBudget, offset: 0, first: first) < firstMinimum {
            let needed = SMPHeader.size + ImageManagement.UploadRequest.bodyLength(offset: 0, dataLength: firstMinimum, first: first)
            let reported = parameters.map { "\($0.bufferSize) bytes" } ?? "unknown"
            throw .deviceLimit(
                "the device's SMP buffer (buf_size \(reported) in mcumgr params) allows requests of \(packetLimit) bytes on this link, "
                    + "but the first upload request needs at least \(needed) bytes: raise CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE (and the transport's MTU) on the device")
        }
        let reader = try FirmwareReader(file: file)
        let windowSize = max(1, options.window ?? self.options.uploadWindow ?? defaultUploadWindow)
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = options.deadline.map { start + $0 }
        let typicalChunk = max(1, ImageManagement.UploadRequest.largestDataLength(bodyBudget: bodyBudget, offset: 1 << 20, first: nil))
        var state = UploadWindow(length: file.length, window: windowSize, chunkSize: typicalChunk)
        var inFlight: [InFlightChunk] = []
        var chunks = 0
        var largestChunk = 0
        var reconnects = 0
        var stalls = 0
        var malformed = 0
        // Answers discarded since the upload last advanced, for the timeout's message.
        var discardedAtProgress = discardedAnswers
        var versionSwitches = 0
        var busyDeadline: ContinuousClock.Instant?
        var busyWait = self.options.busyDelay
        var announcedResume = false

        func elapsed() -> Double { (clock.now - start).seconds }
        func dropInFlight() {
            for chunk in inFlight { abandon(chunk.ticket) }
            inFlight.removeAll()
        }

        while !state.isComplete {
            if Task.isCancelled {
                dropInFlight()
                throw .cancelled
            }
            if let deadline, clock.now >= deadline {
                dropInFlight()
                throw .deadlineExceeded(options.deadline ?? .zero)
            }
            // Fill the window.
            while state.canSend {
                let offset = state.nextOffset
                let isFirst = offset == 0
                let fields = isFirst ? first : nil
                var count = ImageManagement.UploadRequest.largestDataLength(
                    bodyBudget: bodyBudget, offset: offset, first: fields)
                count = min(count, file.length - offset)
                if count < file.length - offset, options.alignment > 1 {
                    count -= count % options.alignment
                }
                let minimum = isFirst ? min(32, file.length) : 1
                guard count >= minimum else {
                    dropInFlight()
                    throw .deviceLimit(
                        "the device's buffer (\(parameters?.bufferSize ?? 0) bytes, \(packetLimit) per request on this link) is too small to carry an upload chunk at offset \(offset)")
                }
                let request = ImageManagement.UploadRequest(
                    offset: offset, data: try reader.read(offset: offset, count: count), first: fields)
                let ticket: SMPResponseTicket
                do {
                    ticket = try await submit(
                        request, policy: SMPRequestPolicy(timeout: isFirst ? options.firstChunkTimeout : nil))
                } catch .transport(let error) {
                    dropInFlight()
                    try await recoverLink(error, attempt: &reconnects, limit: options.reconnectAttempts)
                    state.restart()
                    continue
                }
                inFlight.append(InFlightChunk(range: offset..<(offset + count), ticket: ticket))
                state.sent(offset..<(offset + count))
                chunks += 1
                largestChunk = max(largestChunk, count)
            }
            guard let head = inFlight.first else {
                state.resync()
                continue
            }

            // The oldest answer decides; later ones wait in their tickets, in whatever order they came.
            let packet: SMPPacket
            do {
                packet = try await head.ticket.response()
            } catch .transport(let error) {
                dropInFlight()
                try await recoverLink(error, attempt: &reconnects, limit: options.reconnectAttempts)
                state.restart()
                continue
            } catch .timedOut(let group, let command, _, _) {
                stalls += 1
                guard stalls <= self.options.retries else {
                    dropInFlight()
                    throw .timedOut(
                        group: group, command: command, attempts: stalls, malformedAnswers: discardedAnswers - discardedAtProgress)
                }
                log("no answer for the chunk at offset \(head.range.lowerBound); sending the window again")
                notify(.retry(attempt: stalls, of: self.options.retries))
                // Every copy keeps listening: a late answer to the first one still counts.
                for chunk in inFlight {
                    do {
                        try state.resent(bytes: chunk.range.count)
                        try await resend(chunk.ticket)
                    } catch .transport(let error) {
                        dropInFlight()
                        try await recoverLink(error, attempt: &reconnects, limit: options.reconnectAttempts)
                        state.restart()
                        break
                    } catch {
                        dropInFlight()
                        throw error
                    }
                }
                continue
            } catch .cancelled {
                dropInFlight()
                throw .cancelled
            }
            inFlight.removeFirst()

            let reported: Int
            let match: Bool?
            switch uploadAnswer(packet, sentVersion: head.ticket.header.version, length: file.length, versionSwitches: &versionSwitches) {
            case .offset(let value, let reportedMatch):
                (reported, match) = (value, reportedMatch)
            case .versionSwitched:
                dropInFlight()
                state.resync()
                continue
            case .busy(let error):
                let limit = busyDeadline ?? clock.now + self.options.busyBudget
                busyDeadline = limit
                dropInFlight()
                guard try await waitOutBusy(until: limit, wait: &busyWait) else {
                    throw .device(error)
                }
                state.resync()
                continue
            case .device(let error):
                dropInFlight()
                throw .device(error)
            case .lost(let error):
                // A corrupted or impossible answer is a lost answer: continue from the device's offset.
                malformed += 1
                dropInFlight()
                guard malformed <= self.options.retries + 2 else { throw .malformedResponse(error) }
                log("malformed answer to the chunk at offset \(head.range.lowerBound) (\(error)); continuing from the device's offset")
                state.resync()
                continue
            }
            busyDeadline = nil
            busyWait = self.options.busyDelay
            let before = state.highWater
            let outcome: UploadWindow.Outcome
            do throws(SMPClientError) {
                outcome = try state.answered(offset: reported, match: match)
            } catch {
                dropInFlight()
                throw error
            }
            if state.highWater > before {
                // Timeouts and malformed answers count in a row: progress starts the count again.
                stalls = 0
                malformed = 0
                discardedAtProgress = discardedAnswers
            }
            if state.resumedFrom > 0, !announcedResume {
                announcedResume = true
                log("device resumes a previous upload at offset \(state.resumedFrom)")
                notify(.resumed(offset: state.resumedFrom))
            }
            switch outcome {
            case .advanced, .complete:
                // The device answers in order: the next request's wait starts now, not when it was
                // sent (on a slow link it queued behind this one, or behind the first chunk's erase).
                for (index, chunk) in inFlight.enumerated() { restartTimer(chunk.ticket, queueAhead: index) }
                progress?(UploadProgress(
                    offset: state.acknowledged, total: file.length, startOffset: state.resumedFrom, elapsed: elapsed()))
            case .resync:
                dropInFlight()
                state.resync()
            case .restart:
                log("device restarted the upload at offset 0; resending the first chunk")
                dropInFlight()
            case .verifyThenRestart:
                dropInFlight()
                // The final answer was lost and Zephyr forgot the finished upload: a late copy of an
                // earlier chunk then reads offset 0. Check the slot before sending everything again.
                // The hash the device lists is the image's hash TLV: known from the caller, or read
                // from the file (its TLV area) only now that it is needed.
                if let hash = options.expectedImageHash ?? (try? FirmwareImageIdentity(file: file))?.hash,
                    let listed = try? await send(ImageManagement.StateReadRequest()),
                    listed.images.contains(where: { $0.image == (options.image ?? 0) && $0.slot == 1 && $0.hash == hash })
                {
                    log("the device already holds the whole image; the final answer was lost")
                    state.completeByVerification()
                    progress?(UploadProgress(
                        offset: file.length, total: file.length, startOffset: state.resumedFrom, elapsed: elapsed()))
                } else {
                    log("device restarted the upload at offset 0; resending the first chunk")
                }
            }
        }
        if state.match == false {
            throw .verificationFailed(.dataMismatch, "the device reports that the uploaded data does not match the file's SHA-256")
        }
        return UploadResult(
            length: file.length, resumedFrom: state.resumedFrom, chunks: chunks, chunkSize: largestChunk,
            seconds: elapsed(), match: state.match, window: windowSize)
    }

    /// What an upload answer says, after the shared classification (busy, version, malformed)
    /// and typed decoding.
    private enum UploadAnswer {
        case offset(Int, match: Bool?)
        case versionSwitched
        case busy(SMPDeviceError)
        case device(SMPDeviceError)
        /// Undecodable, or an offset beyond the file: treated as a lost answer.
        case lost(SMPDecodingError)
    }

    private func uploadAnswer(
        _ packet: SMPPacket, sentVersion: SMPVersion, length: Int, versionSwitches: inout Int
    ) -> UploadAnswer {
        let answer: SMPPacket
        switch classify(packet, sentVersion: sentVersion, versionSwitches: &versionSwitches) {
        case .response(let response): answer = response
        case .versionSwitched: return .versionSwitched
        case .busy(let error): return .busy(error)
        case .malformed(let error): return .lost(error)
        }
        let response: ImageManagement.UploadResponse
        do {
            response = try SMPResponseDecoder.decode(ImageManagement.UploadResponse.self, from: answer)
        } catch {
            switch error {
            case .device(let deviceError): return .device(deviceError)
            case .malformed(let decodingError):
                discardedAnswers += 1
                return .lost(decodingError)
            }
        }
        guard let offset = response.offset, offset <= length else {
            discardedAnswers += 1
            return .lost(SMPDecodingError(
                .unexpectedType, "upload offset \(response.offset ?? -1) is beyond the file's \(length) bytes"))
        }
        return .offset(offset, match: response.match)
    }

    /// The window used when `--window` is not given: one less than the device's buffer count,
    /// and 1 when the device does not report its buffers.
    public var defaultUploadWindow: Int {
        guard parametersSupported, let count = parameters?.bufferCount else { return 1 }
        return max(1, count - 1)
    }

    /// Reopens a lost link, within the allowed number of reconnects.
    private func recoverLink(
        _ error: SMPTransportError, attempt: inout Int, limit: Int
    ) async throws(SMPClientError) {
        attempt += 1
        guard attempt <= limit else { throw .transport(error) }
        log("link lost during the upload (\(error)); reconnecting to resume")
        notify(.reconnecting(attempt: attempt))
        try await reopenAfterLoss(error)
    }

    /// Reopens the link after it was lost, trying for a few seconds.
    func reopenAfterLoss(_ error: SMPTransportError) async throws(SMPClientError) {
        var lastError = SMPClientError.transport(error)
        for attempt in 0..<20 {
            do {
                try await Task.sleep(for: .milliseconds(attempt == 0 ? 50 : 250))
            } catch {
                throw .cancelled
            }
            do {
                try await reopen()
                return
            } catch let failure {
                lastError = failure
            }
        }
        throw lastError
    }
}
