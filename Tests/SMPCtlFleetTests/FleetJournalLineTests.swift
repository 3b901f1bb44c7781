import Foundation
import Testing
@testable import SMPCtlFleet

/// The journal's hand-written JSON lines against what JSONEncoder (FleetCoding) writes.
@Suite("fleet journal lines")
struct FleetJournalLineTests {
    static func device(full: Bool) -> FleetDeviceReport {
        var device = FleetDeviceReport(
            name: "sim-001 \"quoted\" \\ tab\t", connection: "udp:127.0.0.1:1337",
            labels: full ? ["site": "a/b", "ring": "canary", "z": "\u{1}\u{1F}é✓"] : [:],
            targets: [FleetTargetReport(name: "app", image: 0, version: "1.1.0", hash: "bbbb07")],
            state: full ? .failed : .active, updated: 1_796_320_918.4892397)
        guard full else { return device }
        device.phase = "uploading\n"
        device.reason = "line one\nline two\r\u{8}\u{C}"
        device.images = [FleetImagePlan(name: "app", imageNumber: 0, from: "1.0.0", to: "1.1.0", action: .update, reason: "r"),
            FleetImagePlan(name: "net", imageNumber: 1, from: nil, to: "2.0.0", action: .blocked, reason: "pending")]
        device.attempts = 3
        device.started = 12.5
        device.finished = 2
        device.updateSeconds = .infinity
        device.uploadedBytes = 49_815
        device.resumedFrom = 20_000
        device.retries = 2
        device.reconnects = 1
        device.failure = FleetFailureReport(kind: "verification", message: "m", check: "not_running_after_reset", rc: 3, group: 1, errorName: "E",
            explanation: FleetExplanationReport(name: "n", meaning: "m", causes: ["a"], nextSteps: ["b"], more: nil))
        device.finalSlots = [FleetSlotReport(image: 0, slot: 0, version: "1.0.0", hash: "aa", active: true, confirmed: true, pending: false),
            FleetSlotReport(image: 0, slot: 1, version: "1.1.0", hash: nil, active: false, confirmed: false, pending: true)]
        device.log = "/tmp/x.log"
        device.source = "j"
        return device
    }

    static var records: [FleetJournalRecord] {
        var run = FleetJournalRecord(kind: .run, time: 1e-7)
        run.manifest = "/a/fleet.yaml"
        run.manifestSha256 = "00ff"
        run.pid = 42
        run.arguments = ["fleet", "run", "--parallel", "50", ""]
        var small = FleetJournalRecord(kind: .device, time: 3)
        small.device = device(full: false)
        var full = FleetJournalRecord(kind: .device, time: -0.0)
        full.device = device(full: true)
        var progress = FleetJournalRecord(kind: .progress, time: 5)
        progress.name = "sim-001"
        progress.offset = 1024
        progress.total = 49_815
        progress.rate = .nan
        var end = FleetJournalRecord(kind: .end, time: 6)
        end.exitStatus = -1
        end.reason = "r"
        return [run, small, full, progress, end, FleetJournalRecord(kind: .halt, time: 1e300)]
    }

    @Test("every record decodes as the same record, and as the JSON JSONEncoder writes decodes")
    func sameAsEncoder() throws {
        let decoder = FleetCoding.decoder()
        for record in Self.records {
            let line = try FleetJournalLine.encode(record)
            #expect(line.last == 0x0A)
            #expect(!line.dropLast().contains(0x0A), "one line")
            let mine = try decoder.decode(FleetJournalRecord.self, from: Data(line.dropLast()))
            let theirs = try decoder.decode(FleetJournalRecord.self, from: try FleetCoding.encoder(pretty: false).encode(record))
            // NaN never equals itself: compare the rest.
            var a = mine, b = theirs
            if a.rate?.isNaN == true, b.rate?.isNaN == true { a.rate = nil; b.rate = nil }
            #expect(a == b, "\(String(decoding: line, as: UTF8.self))")
            // The same members as JSONEncoder's text, compared as parsed JSON.
            let parsedMine = try JSONSerialization.jsonObject(with: Data(line.dropLast())) as? NSDictionary
            let parsedTheirs = try JSONSerialization.jsonObject(with: try FleetCoding.encoder(pretty: false).encode(record)) as? NSDictionary
            #expect(parsedMine?.allKeys.count == parsedTheirs?.allKeys.count)
            #expect(Set((parsedMine?.allKeys as? [String]) ?? []) == Set((parsedTheirs?.allKeys as? [String]) ?? []))
        }
    }

    @Test("a journal of hand-written lines reads back the last record of each device")
    func readsBack() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("journal-line-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let journal = try FleetJournal(path: folder + "/j")
        for record in Self.records { try journal.append(record, sync: false) }
        try journal.sync()
        let contents = try FleetJournal.read(path: folder + "/j")
        #expect(contents.skippedLines == 0)
        #expect(contents.runs.count == 1)
        #expect(contents.devices["sim-001 \"quoted\" \\ tab\t"] == Self.device(full: true))
        #expect(contents.end?.exitStatus == -1)
    }

    @Test("transitions queued by many tasks are all on disk once each one's durable returns")
    func groupCommit() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("journal-group-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let journal = try FleetJournal(path: folder + "/j")
        let announced = MutexBox(0)
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<40 {
                group.addTask {
                    for step in 0..<10 {
                        var record = FleetJournalRecord(kind: .device, time: Double(step))
                        var device = Self.device(full: false)
                        device.name = "d\(task)"
                        device.attempts = step
                        record.device = device
                        guard let number = try? journal.enqueue(record, after: { announced.update { $0 += 1 } }) else { return }
                        await journal.durable(number)
                        // On disk now: a reader sees this step (or a later one) for the device.
                        let read = try? FleetJournal.read(path: folder + "/j")
                        #expect((read?.devices["d\(task)"]?.attempts ?? -1) >= step)
                    }
                }
            }
        }
        #expect(announced.value == 400)
        let contents = try FleetJournal.read(path: folder + "/j")
        #expect(contents.devices.count == 40)
        #expect(contents.devices.values.allSatisfy { $0.attempts == 9 })
    }
}
