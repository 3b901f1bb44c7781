// ThreadSanitizer and a continuation resumed before its task suspends (FUZZING.md,
// "ThreadSanitizer and continuations"). Build and run:
//
//   swiftc -parse-as-library -sanitize=thread -g -Onone tsan-continuation-handover.swift -o handover
//   TSAN_OPTIONS=halt_on_error=1 ./handover 300 early     # resume first: a data race report
//   TSAN_OPTIONS=halt_on_error=1 ./handover 300 late      # task suspends first: no report
//   TSAN_OPTIONS=halt_on_error=1 ./handover 300 locked    # resume first, value under a lock: no report
//
// A long-lived thread (like smpctl's D-Bus thread) builds a value of an indirect enum (like a
// decoded DBusValue) and resumes the awaiting task with it; the task reads the value's boxes.
import Foundation

indirect enum Value: Sendable {
    case string(String)
    case array([Value])

    var strings: [String] {
        guard case .array(let items) = self else { return [] }
        return items.compactMap { if case .string(let text) = $0 { text } else { nil } }
    }
}

/// Jobs for the worker thread, under a pthread mutex and condition (which TSan sees).
final class Jobs: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var queue: [@Sendable () -> Void] = []
    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }
    func add(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(&mutex)
        queue.append(job)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }
    func take() -> [@Sendable () -> Void] {
        pthread_mutex_lock(&mutex)
        while queue.isEmpty { pthread_cond_wait(&condition, &mutex) }
        defer { queue = [] }
        let taken = queue
        pthread_mutex_unlock(&mutex)
        return taken
    }
}

/// A value slot under a pthread mutex.
final class Slot: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var value: Value?
    init() { pthread_mutex_init(&mutex, nil) }
    func put(_ new: Value) { pthread_mutex_lock(&mutex); value = new; pthread_mutex_unlock(&mutex) }
    func take() -> Value? { pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }; return value }
}

func reply(_ round: Int) -> Value { .array((0..<(round % 4 + 1)).map { .string(":1.\(round).\($0)") }) }

@main struct HandOver {
    static func main() async {
        let arguments = CommandLine.arguments.dropFirst()
        let rounds = arguments.first.flatMap { Int($0) } ?? 300
        let mode = arguments.dropFirst().first ?? "early"
        let jobs = Jobs()
        Thread { while true { for job in jobs.take() { job() } } }.start()
        var seen = 0
        for round in 0..<rounds {
            let value: Value
            switch mode {
            case "late":
                value = await withCheckedContinuation { continuation in
                    // The task suspends long before the worker resumes it.
                    jobs.add { usleep(2_000); continuation.resume(returning: reply(round)) }
                }
            case "locked":
                let slot = Slot()
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    jobs.add { slot.put(reply(round)); continuation.resume() }
                    usleep(2_000)  // the worker resumes before the task suspends
                }
                value = slot.take() ?? .array([])
            default:
                value = await withCheckedContinuation { continuation in
                    jobs.add { continuation.resume(returning: reply(round)) }
                    usleep(2_000)  // the worker resumes before the task suspends
                }
            }
            seen += value.strings.count
        }
        print("\(mode): \(rounds) rounds, \(seen) strings")
    }
}
