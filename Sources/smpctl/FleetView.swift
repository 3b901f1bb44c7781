import Foundation
import SMPCtlFleet
import SMPCtlLocking

/// Renders fleet events: JSON Lines, plain lines, and the summary at the end.
enum FleetEvents {
    static func json(_ event: FleetEvent) -> JSONValue? {
        switch event {
        case .started(let selected, let toDo, let settled):
            return ["event": "started", "selected": .int(selected), "to_do": .int(toDo), "settled": .int(settled)]
        case .wave(let number, let devices, let canary):
            return ["event": "wave", "number": .int(number), "devices": .int(devices.count), "canary": .bool(canary)]
        case .device(let device):
            var object: [String: JSONValue] = [
                "event": "device", "name": .string(device.name), "state": .string(device.state.rawValue),
                "phase": device.phase.json, "attempts": .int(device.attempts),
            ]
            if device.state != .active {
                object["reason"] = device.reason.json
                object["update_seconds"] = device.updateSeconds.map(JSONValue.double) ?? .null
                if let failure = device.failure {
                    object["error"] = .string(failure.kind)
                    object["error_name"] = failure.errorName.json
                    object["check"] = failure.check.json
                }
            }
            return .object(object)
        case .progress(let name, let offset, let total, let rate):
            let eta: JSONValue = rate > 0 ? .double((Double(max(0, total - offset)) / rate * 10).rounded() / 10) : .null
            return [
                "event": "upload", "name": .string(name), "offset": .int(offset), "total": .int(total),
                "rate_bytes_per_second": .double(rate.rounded()), "eta_seconds": eta,
            ]
        case .notice(let name, let text):
            return ["event": "notice", "name": .string(name), "text": .string(text)]
        case .halted(let reason):
            return ["event": "halted", "reason": .string(reason)]
        case .finished(let report):
            return ["event": "finished", "exit_status": .int(Int(report.exitStatus)), "halted": .bool(report.halted)]
        }
    }

    /// One line per device that finished, per wave and per halt (standard error is not a terminal).
    static func line(_ event: FleetEvent) -> String? {
        switch event {
        case .started(let selected, let toDo, let settled):
            return "\(selected) devices selected: \(toDo) to do, \(settled) already done in the journal"
        case .wave(let number, let devices, let canary):
            return canary ? "canary: \(devices.joined(separator: ", "))" : "wave \(number): \(devices.count) device\(devices.count == 1 ? "" : "s")"
        case .device(let device):
            guard device.state != .active else { return nil }
            let time = device.updateSeconds.map { String(format: " (%.1f s)", $0) } ?? ""
            return "\(device.name): \(device.state.rawValue)\(device.reason.map { ": \($0)" } ?? "")\(time)"
        case .halted(let reason):
            return "halted: \(reason)"
        case .progress, .notice, .finished:
            return nil
        }
    }

    static func totalsLine(_ totals: FleetTotals) -> String {
        var parts = ["\(totals.devices) devices", "\(totals.done) done", "\(totals.upToDate) up to date"]
        if totals.failed > 0 { parts.append("\(totals.failed) failed") }
        if totals.unreachable > 0 { parts.append("\(totals.unreachable) unreachable") }
        if totals.blocked > 0 { parts.append("\(totals.blocked) blocked") }
        if totals.noImage > 0 { parts.append("\(totals.noImage) without an image") }
        if totals.active > 0 { parts.append("\(totals.active) active") }
        if totals.interrupted > 0 { parts.append("\(totals.interrupted) interrupted") }
        if totals.notStarted > 0 { parts.append("\(totals.notStarted) not started") }
        return parts.joined(separator: ", ")
    }

    /// The human summary on standard output.
    static func summary(_ report: FleetReport, reportPath: String?, junitPath: String?, logs: String?) {
        print(totalsLine(report.totals))
        if let reason = report.haltReason { print("halted: \(reason)") }
        for device in report.devices where device.state.isProblem || device.state == .interrupted {
            print("  \(device.name): \(device.state.rawValue): \(device.reason ?? "")")
            if let explanation = device.failure?.explanation {
                print("    \(explanation.name): \(explanation.meaning)")
                if let cause = explanation.causes.first { print("    most likely: \(cause)") }
                if let more = explanation.more { print("    more: \(more)") }
            }
        }
        if let reportPath { print("report: \(reportPath)\(junitPath.map { ", \($0)" } ?? "")") }
        if let logs { print("device logs: \(logs)/") }
    }
}

/// The live view on a terminal: one line per active device (phase, bytes, rate), then the
/// totals and the fleet's ETA, redrawn four times a second on standard error.
final class FleetLiveView: Sendable {
    private struct Active {
        var phase: String
        var offset = 0
        var total = 0
        var rate = 0.0
        var note: String?
    }

    private struct State {
        var active: [String: Active] = [:]
        var order: [String] = []
        var totals = FleetTotals()
        var toDo = 0
        var finished = 0
        var finishedSeconds = 0.0
        var drawnLines = 0
        var halted: String?
        var stopped = false
        var messages: [String] = []
    }

    private let state = LockedValue(State())
    private let start = Date()
    private let timer: LockedValue<Task<Void, Never>?> = LockedValue(nil)
    private let parallel: Int

    init(parallel: Int = 8) {
        self.parallel = parallel
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                self?.draw()
            }
        }
        timer.withLock { $0 = task }
    }

    func handle(_ event: FleetEvent) {
        state.withLock { state in
            switch event {
            case .started(_, let toDo, let settled):
                state.toDo = toDo
                state.messages.append("\(toDo) devices to do, \(settled) already done in the journal")
            case .wave(let number, let devices, let canary):
                state.messages.append(canary ? "canary: \(devices.prefix(8).joined(separator: ", "))\(devices.count > 8 ? ", ..." : "")" : "wave \(number): \(devices.count) devices")
            case .device(let device):
                if device.state == .active {
                    if state.active[device.name] == nil { state.order.append(device.name) }
                    var entry = state.active[device.name] ?? Active(phase: "connecting")
                    entry.phase = device.phase ?? "active"
                    state.active[device.name] = entry
                } else {
                    state.active[device.name] = nil
                    state.order.removeAll { $0 == device.name }
                    state.totals.add(device.state)
                    state.finished += 1
                    state.finishedSeconds += device.updateSeconds ?? 0
                    if device.state.isProblem {
                        state.messages.append("\(device.name): \(device.state.rawValue): \(device.reason ?? "")")
                    }
                }
            case .progress(let name, let offset, let total, let rate):
                // Progress again: an earlier retry note is over.
                if let before = state.active[name]?.offset, offset > before { state.active[name]?.note = nil }
                state.active[name]?.offset = offset
                state.active[name]?.total = total
                state.active[name]?.rate = rate
            case .notice(let name, let text):
                state.active[name]?.note = text
            case .halted(let reason):
                state.halted = reason
                state.messages.append("halted: \(reason)")
            case .finished:
                break
            }
        }
    }

    func stop() {
        timer.withLock { $0?.cancel() }
        draw()
        state.withLock { $0.stopped = true }
    }

    private func draw() {
        let columns = Self.terminalColumns()
        let text: String? = state.withLock { state in
            guard !state.stopped else { return nil }
            var out = ""
            if state.drawnLines > 0 { out += "\u{1B}[\(state.drawnLines)A\r" }
            out += "\u{1B}[J"
            // Messages scroll above the live block and stay.
            for message in state.messages { out += String(message.prefix(columns)) + "\n" }
            state.messages.removeAll()
            var lines: [String] = []
            let shown = state.order.prefix(20)
            let width = min(28, shown.map(\.count).max() ?? 8)
            for name in shown {
                guard let entry = state.active[name] else { continue }
                var line = name.padding(toLength: width, withPad: " ", startingAt: 0) + " " + entry.phase.padding(toLength: 16, withPad: " ", startingAt: 0)
                if entry.total > 0 {
                    let percent = FleetNumbers.int(Double(entry.offset) / Double(max(1, entry.total)) * 100)
                    line += " \(String(percent).leftPad(3))% \(formatBytes(entry.offset))/\(formatBytes(entry.total)) \(formatBytes(FleetNumbers.int(entry.rate)))/s"
                }
                if let note = entry.note { line += "  (\(note))" }
                lines.append(String(line.prefix(columns)))
            }
            if state.order.count > shown.count { lines.append("... and \(state.order.count - shown.count) more active") }
            let elapsed = Date().timeIntervalSince(start)
            let rate = state.active.values.reduce(0) { $0 + $1.rate }
            var totals = "\(state.finished)/\(state.toDo) finished: \(state.totals.done) done, \(state.totals.upToDate) up to date, \(state.totals.failed) failed, \(state.totals.unreachable) unreachable, \(state.totals.blocked) blocked | \(state.active.count) active | \(formatBytes(FleetNumbers.int(rate)))/s"
            let remaining = state.toDo - state.finished
            if state.finished > 0, remaining > 0 {
                let perDevice = elapsed / Double(state.finished)
                totals += " | ETA \(Self.duration(perDevice * Double(remaining)))"
            }
            totals += " | \(Self.duration(elapsed))"
            lines.append(String(totals.prefix(columns)))
            out += lines.joined(separator: "\n") + "\n"
            state.drawnLines = lines.count
            return out
        }
        if let text { FileHandle.standardError.write(Data(text.utf8)) }
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let total = Int(seconds.rounded())
        if total >= 3600 { return "\(total / 3600)h\(String(format: "%02d", total % 3600 / 60))m" }
        if total >= 60 { return "\(total / 60)m\(String(format: "%02d", total % 60))s" }
        return "\(total)s"
    }

    static func terminalColumns() -> Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 10 { return Int(size.ws_col) }
        return 100
    }
}
