import SMPCtlLocking

/// Awaits a value that the bus thread (or any other thread) produces, and carries the value
/// through a `LockedValue` rather than through the continuation itself.
///
/// Why not `continuation.resume(returning: value)`: when the bus thread resumes a continuation
/// before the awaiting task has reached its suspension point, Swift's concurrency runtime (6.3.1)
/// flips the continuation's state with an atomic compare-exchange in its own, uninstrumented code,
/// and the task goes on without being enqueued. `resumeTaskAfterContinuation` tells
/// ThreadSanitizer "release" for the task, but the matching "acquire" is only made when the task
/// runs from an executor, which this path skips (swiftlang/swift, stdlib/public/Concurrency/Task.cpp,
/// `swift_continuation_awaitImpl`: "If the status is already Resumed, we can resume immediately").
/// ThreadSanitizer then sees no order between the bus thread writing a reply (the boxes of
/// `DBusValue`'s indirect cases in `readValue`) and the caller reading it, and reports a data race
/// (FUZZING.md, "ThreadSanitizer and continuations"). Storing the value under a pthread mutex
/// before resuming, and taking it under the same mutex after, gives an order TSan sees on either
/// path; the program's behaviour does not change, only what TSan can check.
///
/// `start` gets the function that delivers the value; it must be called exactly once. `missing`
/// is returned only if the continuation were resumed without a delivery, which `deliver` rules out.
func awaitHandOver<T: Sendable>(
    missing: @autoclosure () -> T, _ start: (_ deliver: @escaping @Sendable (T) -> Void) -> Void
) async -> T {
    let slot = LockedValue<T?>(nil)
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        start { value in
            slot.withLock { $0 = value }
            continuation.resume()
        }
    }
    // The continuation resumes only after the slot is filled, so this is the delivered value.
    return slot.withLock { $0.take() } ?? missing()
}
