#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
import Foundation
import SMPCtlLocking

/// One thread that waits, with `poll`, on every descriptor that smpctl reads (UDP and serial
/// transports, the simulator's endpoints, BlueZ's notification sockets) and on a wake pipe.
///
/// It sleeps until a descriptor is ready or the set changes: no timeouts, no periodic wake-ups.
/// Handlers run on the loop thread, one at a time, and must be quick and thread-safe; a handler
/// returns `false` to stop watching its descriptor. ``remove(_:)`` returns only once the loop has
/// dropped the descriptor, so the caller may close it right after.
package final class ReadinessLoop: Sendable {
    /// What a handler is told: the `revents` that `poll` reported.
    package typealias Handler = @Sendable (_ revents: Int16) -> Bool

    private struct Watch {
        let fd: Int32
        let events: Int16
        let handler: Handler
    }

    private struct State {
        var watches: [UInt64: Watch] = [:]
        var nextID: UInt64 = 1
        var started = false
        /// Changes with every watch added or dropped: the loop rebuilds its poll set only then.
        var generation: UInt64 = 0
        /// Removals waiting for the loop to come round (it may be inside a handler).
        var removals: [CheckedContinuation<Void, Never>] = []
    }

    /// The process's loop.
    package static let shared = ReadinessLoop()

    private let state = LockedValue(State())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private init() {
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) == 0 {
            for end in ends {
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            }
        } else {
            ends = [-1, -1]
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
    }

    /// Watches `fd` for `events` (`POLLIN` by default); returns the watch's identifier.
    package func add(fd: Int32, events: Int16 = Int16(POLLIN), handler: @escaping Handler) -> UInt64 {
        let (id, start) = state.withLock { state -> (UInt64, Bool) in
            let id = state.nextID
            state.nextID += 1
            state.watches[id] = Watch(fd: fd, events: events, handler: handler)
            state.generation &+= 1
            defer { state.started = true }
            return (id, !state.started)
        }
        if start {
            let thread = Thread { [self] in run() }
            thread.name = "smpctl-io"
            thread.start()
        } else {
            wake()
        }
        return id
    }

    /// Stops watching; returns once no handler of this watch runs or will run.
    package func remove(_ id: UInt64) async {
        let known = state.withLock { state -> Bool in
            guard state.watches.removeValue(forKey: id) != nil else { return false }
            state.generation &+= 1
            return true
        }
        guard known else { return }
        await withCheckedContinuation { continuation in
            state.withLock { $0.removals.append(continuation) }
            wake()
        }
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = valueOrErrno { write(wakeWrite, &byte, 1) }  // EAGAIN: a wake-up is pending already
    }

    private func run() {
        var drain = [UInt8](repeating: 0, count: 64)
        // The poll set is kept from one round to the next and rebuilt only when a watch was added
        // or dropped: with a simulated fleet's 200 sockets, sorting and copying the set on every
        // datagram was a tenth of the simulator's time.
        var built: UInt64?
        var watches: [(UInt64, Watch)] = []
        var descriptors: [pollfd] = []
        while true {
            // Between two polls no handler runs: the removals asked for so far are complete.
            let (changed, removals) = state.withLock { state -> ((UInt64, [(UInt64, Watch)])?, [CheckedContinuation<Void, Never>]) in
                defer { state.removals = [] }
                let changed = built == state.generation ? nil : (state.generation, state.watches.sorted { $0.key < $1.key })
                return (changed, state.removals)
            }
            for removal in removals { removal.resume() }
            if case let (generation, current)? = changed {
                built = generation
                watches = current
                descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
                descriptors += watches.map { pollfd(fd: $0.1.fd, events: $0.1.events, revents: 0) }
            } else {
                for index in descriptors.indices { descriptors[index].revents = 0 }
            }
            let ready = valueOrErrno { poll(&descriptors, nfds_t(descriptors.count), -1) }
            guard case .success(let count) = ready, count > 0 else { continue }
            if descriptors[0].revents != 0 {
                while valueOrErrno(retryOnInterrupt: true, { read(wakeRead, &drain, drain.count) }).map({ $0 > 0 }) == .success(true) {}
            }
            for (index, entry) in watches.enumerated() {
                let revents = descriptors[index + 1].revents
                guard revents != 0 else { continue }
                // A watch removed while this round was under way is not called again.
                guard state.withLock({ $0.watches[entry.0] != nil }) else { continue }
                if !entry.1.handler(revents) {
                    state.withLock { state in
                        if state.watches.removeValue(forKey: entry.0) != nil { state.generation &+= 1 }
                    }
                }
            }
        }
    }
}
