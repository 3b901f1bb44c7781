// A journal record as one JSON line, written by hand: the run re-journals a device's whole record
// on every transition (about ten per device), and JSONEncoder (snake_case keys, sorted keys) spent
// some 80 µs on each, an eighth of a 200-device run's CPU. The text is what FleetCoding's encoder
// writes (the same keys, sorted the same way, nil fields left out, non-finite numbers as "inf",
// "-inf" and "nan"), so readers decode it with FleetCoding.decoder(); FleetJournalLineTests checks
// that both decode to the same record. A failure report (rare: one per failed device) still goes
// through JSONEncoder.

import Foundation

enum FleetJournalLine {
    /// The record as one line, with its newline.
    static func encode(_ record: FleetJournalRecord) throws(FleetError) -> [UInt8] {
        var out = JSONLineWriter()
        out.bytes.reserveCapacity(record.device == nil ? 160 : 720)
        out.begin()
        if let arguments = record.arguments { out.key("arguments"); out.strings(arguments) }
        if let device = record.device { out.key("device"); try write(device, to: &out) }
        if let exitStatus = record.exitStatus { out.key("exit_status"); out.int(Int(exitStatus)) }
        out.key("kind"); out.string(record.kind.rawValue)
        if let manifest = record.manifest { out.key("manifest"); out.string(manifest) }
        if let sha = record.manifestSha256 { out.key("manifest_sha256"); out.string(sha) }
        if let name = record.name { out.key("name"); out.string(name) }
        if let offset = record.offset { out.key("offset"); out.int(offset) }
        if let pid = record.pid { out.key("pid"); out.int(Int(pid)) }
        if let rate = record.rate { out.key("rate"); out.double(rate) }
        if let reason = record.reason { out.key("reason"); out.string(reason) }
        out.key("time"); out.double(record.time)
        if let total = record.total { out.key("total"); out.int(total) }
        out.end()
        out.bytes.append(0x0A)
        return out.bytes
    }

    private static func write(_ device: FleetDeviceReport, to out: inout JSONLineWriter) throws(FleetError) {
        out.begin()
        out.key("attempts"); out.int(device.attempts)
        out.key("connection"); out.string(device.connection)
        if let failure = device.failure {
            out.key("failure")
            do {
                out.bytes += try FleetCoding.encoder(pretty: false).encode(failure)
            } catch {
                throw .file("cannot encode a journal record: \(error)")
            }
        }
        if let slots = device.finalSlots {
            out.key("final_slots")
            out.array(slots) { out, slot in
                out.begin()
                out.key("active"); out.bool(slot.active)
                out.key("confirmed"); out.bool(slot.confirmed)
                if let hash = slot.hash { out.key("hash"); out.string(hash) }
                out.key("image"); out.int(slot.image)
                out.key("pending"); out.bool(slot.pending)
                out.key("slot"); out.int(slot.slot)
                out.key("version"); out.string(slot.version)
                out.end()
            }
        }
        if let finished = device.finished { out.key("finished"); out.double(finished) }
        if let images = device.images {
            out.key("images")
            out.array(images) { out, plan in
                out.begin()
                out.key("action"); out.string(plan.action.rawValue)
                if let from = plan.from { out.key("from"); out.string(from) }
                out.key("image_number"); out.int(plan.imageNumber)
                out.key("name"); out.string(plan.name)
                out.key("reason"); out.string(plan.reason)
                out.key("to"); out.string(plan.to)
                out.end()
            }
        }
        out.key("labels")
        out.begin()
        for (key, value) in device.labels.sorted(by: { $0.key < $1.key }) {
            out.key(key)
            out.string(value)
        }
        out.end()
        if let log = device.log { out.key("log"); out.string(log) }
        out.key("name"); out.string(device.name)
        if let phase = device.phase { out.key("phase"); out.string(phase) }
        if let reason = device.reason { out.key("reason"); out.string(reason) }
        out.key("reconnects"); out.int(device.reconnects)
        if let resumedFrom = device.resumedFrom { out.key("resumed_from"); out.int(resumedFrom) }
        out.key("retries"); out.int(device.retries)
        if let source = device.source { out.key("source"); out.string(source) }
        if let started = device.started { out.key("started"); out.double(started) }
        out.key("state"); out.string(device.state.rawValue)
        out.key("targets")
        out.array(device.targets) { out, target in
            out.begin()
            out.key("hash"); out.string(target.hash)
            out.key("image"); out.int(target.image)
            out.key("name"); out.string(target.name)
            out.key("version"); out.string(target.version)
            out.end()
        }
        if let seconds = device.updateSeconds { out.key("update_seconds"); out.double(seconds) }
        out.key("updated"); out.double(device.updated)
        out.key("uploaded_bytes"); out.int(device.uploadedBytes)
        out.end()
    }
}

/// JSON text into a byte array: objects and arrays with commas placed as values are added.
struct JSONLineWriter {
    var bytes: [UInt8] = []
    /// Per open object or array: whether it has a member yet.
    private var started: [Bool] = []

    mutating func begin() {
        bytes.append(UInt8(ascii: "{"))
        started.append(false)
    }

    mutating func end() {
        bytes.append(UInt8(ascii: "}"))
        _ = started.popLast()
    }

    private mutating func separate() {
        guard let last = started.indices.last else { return }
        if started[last] { bytes.append(UInt8(ascii: ",")) }
        started[last] = true
    }

    mutating func key(_ key: String) {
        separate()
        quoted(key)
        bytes.append(UInt8(ascii: ":"))
    }

    /// An array of `values`, each written by `body`.
    mutating func array<T>(_ values: [T], _ body: (inout JSONLineWriter, T) -> Void) {
        bytes.append(UInt8(ascii: "["))
        started.append(false)
        for value in values {
            separate()
            body(&self, value)
        }
        _ = started.popLast()
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func strings(_ values: [String]) {
        array(values) { out, value in out.string(value) }
    }

    mutating func string(_ value: String) { quoted(value) }

    mutating func int(_ value: Int) { bytes += String(value).utf8 }

    mutating func bool(_ value: Bool) { bytes += (value ? "true" : "false").utf8 }

    /// A number as Swift's shortest round-trip form (what JSONEncoder writes, but for a trailing
    /// `.0`, which decodes the same); non-finite values as FleetCoding's strings.
    mutating func double(_ value: Double) {
        if value.isNaN {
            quoted("nan")
        } else if value.isInfinite {
            quoted(value < 0 ? "-inf" : "inf")
        } else {
            bytes += value.description.utf8
        }
    }

    private static func hex(_ digit: UInt8) -> UInt8 {
        digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + (digit - 10)
    }

    /// A string with JSON's escapes: the quote, the backslash and control characters (slashes are
    /// left as they are, as with `.withoutEscapingSlashes`).
    private mutating func quoted(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x08: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0..<0x20:
                bytes += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                    Self.hex(byte >> 4), Self.hex(byte & 0x0F)]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
