import Foundation
import SMPCtlFleet
import SMPCtlSimulator
import SMPCtlTransport
import Testing

@Suite("smpctl fleet end to end", .serialized)
struct FleetCLITests {
    /// Waits (at most `seconds`) until `condition` holds for the journal.
    func wait(for path: String, seconds: Double = 90, _ condition: (FleetJournalContents) -> Bool) async throws -> FleetJournalContents? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let contents = try? FleetJournal.read(path: path), condition(contents) { return contents }
            try await Task.sleep(for: .milliseconds(25))
        }
        return nil
    }

    @Test("kill -9 at several points, then the same command: done devices are never touched again, the others resume")
    func killAndResume() async throws {
        var options = SimulatedFleetOptions(count: 16)
        options.slowEvery = 1
        options.slowLink = try LinkModel(parsing: "serial:115200")
        let fleet = try SimulatedFleet(options)
        defer { fleet.stop() }
        let folder = try FleetFixture.folder("kill")
        let manifestPath = folder + "/fleet.yaml"
        try Data(FleetFixture.manifestText(for: fleet).utf8).write(to: URL(fileURLWithPath: manifestPath))
        let journal = folder + "/fleet.journal"
        let arguments = ["fleet", "run", manifestPath, "--parallel", "4", "--journal", journal, "--json"]
        let server = Dictionary(uniqueKeysWithValues: fleet.devices.map { ($0.name, $0) })

        var untouchable: [String: Int] = [:]
        var killedMidUpload = 0
        for (round, doneBefore) in [2, 6, 10].enumerated() {
            let process = try SMPCtlProcess.start(arguments, folder: folder, name: "run\(round)")
            if round == 0 {
                // A second run on the same journal is refused while the first holds it.
                _ = try await wait(for: journal, seconds: 30) { !$0.runs.isEmpty }
                let second = try await SMPCtlProcess.run(arguments, folder: folder, name: "second", timeout: 30)
                #expect(second.status == 2, "a second run on a held journal exited \(second.status)")
                #expect(second.stdout.contains("another run is using the journal"))
            }
            // Kill once enough devices are done and another one is part way through its upload.
            let seen = try await wait(for: journal) { contents in
                let done = contents.devices.values.filter { $0.state == .done }.count
                let uploading = contents.devices.values.contains { device in
                    device.state == .active && device.phase == "uploading"
                        && (contents.progress[device.name]?.offset ?? 0) > 0
                }
                return done >= doneBefore && uploading
            }
            #expect(seen != nil, "round \(round): the run did not get far enough")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)
            let contents = try FleetJournal.read(path: journal)
            for (name, device) in contents.devices where device.state == .done && untouchable[name] == nil {
                untouchable[name] = server[name]?.server?.requestCount
            }
            killedMidUpload += contents.devices.values.filter { $0.state == .active && $0.phase == "uploading" }.count
            #expect(!contents.devices.values.contains { $0.state == .done && $0.finalSlots == nil })
        }
        #expect(untouchable.count >= 10)
        #expect(killedMidUpload >= 3)

        let last = try await SMPCtlProcess.run(arguments, folder: folder, name: "final", timeout: 120)
        #expect(last.status == 0, "the last run exited \(last.status): \(last.stderr.suffix(2000))")
        let report = try FleetReport.decode(Data(last.stdout.utf8), source: "stdout")
        #expect(report.totals.done == 16)
        // No device that was done was contacted again by a later run.
        for (name, count) in untouchable {
            #expect(server[name]?.server?.requestCount == count, "\(name) was contacted again after it was done")
        }
        // Uploads cut by the kills went on from the device's offset, not from the start.
        let resumed = report.devices.filter { ($0.resumedFrom ?? 0) > 0 }
        #expect(!resumed.isEmpty, "no device resumed an upload")
        #expect(report.devices.contains { $0.attempts > 1 })
        for device in fleet.devices {
            let slots = try await FleetFixture.readBack(port: device.port)
            let active = try #require(slots.first { $0.active })
            #expect(FleetFixture.hex(active.hash) == FleetFixture.imageHash && active.confirmed, "\(device.name)")
        }
        // JSON Lines events on standard error, one object a line.
        let events = last.stderr.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(events.contains { $0["event"] as? String == "started" && ($0["settled"] as? Int ?? 0) >= 10 })
        #expect(events.contains { $0["event"] as? String == "finished" })
    }

    @Test("simulate --devices prints a manifest; plan, run per gateway, status and a merged report")
    func simulatedFleetCommands() async throws {
        let folder = try FleetFixture.folder("cli")
        let manifest = folder + "/sim.yaml"
        let simulator = try SMPCtlProcess.start(
            ["simulate", "--udp", "127.0.0.1:0", "--devices", "10", "--fleet-image", FleetFixture.image,
             "--unreachable-every", "5", "--current-every", "4", "--reject-every", "7", "--manifest", manifest,
             "--exit-after", "120"],
            folder: folder, name: "simulate")
        defer { if simulator.isRunning { simulator.terminate() } }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !((try? String(contentsOfFile: folder + "/simulate.out", encoding: .utf8))?.contains("# end of manifest") ?? false) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let printed = try String(contentsOfFile: folder + "/simulate.out", encoding: .utf8)
        #expect(printed == (try String(contentsOfFile: manifest, encoding: .utf8)))
        #expect(printed.components(separatedBy: "  - name: ").count - 1 == 10)

        let plan = try await SMPCtlProcess.run(["fleet", "plan", manifest, "--json"], folder: folder, name: "plan")
        #expect(plan.status == 0, "\(plan.stderr)")
        let planned = try #require(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])
        let totals = try #require(planned["totals"] as? [String: Int])
        #expect(totals == ["update": 6, "up-to-date": 2, "unreachable": 2, "blocked": 0, "no-image": 0])

        // Two gateways, each with its own journal, in their own folder.
        var reports: [FleetReport] = []
        for gateway in ["gw-a", "gw-b"] {
            let run = try await SMPCtlProcess.run(
                ["fleet", "run", manifest, "--select", "gateway=\(gateway)", "--journal", folder + "/\(gateway).journal", "--json"],
                folder: folder, name: "run-\(gateway)")
            let report = try FleetReport.decode(Data(run.stdout.utf8), source: gateway)
            #expect(report.devices.count == 5)
            reports.append(report)
            // gw-a has sim-05 (unreachable) and sim-07 (rejects); gw-b has sim-10 (unreachable).
            #expect(run.status == 6, "\(gateway) exited \(run.status)")
            #expect(FileManager.default.fileExists(atPath: folder + "/\(gateway).report.json"))
            let junit = try String(contentsOfFile: folder + "/\(gateway).junit.xml", encoding: .utf8)
            #expect(junit.components(separatedBy: "<testcase ").count - 1 == 5)
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/\(gateway).logs").count == 5)
        }
        #expect(reports[0].devices.first { $0.name == "sim-07" }?.failure?.check == "not-running-after-reset")
        let junit = try String(contentsOfFile: folder + "/gw-a.junit.xml", encoding: .utf8)
        #expect(junit.contains("type=\"not-running-after-reset\"") && junit.contains("likely causes"))

        let status = try await SMPCtlProcess.run(["fleet", "status", folder + "/gw-a.journal"], folder: folder, name: "status")
        #expect(status.status == 0)
        #expect(status.stdout.contains("finished with exit status 6"))
        #expect(status.stdout.contains("5 devices, 3 done, 0 up to date, 1 failed, 1 unreachable"), "\(status.stdout)")

        let merged = try await SMPCtlProcess.run(
            ["fleet", "report", folder + "/gw-a.journal", folder + "/gw-b.report.json", "--json",
             "--output", folder + "/all.json", "--junit", folder + "/all.xml"],
            folder: folder, name: "merged")
        #expect(merged.status == 6)
        let all = try FleetReport.decode(Data(merged.stdout.utf8), source: "merged")
        #expect(all.devices.count == 10)
        #expect(all.totals.done == 5 && all.totals.upToDate == 2 && all.totals.failed == 1 && all.totals.unreachable == 2)
        #expect(Set(all.sources) == [folder + "/gw-a.journal", folder + "/gw-b.journal"])
        #expect(try String(contentsOfFile: folder + "/all.xml", encoding: .utf8).components(separatedBy: "<testcase ").count - 1 == 10)

        // A manifest error: exit 2, naming file, line and field.
        try Data("version: 1\nimages:\n  app: {file: nowhere.bin, version: 1.0.0}\ndevices: []\n".utf8)
            .write(to: URL(fileURLWithPath: folder + "/bad.yaml"))
        let bad = try await SMPCtlProcess.run(["fleet", "run", folder + "/bad.yaml"], folder: folder, name: "bad")
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("bad.yaml:3:") && bad.stderr.contains("images.app.file"), "\(bad.stderr)")

        simulator.terminate()
        simulator.waitUntilExit()
        // Examples/fleet.yaml runs against the embedded simulator from any folder.
        let example = FleetFixture.packageRoot.appendingPathComponent("Examples/fleet.yaml").path
        let examplePlan = try await SMPCtlProcess.run(["fleet", "plan", example, "--json"], folder: folder, name: "example-plan", directory: folder)
        #expect(examplePlan.status == 0, "\(examplePlan.stdout) \(examplePlan.stderr)")
        #expect(examplePlan.stdout.contains("\"update\":4"))
        let exampleRun = try await SMPCtlProcess.run(["fleet", "run", example, "--json", "--canary", "1"], folder: folder, name: "example-run", directory: folder)
        #expect(exampleRun.status == 6)
        let exampleReport = try FleetReport.decode(Data(exampleRun.stdout.utf8), source: "example")
        #expect(exampleReport.devices.map(\.state) == [.done, .done, .done, .failed])
        #expect(FileManager.default.fileExists(atPath: folder + "/fleet.journal"))
        let counts = try String(contentsOfFile: folder + "/simulate.err", encoding: .utf8)
        #expect(counts.contains("sim-05 port") && counts.contains("unreachable: 0 requests"))
    }
}
