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
    var offset: Int
    var end: Int
    var ticket: SMPResponseTicket
}

extension SMPClient {
    /// Uploads `file` to the device's secondary slot.
    ///
    /// Each chunk is sized so that its encoded request exactly fits the device's buffer and the
    /// path; the first chunk carries `len`, `sha` and the image number. The upload always
    /// continues from the offset the device reports; a device that answers a first chunk with a
    /// later offset resumes a previous upload of the same file. Offsets beyond what was sent
    /// are refused.
    public func upload(
        _ file: FirmwareFile, options: UploadOptions = UploadOptions(),
        progress: (@Sendable (UploadProgress) -> Void)? = nil
    ) async throws(SMPClientError) -> UploadResult {
        if parameters == nil { try await readParameters() }
        let packetLimit = await maximumRequestSize()
        let bodyBudget = packetLimit - SMPHeader.size
        let first = ImageManagement.UploadRequest.FirstChunkFields(
            length: file.length, sha: file.sha256, image: options.image, upgrade: options.upgrade)
        let reader = try FirmwareReader(file: file)
        let window = max(1, options.window ?? defaultUploadWindow)
        let clock = ContinuousClock()
        let start = clock.now
        var offset = 0  // what the device has acknowledged
        var nextOffset = 0  // where the next chunk starts
        var highestSent = 0  // the end of the furthest chunk sent
        var inFlight: [InFlightChunk] = []
        var resync = false
        var resumedFrom = 0
        var chunks = 0
        var largestChunk = 0
        var match: Bool?
        var rejectedAnswers = 0
        var reconnects = 0
        var stalls = 0
        var busyLeft = self.options.busyRetries
        var busyWait = self.options.busyDelay

        func elapsed() -> Double {
            let duration = clock.now - start
            return Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        }

        while offset < file.length {
            // Fill the window. The first chunk goes alone: the device erases the slot and may resume.
            while !resync, nextOffset < file.length, inFlight.count < (offset == 0 ? 1 : window) {
                let isFirst = nextOffset == 0
                let fields = isFirst ? first : nil
                var count = ImageManagement.UploadRequest.largestDataLength(
                    bodyBudget: bodyBudget, offset: nextOffset, first: fields)
                count = min(count, file.length - nextOffset)
                if count < file.length - nextOffset, options.alignment > 1 {
                    count -= count % options.alignment
                }
                let minimum = isFirst ? min(32, file.length) : 1
                guard count >= minimum else {
                    throw .invalidInput(
                        "the device's buffer (\(packetLimit) bytes per request) is too small to carry an upload chunk at offset \(nextOffset)")
                }
                let request = ImageManagement.UploadRequest(
                    offset: nextOffset, data: try reader.read(offset: nextOffset, count: count), first: fields)
                let ticket: SMPResponseTicket
                do {
                    ticket = try await submit(
                        group: request.group, command: request.command, operation: request.operation,
                        body: request.bodyBytes, timeout: isFirst ? options.firstChunkTimeout : self.options.timeout)
                } catch .transport(let error) {
                    try await recoverLink(error, attempt: &reconnects, limit: options.reconnectAttempts)
                    inFlight.removeAll()
                    (offset, nextOffset, resync) = (0, 0, false)
                    continue
                }
                inFlight.append(InFlightChunk(offset: nextOffset, end: nextOffset + count, ticket: ticket))
                chunks += 1
                largestChunk = max(largestChunk, count)
                nextOffset += count
                highestSent = max(highestSent, nextOffset)
                if isFirst { break }
            }
            guard !inFlight.isEmpty else {
                // Nothing in flight and nothing to send: continue from the device's offset.
                nextOffset = offset
                resync = false
                continue
            }

            // Take the oldest answer; later ones wait in their tickets, in whatever order they came.
            let chunk = inFlight.removeFirst()
            let reported: Int
            do throws(SMPClientError) {
                let packet = try await chunk.ticket.response()
                let response = try decodeUploadResponse(packet)
                guard let value = response.offset, value <= file.length else {
                    throw SMPClientError.malformedResponse(SMPDecodingError(
                        .unexpectedType, "upload offset \(response.offset ?? -1) is beyond the file's \(file.length) bytes"))
                }
                reported = value
                if reported == file.length { match = response.match }
            } catch .transport(let error) {
                try await recoverLink(error, attempt: &reconnects, limit: options.reconnectAttempts)
                inFlight.removeAll()
                (offset, nextOffset, resync) = (0, 0, false)
                continue
            } catch .timedOut(let group, let command, _) {
                // Only the chunk the device needs next counts towards giving up: later chunks of
                // the same window time out with it, and a resync resends them anyway.
                if chunk.offset <= offset { stalls += 1 }
                guard stalls <= self.options.retries else {
                    throw .timedOut(group: group, command: command, attempts: stalls)
                }
                log("no answer for the chunk at offset \(chunk.offset); resending from the device's offset")
                resync = true
                if inFlight.isEmpty { (nextOffset, resync) = (offset, false) }
                continue
            } catch .device(let error) where error.isBusy && busyLeft > 0 {
                busyLeft -= 1
                log("device busy; resending from offset \(offset) in \(busyWait)")
                try? await Task.sleep(for: busyWait)
                busyWait = min(busyWait * 2, .seconds(1))
                resync = true
                if inFlight.isEmpty { (nextOffset, resync) = (offset, false) }
                continue
            }

            if reported > highestSent, !(chunk.offset == 0 && reported > chunk.end) {
                // Never move to an offset the client has not sent (a resume answer to a first chunk aside).
                rejectedAnswers += 1
                log("ignored an upload answer with offset \(reported) beyond the \(highestSent) bytes sent")
                guard rejectedAnswers <= self.options.retries else {
                    throw .verificationFailed(.offsetBeyondSent, "the device keeps reporting offsets beyond the data sent")
                }
                resync = true
            } else if reported == 0, chunk.offset > 0 {
                // The device lost its upload state (a reset, another client): start over with a first chunk.
                log("device restarted the upload at offset 0; resending the first chunk")
                inFlight.removeAll()
                (offset, nextOffset, resync) = (0, 0, false)
                continue
            } else {
                if chunk.offset == 0, reported > chunk.end {
                    if resumedFrom == 0 { resumedFrom = reported }
                    log("device resumes a previous upload at offset \(reported)")
                }
                if reported != chunk.end { resync = true }
                if reported > offset {
                    offset = reported
                    stalls = 0
                    progress?(UploadProgress(
                        offset: offset, total: file.length, startOffset: resumedFrom, elapsed: elapsed()))
                }
            }
            if resync, inFlight.isEmpty { (nextOffset, resync) = (offset, false) }
        }
        if match == false {
            throw .verificationFailed(.dataMismatch, "the device reports that the uploaded data does not match the file's SHA-256")
        }
        return UploadResult(
            length: file.length, resumedFrom: resumedFrom, chunks: chunks, chunkSize: largestChunk, seconds: elapsed(),
            match: match, window: window)
    }

    /// The window used when `--window` is not given: one less than the device's buffer count,
    /// and 1 when the device does not report its buffers.
    public var defaultUploadWindow: Int {
        guard parametersSupported, let count = parameters?.bufferCount else { return 1 }
        return max(1, count - 1)
    }

    /// Decodes an upload answer, applying the v1/v2 switch the way `exchange` does.
    private func decodeUploadResponse(_ packet: SMPPacket) throws(SMPClientError) -> ImageManagement.UploadResponse {
        if packet.header.version == .v1, version != .v1, options.forcedVersion == nil {
            log("device answered with an SMP v1 header; using v1 from now on")
            version = .v1
        }
        do {
            return try SMPResponseDecoder.decode(ImageManagement.UploadResponse.self, from: packet)
        } catch {
            switch error {
            case .device(let deviceError): throw .device(deviceError)
            case .malformed(let decodingError): throw .malformedResponse(decodingError)
            }
        }
    }

    /// Reopens a lost link, within the allowed number of reconnects.
    private func recoverLink(
        _ error: SMPTransportError, attempt: inout Int, limit: Int
    ) async throws(SMPClientError) {
        attempt += 1
        guard attempt <= limit else { throw .transport(error) }
        log("link lost during the upload (\(error)); reconnecting to resume")
        try await reopenAfterLoss(error)
    }

    /// Reopens the link after it was lost, trying for a few seconds.
    func reopenAfterLoss(_ error: SMPTransportError) async throws(SMPClientError) {
        var lastError = SMPClientError.transport(error)
        for attempt in 0..<20 {
            try? await Task.sleep(for: .milliseconds(attempt == 0 ? 50 : 250))
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
