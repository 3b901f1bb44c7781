// The state of every device of a run, as the journal records it and as reports show it: one
// model, written as JSON Lines in the journal, as one JSON document, and as JUnit XML.

public import Foundation

/// Where a device stands.
public enum FleetDeviceState: String, Sendable, Codable, CaseIterable {
    /// Selected for the run and not started (yet, or at all when the run was halted).
    case queued
    /// Being read or updated now.
    case active
    /// Updated: the target runs and is confirmed (or as far as the mode goes).
    case done
    /// Already ran the target; nothing was written.
    case upToDate = "up-to-date"
    case failed
    /// The first read of its image list failed.
    case unreachable
    /// Its state forbids an update (a pending slot, a test boot, a downgrade).
    case blocked
    /// No rule gives it an image.
    case noImage = "no-image"
    /// It was active when the run stopped (interrupted, or killed); the next run resumes it.
    case interrupted

    /// Whether nothing is left to do for it.
    public var isSettled: Bool { self == .done || self == .upToDate || self == .noImage }
    /// Whether it needs attention after the run.
    public var isProblem: Bool { self == .failed || self == .unreachable || self == .blocked }
}

/// One image a device is to run.
public struct FleetTargetReport: Sendable, Codable, Equatable {
    public var name: String
    public var image: Int
    public var version: String
    /// The image's hash TLV, hex.
    public var hash: String
}

/// One slot as the device listed it.
public struct FleetSlotReport: Sendable, Codable, Equatable {
    public var image: Int
    public var slot: Int
    public var version: String
    public var hash: String?
    public var active: Bool
    public var confirmed: Bool
    public var pending: Bool
}

/// The knowledge base's explanation of a failure, in short.
public struct FleetExplanationReport: Sendable, Codable, Equatable {
    public var name: String
    public var meaning: String
    public var causes: [String]
    public var nextSteps: [String]
    /// The `smpctl explain` command that prints it in full.
    public var more: String?
}

/// Why a device failed.
public struct FleetFailureReport: Sendable, Codable, Equatable {
    /// device, transport, timeout, verification, stalled, deadline, ...
    public var kind: String
    public var message: String
    /// The verification check that failed, if one did.
    public var check: String?
    /// The device's error code, name and group, if the device answered with one.
    public var rc: Int?
    public var group: Int?
    public var errorName: String?
    public var explanation: FleetExplanationReport?
}

/// A device's record in the journal and in reports.
public struct FleetDeviceReport: Sendable, Codable, Equatable {
    public var name: String
    public var connection: String
    public var labels: [String: String]
    public var targets: [FleetTargetReport]
    public var state: FleetDeviceState
    /// While active: connecting, reading, uploading, verifying, marking, resetting, confirming.
    public var phase: String?
    /// A sentence: what was done, or why not.
    public var reason: String?
    /// What was planned per image (versions before, action).
    public var images: [FleetImagePlan]?
    /// Tries in all runs so far.
    public var attempts: Int = 0
    public var started: Double?
    public var finished: Double?
    /// Seconds the last try took (`update_seconds`; older journals and reports say `seconds`, which is still read).
    public var updateSeconds: Double?
    public var uploadedBytes: Int = 0
    /// Where the device resumed an earlier upload, when it did.
    public var resumedFrom: Int?
    public var retries: Int = 0
    public var reconnects: Int = 0
    public var failure: FleetFailureReport?
    /// The slots read at the end.
    public var finalSlots: [FleetSlotReport]?
    /// The device's log file.
    public var log: String?
    /// The journal or report it came from (set when reports are merged).
    public var source: String?
    /// When this record was written (seconds since 1970).
    public var updated: Double

    public init(name: String, connection: String, labels: [String: String], targets: [FleetTargetReport], state: FleetDeviceState, updated: Double) {
        self.name = name
        self.connection = connection
        self.labels = labels
        self.targets = targets
        self.state = state
        self.updated = updated
    }

    /// The names as the synthesized encoding writes them (the coders convert to and from snake_case).
    enum CodingKeys: String, CodingKey {
        case name, connection, labels, targets, state, phase, reason, images, attempts, started, finished
        case updateSeconds, uploadedBytes, resumedFrom, retries, reconnects, failure, finalSlots, log, source, updated
    }

    /// The key of the last try's duration in journals and reports written before `update_seconds`.
    private enum LegacyKeys: String, CodingKey {
        case seconds
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        connection = try container.decode(String.self, forKey: .connection)
        labels = try container.decode([String: String].self, forKey: .labels)
        targets = try container.decode([FleetTargetReport].self, forKey: .targets)
        state = try container.decode(FleetDeviceState.self, forKey: .state)
        phase = try container.decodeIfPresent(String.self, forKey: .phase)
        reason = try container.decodeIfPresent(String.self, forKey: .reason)
        images = try container.decodeIfPresent([FleetImagePlan].self, forKey: .images)
        attempts = try container.decodeIfPresent(Int.self, forKey: .attempts) ?? 0
        started = try container.decodeIfPresent(Double.self, forKey: .started)
        finished = try container.decodeIfPresent(Double.self, forKey: .finished)
        updateSeconds = try container.decodeIfPresent(Double.self, forKey: .updateSeconds)
        if updateSeconds == nil {
            updateSeconds = try decoder.container(keyedBy: LegacyKeys.self).decodeIfPresent(Double.self, forKey: .seconds)
        }
        uploadedBytes = try container.decodeIfPresent(Int.self, forKey: .uploadedBytes) ?? 0
        resumedFrom = try container.decodeIfPresent(Int.self, forKey: .resumedFrom)
        retries = try container.decodeIfPresent(Int.self, forKey: .retries) ?? 0
        reconnects = try container.decodeIfPresent(Int.self, forKey: .reconnects) ?? 0
        failure = try container.decodeIfPresent(FleetFailureReport.self, forKey: .failure)
        finalSlots = try container.decodeIfPresent([FleetSlotReport].self, forKey: .finalSlots)
        log = try container.decodeIfPresent(String.self, forKey: .log)
        source = try container.decodeIfPresent(String.self, forKey: .source)
        updated = try container.decode(Double.self, forKey: .updated)
    }
}

/// Counts of devices by state.
public struct FleetTotals: Sendable, Codable, Equatable {
    public var devices = 0
    public var done = 0
    public var upToDate = 0
    public var failed = 0
    public var unreachable = 0
    public var blocked = 0
    public var noImage = 0
    public var notStarted = 0
    public var active = 0
    public var interrupted = 0

    public init(_ devices: [FleetDeviceReport] = []) {
        for device in devices { add(device.state) }
    }

    public mutating func add(_ state: FleetDeviceState) {
        devices += 1
        switch state {
        case .queued: notStarted += 1
        case .active: active += 1
        case .done: done += 1
        case .upToDate: upToDate += 1
        case .failed: failed += 1
        case .unreachable: unreachable += 1
        case .blocked: blocked += 1
        case .noImage: noImage += 1
        case .interrupted: interrupted += 1
        }
    }
}

/// A whole run (or several merged).
public struct FleetReport: Sendable, Codable, Equatable {
    public static let schema = "smpctl-fleet-report/1"

    public var schema = FleetReport.schema
    /// The manifests the devices came from.
    public var manifests: [String]
    /// The journals or reports merged into this one.
    public var sources: [String]
    public var started: Double?
    public var finished: Double?
    /// Whether the failure threshold or a failed canary stopped the rollout.
    public var halted: Bool
    public var haltReason: String?
    /// Whether the run was interrupted (a signal) before it finished.
    public var interrupted: Bool
    public var totals: FleetTotals
    /// 0 all done, 6 some failed, 7 halted (see ``FleetExit``).
    public var exitStatus: Int32
    public var devices: [FleetDeviceReport]

    public init(
        manifests: [String], sources: [String], started: Double?, finished: Double?, halted: Bool, haltReason: String?,
        interrupted: Bool, devices: [FleetDeviceReport]
    ) {
        self.manifests = manifests
        self.sources = sources
        self.started = started
        self.finished = finished
        self.halted = halted
        self.haltReason = haltReason
        self.interrupted = interrupted
        self.devices = devices
        self.totals = FleetTotals(devices)
        self.exitStatus = FleetExit.status(halted: halted, interrupted: interrupted, totals: totals)
    }

    /// The JSON document (sorted keys, snake_case).
    public func json() throws(FleetError) -> Data {
        do {
            return try FleetCoding.encoder(pretty: true).encode(self)
        } catch {
            throw .file("cannot encode the report: \(error)")
        }
    }

    /// Reads a report document.
    public static func decode(_ data: Data, source: String) throws(FleetError) -> FleetReport {
        do {
            var report = try FleetCoding.decoder().decode(FleetReport.self, from: data)
            guard report.schema == schema else { throw FleetError.file("\(source) is a \(report.schema) document, not \(schema)") }
            guard report.devices.count <= FleetManifest.maximumDevices * 16 else {
                throw FleetError.file("\(source) lists too many devices")
            }
            // Counted again from the devices: the file's own counts are not trusted.
            report.totals = FleetTotals(report.devices)
            report.exitStatus = FleetExit.status(halted: report.halted, interrupted: report.interrupted, totals: report.totals)
            return report
        } catch let error as FleetError {
            throw error
        } catch {
            throw .file("\(source) is not a fleet report: \(error)")
        }
    }

    /// Merges reports from several gateways: one entry per device name, the most recently
    /// updated one winning; the result is halted when any part was.
    public static func merge(_ parts: [FleetReport]) -> FleetReport {
        var byName: [String: FleetDeviceReport] = [:]
        var order: [String] = []
        for part in parts {
            for device in part.devices {
                if let existing = byName[device.name] {
                    if device.updated >= existing.updated { byName[device.name] = device }
                } else {
                    byName[device.name] = device
                    order.append(device.name)
                }
            }
        }
        let halts = parts.compactMap(\.haltReason)
        return FleetReport(
            manifests: Array(Set(parts.flatMap(\.manifests))).sorted(),
            sources: parts.flatMap(\.sources),
            started: parts.compactMap(\.started).min(),
            finished: parts.compactMap(\.finished).max(),
            halted: parts.contains(where: \.halted),
            haltReason: halts.isEmpty ? nil : halts.joined(separator: "; "),
            interrupted: parts.contains(where: \.interrupted),
            devices: order.compactMap { byName[$0] })
    }
}

/// The exit statuses of `fleet run` and `fleet report`.
public enum FleetExit {
    public static let success: Int32 = 0
    /// Some devices failed, were unreachable or blocked; the others are done.
    public static let someFailed: Int32 = 6
    /// The failure threshold (or a failed canary) halted the rollout.
    public static let halted: Int32 = 7
    /// Interrupted by a signal (130 for SIGINT).
    public static let interrupted: Int32 = 130

    public static func status(halted: Bool, interrupted: Bool, totals: FleetTotals) -> Int32 {
        if halted { return Self.halted }
        if interrupted || totals.active > 0 || totals.interrupted > 0 { return Self.interrupted }
        if totals.failed + totals.unreachable + totals.blocked > 0 { return someFailed }
        if totals.notStarted > 0 { return Self.interrupted }
        return success
    }
}

enum FleetCoding {
    static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }
}

/// JUnit XML: one test suite per run, one test case per device; failed, unreachable and blocked
/// devices are failures with the device's error and its explanation, devices not started are
/// skipped.
public enum FleetJUnit {
    public static func xml(_ report: FleetReport, suiteName: String = "smpctl fleet") -> String {
        let totals = report.totals
        let failures = totals.failed + totals.unreachable + totals.blocked + totals.interrupted + totals.active
        let skipped = totals.notStarted + totals.noImage
        let time = zip(report.started ?? 0, report.finished ?? 0)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuites name=\"\(escape(suiteName))\" tests=\"\(totals.devices)\" failures=\"\(failures)\" errors=\"0\" skipped=\"\(skipped)\" time=\"\(format(time))\">\n"
        out += "  <testsuite name=\"\(escape(suiteName))\" tests=\"\(totals.devices)\" failures=\"\(failures)\" errors=\"0\" skipped=\"\(skipped)\" time=\"\(format(time))\">\n"
        if let reason = report.haltReason {
            out += "    <properties><property name=\"halted\" value=\"\(escape(reason))\"/></properties>\n"
        }
        for device in report.devices {
            let group = [device.labels["site"], device.labels["gateway"]].compactMap { $0 }.joined(separator: ".")
            let classname = group.isEmpty ? "fleet" : "fleet.\(group)"
            out += "    <testcase classname=\"\(escape(classname))\" name=\"\(escape(device.name))\" time=\"\(format(device.updateSeconds ?? 0))\">\n"
            switch device.state {
            case .done, .upToDate:
                break
            case .queued:
                out += "      <skipped message=\"\(escape(report.halted ? "not started: the rollout was halted" : "not started"))\"/>\n"
            case .noImage:
                out += "      <skipped message=\"\(escape(device.reason ?? "no image for this device"))\"/>\n"
            case .failed, .unreachable, .blocked, .interrupted, .active:
                let message = device.failure?.message ?? device.reason ?? device.state.rawValue
                let type = device.failure?.errorName ?? device.failure?.check ?? device.failure?.kind ?? device.state.rawValue
                out += "      <failure message=\"\(escape(String(message.prefix(1000))))\" type=\"\(escape(type))\">\(escape(failureText(device)))</failure>\n"
            }
            out += "      <system-out>\(escape(summary(device)))</system-out>\n"
            out += "    </testcase>\n"
        }
        out += "  </testsuite>\n</testsuites>\n"
        return out
    }

    /// The failure's text: the state, the message, and the explanation.
    public static func failureText(_ device: FleetDeviceReport) -> String {
        var lines = ["\(device.name): \(device.state.rawValue)"]
        if let reason = device.reason { lines.append(reason) }
        if let failure = device.failure {
            if failure.message != device.reason { lines.append(failure.message) }
            if let explanation = failure.explanation {
                lines.append("\(explanation.name): \(explanation.meaning)")
                if !explanation.causes.isEmpty {
                    lines.append("likely causes, most likely first:")
                    for (index, cause) in explanation.causes.prefix(5).enumerated() { lines.append("  \(index + 1). \(cause)") }
                }
                if let step = explanation.nextSteps.first { lines.append("next step: \(step)") }
                if let more = explanation.more { lines.append("more: \(more)") }
            }
        }
        return lines.joined(separator: "\n")
    }

    static func summary(_ device: FleetDeviceReport) -> String {
        var parts = ["state: \(device.state.rawValue)", "connection: \(device.connection)"]
        if let reason = device.reason { parts.append("reason: \(reason)") }
        if let slots = device.finalSlots, let active = slots.first(where: { $0.active && $0.image == 0 }) {
            parts.append("running: \(active.version)\(active.confirmed ? " (confirmed)" : "")")
        }
        parts.append("attempts: \(device.attempts)")
        if device.uploadedBytes > 0 { parts.append("uploaded: \(device.uploadedBytes) bytes") }
        if let resumed = device.resumedFrom { parts.append("resumed from: \(resumed)") }
        if let log = device.log { parts.append("log: \(log)") }
        return parts.joined(separator: "\n")
    }

    private static func zip(_ start: Double, _ end: Double) -> Double { max(0, end - start) }

    private static func format(_ seconds: Double) -> String { String(format: "%.3f", seconds.isFinite ? seconds : 0) }

    /// XML attribute and text escaping; control characters XML 1.0 cannot hold become U+FFFD.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n": out += "&#10;"
            case "\t": out += "&#9;"
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

/// Arithmetic on numbers read from journals and reports (files a person may have edited): it
/// saturates instead of trapping.
public enum FleetNumbers {
    public static func add(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? Int.max : Int.min) : sum
    }

    /// A double as an integer: 0 for NaN, clamped to ±2^62.
    public static func int(_ value: Double) -> Int {
        guard value.isFinite else { return 0 }
        return Int(max(-4.6e18, min(4.6e18, value)))
    }
}
