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
        let clock = ContinuousClock()
        let start = clock.now
        var offset = 0
        var resumedFrom = 0
        var chunks = 0
        var largestChunk = 0
        var match: Bool?
        var rejectedAnswers = 0
        var reconnects = 0

        func elapsed() -> Double {
            let duration = clock.now - start
            return Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        }

        while offset < file.length {
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
                throw .invalidInput(
                    "the device's buffer (\(packetLimit) bytes per request) is too small to carry an upload chunk at offset \(offset)")
            }
            let data = try reader.read(offset: offset, count: count)
            let request = ImageManagement.UploadRequest(offset: offset, data: data, first: fields)
            chunks += 1
            largestChunk = max(largestChunk, count)
            let response: ImageManagement.UploadResponse
            do {
                response = try await send(request, timeout: isFirst ? options.firstChunkTimeout : nil)
            } catch .transport(let error) {
                reconnects += 1
                guard reconnects <= options.reconnectAttempts else { throw .transport(error) }
                log("link lost during the upload (\(error)); reconnecting to resume")
                try await reopenAfterLoss(error)
                // A first chunk with the same sha makes the device report how far it got.
                offset = 0
                continue
            }
            guard let reported = response.offset, reported <= file.length else {
                throw .malformedResponse(
                    SMPDecodingError(.unexpectedType, "upload offset \(response.offset ?? -1) is beyond the file's \(file.length) bytes"))
            }
            let sentEnd = offset + count
            if isFirst {
                if reported > sentEnd {
                    // The device kept a previous upload of this same file (same sha): resume.
                    if resumedFrom == 0 { resumedFrom = reported }
                    log("device resumes a previous upload at offset \(reported)")
                }
            } else if reported > sentEnd {
                rejectedAnswers += 1
                log("ignored an upload answer with offset \(reported) beyond the \(sentEnd) bytes sent")
                guard rejectedAnswers <= self.options.retries else {
                    throw .verificationFailed("the device keeps reporting offsets beyond the data sent")
                }
                continue
            }
            if reported == 0, offset > 0 { log("device restarted the upload at offset 0; resending the first chunk") }
            offset = reported
            if reported == file.length { match = response.match }
            progress?(UploadProgress(offset: offset, total: file.length, startOffset: resumedFrom, elapsed: elapsed()))
        }
        if match == false {
            throw .verificationFailed("the device reports that the uploaded data does not match the file's SHA-256")
        }
        return UploadResult(
            length: file.length, resumedFrom: resumedFrom, chunks: chunks, chunkSize: largestChunk, seconds: elapsed(),
            match: match)
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
