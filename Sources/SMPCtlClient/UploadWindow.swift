/// The bookkeeping of a windowed upload, without I/O: which bytes to send next, what an answer
/// means, and when the device has stopped making progress. ``SMPClient/upload(_:options:progress:)``
/// drives it; tests drive it directly.
///
/// The device's reported offset is the truth: the window continues from it, never moves to an
/// offset it has not sent (a resume answer to the first chunk aside), and counts the bytes it
/// sends without the device's highest offset growing. That count is bounded, as are restarts
/// at offset 0 and answers beyond what was sent, so no device can keep an upload going forever.
public struct UploadWindow: Sendable, Hashable {
    /// What an answer changed.
    public enum Outcome: Sendable, Hashable {
        /// The device took the chunk; more to send.
        case advanced
        /// The device holds the whole file.
        case complete
        /// The device continues elsewhere: drop what is in flight and send from ``acknowledged``.
        case resync
        /// The device lost the upload after the whole file was sent: check whether it holds the
        /// image before starting again.
        case verifyThenRestart
        /// The device lost the upload: start again with a first chunk.
        case restart
    }

    /// The file's length.
    public let length: Int
    /// Chunks allowed in flight once the first chunk is answered.
    public let window: Int
    /// Bytes sent without the device's highest offset growing before the upload is declared stalled:
    /// 32 windows of chunks, at least 128 KiB.
    public let stallBudget: Int
    /// How many times the device may restart the upload at offset 0. The stall budget bounds a
    /// restart loop too: bytes sent again below ``highWater`` are bytes without progress.
    public let restartLimit: Int
    /// Answers beyond the bytes sent that are tolerated.
    public let beyondSentLimit: Int

    /// The device's offset.
    public private(set) var acknowledged = 0
    /// Where the next chunk starts.
    public private(set) var nextOffset = 0
    /// The end of the furthest chunk sent since the last (re)start.
    public private(set) var highestSent = 0
    /// The highest offset the device has ever reported.
    public private(set) var highWater = 0
    /// The offset a previous upload was resumed at (0 when none).
    public private(set) var resumedFrom = 0
    /// Bytes sent since ``highWater`` last grew.
    public private(set) var bytesWithoutProgress = 0
    /// Restarts at offset 0 so far.
    public private(set) var restarts = 0
    /// Answers beyond what was sent so far.
    public private(set) var beyondSent = 0
    /// Whether the first chunk of the current attempt has been answered.
    public private(set) var started = false
    /// Chunks in flight, oldest first.
    public private(set) var inFlight: [Range<Int>] = []
    /// The `match` of the answer that completed the upload.
    public private(set) var match: Bool?
    /// Whether the device's offset went back since ``highWater`` last grew.
    private var wentBack = false
    /// Answers older than one already counted (a lower offset than ``acknowledged``), so far.
    public private(set) var staleAnswers = 0

    /// A window over `length` bytes. With a `startOffset` above 0 the device is known to hold
    /// that many bytes already (a file upload continued after its hash was compared): the window
    /// starts there, as if a first chunk had been answered with it.
    public init(
        length: Int, window: Int, chunkSize: Int, restartLimit: Int = 4, beyondSentLimit: Int = 3, startOffset: Int = 0
    ) {
        self.length = max(0, length)
        self.window = max(1, window)
        let chunk = max(1, chunkSize)
        let (product, overflow) = chunk.multipliedReportingOverflow(by: 32 * self.window)
        self.stallBudget = overflow ? Int.max : max(product, 128 * 1024)
        self.restartLimit = restartLimit
        self.beyondSentLimit = beyondSentLimit
        let start = min(max(0, startOffset), self.length)
        if start > 0 {
            acknowledged = start
            nextOffset = start
            highestSent = start
            highWater = start
            resumedFrom = start
            started = true
        }
    }

    /// Whether the device holds the whole file.
    public var isComplete: Bool { acknowledged >= length && started }

    /// Whether another chunk may go out now: the first chunk goes alone (the device erases the
    /// slot and may answer with a resume offset).
    public var canSend: Bool {
        guard nextOffset < length else { return false }
        return inFlight.count < (started ? window : 1)
    }

    /// Records a chunk sent.
    public mutating func sent(_ range: Range<Int>) {
        inFlight.append(range)
        nextOffset = range.upperBound
        highestSent = max(highestSent, range.upperBound)
        bytesWithoutProgress = bytesWithoutProgress &+ range.count
    }

    /// Forgets the chunks in flight and continues from the device's offset.
    public mutating func resync() {
        inFlight.removeAll()
        nextOffset = started ? acknowledged : 0
    }

    /// Starts the whole upload again from nothing, the progress measures included: the caller
    /// sends everything once more on purpose (the device holds damaged data), which is not a stall.
    public mutating func startOver() {
        restart()
        highWater = 0
        bytesWithoutProgress = 0
        match = nil
        wentBack = false
    }

    /// Starts again with a first chunk (a lost link, or the device lost its upload state).
    public mutating func restart() {
        inFlight.removeAll()
        acknowledged = 0
        nextOffset = 0
        highestSent = 0
        started = false
    }

    /// Marks the upload complete without a final answer (the device lists the image already).
    public mutating func completeByVerification() {
        inFlight.removeAll()
        acknowledged = length
        started = true
    }

    /// Applies the answer to the oldest chunk in flight, which reported `offset`.
    public mutating func answered(offset reported: Int, match: Bool?) throws(SMPClientError) -> Outcome {
        guard !inFlight.isEmpty else { return .resync }
        let chunk = inFlight.removeFirst()
        let isFirst = chunk.lowerBound == 0
        if reported > highestSent, !(isFirst && reported > chunk.upperBound) {
            beyondSent += 1
            guard beyondSent <= beyondSentLimit else {
                throw .verificationFailed(.offsetBeyondSent, "the device keeps reporting offsets beyond the data sent (last \(reported), sent \(highestSent))")
            }
            resync()
            return .resync
        }
        if reported == 0, !isFirst {
            restarts += 1
            guard restarts <= restartLimit else {
                throw .stalled("it restarted the upload at offset 0 \(restarts) times")
            }
            let everything = highestSent >= length
            restart()
            return everything ? .verifyThenRestart : .restart
        }
        if reported > 0, reported < acknowledged, started {
            // An answer the device gave before one already counted: this chunk reached it ahead of
            // the one sent before it (several ATT bearers under EATT deliver writes out of order),
            // or the device went back. Either way the window follows the device's offset (a chunk
            // it already holds is refused with the offset it expects, which costs one request),
            // and the engine takes the count as a sign that the link reorders.
            staleAnswers += 1
        }
        started = true
        if isFirst, reported > chunk.upperBound, resumedFrom == 0 { resumedFrom = reported }
        if reported < acknowledged { wentBack = true }
        acknowledged = reported
        if reported > highWater {
            highWater = reported
            bytesWithoutProgress = 0
            wentBack = false
        }
        if bytesWithoutProgress > stallBudget {
            let what = wentBack ? "its offset went back below \(highWater)" : "its offset stayed at \(reported)"
            throw .stalled("\(what) while \(bytesWithoutProgress) bytes were sent")
        }
        if reported >= length {
            self.match = match
            inFlight.removeAll()
            return .complete
        }
        if reported != chunk.upperBound {
            resync()
            return .resync
        }
        return .advanced
    }

    /// Counts a chunk resent after a loss against the stall budget; throws when it is spent.
    public mutating func resent(bytes: Int) throws(SMPClientError) {
        bytesWithoutProgress = bytesWithoutProgress &+ bytes
        if bytesWithoutProgress > stallBudget {
            throw .stalled("no answer moved its offset past \(highWater) while \(bytesWithoutProgress) bytes were sent")
        }
    }
}
