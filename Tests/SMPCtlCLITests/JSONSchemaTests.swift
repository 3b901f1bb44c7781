import Foundation
import Testing

/// Commands' `--json` documents and JSON Lines events against `Schemas/smpctl.schema.json`.
@Suite("JSON output follows Schemas/smpctl.schema.json")
struct JSONSchemaTests {
    let schema: JSONSchemaSubset

    init() throws {
        let url = CLI.packageRoot.appendingPathComponent("Schemas/smpctl.schema.json")
        schema = try JSONSchemaSubset(schema: JSONNode.parse(String(contentsOf: url, encoding: .utf8)))
    }

    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")

    /// Checks stdout against `definition` (and the generic document) and every stderr line
    /// that is JSON against the event schema; returns the document.
    @discardableResult
    func check(_ result: CLIResult, _ definition: String, status: Int32, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONNode {
        #expect(result.status == status, "exit \(result.status), stderr: \(result.stderr)", sourceLocation: sourceLocation)
        let document = try JSONNode.parse(result.stdout)
        for name in [definition, "document"] {
            let errors = try schema.errors(document, against: name)
            #expect(errors.isEmpty, "\(name): \(errors.joined(separator: "\n"))\n\(result.stdout)", sourceLocation: sourceLocation)
        }
        for line in result.stderr.split(separator: "\n") where line.hasPrefix("{") {
            let event = try JSONNode.parse(String(line))
            let errors = try schema.errors(event, against: "event")
            #expect(errors.isEmpty, "event: \(errors.joined(separator: "\n"))\n\(line)", sourceLocation: sourceLocation)
        }
        return document
    }

    /// The JSON events on standard error.
    func events(_ result: CLIResult) throws -> [JSONNode] {
        try result.stderr.split(separator: "\n").filter { $0.hasPrefix("{") }.map { try JSONNode.parse(String($0)) }
    }

    @Test("the validator rejects what the schema forbids (so passing means something)")
    func validatorRejects() throws {
        let good = try JSONNode.parse(#"{"ok":true,"echo":"hi"}"#)
        #expect(try schema.errors(good, against: "echo").isEmpty)
        let cases = [
            (#"{"ok":true}"#, "echo"),  // echo missing
            (#"{"ok":true,"echo":5}"#, "echo"),  // wrong type
            (#"{"ok":"yes","echo":"hi"}"#, "echo"),  // ok not a boolean true
            (#"{"ok":true,"echo":"hi","seconds":1.5}"#, "echo"),  // a bare seconds
            (#"{"ok":true,"echo":"hi","Upload-Time":1}"#, "echo"),  // not snake_case
            (#"{"ok":false,"message":"x","exit_status":3,"upload_progress":null}"#, "error"),  // no error kind
            (#"{"ok":false,"error":"stalled","message":"x","exit_status":3}"#, "error"),  // no upload_progress
            (#"{"ok":false,"error":"x","message":"x","exit_status":9,"upload_progress":null}"#, "error"),  // no such status
            (#"{"event":"upload","timestamp":"2026-01-01T00:00:00.000Z","offset":1,"total":2}"#, "event"),  // no rate, ETA
            (#"{"event":"reset"}"#, "event"),  // no timestamp
            (#"{"event":"reset","timestamp":"yesterday"}"#, "event"),
        ]
        for (text, definition) in cases {
            #expect(!(try schema.errors(JSONNode.parse(text), against: definition)).isEmpty, "\(text) passed \(definition)")
        }
        #expect(throws: JSONSchemaSubset.Failure.self) {
            try JSONSchemaSubset(schema: JSONNode.parse(#"{"if":{"type":"object"}}"#))
        }
    }

    @Test("device commands' documents")
    func deviceDocuments() async throws {
        try await check(CLI.run(["-c", "sim", "--json", "echo", "hi"]), "echo", status: 0)
        try await check(CLI.run(["-c", "sim", "--json", "params"]), "params", status: 0)
        try await check(CLI.run(["-c", "sim", "--json", "image", "list"]), "image-list", status: 0)
    }

    @Test("image upload: the document, and progress events with timestamp, rate and ETA")
    func upload() async throws {
        let result = try await CLI.run(["-c", "sim", "--json", "image", "upload", image])
        let document = try check(result, "image-upload", status: 0)
        #expect(document["upload_seconds"] != nil && document["seconds"] == nil)
        let uploads = try events(result).filter { $0["event"] == .string("upload") }
        #expect(!uploads.isEmpty)
        for event in uploads {
            #expect(event["rate_bytes_per_second"] != nil && event["eta_seconds"] != nil && event["timestamp"] != nil)
        }
        #expect(uploads.last?["offset"] == uploads.last?["total"])
    }

    @Test("dfu: the document uses the same duration names as image upload")
    func dfu() async throws {
        let result = try await CLI.run(["-c", "sim", "--json", "dfu", image])
        let document = try check(result, "dfu", status: 0)
        #expect(document["upload_seconds"] != nil && document["total_seconds"] != nil)
        let names = try events(result).compactMap { event -> String? in
            if case .string(let name)? = event["event"] { return name }
            return nil
        }
        #expect(names.contains("upload_finished") && names.contains("reconnected"))
    }

    @Test("offline commands' documents")
    func offlineDocuments() async throws {
        try await check(CLI.run(["explain", "5", "--json"]), "explain", status: 0)
        try await check(CLI.run(["--json", "explain", "8", "--group", "image"]), "explain", status: 0)
        try await check(CLI.run(["image", "inspect", image, "--json"]), "image-inspect", status: 0)
        try await check(CLI.run(["doctor", CLI.path("Tests/Fixtures/builds/healthy/build"), "--json"]), "doctor", status: 0)
        let misconfigured = try await check(
            CLI.run(["doctor", CLI.path("Tests/Fixtures/builds/slot-size-mismatch/build"), "--json"]), "doctor", status: 5)
        #expect(misconfigured["error"] == .string("build-misconfigured"))
    }

    @Test("a file that is not an image: a report with an error kind")
    func truncatedImage() async throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: image))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-cut-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: file) }
        try data.prefix(600).write(to: file)
        let document = try await check(CLI.run(["image", "inspect", file.path, "--json"]), "image-inspect", status: 2)
        #expect(document["error"] == .string("invalid-image"))
    }

    @Test("profile list is a document with ok and the profiles")
    func profiles() async throws {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-schema-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: config) }
        let xdg = ["XDG_CONFIG_HOME": config.path]
        #expect(try await CLI.run(["profile", "add", "bench", "sim"], environment: xdg).status == 0)
        let document = try await check(CLI.run(["profile", "list", "--json"], environment: xdg), "profile-list", status: 0)
        #expect(document["profiles"]?["bench"] == .string("sim"))
    }

    @Test("fleet run, status and report: the report follows fleet-report (update_seconds, never a bare seconds), and so do the events")
    func fleetReport() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-schema-fleet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let journal = folder.appendingPathComponent("fleet.journal").path
        // Examples/fleet.yaml: four devices on the embedded simulator, the last one rejects the image.
        let run = try await CLI.run(["fleet", "run", CLI.path("Examples/fleet.yaml"), "--json", "--journal", journal], timeout: 300)
        #expect(run.status == 6, "\(run.stderr)")
        for result in [
            run,
            try await CLI.run(["fleet", "status", journal, "--json"]),
            try await CLI.run(["fleet", "report", journal, "--json"]),
        ] {
            let report = try JSONNode.parse(result.stdout)
            let errors = try schema.errors(report, against: "fleet-report")
            #expect(errors.isEmpty, "\(errors.joined(separator: "\n"))\n\(result.stdout)")
            #expect(result.stdout.contains("\"update_seconds\""))
            #expect(!result.stdout.contains("\"seconds\""))
        }
        for line in run.stderr.split(separator: "\n") where line.hasPrefix("{") {
            let errors = try schema.errors(JSONNode.parse(String(line)), against: "event")
            #expect(errors.isEmpty, "event: \(errors.joined(separator: "\n"))\n\(line)")
        }
        #expect(run.stderr.contains("\"update_seconds\""))
        // The validator refuses a device record with the old name.
        let old = try JSONNode.parse(
            #"{"schema":"smpctl-fleet-report/1","manifests":[],"sources":[],"halted":false,"interrupted":false,"totals":{},"exit_status":0,"devices":[{"name":"a","connection":"sim","labels":{},"targets":[],"state":"done","attempts":1,"uploaded_bytes":0,"retries":0,"reconnects":0,"updated":1,"seconds":0.5}]}"#)
        #expect(!(try schema.errors(old, against: "fleet-report")).isEmpty)
    }

    @Test("a -c sim error that needs earlier state carries a hint naming sim?state=FILE")
    func simulatorHint() async throws {
        let document = try await check(
            CLI.run(["-c", "sim", "--json", "image", "test", String(repeating: "cd", count: 32)]), "error", status: 4)
        #expect(document["hint"].map { "\($0)".contains("sim?state=FILE") } == true)
    }

    @Test("errors: every one has an error kind, an exit status and how far an upload got")
    func errors() async throws {
        // The device answers with an error code.
        let device = try await check(CLI.run(["-c", "sim", "--json", "datetime"]), "error", status: 4)
        #expect(device["error"] == .string("device") && device["upload_progress"] == .null)
        // A connection string that does not parse.
        let connection = try await check(CLI.run(["-c", "nope:x", "--json", "echo", "hi"]), "error", status: 2)
        #expect(connection["error"] == .string("connection"))
        // An unknown option under --json is a JSON document too.
        let usage = try await check(CLI.run(["-c", "sim", "echo", "hi", "--bogus", "--json"]), "error", status: 2)
        #expect(usage["error"] == .string("usage"))
        if case .string(let message)? = usage["message"] { #expect(message.contains("--bogus")) }
        // An upload that stalls: the error says how far it got.
        let stalled = try await check(
            CLI.run(["-c", "sim?hostile-offset=stuck", "--json", "image", "upload", image]), "error", status: 3)
        #expect(stalled["error"] == .string("stalled"))
        #expect(stalled["upload_progress"]?["total"] == .integer(49815))
        if case .integer(let offset)? = stalled["upload_progress"]?["offset"] { #expect(offset > 0 && offset < 49815) }
    }

    @Test("notice events: a retry after a lost answer")
    func notices() async throws {
        let result = try await CLI.run(["-c", "sim?drop=3", "--timeout", "1", "--json", "image", "upload", image])
        try check(result, "image-upload", status: 0)
        let notices = try events(result).filter { $0["event"] == .string("notice") }
        #expect(notices.contains { $0["kind"] == .string("retry") })
    }
}
