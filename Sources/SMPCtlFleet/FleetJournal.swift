// The journal beside a run: an append-only JSON Lines file, synced to disk after every state
// transition (before the device goes on: group commit, one fsync for the transitions of many
// devices), so that a run killed with SIGKILL can be run again and skip what is done. One run
// at a time holds it (flock); readers (`fleet status`, `fleet report`) never block it.

public import Foundation
import Dispatch
import SMPCtlFiles
import SMPCtlLocking

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line of the journal.
public struct FleetJournalRecord: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// A run started: manifest, process, options.
        case run
        /// A device's whole record after a transition (the last one per device wins).
        case device
        /// Upload progress of an active device (not synced; at most every few seconds).
        case progress
        /// The rollout was halted.
        case halt
        /// The run finished (or was interrupted) with this exit status.
        case end
    }

    public var kind: Kind
    public var time: Double
    // run
    public var manifest: String?
    public var manifestSha256: String?
    public var pid: Int32?
    public var arguments: [String]?
    // device
    public var device: FleetDeviceReport?
    // progress
    public var name: String?
    public var offset: Int?
    public var total: Int?
    public var rate: Double?
    // halt, end
    public var reason: String?
    public var exitStatus: Int32?

    public init(kind: Kind, time: Double = Date().timeIntervalSince1970) {
        self.kind = kind
        self.time = time
    }
}

/// A journal opened for writing by one run.
public final class FleetJournal: Sendable {
    /// The largest journal read.
    public static let maximumSize = 1 << 30
    /// The longest line read; longer ones are corrupt.
    public static let maximumLine = 1 << 20

    public let path: String
    private let fd: Int32
    private let lock = LockedValue(())

    /// Opens (creating) the journal and takes its lock; another run holding it is refused.
    public init(path: String) throws(FleetError) {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            throw .file("cannot open the journal \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .file("the journal \(path) is not a regular file")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                let holder = (try? Self.read(path: path))?.runs.last?.pid.map { " (pid \($0))" } ?? ""
                throw .journalLocked("another run is using the journal \(path)\(holder); wait for it to finish, or give another --journal")
            }
            throw .file("cannot lock the journal \(path): \(String(cString: strerror(code)))")
        }
        self.fd = fd
    }

    deinit {
        // Whatever is still queued (a progress record) goes out before the lock is let go.
        drain(through: queue.withLock { $0.queued }, sync: true)
        close(fd)
    }

    /// Records queued, written and synced, and what waits for them.
    ///
    /// Group commit: records are queued (``enqueue(_:after:sync:)``) and written by whoever drains
    /// the queue, in order, with one `write`, and one `fsync` when any of them asks for it, for
    /// everything queued by then. While one batch syncs, the next one gathers, so 50 devices
    /// changing phase at once cost a few fsyncs, not 50, and no device's task blocks a thread of
    /// the concurrency pool on the disk: the journal's own queue (``flusher``) drains. A device
    /// that needs its transition on disk before it goes on awaits ``durable(_:)`` with the number
    /// ``enqueue(_:after:sync:)`` gave.
    private struct Queue {
        var bytes: [UInt8] = []
        /// Work to run once the records queued with it are written (and synced, if asked), in order.
        var after: [@Sendable () -> Void] = []
        /// Numbers of records: the last one queued, written, on disk, and that asked to be synced.
        var queued: UInt64 = 0
        var written: UInt64 = 0
        var synced: UInt64 = 0
        var syncWanted: UInt64 = 0
        var waiters: [(record: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        /// Whether a drain on ``flusher`` is scheduled or running.
        var draining = false
        var failure: String?

        /// Whether records up to `number` still need a write, or a sync.
        func pending(through number: UInt64) -> Bool {
            written < min(number, queued) || synced < min(number, syncWanted)
        }
    }

    private let queue = LockedValue(Queue())
    private let flusher = DispatchQueue(label: "smpctl.fleet.journal")

    /// Appends one record as one line; with `sync`, returns once it is on disk (fsync). Blocks the
    /// calling thread for that: for the few records of a run's start and end. Devices queue
    /// theirs with ``enqueue(_:after:sync:)`` and await ``durable(_:)``. Without `sync` the
    /// record is written soon, by the journal's queue, and synced with the next record that asks.
    public func append(_ record: FleetJournalRecord, sync: Bool) throws(FleetError) {
        let number = try enqueue(record, sync: sync)
        guard sync else { return }
        drain(through: number, sync: true)
        if let failure = queue.withLock({ $0.failure }) { throw .file(failure) }
    }

    /// Waits until everything appended is on disk and the journal's queue holds no drain of its
    /// own, so that whoever lets the journal go releases its lock at once: a drain still running
    /// on the queue would otherwise keep the journal, and its lock, a moment after the run ended
    /// (a second run on the same journal, started right after, was refused).
    public func finish() {
        drain(through: queue.withLock { $0.queued }, sync: true)
        flusher.sync {}
    }

    /// Waits until everything appended is on disk.
    public func sync() throws(FleetError) {
        drain(through: queue.withLock { $0.queued }, sync: true)
        if let failure = queue.withLock({ $0.failure }) { throw .file(failure) }
    }

    /// Queues one record, written soon by the journal's queue (and synced, with `sync`), and
    /// returns its number for ``durable(_:)``; `after` runs once it is written (and synced).
    @discardableResult
    func enqueue(_ record: FleetJournalRecord, after: (@Sendable () -> Void)? = nil, sync: Bool = true) throws(FleetError) -> UInt64 {
        let line = try FleetJournalLine.encode(record)
        guard line.count <= Self.maximumLine else { throw .file("a journal record is larger than \(Self.maximumLine) bytes") }
        let (number, schedule) = queue.withLock { queue -> (UInt64, Bool) in
            queue.bytes += line
            if let after { queue.after.append(after) }
            queue.queued += 1
            if sync { queue.syncWanted = queue.queued }
            guard !queue.draining else { return (queue.queued, false) }
            queue.draining = true
            return (queue.queued, true)
        }
        // Weak: a journal let go of drains what is left in its deinit, and its lock is free after.
        if schedule { flusher.async { [weak self] in self?.drainQueued() } }
        return number
    }

    /// Returns once record `number` and all before it are on disk, or writing them failed. For a
    /// record queued with `sync`.
    func durable(_ number: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = queue.withLock { queue -> Bool in
                if queue.synced >= number || queue.failure != nil { return true }
                queue.waiters.append((number, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// The first failure to write or sync, if any.
    var failure: String? { queue.withLock { $0.failure } }

    /// On ``flusher``: drains until the queue is empty, then lets the next record schedule again.
    private func drainQueued() {
        while true {
            let target = queue.withLock { queue -> UInt64? in
                guard queue.pending(through: queue.queued) else {
                    queue.draining = false
                    return nil
                }
                return queue.queued
            }
            guard let target else { return }
            drain(through: target, sync: false)
        }
    }

    /// Writes batches until record `number` is written, syncing each batch that holds a record
    /// that asked for it (with `sync`, everything up to `number` is synced). One drain at a time
    /// (`lock`): a second one waits, and finds its records written by the first or takes the next
    /// batch.
    private func drain(through number: UInt64, sync: Bool) {
        lock.withLock { _ in
            if sync { queue.withLock { $0.syncWanted = max($0.syncWanted, min(number, $0.queued)) } }
            while true {
                let batch = queue.withLock { queue -> (bytes: [UInt8], after: [@Sendable () -> Void], last: UInt64, sync: Bool, write: Bool)? in
                    guard queue.pending(through: number) else { return nil }
                    defer {
                        queue.bytes = []
                        queue.after = []
                    }
                    // After a failure nothing more is written, but the events still go out.
                    return (queue.bytes, queue.after, queue.queued, queue.syncWanted > queue.synced, queue.failure == nil)
                }
                guard let batch else { return }
                let failure = batch.write ? writeAndSync(batch.bytes, sync: batch.sync) : nil
                let waiters = queue.withLock { queue -> [CheckedContinuation<Void, Never>] in
                    queue.written = batch.last
                    if batch.sync { queue.synced = batch.last }
                    if let failure { queue.failure = queue.failure ?? failure }
                    let failed = queue.failure != nil
                    let synced = queue.synced
                    let ready = queue.waiters.filter { $0.record <= synced || failed }
                    queue.waiters.removeAll { $0.record <= synced || failed }
                    return ready.map(\.continuation)
                }
                // What the records announce (events) goes out once they are on disk, before the
                // devices waiting for them go on.
                for work in batch.after { work() }
                for waiter in waiters { waiter.resume() }
            }
        }
    }

    /// One write of `bytes`, and an fsync with `sync`; the failure's message, if one failed.
    private func writeAndSync(_ bytes: [UInt8], sync: Bool) -> String? {
        let written = bytes.withUnsafeBytes { buffer -> Bool in
            guard var pointer = buffer.baseAddress else { return true }
            var left = buffer.count
            while left > 0 {
                let count = write(fd, pointer, left)
                if count < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                left -= count
                pointer += count
            }
            return true
        }
        guard written else { return "cannot write the journal \(path): \(String(cString: strerror(errno)))" }
        if sync, fsync(fd) != 0 { return "cannot sync the journal \(path): \(String(cString: strerror(errno)))" }
        return nil
    }

    /// Whether a run holds the journal's lock now.
    public static func isLocked(path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    /// Reads a journal: every complete line; a last line cut short by a kill is ignored, and so
    /// is a line that does not decode (counted in ``FleetJournalContents/skippedLines``).
    public static func read(path: String) throws(FleetError) -> FleetJournalContents {
        let data: Data
        do {
            data = try RegularFile.read(path, limit: maximumSize)
        } catch {
            throw .file(error.description)
        }
        return parse(data, path: path)
    }

    static func parse(_ data: Data, path: String) -> FleetJournalContents {
        var contents = FleetJournalContents(path: path)
        let decoder = FleetCoding.decoder()
        var start = data.startIndex
        while start < data.endIndex {
            guard let newline = data[start...].firstIndex(of: 0x0A) else {
                // Cut short (the process died mid-write): not a record.
                contents.skippedLines += 1
                break
            }
            let line = data[start..<newline]
            start = data.index(after: newline)
            guard !line.isEmpty else { continue }
            guard line.count <= maximumLine, let record = try? decoder.decode(FleetJournalRecord.self, from: line) else {
                contents.skippedLines += 1
                continue
            }
            contents.add(record)
        }
        return contents
    }
}

/// What a journal says: runs, the latest record of each device, halts.
public struct FleetJournalContents: Sendable {
    public var path: String
    public var runs: [FleetJournalRecord] = []
    /// Device records by name, the latest one.
    public var devices: [String: FleetDeviceReport] = [:]
    /// Device names in the order they first appeared.
    public var order: [String] = []
    /// The latest progress of each device, for those active.
    public var progress: [String: FleetJournalRecord] = [:]
    /// The halt of the latest run, if it was halted.
    public var halt: FleetJournalRecord?
    /// The end of the latest run, if it ended.
    public var end: FleetJournalRecord?
    public var skippedLines = 0

    public init(path: String) { self.path = path }

    mutating func add(_ record: FleetJournalRecord) {
        switch record.kind {
        case .run:
            runs.append(record)
            halt = nil
            end = nil
        case .device:
            guard let device = record.device else { return }
            if devices[device.name] == nil { order.append(device.name) }
            devices[device.name] = device
            if device.state != .active { progress[device.name] = nil }
        case .progress:
            if let name = record.name { progress[name] = record }
        case .halt:
            halt = record
        case .end:
            end = record
        }
    }

    /// The devices in order; a device left active by a run that is no longer running is interrupted.
    public func deviceReports(runIsLive: Bool) -> [FleetDeviceReport] {
        order.compactMap { name in
            guard var device = devices[name] else { return nil }
            if device.state == .active, !runIsLive {
                device.state = .interrupted
                device.reason = "the run stopped while this device was \(device.phase ?? "active"); the next run resumes it"
            }
            if device.state == .active, let progress = progress[name], let offset = progress.offset {
                device.uploadedBytes = max(device.uploadedBytes, FleetNumbers.add(offset, -(max(0, device.resumedFrom ?? 0))))
            }
            return device
        }
    }

    /// The journal as a report.
    public func report(runIsLive: Bool) -> FleetReport {
        let devices = deviceReports(runIsLive: runIsLive).map { device -> FleetDeviceReport in
            var device = device
            device.source = path
            return device
        }
        let interrupted = end.map { $0.exitStatus == FleetExit.interrupted || ($0.exitStatus ?? 0) > 128 } ?? !runIsLive
        return FleetReport(
            manifests: Array(Set(runs.compactMap(\.manifest))).sorted(), sources: [path],
            started: runs.first?.time, finished: end?.time,
            halted: halt != nil, haltReason: halt?.reason,
            interrupted: interrupted && halt == nil && devices.contains { !$0.state.isSettled && !$0.state.isProblem },
            devices: devices)
    }
}
