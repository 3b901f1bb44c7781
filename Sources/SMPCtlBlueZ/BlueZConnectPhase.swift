import SMPCtlDBus
import Synchronization
import SMPCtlLocking

/// A step of opening a BLE link. Each has its own deadline, and the error of a step that stalls or
/// fails names it: bluetoothd has been seen never to answer `StartNotify` after a failed pairing,
/// and a caller must learn which step to look at rather than wait out one long timeout.
public enum BLEConnectPhase: String, Sendable, Hashable, CaseIterable {
    /// Finding the device: `StartDiscovery` and waiting for its `Device1` object.
    case discovery
    /// `Device1.Connect`.
    case connect = "Connect"
    /// Waiting for `Device1.ServicesResolved`, after which the GATT objects exist.
    case servicesResolved = "service discovery (ServicesResolved)"
    /// `AcquireNotify`, or `StartNotify` (with the `StopNotify` before `AcquireNotify`).
    case notificationSubscription = "notification subscription"
    /// `AcquireWrite`.
    case writeAccess = "write access (AcquireWrite)"
    /// Reading the characteristic's `MTU` property.
    case mtuRead = "MTU read"
    /// `Device1.Pair`, with smpctl's agent.
    case pairing
}

/// Counts `Device1.Connected` turning false for one device, from the moment it is started, so that
/// a connect step fails as soon as the link drops instead of waiting out its deadline.
final class LinkWatch: Sendable {
    private let drops = Atomic<Int>(0)
    private let task = LockedValue<Task<Void, Never>?>(nil)

    private init() {}

    /// Subscribes to the device's `PropertiesChanged`; the match rule is in place when this returns.
    static func start(bus: BusConnection, devicePath: String) async throws(DBusError) -> LinkWatch {
        let watch = LinkWatch()
        let changes = try await bus.signals(matching: DBusMatchRule(
            sender: BlueZ.serviceName, path: devicePath, interface: DBusInterface.properties,
            member: "PropertiesChanged", argument0: BlueZ.deviceInterface))
        let reader = Task { [weak watch] in
            for await signal in changes {
                guard signal.arguments.count >= 2, let changed = signal.arguments[1].stringKeyedDictionary,
                    changed["Connected"]?.boolValue == false
                else { continue }
                watch?.drops.wrappingAdd(1, ordering: .sequentiallyConsistent)
            }
        }
        watch.task.withLock { $0 = reader }
        return watch
    }

    /// How many times the link dropped since the watch started.
    var dropCount: Int { drops.load(ordering: .sequentiallyConsistent) }

    /// A mark from now: phases given it fail once the link drops after this point, also when
    /// the drop came in the gap between two phases.
    func mark() -> LinkMark { LinkMark(watch: self, baseline: dropCount) }

    func stop() {
        task.withLock { task in
            task?.cancel()
            task = nil
        }
    }
}

/// A point in a ``LinkWatch``'s count: the link dropped after it when the count grew.
struct LinkMark: Sendable {
    let watch: LinkWatch
    let baseline: Int
    var dropped: Bool { watch.dropCount > baseline }
}

/// How one bounded step ended.
enum PhaseOutcome<Value: Sendable>: Sendable {
    /// The step answered (successfully or with a D-Bus error).
    case answered(Result<Value, DBusError>)
    /// Its deadline passed first; the step was cancelled.
    case timedOut
    /// `Connected` turned false first; the step was cancelled.
    case dropped
}

enum Phase {
    /// Runs `body` until it answers, `bound` passes, or the link drops after `watch`'s mark,
    /// whichever comes first; the others are cancelled (a D-Bus call in `body` is cancelled with its task).
    static func run<Value: Sendable>(
        within bound: Duration, watch: LinkMark?, _ body: @escaping @Sendable () async throws(DBusError) -> Value
    ) async -> PhaseOutcome<Value> {
        if watch?.dropped == true { return .dropped }
        return await withTaskGroup(of: PhaseOutcome<Value>.self) { group in
            group.addTask {
                do throws(DBusError) {
                    return .answered(.success(try await body()))
                } catch {
                    return .answered(.failure(error))
                }
            }
            group.addTask {
                let clock = ContinuousClock()
                let deadline = clock.now + bound
                while clock.now < deadline {
                    if watch?.dropped == true { return .dropped }
                    do {
                        try await Task.sleep(for: min(.milliseconds(20), deadline - clock.now))
                    } catch {
                        return .timedOut
                    }
                }
                if watch?.dropped == true { return .dropped }
                return .timedOut
            }
            let first = await group.next() ?? .timedOut
            group.cancelAll()
            return first
        }
    }

    /// The D-Bus timeout for a call bounded by `bound`: a little longer, so that the phase's own
    /// deadline (which names the phase) fires first.
    static func callTimeout(_ bound: Duration) -> Duration { bound + .seconds(1) }
}

/// `10 s`, `0.3 s`, `1.25 s`: a duration for messages.
func secondsText(_ duration: Duration) -> String {
    let seconds = min(max(duration.components.seconds, 0), 1_000_000_000)
    let milliseconds = seconds * 1000 + max(duration.components.attoseconds, 0) / 1_000_000_000_000_000
    if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
    var text = String(Double(milliseconds) / 1000)
    if text.hasSuffix(".0") { text.removeLast(2) }
    return text + " s"
}
