import ArgumentParser
import Foundation
import SMPCtlDiagnosis
import SMPCtlFiles

/// `smpctl doctor BUILD_DIR`: checks a build folder for configurations that break firmware updates.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check a Zephyr or nRF Connect SDK build folder for settings that break firmware updates.",
        discussion: """
            Reads partitions.yml, pm_static.yml, the application's and MCUboot's zephyr/.config and \
            zephyr/zephyr.dts (sysbuild and child-image layouts; without the Partition Manager the slots \
            are the devicetree's fixed partitions, and the first line says so), and reports each misconfiguration with \
            its severity, the file and line or key, why it breaks DFU, the fix, and the public reports it \
            is based on. Works offline.

            Exit status: 0 when there is no error-level finding, 5 when there is one, 2 when the folder \
            is not a build folder.
            """
    )

    @Argument(help: ArgumentHelp("The build folder (the one given to west build -d).", valueName: "build-dir"),
        completion: Completion.buildFolder)
    var buildDirectory: String

    // Offline: `--json` only, no connection options.
    @OptionGroup var output: OutputOptions

    func run() throws {
        let json = output.json
        let output = Output(json: json)
        guard let report = Doctor.examine(path: buildDirectory) else {
            let config = URL(fileURLWithPath: buildDirectory).appendingPathComponent("zephyr/.config").path
            if FileManager.default.fileExists(atPath: config), !RegularFile.isRegular(config) {
                output.fail(status: .usage, message: "\(config) is not a regular file (a FIFO or a device is not read)")
                throw CommandFailure(status: .usage)
            }
            output.fail(
                status: .usage,
                message: "\(buildDirectory) is not a Zephyr build folder (no zephyr/.config, and no sysbuild image with one)")
            throw CommandFailure(status: .usage)
        }
        if json {
            output.document(Self.json(report))
        } else {
            print(Self.text(report), terminator: "")
        }
        if report.errorCount > 0 { throw CommandFailure(status: .verification) }
    }

    static func describe(_ build: DoctorBuild) -> String {
        var parts = [build.layout.rawValue]
        if !build.application.directory.isEmpty { parts.append("application \(build.application.directory)/") }
        parts.append(build.mcuboot == nil ? "no MCUboot" : "MCUboot")
        if let netcore = build.networkCore?.imageDirectory { parts.append("network core \(netcore)/") }
        if let file = build.partitionsFile { parts.append(build.partitionSource == .devicetree ? "partitions from \(file)" : file) }
        if let file = build.pmStaticFile { parts.append(file) }
        return parts.joined(separator: ", ")
    }

    static func text(_ report: DoctorReport) -> String {
        var out = "Build folder: \(report.build.path) (\(describe(report.build)))\n"
        if report.findings.isEmpty { out += "\nNo problems found.\n" }
        for finding in report.findings {
            out += "\n\(finding.severity.rawValue.uppercased()) [\(finding.id)] \(finding.location?.description ?? "")\n"
            out += "  \(finding.summary)\n"
            out += "  Why: \(finding.why ?? "")\n"
            out += "  Fix: \(finding.fix ?? "")\n"
            for key in finding.references {
                if let reference = DoctorReferences.reference(key) { out += "  See: \(reference.title)\n       \(reference.url)\n" }
            }
        }
        if let upload = report.uploadFile { out += "\nFile to upload: \(upload)\n" }
        let infos = report.findings.count - report.errorCount - report.warningCount
        out += "\n\(report.errorCount) error(s), \(report.warningCount) warning(s), \(infos) note(s).\n"
        return out
    }

    static func json(_ report: DoctorReport) -> JSONValue {
        let findings: [JSONValue] = report.findings.map { finding in
            .object([
                "id": .string(finding.id),
                "severity": .string(finding.severity.rawValue),
                "file": .string(finding.location?.file ?? ""),
                "line": finding.location?.line.map { .int($0) } ?? .null,
                "key": finding.location?.key.map { .string($0) } ?? .null,
                "summary": .string(finding.summary),
                "why": .string(finding.why ?? ""),
                "fix": .string(finding.fix ?? ""),
                "references": .array(finding.references.compactMap { key in
                    DoctorReferences.reference(key).map {
                        .object(["key": .string($0.key), "title": .string($0.title), "url": .string($0.url)])
                    }
                }),
            ])
        }
        let build = report.build
        var failure: [String: JSONValue] = [:]
        if report.errorCount > 0 {
            // As every error document: the kind, and no upload (doctor never uploads).
            failure = ["error": "build-misconfigured", "upload_progress": .null, "exit_status": .int(Int(ExitStatus.verification.rawValue))]
        }
        return .object(failure.merging([
            "ok": .bool(report.errorCount == 0),
            "build_dir": .string(build.path),
            "layout": .string(build.layout.rawValue),
            "application_dir": .string(build.application.directory),
            "mcuboot": .bool(build.mcuboot != nil),
            "partitions_file": build.partitionsFile.map { .string($0) } ?? .null,
            "pm_static_file": build.pmStaticFile.map { .string($0) } ?? .null,
            "upload_file": report.uploadFile.map { .string($0) } ?? .null,
            "errors": .int(report.errorCount),
            "warnings": .int(report.warningCount),
            "findings": .array(findings),
        ]) { $1 })
    }
}
