import Foundation
import SMPCtlLocking
import Synchronization
import Testing

@testable import SMPCtlDBus

/// The hand-over of values from the bus thread to the awaiting caller (`awaitHandOver`). Under
/// ThreadSanitizer (`scripts/sanitize.sh thread`) the first test is the one that reported a race
/// when replies travelled in the continuation itself and the bus thread resumed before the task
/// had suspended (FUZZING.md, "ThreadSanitizer and continuations").
@Suite("bus hand-over")
struct BusHandOverTests {
    /// A reply as `readValue` builds it: indirect cases, each a heap box written on the bus thread.
    static func reply(_ round: Int) -> [DBusValue] {
        [
            .strings([":1.\(round)", "org.bluez", "org.freedesktop.DBus"]),
            .dictionary(keySignature: "s", valueSignature: "v", [
                DBusDictionaryEntry(key: .string("Name"), value: .variant(.string("device \(round)"))),
                DBusDictionaryEntry(key: .string("RSSI"), value: .variant(.int16(Int16(truncatingIfNeeded: -round)))),
            ]),
        ]
    }

    /// A flag set on one thread and polled on another with relaxed atomics only.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .relaxed) }
        func wait(atMost limit: Duration) {
            let deadline = ContinuousClock.now + limit
            while !value.load(ordering: .relaxed), ContinuousClock.now < deadline { usleep(100) }
        }
    }

    /// One long-lived thread that runs the jobs it is given, as the bus thread does.
    final class Worker: Sendable {
        private let jobs = LockedValue<[@Sendable () -> Void]>([])
        init() {
            let jobs = self.jobs
            Thread {
                while true {
                    let taken = jobs.withLock { queue in
                        defer { queue = [] }
                        return queue
                    }
                    for job in taken { job() }
                    if taken.isEmpty { usleep(200) }
                }
            }.start()
        }
        func run(_ job: @escaping @Sendable () -> Void) { jobs.withLock { $0.append(job) } }
    }

    static let worker = Worker()

    /// Runs `body` on the worker thread.
    static func onThread(_ body: @escaping @Sendable () -> Void) { worker.run(body) }

    @Test("a reply delivered from another thread before the caller suspends arrives whole")
    func deliveredBeforeSuspending() async {
        for round in 0..<200 {
            // A relaxed flag: it tells this thread that the delivery is done without giving
            // ThreadSanitizer an order (a semaphore or a lock would give it one and hide the case).
            let delivered = Flag()
            let values: [DBusValue] = await awaitHandOver(missing: []) { deliver in
                Self.onThread {
                    deliver(Self.reply(round))
                    delivered.set()
                }
                // The caller has not suspended yet: the continuation is resumed first, the path
                // on which the runtime gives ThreadSanitizer no order of its own.
                delivered.wait(atMost: .seconds(5))
                usleep(1_000)
            }
            #expect(values == Self.reply(round))
            #expect(values.first?.stringArray?.first == ":1.\(round)")
            #expect(values.last?.stringKeyedDictionary?["Name"]?.stringValue == "device \(round)")
        }
    }

    @Test("a reply delivered after the caller suspends arrives whole")
    func deliveredAfterSuspending() async {
        for round in 0..<20 {
            let values: [DBusValue] = await awaitHandOver(missing: []) { deliver in
                Self.onThread {
                    usleep(2_000)
                    deliver(Self.reply(round))
                }
            }
            #expect(values == Self.reply(round))
        }
    }
}
