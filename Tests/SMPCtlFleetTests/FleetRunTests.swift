import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import SMPCtlClient
import SMPCtlFleet
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport
import Testing

@Suite("Fleet runs over UDP", .serialized)
struct FleetRunTests {
    /// Runs a manifest for `fleet` and returns the report and the journal's folder.
    func run(
        _ fleet: SimulatedFleet, name: String, options: FleetRunOptions = FleetRunOptions(),
        defaults: [(String, String)] = [("timeout", "5"), ("reconnect-timeout", "10"), ("attempts", "2")],
        events: EventLog? = nil
    ) async throws -> (FleetReport, String, FleetManifest) {
        let folder = try FleetFixture.folder(name)
        let manifest = try FleetFixture.manifest(FleetFixture.manifestText(for: fleet, defaults: defaults), in: folder)
        let journal = try FleetJournal(path: folder + "/fleet.journal")
        var options = options
        options.logDirectory = folder + "/logs"
        let report = try await FleetRunner.run(manifest, options: options, journal: journal, factory: FleetFixture.udpFactory) { event in
            events?.add(event)
        }
        return (report, folder, manifest)
    }

    @Test("200 mixed simulated devices: each ends in the right state, and the reports match the devices")
    func mixedFleet() async throws {
        var options = SimulatedFleetOptions(count: 200)
        options.unreachableEvery = 25    // 8 devices
        options.currentEvery = 10        // 16 (10, 20, ... less those unreachable)
        options.rejectEvery = 199        // one device: sim-199
        options.dropEvery = 7            // the link drops after 20000 bytes
        options.slowEvery = 33           // 115200-baud serial link
        options.slowLink = try LinkModel(parsing: "serial:115200")
        options.currentImage = try FleetFixture.imageBytes()
        let fleet = try SimulatedFleet(options)
        defer { fleet.stop() }
        var runOptions = FleetRunOptions()
        runOptions.parallel = 16
        let clock = ContinuousClock()
        let start = clock.now
        let (report, folder, _) = try await run(fleet, name: "mixed", options: runOptions)
        let elapsed = clock.now - start
        print("200-device mixed fleet: \(elapsed) with 16 at once; \(report.totals)")

        let byName = Dictionary(uniqueKeysWithValues: report.devices.map { ($0.name, $0) })
        var faults: [SimulatedFleetFault: Int] = [:]
        for device in fleet.devices {
            faults[device.fault, default: 0] += 1
            let record = try #require(byName[device.name])
            switch device.fault {
            case .unreachable:
                #expect(record.state == .unreachable, "\(device.name): \(record.state)")
                #expect(record.failure?.kind == "transport")
            case .current:
                #expect(record.state == .upToDate, "\(device.name): \(record.state)")
                #expect(record.uploadedBytes == 0)
            case .reject:
                #expect(record.state == .failed, "\(device.name): \(record.state)")
                #expect(record.failure?.check == "not-running-after-reset")
                #expect(record.failure?.explanation?.causes.isEmpty == false)
            case .drop, .slow, .none:
                #expect(record.state == .done, "\(device.name) (\(device.fault)): \(record.state) \(record.reason ?? "")")
            }
            if device.fault == .drop {
                #expect(record.resumedFrom.map { $0 > 0 } ?? false || record.retries > 0, "\(device.name) shows no interruption")
                #expect((device.server?.lostCount ?? 0) > 0, "\(device.name) lost no request")
            }
        }
        #expect(faults[.reject] == 1)
        #expect(faults[.unreachable] == 8)
        #expect(report.totals.failed == 1 && report.totals.unreachable == 8 && report.totals.upToDate == faults[.current])
        #expect(report.exitStatus == FleetExit.someFailed)
        #expect(!report.halted)

        // The devices' real state, read back over UDP, matches the report.
        for device in fleet.devices where device.fault != .unreachable {
            let slots = try await FleetFixture.readBack(port: device.port)
            let active = try #require(slots.first { $0.image == 0 && $0.active })
            let record = try #require(byName[device.name])
            let reported = try #require(record.finalSlots?.first { $0.image == 0 && $0.active }, "\(device.name) has no final slots")
            #expect(reported.version == active.version && reported.hash == FleetFixture.hex(active.hash) && reported.confirmed == active.confirmed)
            if record.state == .done || record.state == .upToDate {
                #expect(FleetFixture.hex(active.hash) == FleetFixture.imageHash && active.confirmed, "\(device.name)")
            } else {
                #expect(active.version == "1.0.0", "\(device.name) runs \(active.version)")
            }
        }

        // The JSON report decodes to the same; the JUnit file has one case per device.
        let data = try report.json()
        #expect(try FleetReport.decode(data, source: "memory") == report)
        let junit = FleetJUnit.xml(report)
        #expect(junit.components(separatedBy: "<testcase ").count - 1 == 200)
        #expect(junit.components(separatedBy: "<failure ").count - 1 == 9)
        #expect(junit.contains("name=\"sim-199\""))
        let failure = try #require(junit.range(of: "name=\"sim-199\"")).upperBound
        #expect(junit[failure...].prefix(3000).contains("likely causes"))
        _ = try XMLDocument(xmlString: junit)
        // A log per device that was contacted.
        let logs = try FileManager.default.contentsOfDirectory(atPath: folder + "/logs")
        #expect(logs.count == 200)
        // A hang guard: about 20 s alone on 2 cores, about 100 s while every other suite runs too.
        #expect(elapsed < .seconds(300))
    }

    @Test("the failure threshold halts the rollout; devices not started are untouched")
    func thresholdHalt() async throws {
        var options = SimulatedFleetOptions(count: 12)
        options.rejectEvery = 2
        let fleet = try SimulatedFleet(options)
        defer { fleet.stop() }
        var run = FleetRunOptions()
        run.parallel = 1
        run.maxFailures = .count(2)
        let events = EventLog()
        let (report, folder, _) = try await self.run(fleet, name: "halt", options: run, events: events)
        #expect(report.halted)
        #expect(report.haltReason?.contains("3 devices failed") == true, "\(report.haltReason ?? "")")
        #expect(report.exitStatus == FleetExit.halted)
        let states = report.devices.map(\.state)
        #expect(states.prefix(6) == [.done, .failed, .done, .failed, .done, .failed])
        #expect(states.dropFirst(6).allSatisfy { $0 == .queued })
        for device in fleet.devices.dropFirst(6) {
            #expect(device.server?.requestCount == 0, "\(device.name) was contacted")
        }
        #expect(events.all.contains { if case .halted = $0 { true } else { false } })
        let junit = FleetJUnit.xml(report)
        #expect(junit.components(separatedBy: "<skipped ").count - 1 == 6)
        // The journal says the same.
        let journal = try FleetJournal.read(path: folder + "/fleet.journal")
        #expect(journal.halt?.reason == report.haltReason)
        #expect(journal.report(runIsLive: false).devices.map(\.state) == states)
    }

    @Test("a percentage threshold and a failed canary halt too")
    func canaryHalt() async throws {
        var options = SimulatedFleetOptions(count: 10)
        options.rejectEvery = 3
        let fleet = try SimulatedFleet(options)
        defer { fleet.stop() }
        var run = FleetRunOptions()
        run.parallel = 4
        run.canary = .count(3)
        let (report, _, _) = try await self.run(fleet, name: "canary", options: run)
        #expect(report.halted && report.haltReason?.contains("canary sim-03 failed") == true, "\(report.haltReason ?? "")")
        #expect(report.devices.prefix(3).map(\.state) == [.done, .done, .failed])
        for device in fleet.devices.dropFirst(3) { #expect(device.server?.requestCount == 0) }
        #expect(FleetFailureThreshold.percent(10).allowed(of: 25) == 2)
        #expect(try FleetFailureThreshold(parsing: "5%") == .percent(5))
        #expect(throws: FleetError.self) { try FleetFailureThreshold(parsing: "-1") }
    }

    @Test("waves and a canary label order the devices; the journal lets a second run skip them")
    func wavesAndResume() async throws {
        let fleet = try SimulatedFleet(SimulatedFleetOptions(count: 9))
        defer { fleet.stop() }
        let folder = try FleetFixture.folder("waves")
        let manifest = try FleetFixture.manifest(FleetFixture.manifestText(for: fleet), in: folder)
        var run = FleetRunOptions()
        run.parallel = 8
        run.waveSize = 3
        run.canary = .label(FleetSelector(key: "name", value: "sim-9"))
        let events = EventLog()
        let first = try await FleetRunner.run(
            manifest, options: run, journal: try FleetJournal(path: folder + "/j"), factory: FleetFixture.udpFactory
        ) { events.add($0) }
        #expect(first.totals.done == 9 && first.exitStatus == 0)
        let waves = events.all.compactMap { event -> ([String], Bool)? in
            if case .wave(_, let devices, let canary) = event { return (devices, canary) }
            return nil
        }
        #expect(waves.map(\.0) == [["sim-9"], ["sim-1", "sim-2", "sim-3"], ["sim-4", "sim-5", "sim-6"], ["sim-7", "sim-8"]])
        #expect(waves.map(\.1) == [true, false, false, false])
        // Within a wave every device finished before the next wave started.
        let byName = Dictionary(uniqueKeysWithValues: first.devices.map { ($0.name, $0) })
        let lastOfFirstWave = ["sim-1", "sim-2", "sim-3"].compactMap { byName[$0]?.finished }.max() ?? 0
        let firstOfSecondWave = ["sim-4", "sim-5", "sim-6"].compactMap { byName[$0]?.started }.min() ?? 0
        #expect(lastOfFirstWave <= firstOfSecondWave)

        let counts = fleet.devices.map { $0.server?.requestCount ?? 0 }
        let second = try await FleetRunner.run(manifest, options: run, journal: try FleetJournal(path: folder + "/j"), factory: FleetFixture.udpFactory)
        #expect(second.totals.done == 9 && second.exitStatus == 0)
        #expect(fleet.devices.map { $0.server?.requestCount ?? 0 } == counts, "a second run contacted a device that was done")
    }

    @Test("a device past its deadline fails alone; the others finish")
    func deadline() async throws {
        var options = SimulatedFleetOptions(count: 3)
        options.slowEvery = 2
        options.slowLink = try LinkModel(parsing: "serial:57600")
        let fleet = try SimulatedFleet(options)
        defer { fleet.stop() }
        let clock = ContinuousClock()
        let start = clock.now
        let (report, _, _) = try await run(fleet, name: "deadline", defaults: [("timeout", "5"), ("deadline", "1.5"), ("attempts", "1")])
        #expect(clock.now - start < .seconds(30))
        #expect(report.devices.map(\.state) == [.done, .failed, .done])
        #expect(report.devices[1].failure?.kind == "deadline", "\(report.devices[1].failure?.kind ?? "none")")
        #expect((report.devices[1].updateSeconds ?? 99) < 5)
    }

    @Test("consecutive ports from a base port")
    func consecutivePorts() throws {
        var options = SimulatedFleetOptions(count: 5)
        options.basePort = UInt16(20_000 + Int(getpid()) % 20_000)
        options.unreachableEvery = 3
        guard let fleet = try? SimulatedFleet(options) else { return }  // the range is taken: nothing to check
        defer { fleet.stop() }
        #expect(fleet.devices.map(\.port) == (0..<5).map { options.basePort + UInt16($0) })
        #expect(fleet.devices.map(\.fault) == [.none, .none, .unreachable, .none, .none])
    }

    @Test("a journal held by a run is refused to a second one")
    func journalLock() throws {
        let folder = try FleetFixture.folder("lock")
        let first = try FleetJournal(path: folder + "/j")
        #expect(FleetJournal.isLocked(path: folder + "/j"))
        #expect(throws: FleetError.self) { try FleetJournal(path: folder + "/j") }
        do {
            _ = try FleetJournal(path: folder + "/j")
        } catch {
            guard case .journalLocked = error else { Issue.record("not a lock error: \(error)"); return }
        }
        _ = first
    }

    @Test("a journal cut short by a kill reads up to its last whole line")
    func truncatedJournal() throws {
        let folder = try FleetFixture.folder("truncated")
        let path = folder + "/j"
        do {
            let journal = try FleetJournal(path: path)
            var record = FleetJournalRecord(kind: .device)
            record.device = FleetDeviceReport(name: "a", connection: "sim", labels: [:], targets: [], state: .done, updated: 1)
            try journal.append(record, sync: true)
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"kind":"device","time":2,"device":{"name":"b""#.utf8))
        try handle.close()
        let contents = try FleetJournal.read(path: path)
        #expect(contents.order == ["a"] && contents.skippedLines == 1)
    }

    @Test("at most K devices at once per BLE adapter")
    func perAdapter() async throws {
        var simulated = SimulatedFleetOptions(count: 8)
        simulated.slowEvery = 1
        simulated.slowLink = try LinkModel(parsing: "serial:460800")
        let fleet = try SimulatedFleet(simulated)
        defer { fleet.stop() }
        // The manifest names BLE devices on two adapters; the test's transports reach them over UDP.
        var ports: [String: UInt16] = [:]
        var text = "version: 1\nimages:\n  app: {file: \"\(FleetFixture.image)\", version: 1.1.0}\nrules:\n  - {match: {}, images: [app]}\ndevices:\n"
        for (index, device) in fleet.devices.enumerated() {
            ports[device.name] = device.port
            text += "  - {name: \(device.name), connection: \"ble:\(device.name)?adapter=hci\(index % 2)\"}\n"
        }
        let folder = try FleetFixture.folder("adapters")
        let manifest = try FleetFixture.manifest(text, in: folder)
        let table = ports
        let factory: FleetTransportFactory = { spec in
            guard case .ble(let target, _, _) = spec, let port = table[target] else { throw SMPTransportError(.openFailed, "unknown") }
            return UDPTransport(address: try SocketAddress.resolve(host: "127.0.0.1", port: port))
        }
        var run = FleetRunOptions()
        run.parallel = 8
        run.perAdapter = 2
        let report = try await FleetRunner.run(manifest, options: run, journal: try FleetJournal(path: folder + "/j"), factory: factory)
        #expect(report.totals.done == 8)
        for adapter in 0..<2 {
            let spans = report.devices.enumerated().filter { $0.offset % 2 == adapter }.compactMap { _, device -> (Double, Double)? in
                guard let start = device.started, let end = device.finished else { return nil }
                return (start, end)
            }
            let most = spans.map { span in spans.filter { $0.0 <= span.0 && span.0 < $0.1 }.count }.max() ?? 0
            #expect(most <= 2, "adapter hci\(adapter) had \(most) devices at once")
            #expect(most == 2)
        }
    }
}
