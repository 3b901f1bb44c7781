// `fleet run`: canaries first, then waves; at most N devices at once and K per BLE adapter or
// serial port; each device gets the client's full dfu workflow within its deadline; one failing
// device never stops the others, but failures past the threshold stop new devices from starting.
// Every transition goes to the journal first, so a killed run resumes where it was.

import Foundation
import SMPCtlClient
import SMPCtlProtocol
import SMPCtlLocking

/// Which devices go first.
public enum FleetCanary: Sendable, Equatable {
    /// The first N devices to update.
    case count(Int)
    /// The devices with this label.
    case label(FleetSelector)
}

/// When to halt the rollout.
public enum FleetFailureThreshold: Sendable, Equatable, CustomStringConvertible {
    /// Halt once more than this many devices failed.
    case count(Int)
    /// Halt once more than this percentage of the devices to update failed.
    case percent(Double)

    /// Parses `N` or `P%`.
    public init(parsing text: String) throws(FleetError) {
        if text.hasSuffix("%") {
            guard let value = Double(text.dropLast()), value.isFinite, (0...100).contains(value) else {
                throw .usage("--max-failures takes a count or a percentage from 0% to 100%, not \(text)")
            }
            self = .percent(value)
        } else {
            guard text.utf8.count <= 9, let value = Int(text), value >= 0 else {
                throw .usage("--max-failures takes a count or a percentage such as 5%, not \(text)")
            }
            self = .count(value)
        }
    }

    /// The most failures allowed among `devices`.
    public func allowed(of devices: Int) -> Int {
        switch self {
        case .count(let count): count
        case .percent(let percent): Int((Double(devices) * percent / 100).rounded(.down))
        }
    }

    public var description: String {
        switch self {
        case .count(let count): "\(count) failure\(count == 1 ? "" : "s")"
        case .percent(let percent): "\(percent.formatted())% of the devices"
        }
    }
}

public struct FleetRunOptions: Sendable {
    public var parallel = 8
    /// Devices at once per BLE adapter or serial port.
    public var perAdapter = 1
    public var canary: FleetCanary?
    /// Devices per wave after the canaries; `nil` runs the rest as one wave.
    public var waveSize: Int?
    public var maxFailures: FleetFailureThreshold?
    public var selection: [FleetSelector] = []
    /// Where each device's log goes (`NAME.log`); `nil` writes none.
    public var logDirectory: String?
    /// The command line, for the journal.
    public var arguments: [String] = []
    /// Seconds between progress records in the journal.
    public var progressInterval: Double = 2

    public init() {}
}

/// What a run reports as it goes.
public enum FleetEvent: Sendable {
    /// The run starts: devices selected, to do now, already settled in the journal.
    case started(selected: Int, toDo: Int, settled: Int)
    case wave(number: Int, devices: [String], canary: Bool)
    /// A device's record changed (state or phase).
    case device(FleetDeviceReport)
    case progress(name: String, offset: Int, total: Int, rate: Double)
    /// A retry, reconnect or resume, for the device's line.
    case notice(name: String, text: String)
    case halted(String)
    case finished(FleetReport)
}

public enum FleetRunner {
    /// Runs the rollout and returns its report. Cancelling the task stops it: devices in progress
    /// are recorded as interrupted and the next run resumes them.
    public static func run(
        _ manifest: FleetManifest, options: FleetRunOptions, journal: FleetJournal, factory: @escaping FleetTransportFactory,
        events: (@Sendable (FleetEvent) -> Void)? = nil
    ) async throws(FleetError) -> FleetReport {
        defer { journal.finish() }
        let previous = try FleetJournal.read(path: journal.path)
        let run = RunState(journal: journal, events: events)
        var start = FleetJournalRecord(kind: .run)
        start.manifest = manifest.path
        start.manifestSha256 = manifest.sha256
        start.pid = getpid()
        start.arguments = options.arguments
        try journal.append(start, sync: true)
        let startTime = start.time

        let selected = manifest.select(options.selection)
        var records: [String: FleetDeviceReport] = [:]
        var toDo: [(FleetDevice, [FleetImage])] = []
        var settled = 0
        for device in selected {
            let images = manifest.images(for: device) ?? []
            let targets = images.map {
                FleetTargetReport(name: $0.name, image: $0.imageNumber, version: $0.version, hash: FleetHex.string($0.hash))
            }
            var record = previous.devices[device.name]
                ?? FleetDeviceReport(name: device.name, connection: device.connectionText, labels: device.labels, targets: targets, state: .queued, updated: startTime)
            let sameTargets = record.targets == targets
            record.connection = device.connectionText
            record.labels = device.labels
            if manifest.images(for: device) == nil {
                record.targets = []
                record.state = .noImage
                record.reason = "no rule gives this device an image"
                record.updated = startTime
                try run.write(record, sync: false)
            } else if record.state.isSettled, record.state != .noImage, sameTargets {
                // Done in an earlier run: not contacted again.
                settled += 1
            } else {
                if !sameTargets { record.finalSlots = nil }
                record.targets = targets
                record.state = .queued
                record.phase = nil
                record.updated = startTime
                try run.write(record, sync: false)
                toDo.append((device, images))
            }
            records[device.name] = record
        }
        // One sync covers the queued records above.
        try journal.sync()
        events?(.started(selected: selected.count, toDo: toDo.count, settled: settled))

        // Canaries first, then waves.
        var groups: [(devices: [(FleetDevice, [FleetImage])], canary: Bool)] = []
        var rest = toDo
        switch options.canary {
        case .count(let count)?:
            let canaries = Array(rest.prefix(max(0, count)))
            rest.removeFirst(canaries.count)
            if !canaries.isEmpty { groups.append((canaries, true)) }
        case .label(let selector)?:
            let canaries = rest.filter { selector.matches($0.0) }
            rest.removeAll { selector.matches($0.0) }
            if !canaries.isEmpty { groups.append((canaries, true)) }
        case nil:
            break
        }
        let waveSize = max(1, options.waveSize ?? max(1, rest.count))
        var index = 0
        while index < rest.count {
            let end = min(rest.count, index + waveSize)
            groups.append((Array(rest[index..<end]), false))
            index = end
        }

        let allowed = options.maxFailures?.allowed(of: toDo.count)
        var failures = 0
        var haltReason: String?
        for (number, group) in groups.enumerated() {
            if haltReason != nil || Task.isCancelled { break }
            events?(.wave(number: number, devices: group.devices.map(\.0.name), canary: group.canary))
            let outcome = await runGroup(
                group.devices, manifest: manifest, records: records, options: options, run: run, factory: factory,
                failuresSoFar: failures, allowed: allowed, canary: group.canary)
            for (name, record) in outcome.records { records[name] = record }
            failures = outcome.failures
            haltReason = outcome.haltReason ?? run.journalFailure.map { "the journal cannot be written: \($0)" }
            if group.canary, haltReason == nil {
                let canaryRecords = group.devices.compactMap { records[$0.0.name] }
                if let failed = canaryRecords.first(where: { $0.state == .failed }) {
                    haltReason = "canary \(failed.name) failed: \(failed.failure?.message ?? failed.reason ?? "failed"); no further device was started"
                } else if !canaryRecords.contains(where: { $0.state == .done || $0.state == .upToDate }), !Task.isCancelled {
                    haltReason = "no canary was updated (\(canaryRecords.map { "\($0.name): \($0.state.rawValue)" }.joined(separator: ", "))); no further device was started"
                }
            }
        }
        if let haltReason {
            var halt = FleetJournalRecord(kind: .halt)
            halt.reason = haltReason
            try? journal.append(halt, sync: true)
            events?(.halted(haltReason))
        }
        let interrupted = Task.isCancelled
        let devices = selected.compactMap { records[$0.name] }.map { device -> FleetDeviceReport in
            var device = device
            device.source = journal.path
            return device
        }
        let report = FleetReport(
            manifests: [manifest.path], sources: [journal.path], started: startTime, finished: Date().timeIntervalSince1970,
            halted: haltReason != nil, haltReason: haltReason, interrupted: interrupted && haltReason == nil, devices: devices)
        var end = FleetJournalRecord(kind: .end)
        end.exitStatus = report.exitStatus
        try? journal.append(end, sync: true)
        events?(.finished(report))
        return report
    }

    private struct GroupOutcome {
        var records: [String: FleetDeviceReport] = [:]
        var failures: Int
        var haltReason: String?
    }

    /// Runs one wave: at most `parallel` at once and `perAdapter` per shared link; stops starting
    /// devices once the failures pass the threshold.
    private static func runGroup(
        _ devices: [(FleetDevice, [FleetImage])], manifest: FleetManifest, records: [String: FleetDeviceReport],
        options: FleetRunOptions, run: RunState, factory: @escaping FleetTransportFactory, failuresSoFar: Int, allowed: Int?,
        canary: Bool
    ) async -> GroupOutcome {
        var outcome = GroupOutcome(failures: failuresSoFar)
        let parallel = max(1, min(options.parallel, 4096))
        let perAdapter = max(1, options.perAdapter)
        await withTaskGroup(of: FleetDeviceReport.self) { group in
            var queue = devices
            var running = 0
            var perLink: [String: Int] = [:]
            var links: [String: String] = [:]
            while true {
                let stopping = outcome.haltReason != nil || Task.isCancelled || run.journalFailure != nil
                if !stopping {
                    var position = 0
                    while running < parallel, position < queue.count {
                        let (device, images) = queue[position]
                        if let link = device.sharedLink, perLink[link, default: 0] >= perAdapter {
                            position += 1
                            continue
                        }
                        queue.remove(at: position)
                        running += 1
                        if let link = device.sharedLink {
                            perLink[link, default: 0] += 1
                            links[device.name] = link
                        }
                        let record = records[device.name]
                            ?? FleetDeviceReport(name: device.name, connection: device.connectionText, labels: device.labels, targets: [], state: .queued, updated: 0)
                        let settings = manifest.settings(for: device)
                        group.addTask {
                            await FleetDeviceUpdate(
                                device: device, images: images, settings: settings, record: record, run: run, factory: factory,
                                options: options
                            ).run()
                        }
                    }
                }
                if running == 0 { break }
                guard let finished = await group.next() else { break }
                running -= 1
                if let link = links.removeValue(forKey: finished.name) { perLink[link, default: 1] -= 1 }
                outcome.records[finished.name] = finished
                if finished.state == .failed {
                    outcome.failures += 1
                    if let allowed, outcome.failures > allowed, outcome.haltReason == nil {
                        let threshold = options.maxFailures.map { "\($0)" } ?? "\(allowed)"
                        outcome.haltReason = "\(outcome.failures) devices failed, more than the threshold of \(threshold) (--max-failures); devices not started were left untouched"
                    }
                }
            }
        }
        return outcome
    }
}

/// What the devices of a run share: the journal, the event sink, a journal failure.
///
/// A device's transitions are journaled with group commit: ``transition(_:)`` queues the record,
/// and the device's transport (``FleetJournaledTransport``) sends nothing until it is on disk, so
/// every transition is durable before the device is asked for anything after it, as when each
/// transition had its own fsync; the device's last record is awaited before its task ends.
final class RunState: Sendable {
    let journal: FleetJournal
    let events: (@Sendable (FleetEvent) -> Void)?
    private let failure = LockedValue<String?>(nil)

    init(journal: FleetJournal, events: (@Sendable (FleetEvent) -> Void)?) {
        self.journal = journal
        self.events = events
    }

    var journalFailure: String? { failure.withLock { $0 } ?? journal.failure }

    /// Journals a device record and reports it.
    func write(_ record: FleetDeviceReport, sync: Bool) throws(FleetError) {
        var line = FleetJournalRecord(kind: .device, time: record.updated)
        line.device = record
        try journal.append(line, sync: sync)
    }

    /// Queues a transition for the journal and returns its number there (0 when it could not be
    /// queued, which stops new devices from starting). Its event goes out once it is on disk; the
    /// device awaits ``durable(_:)`` before its next request (``FleetJournaledTransport``).
    func transition(_ record: FleetDeviceReport) -> UInt64 {
        var line = FleetJournalRecord(kind: .device, time: record.updated)
        line.device = record
        var announce: (@Sendable () -> Void)?
        if let events = self.events { announce = { events(.device(record)) } }
        do throws(FleetError) {
            return try journal.enqueue(line, after: announce)
        } catch {
            failure.withLock { $0 = $0 ?? error.description }
            events?(.device(record))
            return 0
        }
    }

    /// Returns once transition `number` (and every one before it) is on disk, or the journal failed.
    func durable(_ number: UInt64) async {
        await journal.durable(number)
    }

    func progress(name: String, offset: Int, total: Int, rate: Double, journal: Bool) {
        if journal {
            var line = FleetJournalRecord(kind: .progress)
            line.name = name
            line.offset = offset
            line.total = total
            line.rate = rate
            try? self.journal.append(line, sync: false)
        }
        events?(.progress(name: name, offset: offset, total: total, rate: rate))
    }
}

enum FleetHex {
    static func string(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
