// One device of a run: read its image list, decide, and run the client's dfu workflow for each
// image it needs, within the device's deadline and tries. Every phase change is journaled, and
// on disk before the device is sent anything after it (group commit: FleetJournal, RunState);
// upload progress is journaled every few seconds.

import Foundation
import SMPCtlClient
import SMPCtlProtocol
import SMPCtlTransport
import SMPCtlLocking

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct FleetDeviceUpdate: Sendable {
    let device: FleetDevice
    let images: [FleetImage]
    let settings: FleetResolvedSettings
    let record: FleetDeviceReport
    let run: RunState
    let factory: FleetTransportFactory
    let options: FleetRunOptions

    /// Runs the device to a final state and returns its record.
    func run() async -> FleetDeviceReport {
        let log = FleetDeviceLog(directory: options.logDirectory, name: device.name)
        // An earlier try of this rollout started on this device (a killed or interrupted run): if
        // the device now runs the target, that try updated it.
        let triedBefore = record.started != nil && record.state != .upToDate
        let tracker = Tracker(record: record, run: run, log: log, progressInterval: options.progressInterval)
        tracker.begin()
        log.write("connection \(device.connectionText); targets \(images.map { "\($0.name) \($0.version) (image \($0.imageNumber))" }.joined(separator: ", "))")
        let clock = ContinuousClock()
        let start = clock.now
        var outcome: Result<Final, SMPClientError>
        do {
            let value = try await FleetDeadline.run(seconds: settings.deadline) { () async throws(SMPClientError) -> Final in
                try await attempts(tracker: tracker, log: log)
            }
            outcome = .success(value)
        } catch {
            outcome = .failure(error)
        }
        let seconds = FleetClock.seconds(clock.now - start)
        if triedBefore, case .success(.upToDate(let reason, let slots, let plans)) = outcome {
            outcome = .success(Final.done("updated by an earlier try of this rollout; \(reason)", slots, plans))
        }
        let final = tracker.finish(outcome, seconds: seconds)
        // The runner acts on the device's end (counts it, may halt): on disk first.
        await tracker.durable()
        log.write("finished: \(final.state.rawValue)\(final.reason.map { ": \($0)" } ?? "") after \(String(format: "%.2f", seconds)) s")
        log.close()
        return final
    }

    /// How a device ended, short of a failure.
    enum Final: Sendable {
        case upToDate(String, [ImageManagement.SlotState], [FleetImagePlan])
        case blocked(String, [ImageManagement.SlotState], [FleetImagePlan])
        case done(String, [ImageManagement.SlotState], [FleetImagePlan])
    }

    /// Tries the update up to `attempts` times while the link fails.
    private func attempts(tracker: Tracker, log: FleetDeviceLog) async throws(SMPClientError) -> Final {
        var attempt = 1
        while true {
            do {
                return try await once(tracker: tracker, log: log)
            } catch {
                guard attempt < settings.attempts, Self.isLinkFailure(error), !Task.isCancelled else { throw error }
                attempt += 1
                log.write("try \(attempt - 1) failed (\(error)); trying again")
                tracker.retrying(error)
                do {
                    try await Task.sleep(for: .milliseconds(500))
                } catch {
                    throw .cancelled
                }
            }
        }
    }

    static func isLinkFailure(_ error: SMPClientError) -> Bool {
        switch error {
        case .transport, .timedOut, .stalled, .malformedResponse: true
        case .verificationFailed(let check, _): check == .noAnswerAfterReset
        default: false
        }
    }

    private func once(tracker: Tracker, log: FleetDeviceLog) async throws(SMPClientError) -> Final {
        tracker.phase("connecting")
        let options = FleetSession.clientOptions(
            settings,
            log: { line in log.write(line) },
            notice: { notice in tracker.notice(notice) })
        let factory = self.factory
        let journaled: FleetTransportFactory = { spec in
            FleetJournaledTransport(base: try factory(spec), durable: { await tracker.durable() })
        }
        return try await FleetSession.with(device, factory: journaled, options: options) { client throws(SMPClientError) -> Final in
            tracker.phase("reading")
            let state = try await client.readImageState()
            tracker.contacted(state.images)
            let assessment = FleetAssessment.assess(slots: state.images, targets: images, allowDowngrade: settings.allowDowngrade)
            log.write("assessment: \(assessment.action.rawValue): \(assessment.reason)")
            switch assessment.action {
            case .upToDate: return .upToDate(assessment.reason, state.images, assessment.images)
            case .blocked: return .blocked(assessment.reason, state.images, assessment.images)
            case .update, .unreachable, .noImage: break
            }
            tracker.planned(assessment.images)
            var slots = state.images
            for plan in assessment.pending {
                guard let image = images.first(where: { $0.name == plan.name }) else { continue }
                tracker.image(plan)
                var update = FirmwareUpdateOptions(mode: settings.mode)
                update.upload.image = image.imageNumber
                update.upload.window = settings.window
                update.reconnectTimeout = .milliseconds(Int64(settings.reconnectTimeout * 1000))
                let report: FirmwareUpdateReport
                do throws(SMPClientError) {
                    report = try await client.update(image.file, imageHash: image.hash, options: update) { event in
                        tracker.event(event)
                    }
                } catch {
                    // The device answers: record what it holds now, for the report (one short try).
                    switch error {
                    case .device, .verificationFailed, .deviceLimit:
                        if let after = try? await client.send(
                            ImageManagement.StateReadRequest(), policy: SMPRequestPolicy(timeout: .seconds(2), retries: 0))
                        {
                            tracker.slotsAfterFailure(after.images)
                        }
                    default:
                        break
                    }
                    throw error
                }
                tracker.uploaded(report.upload)
                slots = report.finalState
            }
            let summary = assessment.pending.map { "\($0.name) \($0.from ?? "nothing") -> \($0.to)" }.joined(separator: ", ")
            return .done("updated \(summary)", slots, assessment.images)
        }
    }

    /// The device's record as it changes, journaled and reported.
    final class Tracker: Sendable {
        private struct State {
            var record: FleetDeviceReport
            /// The journal number of the device's last transition, and the last one known on disk.
            var journaled: UInt64 = 0
            var durable: UInt64 = 0
            var contacted = false
            var lastProgressJournal = 0.0
            var lastProgressEvent = 0.0
        }

        private let state: LockedValue<State>
        private let run: RunState
        private let log: FleetDeviceLog
        private let progressInterval: Double

        init(record: FleetDeviceReport, run: RunState, log: FleetDeviceLog, progressInterval: Double) {
            self.state = LockedValue(State(record: record))
            self.run = run
            self.log = log
            self.progressInterval = progressInterval
        }

        private func change(journal: Bool = true, _ body: (inout FleetDeviceReport) -> Void) {
            let run = self.run
            state.withLock { state in
                body(&state.record)
                state.record.updated = Date().timeIntervalSince1970
                // Queued under the device's lock, so its records reach the journal in order.
                if journal { state.journaled = max(state.journaled, run.transition(state.record)) }
            }
        }

        /// Returns once the device's transitions so far are on disk (or the journal failed).
        func durable() async {
            let (wanted, known) = state.withLock { ($0.journaled, $0.durable) }
            guard wanted > known else { return }
            await run.durable(wanted)
            state.withLock { $0.durable = max($0.durable, wanted) }
        }

        func begin() {
            change { record in
                record.state = .active
                record.phase = "connecting"
                record.attempts = FleetNumbers.add(record.attempts, 1)
                record.started = Date().timeIntervalSince1970
                record.finished = nil
                record.failure = nil
                record.reason = nil
                record.finalSlots = nil
                record.log = log.path
            }
        }

        func phase(_ name: String) {
            let same = state.withLock { $0.record.phase == name }
            guard !same else { return }
            log.write("phase: \(name)")
            change { $0.phase = name }
        }

        func contacted(_ slots: [ImageManagement.SlotState]) {
            state.withLock { $0.contacted = true }
            log.write("image list: " + slots.map { "image \($0.image) slot \($0.slot) \($0.version)\($0.active ? " active" : "")\($0.confirmed ? " confirmed" : "")\($0.pending ? " pending" : "")" }.joined(separator: "; "))
        }

        func slotsAfterFailure(_ slots: [ImageManagement.SlotState]) {
            log.write("after the failure: " + slots.map { "image \($0.image) slot \($0.slot) \($0.version)\($0.active ? " active" : "")\($0.confirmed ? " confirmed" : "")" }.joined(separator: "; "))
            change(journal: false) { $0.finalSlots = FleetSlots.report(slots) }
        }

        func planned(_ plans: [FleetImagePlan]) {
            change(journal: false) { $0.images = plans }
        }

        func image(_ plan: FleetImagePlan) {
            log.write("updating \(plan.name) (image \(plan.imageNumber)): \(plan.from ?? "nothing") -> \(plan.to)")
        }

        func retrying(_ error: SMPClientError) {
            change { record in
                record.phase = "retrying"
                record.reason = "retrying after: \(error.description)"
            }
        }

        func notice(_ notice: SMPClientNotice) {
            let name = state.withLock { $0.record.name }
            let text: String
            switch notice {
            case .retry(let attempt, let of):
                state.withLock { $0.record.retries = FleetNumbers.add($0.record.retries, 1) }
                text = "retry \(attempt)/\(of)"
            case .busy(let wait):
                text = "busy, waiting \(wait)"
            case .reconnecting(let attempt):
                state.withLock { $0.record.reconnects = FleetNumbers.add($0.record.reconnects, 1) }
                text = "reconnecting (\(attempt))"
            case .resumed(let offset):
                state.withLock { $0.record.resumedFrom = offset }
                text = "resumed at offset \(offset)"
            case .pathLimit(let bytes):
                text = "the path carries \(bytes)-byte datagrams"
            case .reordering(let limit):
                text = "chunks arrived out of order; one write of up to \(limit) bytes per request"
            }
            log.write(text)
            run.events?(.notice(name: name, text: text))
        }

        func uploaded(_ result: UploadResult?) {
            guard let result else { return }
            change(journal: false) { record in
                record.uploadedBytes = FleetNumbers.add(record.uploadedBytes, max(0, result.length - result.resumedFrom))
                if result.resumedFrom > 0 { record.resumedFrom = result.resumedFrom }
            }
        }

        func event(_ event: FirmwareUpdateEvent) {
            switch event {
            case .readParameters(let parameters, let supported):
                log.write("buffers: \(parameters.bufferCount) x \(parameters.bufferSize)\(supported ? "" : " (not reported)")")
            case .preflight(let preflight):
                if case .fits(let limit, let source)? = preflight.slotCheck { log.write("slot check: fits (\(limit) bytes, \(source))") }
                if let reason = preflight.slotInfoUnavailable { log.write("slot info unavailable: \(reason)") }
            case .speedAdvice(let findings):
                for finding in findings { log.write("speed: \(finding.summary)") }
            case .alreadyOnDevice(let slot, let active, _):
                log.write("the device already holds the image in slot \(slot)\(active ? " and runs it" : "")")
            case .uploadStarted(let length, let budget):
                log.write("uploading \(length) bytes in requests of up to \(budget) bytes")
                phase("uploading")
            case .uploadProgress(let progress):
                let now = Date().timeIntervalSince1970
                let (name, journal, report) = state.withLock { state -> (String, Bool, Bool) in
                    let final = progress.offset >= progress.total
                    let journal = final || now - state.lastProgressJournal >= progressInterval
                    let report = final || now - state.lastProgressEvent >= 0.25
                    if journal { state.lastProgressJournal = now }
                    if report { state.lastProgressEvent = now }
                    return (state.record.name, journal, report)
                }
                if report || journal {
                    run.progress(name: name, offset: progress.offset, total: progress.total, rate: progress.rate, journal: journal)
                }
            case .uploadFinished(let result):
                log.write("uploaded in \(String(format: "%.2f", result.seconds)) s, \(result.chunks) chunks\(result.resumedFrom > 0 ? ", resumed at \(result.resumedFrom)" : "")")
                phase("verifying")
            case .verifiedUpload(let slot):
                log.write("the device lists the new image in slot \(slot)")
            case .markedForTest:
                phase("marked-for-test")
            case .markedPermanent:
                phase("marked-permanent")
            case .resetting:
                phase("resetting")
            case .reconnected(let seconds):
                log.write(String(format: "device back after %.2f s", seconds))
                phase("checking")
            case .runningNewImage(let confirmed):
                log.write("the new image runs\(confirmed ? " and is confirmed" : "")")
                phase("confirming")
            case .confirmed:
                log.write("confirmed")
            }
        }

        func finish(_ outcome: Result<Final, SMPClientError>, seconds: Double) -> FleetDeviceReport {
            let contacted = state.withLock { $0.contacted }
            var final: FleetDeviceReport?
            change { record in
                record.phase = nil
                record.finished = Date().timeIntervalSince1970
                record.updateSeconds = seconds
                switch outcome {
                case .success(.upToDate(let reason, let slots, let plans)):
                    record.state = .upToDate
                    record.reason = reason
                    record.finalSlots = FleetSlots.report(slots)
                    record.images = plans
                case .success(.blocked(let reason, let slots, let plans)):
                    record.state = .blocked
                    record.reason = reason
                    record.finalSlots = FleetSlots.report(slots)
                    record.images = plans
                case .success(.done(let reason, let slots, let plans)):
                    record.state = .done
                    record.reason = reason
                    record.finalSlots = FleetSlots.report(slots)
                    record.images = plans
                case .failure(let error):
                    if case .cancelled = error {
                        record.state = .interrupted
                        record.reason = "interrupted; the next run resumes this device"
                    } else {
                        record.state = contacted ? .failed : .unreachable
                        record.reason = error.description
                        record.failure = FleetDiagnosis.report(error)
                    }
                }
                final = record
            }
            return final ?? state.withLock { $0.record }
        }
    }
}

/// A device's transport as the fleet uses it: before it opens the link or sends a request, the
/// device's journaled transitions are on disk, so a kill never leaves the device ahead of the journal.
struct FleetJournaledTransport: SMPTransport {
    let base: any SMPTransport
    let durable: @Sendable () async -> Void

    var description: String { base.description }
    var framing: SMPFraming { get async { await base.framing } }
    var linkModel: LinkModel? { get async { await base.linkModel } }

    func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError) {
        await durable()
        try await base.open(events: events)
    }

    func send(_ packet: [UInt8]) async throws(SMPTransportError) {
        await durable()
        try await base.send(packet)
    }

    func close() async { await base.close() }
}

enum FleetSlots {
    static func report(_ slots: [ImageManagement.SlotState]) -> [FleetSlotReport] {
        slots.map {
            FleetSlotReport(
                image: $0.image, slot: $0.slot, version: $0.version, hash: $0.hash.map(FleetHex.string),
                active: $0.active, confirmed: $0.confirmed, pending: $0.pending)
        }
    }
}

/// A device's log file: one line per event, with the time; at most 4 MiB. One `open` (appending:
/// a device tried again keeps its earlier lines) and one `write` per line; FileManager's
/// exists-create-open took five system calls and a rename per device.
final class FleetDeviceLog: Sendable {
    static let maximumSize = 4 << 20
    let path: String?
    private let handle: LockedValue<(fd: Int32, written: Int)>

    init(directory: String?, name: String) {
        guard let directory else {
            path = nil
            handle = LockedValue((-1, 0))
            return
        }
        let path = URL(fileURLWithPath: directory).appendingPathComponent("\(name).log").path
        let flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW
        var fd = open(path, flags, 0o644)
        if fd < 0, errno == ENOENT {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            fd = open(path, flags, 0o644)
        }
        self.path = fd < 0 ? nil : path
        handle = LockedValue((fd, 0))
    }

    deinit { close() }

    func write(_ line: String) {
        guard path != nil else { return }
        var bytes = Array(UTCTimestamp.string(Date(), zone: false).utf8)
        bytes.append(UInt8(ascii: " "))
        bytes += line.utf8
        bytes.append(0x0A)
        handle.withLock { state in
            guard state.fd >= 0, state.written < Self.maximumSize else { return }
            state.written += bytes.count
            if state.written >= Self.maximumSize { bytes = Array("(log truncated at \(Self.maximumSize) bytes)\n".utf8) }
            logAppend(state.fd, bytes)
        }
    }

    func close() {
        handle.withLock { state in
            if state.fd >= 0 { logClose(state.fd) }
            state.fd = -1
        }
    }
}

/// The whole of `bytes` to `fd` (file scope: the log's own `write` and `close` would shadow libc's).
private func logAppend(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
        guard var pointer = buffer.baseAddress else { return }
        var left = buffer.count
        while left > 0 {
            let count = write(fd, pointer, left)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return }
            left -= count
            pointer += count
        }
    }
}

private func logClose(_ fd: Int32) {
    _ = close(fd)
}
