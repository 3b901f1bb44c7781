import SMPCtlProtocol
import SMPCtlTransport

/// What one upload answer says, once the shared classification (busy, version, malformed) has
/// passed it on: the device's offset, a device error, or an answer to treat as lost.
enum ChunkAnswer {
    /// The device's offset after this chunk: where it continues. `rewound` marks an answer that
    /// refused the chunk and named the offset it expects instead (fs_mgmt.c's FILE_OFFSET_NOT_VALID).
    case offset(Int, match: Bool?, rewound: Bool)
    case device(SMPDeviceError)
    /// Undecodable, or an offset beyond the file.
    case lost(SMPDecodingError)
}

/// One kind of chunked upload (an image to a slot, a file to the file system): how its
/// requests are built and sized and what their answers mean. ``SMPClient/runChunkedUpload(_:file:settings:progress:)``
/// is the one engine that drives every kind through ``UploadWindow``.
protocol ChunkedUploadKind: Sendable {
    associatedtype Request: SMPRequest
    /// The largest data length of a chunk at `offset` whose request body fits `bodyBudget`.
    func largestDataLength(bodyBudget: Int, offset: Int) -> Int
    /// The fewest data bytes a chunk at `offset` may carry (`remaining` are left in the file).
    func minimumDataLength(offset: Int, remaining: Int) -> Int
    /// The request that carries `data` at `offset`.
    func request(offset: Int, data: [UInt8]) -> Request
    /// What an answer (already classified, not busy, not a version switch) says.
    func answer(_ packet: SMPPacket, length: Int) -> ChunkAnswer
    /// Why no chunk fits at `offset`.
    func chunkTooSmall(offset: Int, packetLimit: Int, bufferSize: Int?) -> String
}

/// How the engine runs one upload.
struct ChunkedUploadSettings: Sendable {
    /// Chunks in flight once the first is answered.
    var window: Int
    /// Data lengths are rounded down to a multiple of this (the last chunk aside).
    var alignment = 1
    /// The fixed wait for the answer to a chunk at offset 0 (`nil`: adaptive).
    var firstChunkTimeout: Duration?
    /// Lost links reopened before the upload fails.
    var reconnectAttempts = 3
    var deadline: Duration?
    /// Where the device's data already ends (a file continued from an earlier run): the window
    /// starts there, with no first chunk.
    var startOffset = 0
    /// After a lost link: continue at the device's offset (the file group answers a chunk at
    /// another offset with the one it expects) instead of starting again with a first chunk
    /// (the image group answers a first chunk with its resume offset).
    var continuesAfterLinkLoss = false
    /// The image a lost final answer may already have completed, checked in the image list
    /// before starting over.
    var completedImage: CompletedImageCheck?
}

/// The image whose secondary slot may already hold a finished upload: its number and its hash
/// TLV (`nil`: read from the file's TLV area only when it is needed).
struct CompletedImageCheck: Sendable {
    var image: Int
    var hash: [UInt8]?
}

/// What the engine did, beyond ``UploadResult``.
struct ChunkedUploadOutcome: Sendable {
    var result: UploadResult
    /// Answers that refused a chunk and named the device's offset.
    var rewinds: Int
    /// Answers older than one already counted: chunks that overtook the one sent before them.
    var reorderedAnswers = 0
}

/// A chunk sent and not yet answered.
struct InFlightChunk: Sendable {
    var range: Range<Int>
    var ticket: SMPResponseTicket
}

extension SMPClient {
    /// The windowed upload engine, shared by image and file uploads.
    ///
    /// It fills the window, waits for the oldest answer, and lets ``UploadWindow`` decide:
    /// advance, continue from the device's offset (dropping what is in flight), start again, or
    /// finish. A chunk without an answer is sent again with the rest of the window, and an answer
    /// to any copy counts. Timeouts, malformed answers, busy answers, lost links, the bytes sent
    /// without progress and the optional deadline are all bounded.
    func runChunkedUpload<Kind: ChunkedUploadKind>(
        _ kind: Kind, file: FirmwareFile, settings: ChunkedUploadSettings,
        progress: (@Sendable (UploadProgress) -> Void)?
    ) async throws(SMPClientError) -> ChunkedUploadOutcome {
        let packetLimit = await maximumRequestSize()
        var bodyBudget = packetLimit - SMPHeader.size
        // A request split across writes can be garbled when its writes take different ATT bearers
        // (EATT): once answers show writes overtaking each other, every request fits one write.
        let framing = await transport.framing
        var oneWritePerRequest = false
        var redoneWithOneWrite = false
        /// From now on every request fits one write; `false` when it already does or cannot.
        func switchToOneWritePerRequest() -> Bool {
            guard !oneWritePerRequest, framing.splitsAcrossWrites, packetLimit > framing.maximumWrite else { return false }
            oneWritePerRequest = true
            bodyBudget = framing.maximumWrite - SMPHeader.size
            notify(.reordering(writeLimit: framing.maximumWrite))
            return true
        }
        let overtakingAtStart = overtakingAnswers
        let reader = try FirmwareReader(file: file)
        let windowSize = max(1, settings.window)
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = settings.deadline.map { start + $0 }
        let typicalChunk = max(1, kind.largestDataLength(bodyBudget: bodyBudget, offset: 1 << 20))
        var state = UploadWindow(
            length: file.length, window: windowSize, chunkSize: typicalChunk, startOffset: settings.startOffset)
        var inFlight: [InFlightChunk] = []
        var chunks = 0
        var largestChunk = 0
        var reconnects = 0
        var stalls = 0
        var malformed = 0
        var rewinds = 0
        var reorderedAnswers = 0
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
        func afterLinkLoss() {
            if settings.continuesAfterLinkLoss { state.resync() } else { state.restart() }
        }

        if settings.startOffset > 0 {
            progress?(UploadProgress(
                offset: state.acknowledged, total: file.length, startOffset: state.resumedFrom, elapsed: elapsed()))
        }
        while !state.isComplete {
            if Task.isCancelled {
                dropInFlight()
                throw .cancelled
            }
            if let deadline, clock.now >= deadline {
                dropInFlight()
                throw .deadlineExceeded(settings.deadline ?? .zero)
            }
            // Fill the window.
            while state.canSend {
                let offset = state.nextOffset
                let remaining = file.length - offset
                var count = min(kind.largestDataLength(bodyBudget: bodyBudget, offset: offset), remaining)
                if count < remaining, settings.alignment > 1 {
                    count -= count % settings.alignment
                }
                guard count >= kind.minimumDataLength(offset: offset, remaining: remaining) else {
                    dropInFlight()
                    throw .deviceLimit(
                        kind.chunkTooSmall(offset: offset, packetLimit: packetLimit, bufferSize: parameters?.bufferSize))
                }
                let request = kind.request(offset: offset, data: try reader.read(offset: offset, count: count))
                let ticket: SMPResponseTicket
                do {
                    ticket = try await submit(
                        request, policy: SMPRequestPolicy(timeout: offset == 0 ? settings.firstChunkTimeout : nil))
                } catch .transport(let error) {
                    dropInFlight()
                    try await recoverLink(error, attempt: &reconnects, limit: settings.reconnectAttempts)
                    afterLinkLoss()
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
                try await recoverLink(error, attempt: &reconnects, limit: settings.reconnectAttempts)
                afterLinkLoss()
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
                        try await recoverLink(error, attempt: &reconnects, limit: settings.reconnectAttempts)
                        afterLinkLoss()
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
            let answer: ChunkAnswer
            switch classify(packet, sentVersion: head.ticket.header.version, versionSwitches: &versionSwitches) {
            case .response(let response):
                answer = kind.answer(response, length: file.length)
                if case .lost = answer { discardedAnswers += 1 }
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
            case .malformed(let error):
                answer = .lost(error)
            }
            switch answer {
            case .offset(let value, let reportedMatch, let rewound):
                (reported, match) = (value, reportedMatch)
                if rewound {
                    rewinds += 1
                    log("the device refused the chunk at offset \(head.range.lowerBound) and expects offset \(value); continuing there")
                }
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
            let staleBefore = state.staleAnswers
            let outcome: UploadWindow.Outcome
            do throws(SMPClientError) {
                outcome = try state.answered(offset: reported, match: match)
            } catch {
                dropInFlight()
                throw error
            }
            // Evidence that the link does not keep order: an answer older than one already counted
            // (without a timeout since the last progress no copy went twice, so this chunk reached
            // the device ahead of the one sent before it), or an answer that overtook an earlier one.
            let stale = state.staleAnswers > staleBefore && stalls == 0
            if stale { reorderedAnswers += 1 }
            if stale || overtakingAnswers > overtakingAtStart {
                if switchToOneWritePerRequest() {
                    log("the device received chunks out of order (several ATT bearers: EATT); one write per request from offset \(state.acknowledged)")
                }
            }
            if state.highWater > before {
                // Timeouts and malformed answers count in a row: progress starts the count again.
                stalls = 0
                malformed = 0
                discardedAtProgress = discardedAnswers
            }
            if state.resumedFrom > 0, !announcedResume {
                announcedResume = true
                if settings.startOffset == 0 {
                    log("device resumes a previous upload at offset \(state.resumedFrom)")
                    notify(.resumed(offset: state.resumedFrom))
                }
            }
            if outcome == .complete, state.match == false, !redoneWithOneWrite, framing.splitsAcrossWrites,
                packetLimit > framing.maximumWrite
            {
                // The device writes the bytes it gets: on a BLE link a hash that does not match means
                // the writes of a request split across several were put together out of order (EATT),
                // which no answer shows. Send everything again, each request in one write.
                redoneWithOneWrite = true
                _ = switchToOneWritePerRequest()
                log("the device's hash of the upload does not match the file after requests split across writes; uploading again, one write per request")
                dropInFlight()
                state.startOver()
                continue
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
                if let completed = settings.completedImage,
                    let hash = completed.hash ?? (try? FirmwareImageIdentity(file: file))?.hash,
                    let listed = try? await send(ImageManagement.StateReadRequest()),
                    listed.images.contains(where: { $0.image == completed.image && $0.slot == 1 && $0.hash == hash })
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
        let result = UploadResult(
            length: file.length, resumedFrom: state.resumedFrom, chunks: chunks, chunkSize: largestChunk,
            seconds: elapsed(), match: state.match, window: windowSize)
        return ChunkedUploadOutcome(result: result, rewinds: rewinds, reorderedAnswers: reorderedAnswers)
    }

    /// Reopens a lost link, within the allowed number of reconnects.
    func recoverLink(
        _ error: SMPTransportError, attempt: inout Int, limit: Int
    ) async throws(SMPClientError) {
        attempt += 1
        guard attempt <= limit else { throw .transport(error) }
        log("link lost during the upload (\(error)); reconnecting to resume")
        notify(.reconnecting(attempt: attempt))
        try await reopenAfterLoss(error)
    }
}
