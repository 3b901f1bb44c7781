import Foundation
import SMPCtlLocking
import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlFleet
import SMPCtlProtocol
import SMPCtlTransport

/// Writes results for people or, with `--json`, for scripts.
struct Output: Sendable {
    let json: Bool

    /// Whether standard error is a terminal (progress bars go there).
    static let stderrIsTerminal = isatty(STDERR_FILENO) == 1

    static func diagnostic(_ line: String) {
        FileHandle.standardError.write(Data((terminalSafe(line) + "\n").utf8))
    }

    /// Prints a human line (not in JSON mode).
    func line(_ text: String) {
        guard !json else { return }
        print(Self.terminalSafe(text))
    }

    /// Text as it may reach a terminal: device text (an `rsn`, an echo, a version string, a
    /// shell's output) can hold escape sequences and carriage returns that would rewrite the
    /// screen. C0 and C1 control characters other than newline and tab, and DEL, are shown as
    /// `\u{1B}`-style escapes. JSON output needs none of this: its encoder escapes them.
    static func terminalSafe(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0A, 0x09: false
        case 0x00...0x1F, 0x7F...0x9F: true
        default: false
        }
    }

    /// Prints the command's JSON document (in JSON mode).
    func document(_ value: JSONValue) {
        guard json else { return }
        print(value.text)
    }

    /// Writes a progress event: a JSON line on standard error in JSON mode, stamped with the
    /// time it was written (`timestamp`, RFC 3339 in UTC with milliseconds).
    func event(_ value: JSONValue) {
        guard json else { return }
        Self.diagnostic(Self.stamped(value).text)
    }

    /// An event with its `timestamp`.
    static func stamped(_ value: JSONValue, at date: Date = Date()) -> JSONValue {
        guard case .object(var members) = value else { return value }
        members["timestamp"] = .string(timestamp(date))
        return .object(members)
    }

    /// `2026-12-03T11:41:30.123Z`.
    static func timestamp(_ date: Date) -> String {
        UTCTimestamp.string(date, zone: true)
    }

    /// The JSON of an error document: `ok` false, an `error` kind (from the exit status unless the
    /// caller names a finer one), the message, the exit status, and how far an upload got
    /// (`upload_progress`, null when no upload had started).
    static func errorDocument(status: ExitStatus, message: String, fields: [String: JSONValue]) -> JSONValue {
        var object = fields
        object["ok"] = false
        if object["error"] == nil { object["error"] = .string(status.errorKind) }
        object["message"] = .string(message)
        object["exit_status"] = .int(Int(status.rawValue))
        object["upload_progress"] = Interruption.lastProgress.map(Self.json) ?? .null
        return .object(object)
    }

    /// An upload's progress: bytes confirmed, the total, where it started, and its rate.
    static func json(_ progress: UploadProgress) -> JSONValue {
        [
            "offset": .int(progress.offset), "total": .int(progress.total), "resumed_from": .int(progress.startOffset),
            "elapsed_seconds": .double(progress.elapsed),
            "rate_bytes_per_second": .double(progress.rate.rounded()),
            "eta_seconds": progress.offset < progress.total ? progress.remaining.map { .double(($0 * 10).rounded() / 10) } ?? .null : .double(0),
        ]
    }

    /// Reports a failure that is not a device or transport error.
    func fail(status: ExitStatus, message: String, fields: [String: JSONValue] = [:]) {
        if json {
            print(Self.errorDocument(status: status, message: message, fields: fields).text)
        } else {
            Self.diagnostic("smpctl: error: \(message)")
        }
    }

    /// Reports a client failure with the device's own code and name, and the knowledge base's
    /// explanation: what the code means in this operation, the likely causes and the next step.
    /// `facts`, read from the device after the failure, rank a device error's causes by its state.
    /// `hint` is one more sentence about what to do (`hint` in JSON, a `note:` line in text).
    func report(_ error: SMPClientError, operation: OperationKind? = nil, facts: DeviceFacts? = nil, hint: String? = nil) {
        let status = ExitStatus(error)
        var fields: [String: JSONValue] = ["error": .string(Self.kind(error))]
        if let hint { fields["hint"] = .string(hint) }
        var noteHint = hint
        defer { if let noteHint, !json { Self.diagnostic("  note: \(noteHint)") } }
        if case .device(let deviceError) = error {
            fields["device_error"] = Self.json(deviceError)
        }
        if case .verificationFailed(let failure, _) = error {
            fields["check"] = .string(failure.rawValue)
        }
        if case .timedOut(_, _, _, let malformed) = error {
            fields["malformed_answers"] = .int(malformed)
        }
        if case .cancelled = error {
            fail(status: status, message: Interruption.message, fields: fields)
            return
        }
        if case .refused(let refusal) = error {
            UploadCheckView.fail(refusal, status: status, output: self)
            return
        }
        let explanation = ExplanationFormat.explanation(for: error, operation: operation, facts: facts)
        if let explanation { fields["explanation"] = ExplanationFormat.json(explanation) }
        guard !json, let explanation else {
            fail(status: status, message: error.description, fields: fields)
            return
        }
        var lines = ExplanationFormat.lines(explanation, causeLimit: 3, indent: "  ")
        // Said once: the explanation may already name what the hint says (`sim?state=`).
        if lines.contains(where: { $0.contains("sim?state=") }) { noteHint = nil }
        if case .device = error, let first = lines.first {
            // The explanation's first line names the code with its context: it is the headline,
            // said once.
            Self.diagnostic("smpctl: error: device error " + first.trimmingCharacters(in: .whitespaces))
            lines.removeFirst()
        } else {
            fail(status: status, message: error.description, fields: fields)
        }
        for line in lines { Self.diagnostic(line) }
        Self.diagnostic("  more: \(Self.moreCommand(explanation))")
    }

    /// The `smpctl explain` command that prints the full explanation.
    static func moreCommand(_ explanation: Explanation) -> String { FleetDiagnosis.moreCommand(explanation) }

    /// The `error` kind in `--json` output: one vocabulary for commands and fleet reports.
    static func kind(_ error: SMPClientError) -> String { FleetDiagnosis.kind(error) }

    static func json(_ error: SMPDeviceError) -> JSONValue {
        var object: [String: JSONValue] = [
            "smp_version": .int(Int(error.version.rawValue) + 1),
            "request_group": .int(Int(error.requestGroup.rawValue)),
            "command": .int(Int(error.command)),
            "rc": .int(error.rawCode),
            "name": error.entry.map { .string($0.name) } ?? .null,
            "meaning": error.entry.map { .string($0.meaning) } ?? .null,
            "reason": error.reason.json,
        ]
        switch error.kind {
        case .smp: object["kind"] = "smp"
        case .group(let group, _):
            object["kind"] = "group"
            object["group"] = .int(Int(group.rawValue))
        }
        return .object(object)
    }
}

/// Upload progress for people and scripts: a one-line bar on standard error (on a terminal), and
/// with `--json` an `upload` event; both at most ten times a second, plus the final one.
///
/// The bar fits the terminal's width, read at every draw and redrawn when the window changes
/// size (SIGWINCH): it shrinks the bar, then drops the estimate, the rate, the byte counts and
/// the label. What the client does besides progress (retries, busy back-off, reconnects,
/// resuming an earlier upload, the learned datagram size) shows on the same line without `-v`,
/// as a `notice` event with `--json`, or as a line of its own when standard error is not a terminal.
final class ProgressBar: Sendable {
    private struct State {
        var lastDraw = -1.0
        var progress: UploadProgress?
        var retries = 0
        var busy = 0
        var reconnects = 0
        var resumedAt: Int?
        /// The latest notice, shown until progress moves on for two seconds.
        var notice: String?
        var noticeTime = 0.0
        var finished = false
    }

    private let state = LockedValue(State())
    private let enabled: Bool
    private let label: String
    private let output: Output?
    private let started = ContinuousClock.now
    /// The bar that client notices go to (one upload at a time per process).
    private static let active = LockedValue<ProgressBar?>(nil)
    private static let resizeWatch = LockedValue<(any DispatchSourceSignal)?>(nil)

    init(label: String, enabled: Bool, output: Output? = nil) {
        self.label = label
        self.enabled = enabled
        self.output = output
        Self.active.withLock { $0 = self }
        if enabled { Self.watchResizes() }
    }

    /// Where the client's notices go: the active bar, or a line on standard error.
    static func route(_ notice: SMPClientNotice, json: Bool) {
        if let bar = active.withLock({ $0 }) {
            bar.note(notice)
        } else if !json, worthALine(notice) {
            Output.diagnostic("smpctl: \(describe(notice))")
        }
    }

    /// Whether a notice gets a line of its own where no bar shows it: what costs time, not what is informative.
    static func worthALine(_ notice: SMPClientNotice) -> Bool {
        switch notice {
        case .retry, .busy, .reconnecting, .reordering: true
        case .resumed, .pathLimit: false
        }
    }

    static func describe(_ notice: SMPClientNotice) -> String {
        switch notice {
        case .retry(let attempt, let of): "no answer in time; retry \(attempt) of \(of)"
        case .busy(let wait): "device busy; waiting \(formatSeconds(wait))"
        case .reconnecting(let attempt): "link lost; reconnecting (attempt \(attempt))"
        case .resumed(let offset): "resumed at \(formatBytes(offset))"
        case .pathLimit(let bytes): "the path carries \(bytes)-byte datagrams"
        case .reordering(let limit):
            "chunks reached the device out of order (EATT?); one write of up to \(limit) bytes per request from now on"
        }
    }

    /// Records a client notice and shows it.
    func note(_ notice: SMPClientNotice) {
        let now = Date().timeIntervalSince1970
        let progress = state.withLock { state -> UploadProgress? in
            switch notice {
            case .retry: state.retries += 1
            case .busy: state.busy += 1
            case .reconnecting: state.reconnects += 1
            case .resumed(let offset): state.resumedAt = offset
            case .pathLimit, .reordering: break
            }
            state.notice = Self.describe(notice)
            state.noticeTime = now
            return state.finished ? nil : state.progress
        }
        var event: [String: JSONValue] = ["event": "notice", "text": .string(Self.describe(notice))]
        switch notice {
        case .retry(let attempt, let of): event.merge(["kind": "retry", "attempt": .int(attempt), "of": .int(of)]) { $1 }
        case .busy(let wait): event.merge(["kind": "busy", "wait_seconds": .double(wait.seconds)]) { $1 }
        case .reconnecting(let attempt): event.merge(["kind": "reconnecting", "attempt": .int(attempt)]) { $1 }
        case .resumed(let offset): event.merge(["kind": "resumed", "offset": .int(offset)]) { $1 }
        case .pathLimit(let bytes): event.merge(["kind": "path_limit", "bytes": .int(bytes)]) { $1 }
        case .reordering(let limit): event.merge(["kind": "reordering", "write_limit": .int(limit)]) { $1 }
        }
        output?.event(.object(event))
        if enabled {
            draw(progress ?? UploadProgress(offset: 0, total: 0, startOffset: 0, elapsed: 0), final: false)
        } else if output?.json != true, Self.worthALine(notice) {
            Output.diagnostic("smpctl: \(Self.describe(notice))")
        }
    }

    func update(_ progress: UploadProgress) {
        Interruption.record(progress)
        guard enabled || output?.json == true else { return }
        let now = Date().timeIntervalSince1970
        let final = progress.offset == progress.total
        let due = state.withLock { state in
            state.progress = progress
            guard final || now - state.lastDraw >= 0.1 else { return false }
            state.lastDraw = now
            if final { state.finished = true }
            return true
        }
        guard due else { return }
        if case .object(var members) = Output.json(progress) {
            members["event"] = "upload"
            output?.event(.object(members))
        }
        guard enabled else { return }
        draw(progress, final: final)
        if final { Self.active.withLock { if $0 === self { $0 = nil } } }
    }

    /// What happened besides progress, for the summary line: "2 retries, 1 reconnect", or nil.
    var summary: String? {
        let counts = state.withLock { ($0.retries, $0.busy, $0.reconnects) }
        var parts: [String] = []
        if counts.0 > 0 { parts.append(counts.0 == 1 ? "1 retry" : "\(counts.0) retries") }
        if counts.1 > 0 { parts.append(counts.1 == 1 ? "1 busy wait" : "\(counts.1) busy waits") }
        if counts.2 > 0 { parts.append(counts.2 == 1 ? "1 reconnect" : "\(counts.2) reconnects") }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }

    /// Seconds since the command created the bar: the whole command, not only the upload.
    var totalSeconds: Double { (ContinuousClock.now - started).seconds }

    private func draw(_ progress: UploadProgress, final: Bool) {
        let now = Date().timeIntervalSince1970
        let snapshot = state.withLock { $0 }
        var status: [String] = []
        if let resumed = snapshot.resumedAt { status.append("resumed at \(formatBytes(resumed))") }
        if let notice = snapshot.notice, now - snapshot.noticeTime < 2, !final, notice != status.first {
            status.append(notice)
        } else {
            if snapshot.retries > 0 { status.append(snapshot.retries == 1 ? "1 retry" : "\(snapshot.retries) retries") }
            if snapshot.reconnects > 0 { status.append("\(snapshot.reconnects) reconnect\(snapshot.reconnects == 1 ? "" : "s")") }
        }
        let line = Self.layout(
            label: label, progress: progress, status: status.joined(separator: ", "), columns: Self.terminalColumns())
        var text = "\r" + line + "\u{1B}[K"  // clear what a longer earlier line left
        if final { text += "\n" }
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// The progress line for a terminal `columns` wide: every field when it fits, else a
    /// narrower bar, then fewer fields, and never longer than `columns − 1` (so it never wraps).
    static func layout(label: String, progress: UploadProgress, status: String, columns: Int) -> String {
        let fraction = progress.total > 0 ? min(1, Double(progress.offset) / Double(progress.total)) : 0
        let percent = "\(Int(fraction * 100))%"
        let bytes = "\(formatBytes(progress.offset))/\(formatBytes(progress.total))"
        let rate = progress.rate > 0 ? "\(formatBytes(Int(progress.rate)))/s" : nil
        let eta = progress.remaining.flatMap { progress.offset < progress.total ? "ETA \(Int($0.rounded()))s" : nil }
        let note = status.isEmpty ? nil : "· " + status
        func bar(_ width: Int) -> String {
            let filled = Int(fraction * Double(width))
            return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
        }
        func join(_ parts: [String?]) -> String { parts.compactMap { $0 }.joined(separator: " ") }
        let limit = max(1, columns - 1)
        // Shrink the bar first, then drop fields from the least useful.
        for width in stride(from: 30, through: 10, by: -5) {
            let line = join([label, bar(width), percent, bytes, rate, eta, note])
            if line.count <= limit { return line }
        }
        let reduced: [[String?]] = [
            [label, bar(10), percent, bytes, rate, note],
            [label, bar(10), percent, bytes, note],
            [bar(10), percent, bytes, note],
            [bar(10), percent, note],
            [percent, note],
            [percent],
        ]
        for parts in reduced {
            let line = join(parts)
            if line.count <= limit { return line }
        }
        return String(percent.prefix(limit))
    }

    /// The width of the terminal on standard error; 80 when it cannot be read.
    static func terminalColumns() -> Int {
        var size = winsize()
        guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    /// Redraws the active bar when the terminal changes size.
    private static func watchResizes() {
        resizeWatch.withLock { watch in
            guard watch == nil else { return }
            signal(SIGWINCH, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
            source.setEventHandler {
                guard let bar = active.withLock({ $0 }) else { return }
                let progress = bar.state.withLock { $0.finished ? nil : $0.progress }
                if let progress { bar.draw(progress, final: false) }
            }
            source.resume()
            watch = source
        }
    }
}

func formatSeconds(_ duration: Duration) -> String {
    let seconds = duration.seconds
    return seconds < 1 ? "\(Int((seconds * 1000).rounded())) ms" : String(format: "%.1f s", seconds)
}

func formatBytes(_ count: Int) -> String {
    if count >= 1 << 20 { return String(format: "%.1f MiB", Double(count) / 1_048_576) }
    if count >= 1 << 10 { return String(format: "%.1f KiB", Double(count) / 1024) }
    return "\(count) B"
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// Parses a hex string such as an image hash.
func parseHex(_ text: String) -> [UInt8]? {
    let clean = text.lowercased().filter { !$0.isWhitespace && $0 != ":" }
    guard clean.count % 2 == 0, clean.count <= 256 else { return nil }
    var bytes: [UInt8] = []
    var index = clean.startIndex
    while index < clean.endIndex {
        let next = clean.index(index, offsetBy: 2)
        guard let byte = UInt8(clean[index..<next], radix: 16) else { return nil }
        bytes.append(byte)
        index = next
    }
    return bytes
}
