import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlFiles
import SMPCtlFleet

struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Update many devices from a manifest: plan, run (canaries, waves, threshold), status and reports.",
        discussion: """
            A manifest (YAML or JSON, see Examples/fleet.yaml) lists the devices with their \
            connections and labels, the images with their target versions, and the rules that give \
            each device its images. `fleet plan` reads every device without writing; `fleet run` \
            updates them with a journal that lets the same command resume after a crash; \
            `fleet status` shows a run's progress from another terminal; `fleet report` merges the \
            journals or reports of several gateways.
            """,
        subcommands: [FleetPlanCommand.self, FleetRunCommand.self, FleetStatusCommand.self, FleetReportCommand.self])
}

/// Options shared by plan and run.
struct FleetSelection: ParsableArguments {
    @Argument(help: "The manifest (YAML or JSON).", completion: Completion.manifest) var manifest: String

    @Option(name: .customLong("select"), help: ArgumentHelp("Only devices whose label (or name) has this value; may be repeated (all must match).", valueName: "key=value"))
    var select: [String] = []

    @Option(help: ArgumentHelp("Devices worked on at once.", valueName: "n"))
    var parallel: Int = 8

    // `--json` comes from the options every command shares (the root command claims the flag);
    // the device settings come from the manifest.
    @OptionGroup var global: GlobalOptions

    var json: Bool { global.json }

    func validate() throws {
        guard (1...1024).contains(parallel) else { throw ValidationError("--parallel must be between 1 and 1024") }
        for item in select { _ = try selectors(item) }
        guard select.count <= 64 else { throw ValidationError("at most 64 --select") }
    }

    private func selectors(_ item: String) throws -> FleetSelector {
        do {
            return try FleetSelector(parsing: item)
        } catch {
            throw ValidationError(error.description)
        }
    }

    var selectors: [FleetSelector] { select.compactMap { try? FleetSelector(parsing: $0) } }

    /// Loads the manifest, or reports its error (file:line:field) and exits 2.
    func load() throws -> FleetManifest {
        do {
            return try FleetManifest.load(path: manifest)
        } catch {
            Output(json: json).fail(status: .usage, message: error.description, fields: [
                "error": "manifest", "file": .string(error.file), "line": error.line.json, "field": .string(error.field),
            ])
            throw CommandFailure(status: .usage)
        }
    }
}

/// Builds the transports of a fleet from its connection strings.
let fleetTransportFactory: FleetTransportFactory = { spec in try makeTransport(spec) }

struct FleetPlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Read every selected device (image list only, nothing is written) and say what a run would do.",
        discussion: """
            For each device: up-to-date (it runs the target version), update (from X to Y), \
            unreachable (its image list could not be read, and why), blocked (a pending image in \
            another slot, a test boot not confirmed, a downgrade) or no-image (no rule matches). \
            Exits 0 when the plan was made, 2 for a manifest error.
            """)

    @OptionGroup var selection: FleetSelection

    func run() async throws {
        let manifest = try selection.load()
        let devices = manifest.select(selection.selectors)
        let output = Output(json: selection.json)
        let entries = await FleetPlanner.plan(manifest, devices: devices, parallel: selection.parallel, factory: fleetTransportFactory) { entry in
            output.event(["event": "device", "name": .string(entry.device.name), "action": .string(entry.action.rawValue)])
        }
        var counts: [FleetAction: Int] = [:]
        for entry in entries { counts[entry.action, default: 0] += 1 }
        if selection.json {
            output.document([
                "ok": true, "manifest": .string(manifest.path),
                "totals": .object(Dictionary(uniqueKeysWithValues: FleetAction.allCases.map { ($0.rawValue, JSONValue.int(counts[$0] ?? 0)) })),
                "devices": .array(entries.map(Self.json)),
            ])
            return
        }
        let width = min(40, max(6, entries.map(\.device.name.count).max() ?? 6))
        print("DEVICE".padding(toLength: width, withPad: " ", startingAt: 0) + "  ACTION       DETAIL")
        for entry in entries {
            print(entry.device.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + entry.action.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0) + "  " + entry.reason)
        }
        let summary = FleetAction.allCases.compactMap { action in counts[action].map { "\($0) \(action.rawValue)" } }
        print("\(entries.count) device\(entries.count == 1 ? "" : "s"): \(summary.joined(separator: ", "))")
    }

    static func json(_ entry: FleetPlanEntry) -> JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(entry.device.name), "connection": .string(entry.device.connectionText),
            "labels": .object(entry.device.labels.mapValues(JSONValue.string)),
            "action": .string(entry.action.rawValue), "reason": .string(entry.reason),
            "plan_seconds": .double(entry.seconds),
            "images": .array(entry.images.map { plan in
                ["name": .string(plan.name), "image": .int(plan.imageNumber), "from": plan.from.json, "to": .string(plan.to),
                 "action": .string(plan.action.rawValue), "reason": .string(plan.reason)]
            }),
            "slots": SlotTable.json(entry.slots),
        ]
        if let error = entry.error { object["error"] = .string(FleetDiagnosis.kind(error)) }
        return .object(object)
    }
}

struct FleetRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Update the selected devices: canaries first, then waves, with a journal to resume from.",
        discussion: """
            Each device gets the full dfu (upload, test, reset, verify, confirm) within its \
            deadline; one failing device never stops the others. A link failure is tried again \
            (the manifest's attempts), and the upload resumes at the device's offset. When more \
            devices fail than --max-failures allows, or a canary fails, no further device is \
            started: the run ends with the report saying it was halted and why. Unreachable and \
            blocked devices are reported but do not count as failures of the rollout.

            The journal (JSON Lines, synced after every transition) lets the same command, run \
            again after a crash or kill -9, skip the devices already done and resume the others; \
            a second run on the same journal is refused while the first holds it. Next to the \
            journal: NAME.report.json, NAME.junit.xml (one test case per device) and NAME.logs/ \
            (one log per device).

            Exit status: 0 every device is done or up to date; 6 some devices failed, were \
            unreachable or blocked; 7 the rollout was halted (failure threshold or canary); 2 a \
            manifest error or a journal held by another run; 130/143 interrupted (run it again to \
            resume).
            """)

    @OptionGroup var selection: FleetSelection

    @Option(name: .customLong("per-adapter"), help: ArgumentHelp("Devices at once per BLE adapter or serial port.", valueName: "k"))
    var perAdapter: Int = 1

    @Option(help: ArgumentHelp("Update these many devices first, alone; any failure among them halts the rollout.", valueName: "n"))
    var canary: Int?

    @Option(name: .customLong("canary-label"), help: ArgumentHelp("Update the devices with this label first (instead of --canary N).", valueName: "key=value"))
    var canaryLabel: String?

    @Option(name: .customLong("wave-size"), help: ArgumentHelp("After the canaries, start devices in waves of this many, each wave after the last one finished.", valueName: "n"))
    var waveSize: Int?

    @Option(name: .customLong("max-failures"), help: ArgumentHelp("Halt once more devices than this failed: a count, or a percentage of the devices to update.", valueName: "n|p%"))
    var maxFailures: String?

    @Option(help: ArgumentHelp("The journal (default: MANIFEST-NAME.journal in the current folder).", valueName: "path"), completion: Completion.journal)
    var journal: String?

    @Option(help: ArgumentHelp("The JSON report (default: beside the journal); the JUnit XML goes beside it as .junit.xml.", valueName: "path"))
    var report: String?

    func validate() throws {
        guard (1...64).contains(perAdapter) else { throw ValidationError("--per-adapter must be between 1 and 64") }
        if canary != nil, canaryLabel != nil { throw ValidationError("give --canary N or --canary-label key=value, not both") }
        if let canary, !(1...FleetManifest.maximumDevices).contains(canary) { throw ValidationError("--canary must be between 1 and \(FleetManifest.maximumDevices)") }
        if let waveSize, !(1...FleetManifest.maximumDevices).contains(waveSize) { throw ValidationError("--wave-size must be between 1 and \(FleetManifest.maximumDevices)") }
        if let canaryLabel { _ = try parse { () throws(FleetError) in try FleetSelector(parsing: canaryLabel) } }
        if let maxFailures { _ = try parse { () throws(FleetError) in try FleetFailureThreshold(parsing: maxFailures) } }
    }

    private func parse<T>(_ body: () throws(FleetError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The journal and the files beside it.
    struct Paths {
        var journal: String
        var report: String
        var junit: String
        var logs: String
    }

    func paths() -> Paths {
        let stem = URL(fileURLWithPath: selection.manifest).deletingPathExtension().lastPathComponent
        let journal = self.journal ?? FileManager.default.currentDirectoryPath + "/\(stem).journal"
        let base = journal.hasSuffix(".journal") ? String(journal.dropLast(".journal".count)) : journal
        let report = self.report ?? base + ".report.json"
        let reportBase = report.hasSuffix(".json") ? String(report.dropLast(".json".count)) : report
        let junit = (reportBase.hasSuffix(".report") ? String(reportBase.dropLast(".report".count)) : reportBase) + ".junit.xml"
        return Paths(journal: journal, report: report, junit: junit, logs: base + ".logs")
    }

    func run() async throws {
        // A closed output pipe must not kill a rollout half way: writes fail instead.
        signal(SIGPIPE, SIG_IGN)
        let manifest = try selection.load()
        let output = Output(json: selection.json)
        let paths = paths()
        var options = FleetRunOptions()
        options.parallel = selection.parallel
        options.perAdapter = perAdapter
        options.selection = selection.selectors
        options.waveSize = waveSize
        options.logDirectory = paths.logs
        options.arguments = Array(CommandLine.arguments.dropFirst())
        if let canary { options.canary = .count(canary) }
        if let canaryLabel, let selector = try? FleetSelector(parsing: canaryLabel) { options.canary = .label(selector) }
        if let maxFailures { options.maxFailures = try? FleetFailureThreshold(parsing: maxFailures) }

        let journal: FleetJournal
        do {
            journal = try FleetJournal(path: paths.journal)
        } catch {
            output.fail(status: .usage, message: error.description, fields: ["error": "journal"])
            throw CommandFailure(status: .usage)
        }
        let live = !selection.json && Output.stderrIsTerminal ? FleetLiveView() : nil
        let plain = !selection.json && live == nil
        if !selection.json { Output.diagnostic("journal: \(paths.journal)") }
        let report: FleetReport
        do {
            report = try await FleetRunner.run(manifest, options: options, journal: journal, factory: fleetTransportFactory) { event in
                live?.handle(event)
                if selection.json { FleetEvents.json(event).map { Output.diagnostic(Output.stamped($0).text) } }
                if plain, let line = FleetEvents.line(event) { Output.diagnostic(line) }
            }
        } catch {
            live?.stop()
            output.fail(status: .failure, message: error.description, fields: ["error": "journal"])
            throw CommandFailure(status: .failure)
        }
        live?.stop()
        var written = report
        written.sources = [paths.journal]
        // Encoded once, for the file and (with --json) standard output.
        let document = Result { () throws(FleetError) -> Data in try written.json() }
        do {
            try document.get().write(to: URL(fileURLWithPath: paths.report))
            try Data(FleetJUnit.xml(written).utf8).write(to: URL(fileURLWithPath: paths.junit))
        } catch {
            Output.diagnostic("smpctl: error: cannot write the report: \(error)")
        }
        if selection.json {
            if case .success(let data) = document { print(String(decoding: data, as: UTF8.self)) }
        } else {
            FleetEvents.summary(written, reportPath: paths.report, junitPath: paths.junit, logs: paths.logs)
        }
        if report.interrupted, !report.halted { throw CommandFailure(status: Interruption.status) }
        if report.exitStatus != 0 { throw ExitCode(report.exitStatus) }
    }
}

struct FleetStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a run's progress from its journal (from another terminal, while it runs or after).")

    @Argument(help: "The journal of the run.", completion: Completion.journal) var journal: String

    @OptionGroup var global: GlobalOptions

    var json: Bool { global.json }

    func run() throws {
        let contents: FleetJournalContents
        do {
            contents = try FleetJournal.read(path: journal)
        } catch {
            Output(json: json).fail(status: .usage, message: error.description, fields: ["error": "journal"])
            throw CommandFailure(status: .usage)
        }
        let live = FleetJournal.isLocked(path: journal)
        let report = contents.report(runIsLive: live)
        if json {
            if let data = try? report.json() { print(String(decoding: data, as: UTF8.self)) }
            return
        }
        let pid = contents.runs.last?.pid.map { " (pid \($0))" } ?? ""
        if live {
            print("running\(pid): \(contents.runs.last?.manifest ?? "?")")
        } else if let end = contents.end {
            print("finished with exit status \(end.exitStatus ?? 0): \(contents.runs.last?.manifest ?? "?")")
        } else {
            print("not running: the run stopped before it finished (run the same command again to resume)")
        }
        print(FleetEvents.totalsLine(report.totals))
        if let reason = report.haltReason { print("halted: \(reason)") }
        for device in report.devices where device.state == .active {
            var line = "  \(device.name): \(device.phase ?? "active")"
            if let progress = contents.progress[device.name], let offset = progress.offset, let total = progress.total {
                line += " \(formatBytes(offset))/\(formatBytes(total))"
                if let rate = progress.rate, rate > 0 { line += " \(formatBytes(FleetNumbers.int(rate)))/s" }
            }
            print(line)
        }
        for device in report.devices where device.state.isProblem || device.state == .interrupted {
            print("  \(device.name): \(device.state.rawValue): \(device.reason ?? "")")
        }
        if contents.skippedLines > 0 { print("(\(contents.skippedLines) journal lines could not be read)") }
    }
}

struct FleetReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Merge journals or reports (from several gateways) into one report.",
        discussion: """
            Each input is a journal or a report written by `fleet run`. A device in several inputs \
            keeps its most recent record. Prints a summary (or with --json the merged report); \
            --output and --junit write the JSON and JUnit XML files. The exit status is the one \
            `fleet run` would give for the merged result (0, 6 or 7).
            """)

    @Argument(help: "Journals or JSON reports.", completion: Completion.journalOrReport) var inputs: [String]

    @Option(help: ArgumentHelp("Write the merged JSON report here.", valueName: "path")) var output: String?

    @Option(help: ArgumentHelp("Write the merged JUnit XML here.", valueName: "path")) var junit: String?

    @OptionGroup var global: GlobalOptions

    var json: Bool { global.json }

    func validate() throws {
        guard !inputs.isEmpty, inputs.count <= 1000 else { throw ValidationError("give 1 to 1000 journals or reports") }
    }

    func run() throws {
        var parts: [FleetReport] = []
        for input in inputs {
            do {
                parts.append(try FleetReportInput.read(input))
            } catch {
                Output(json: json).fail(status: .usage, message: error.description, fields: ["error": "input"])
                throw CommandFailure(status: .usage)
            }
        }
        let merged = FleetReport.merge(parts)
        do {
            if let output { try merged.json().write(to: URL(fileURLWithPath: output)) }
            if let junit { try Data(FleetJUnit.xml(merged).utf8).write(to: URL(fileURLWithPath: junit)) }
        } catch {
            Output.diagnostic("smpctl: error: cannot write the report: \(error)")
            throw CommandFailure(status: .failure)
        }
        if json {
            if let data = try? merged.json() { print(String(decoding: data, as: UTF8.self)) }
        } else {
            FleetEvents.summary(merged, reportPath: output, junitPath: junit, logs: nil)
        }
        if merged.exitStatus != 0 { throw ExitCode(merged.exitStatus) }
    }
}

/// Reads a journal or a report.
enum FleetReportInput {
    static func read(_ path: String) throws(FleetError) -> FleetReport {
        let contents = try FleetJournal.read(path: path)
        if contents.runs.isEmpty, contents.devices.isEmpty {
            // Not a journal: a report document.
            let data: Data
            do {
                data = try RegularFile.read(path, limit: FleetJournal.maximumSize)
            } catch {
                throw .file(error.description)
            }
            var report = try FleetReport.decode(data, source: path)
            if report.sources.isEmpty { report.sources = [path] }
            return report
        }
        return contents.report(runIsLive: FleetJournal.isLocked(path: path))
    }
}
