#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
internal import CSMPCtlDBus
import Foundation
import SMPCtlLocking

/// Work for the bus thread; it runs there with the confined state.
typealias BusJob = @Sendable (BusState) -> Void

/// The one thread that calls libdbus for a connection.
///
/// Other threads hand it jobs through a lock-guarded queue and wake it by writing to a pipe.
/// Its loop polls the pipe and the connection's watches, honours libdbus timeouts, runs the
/// queued jobs, and dispatches until libdbus has nothing left.
final class BusThread: Sendable {
    private struct Queue {
        var jobs: [BusJob] = []
        var stopped = false
    }

    private let queue = LockedValue(Queue())
    /// The wake-up pipe: [read end, write end]. Closed in `deinit`, after the thread has ended.
    let wakeReadFD: Int32
    private let wakeWriteFD: Int32

    private init(wakeReadFD: Int32, wakeWriteFD: Int32) {
        self.wakeReadFD = wakeReadFD
        self.wakeWriteFD = wakeWriteFD
    }

    deinit {
        close(wakeReadFD)
        close(wakeWriteFD)
    }

    /// Starts a thread connected to `address`; `onStart` gets the unique name or the failure.
    @discardableResult
    static func start(address: String, onStart: @escaping @Sendable (Result<String, DBusError>) -> Void)
        -> BusThread?
    {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            onStart(.failure(DBusError(.failed, "cannot create a pipe: \(String(cString: strerror(errno)))")))
            return nil
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        let bus = BusThread(wakeReadFD: fds[0], wakeWriteFD: fds[1])
        let thread = Thread {
            bus.run(address: address, onStart: onStart)
        }
        thread.name = "smpctl-dbus"
        thread.start()
        return bus
    }

    /// Queues a job; returns false (and drops it) when the thread has stopped.
    @discardableResult
    func enqueue(_ job: @escaping BusJob) -> Bool {
        let accepted = queue.withLock { queue -> Bool in
            guard !queue.stopped else { return false }
            queue.jobs.append(job)
            return true
        }
        if accepted { wake() }
        return accepted
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWriteFD, &byte, 1)
    }

    private func takeJobs() -> [BusJob] {
        queue.withLock { queue in
            defer { queue.jobs = [] }
            return queue.jobs
        }
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(wakeReadFD, $0.baseAddress, 64) }) > 0 {}
    }

    private func run(address: String, onStart: @escaping @Sendable (Result<String, DBusError>) -> Void) {
        let state: BusState
        do {
            state = try BusState(address: address, thread: self, onStart: onStart)
        } catch {
            queue.withLock { $0.stopped = true }
            onStart(.failure(error))
            return
        }
        while state.isRunning {
            state.pollOnce(wakeFD: wakeReadFD)
            drainWakePipe()
            state.handleReadyWatches()
            state.handleExpiredTimeouts()
            for job in takeJobs() {
                job(state)
            }
            state.dispatchAll()
            state.completeFinishedCalls()
        }
        let leftover = queue.withLock { queue -> [BusJob] in
            queue.stopped = true
            defer { queue.jobs = [] }
            return queue.jobs
        }
        // Jobs that arrived during shutdown see a closed state and fail their callers.
        for job in leftover { job(state) }
        state.releaseConnection()
    }
}
