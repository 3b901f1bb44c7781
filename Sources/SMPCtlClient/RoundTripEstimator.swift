/// Adaptive response timeouts from measured round trips, after RFC 6298.
///
/// Each sample is divided by the number of requests that were ahead of it when it was sent plus
/// one, because a device answers in order: the estimate is the time per request, and a timeout
/// is scaled back up by the requests in flight. `SRTT` and `RTTVAR` follow RFC 6298 §2
/// (α = 1/8, β = 1/4, RTO = SRTT + max(G, 4·RTTVAR)); a timeout doubles the RTO (§5.5) until the
/// next sample. Karn's rule (no sample from a request that was sent more than once) is applied
/// by the caller. The time per request is kept between ``floor`` and ``ceiling``: a request with
/// `k` requests ahead of it may wait up to `(k + 1) × ceiling`, since each of those may take as long.
public struct RoundTripEstimator: Sendable, Hashable {
    /// The shortest timeout used.
    public var floor: Duration
    /// The longest time per request (`--timeout`); a request queued behind others gets this for each.
    public var ceiling: Duration
    /// The timeout before any sample: RFC 6298 §2.1 suggests one second.
    public var initial: Duration
    /// Smoothed time per request, in seconds; `nil` before the first sample.
    public private(set) var smoothed: Double?
    /// Round-trip variation, in seconds.
    public private(set) var variation: Double = 0
    /// Samples taken.
    public private(set) var samples = 0
    private var backOffFactor: Double = 1

    /// Clock granularity G.
    static let granularity = 0.010

    public init(floor: Duration = .milliseconds(250), ceiling: Duration, initial: Duration = .seconds(1)) {
        self.ceiling = max(ceiling, .milliseconds(1))
        self.floor = min(floor, self.ceiling)
        self.initial = min(initial, self.ceiling)
    }

    /// Adds a round-trip sample of a request that had `queueAhead` requests before it.
    public mutating func add(sample: Duration, queueAhead: Int) {
        let seconds = Self.seconds(sample) / Double(max(0, queueAhead) + 1)
        guard seconds.isFinite, seconds >= 0 else { return }
        if let smoothed {
            variation = 0.75 * variation + 0.25 * abs(smoothed - seconds)
            self.smoothed = 0.875 * smoothed + 0.125 * seconds
        } else {
            smoothed = seconds
            variation = seconds / 2
        }
        samples += 1
        backOffFactor = 1
    }

    /// Doubles the timeout after a loss, up to the ceiling.
    public mutating func backOff() {
        backOffFactor = min(backOffFactor * 2, 64)
    }

    /// The timeout for a request sent with `queueAhead` requests before it.
    public func timeout(queueAhead: Int) -> Duration {
        let ceilingSeconds = Self.seconds(ceiling) * Double(max(0, queueAhead) + 1)
        let base: Double
        if let smoothed {
            base = (smoothed + max(Self.granularity, 4 * variation)) * Double(max(0, queueAhead) + 1)
        } else {
            base = Self.seconds(initial) * Double(max(0, queueAhead) + 1)
        }
        let scaled = min(base * backOffFactor, ceilingSeconds)
        let clamped = max(scaled, Self.seconds(floor))
        return .milliseconds(Int64((min(clamped, ceilingSeconds) * 1000).rounded()))
    }

    static func seconds(_ duration: Duration) -> Double { duration.seconds }
}
