// The journal beside a run: an append-only JSON Lines file, synced to disk after every state
// transition, so that a run killed with SIGKILL can be run again and skip what is done. One run
// at a time holds it (flock); readers (`fleet status`, `fleet report`) never block it.

public import Foundation
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

    deinit { close(fd) }

    /// Appends one record as one line; `sync` waits until it is on disk (fsync).
    public func append(_ record: FleetJournalRecord, sync: Bool) throws(FleetError) {
        var data: Data
        do {
            data = try FleetCoding.encoder(pretty: false).encode(record)
        } catch {
            throw .file("cannot encode a journal record: \(error)")
        }
        data.append(0x0A)
        guard data.count <= Self.maximumLine else { throw .file("a journal record is larger than \(Self.maximumLine) bytes") }
        let failure: String? = lock.withLock { _ in
            let written = data.withUnsafeBytes { buffer -> Bool in
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
        if let failure { throw .file(failure) }
    }

    /// Waits until everything appended is on disk.
    public func sync() throws(FleetError) {
        let failed = lock.withLock { _ in fsync(fd) != 0 }
        if failed { throw .file("cannot sync the journal \(path): \(String(cString: strerror(errno)))") }
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
