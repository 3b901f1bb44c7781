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
    /// For the workflows (`uploadImage`, `update`): upload even when the preflight refuses (an image
    /// larger than the device's slot). The upload engine itself ignores it.
    public var force = false

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

/// Image uploads (group 1, command 1) as the chunked upload engine sends them: the first chunk
/// carries `len`, `sha`, the image number and `upgrade`, and the device answers with its offset
/// (a first chunk whose `sha` matches an interrupted upload is answered with that upload's offset).
struct ImageUploadChunks: ChunkedUploadKind {
    var first: ImageManagement.UploadRequest.FirstChunkFields

    func largestDataLength(bodyBudget: Int, offset: Int) -> Int {
        ImageManagement.UploadRequest.largestDataLength(bodyBudget: bodyBudget, offset: offset, first: offset == 0 ? first : nil)
    }

    func minimumDataLength(offset: Int, remaining: Int) -> Int { offset == 0 ? min(32, remaining) : 1 }

    func request(offset: Int, data: [UInt8]) -> ImageManagement.UploadRequest {
        ImageManagement.UploadRequest(offset: offset, data: data, first: offset == 0 ? first : nil)
    }

    func answer(_ packet: SMPPacket, length: Int) -> ChunkAnswer {
        let response: ImageManagement.UploadResponse
        do {
            response = try SMPResponseDecoder.decode(ImageManagement.UploadResponse.self, from: packet)
        } catch {
            switch error {
            case .device(let deviceError): return .device(deviceError)
            case .malformed(let decodingError): return .lost(decodingError)
            }
        }
        guard let offset = response.offset, offset <= length else {
            return .lost(SMPDecodingError(
                .unexpectedType, "upload offset \(response.offset ?? -1) is beyond the file's \(length) bytes"))
        }
        return .offset(offset, match: response.match, rewound: false)
    }

    func chunkTooSmall(offset: Int, packetLimit: Int, bufferSize: Int?) -> String {
        "the device's buffer (\(bufferSize ?? 0) bytes, \(packetLimit) per request on this link) is too small to carry an upload chunk at offset \(offset)"
    }
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
        var settings = ChunkedUploadSettings(window: max(1, options.window ?? self.options.uploadWindow ?? defaultUploadWindow))
        settings.alignment = options.alignment
        settings.firstChunkTimeout = options.firstChunkTimeout
        settings.reconnectAttempts = options.reconnectAttempts
        settings.deadline = options.deadline
        settings.completedImage = CompletedImageCheck(image: options.image ?? 0, hash: options.expectedImageHash)
        let outcome = try await runChunkedUpload(
            ImageUploadChunks(first: first), file: file, settings: settings, progress: progress)
        if outcome.result.match == false {
            throw .verificationFailed(.dataMismatch, "the device reports that the uploaded data does not match the file's SHA-256")
        }
        return outcome.result
    }

    /// The window used when `--window` is not given: one less than the device's buffer count,
    /// and 1 when the device does not report its buffers.
    public var defaultUploadWindow: Int {
        guard parametersSupported, let count = parameters?.bufferCount else { return 1 }
        return max(1, count - 1)
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
