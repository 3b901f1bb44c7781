#if canImport(Glibc)
public import Glibc
#elseif canImport(Musl)
public import Musl
#endif

/// A value that several threads share, guarded by a POSIX mutex.
///
/// It has the shape of `Synchronization.Mutex` (`withLock` hands the body the value `inout`) and
/// replaces it everywhere in smpctl for one reason: ThreadSanitizer intercepts
/// `pthread_mutex_lock`, but not the futex calls of `Mutex`'s contended path, which live in the
/// uninstrumented `libswiftSynchronization`. Under `Mutex`, TSan now and then reported races on
/// data the lock guarded (FUZZING.md, "Sanitizers"); with this lock it sees every hand-over, so a
/// report is a real one. The cost is one heap allocation per lock, made once.
public final class LockedValue<Value: ~Copyable>: @unchecked Sendable {
    // Visible to inlined code: `withLock` is inlinable, so each caller gets it specialized for its
    // value and result types (an unspecialized generic call per lock use cost metadata look-ups).
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    /// Creates the lock around `initialValue`.
    public init(_ initialValue: consuming sending Value) {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
        value = initialValue
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held and the value borrowed mutably; returns what `body` returns.
    /// Not reentrant: calling `withLock` of the same lock inside `body` deadlocks.
    @inlinable
    public func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let status = pthread_mutex_lock(mutex)
        precondition(status == 0, "pthread_mutex_lock failed: \(status)")
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
