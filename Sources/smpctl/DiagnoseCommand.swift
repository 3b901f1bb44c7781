import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlConnection
import SMPCtlDiagnosis
import SMPCtlProtocol

struct DiagnoseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract: "Read the device's state (read-only) and report why an update could fail or did fail.",
        discussion: """
            Reads echo, mcumgr params, bootloader info, the image list and slot info, and reports: \
            a pending slot that blocks uploads, an unconfirmed image that will revert, an image too \
            large for its slot, slots of different sizes, and slow buffer settings with the Kconfig \
            options that speed uploads up. Give the image FILE to compare it with the device. Exits \
            with status 5 when a finding is an error.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "An image file to check against the device (optional).", completion: Completion.signedImage)
    var file: String?

    @Option(help: ArgumentHelp("The image number to look at.", valueName: "n")) var image: Int = 0

    func run() async throws {
        let output = Output(json: global.json)
        var length: Int?
        var hash: [UInt8]?
        if let file {
            do throws(SMPClientError) {
                let firmware = try FirmwareFile(path: file)
                length = firmware.length
                hash = try? FirmwareImageIdentity(file: firmware).hash
            } catch {
                output.report(error)
                throw CommandFailure(status: .usage)
            }
        }
        let (facts, findings) = try await global.withClient { client, _ throws(SMPClientError) in
            let facts = await client.readDeviceFacts(image: image)
            let findings = await client.speedAdvice(for: facts) + DeviceDiagnosis.findings(facts, fileLength: length, imageHash: hash)
            return (facts, findings)
        }
        output.line("reachable: \(facts.reachable ? "yes" : "no") (SMP \(facts.smpVersion ?? .v2))")
        if let params = facts.parameters {
            output.line("buffers: \(params.bufferCount) x \(params.bufferSize) bytes")
        }
        if let bootloader = facts.bootloader {
            output.line("bootloader: \(bootloader)\(facts.bootloaderMode.map { ", mode \(OSManagement.mcubootModeName($0))" } ?? "")")
        }
        let images = facts.images ?? []
        if !images.isEmpty { SlotTable.lines(images).forEach(output.line) }
        let worst = findings.worstSeverity
        if findings.isEmpty { output.line("no problems found") }
        for finding in findings.sorted(by: { $0.severity > $1.severity }) {
            output.line("")
            output.line("\(finding.severity.rawValue): \(finding.summary) [\(finding.id)]")
            if let why = finding.why { output.line("  why: \(why)") }
            if let fix = finding.fix { output.line("  fix: \(fix)") }
            if !finding.settings.isEmpty { output.line("  settings: \(finding.settings.joined(separator: ", "))") }
        }
        output.document([
            "ok": .bool(worst != .error), "reachable": .bool(facts.reachable),
            "smp_version": .int(Int((facts.smpVersion ?? .v2).rawValue) + 1),
            "buf_size": facts.parameters.map { .int($0.bufferSize) } ?? .null,
            "buf_count": facts.parameters.map { .int($0.bufferCount) } ?? .null,
            "bootloader": facts.bootloader.json, "bootloader_mode": facts.bootloaderMode.json,
            "images": SlotTable.json(images),
            "findings": .array(findings.map { finding in
                [
                    "id": .string(finding.id), "severity": .string(finding.severity.rawValue),
                    "summary": .string(finding.summary), "why": .string(finding.why ?? ""), "fix": .string(finding.fix ?? ""),
                    "settings": .array(finding.settings.map(JSONValue.string)),
                ]
            }),
        ])
        if worst == .error { throw CommandFailure(status: .verification) }
    }
}

/// Reads the device's state after a failed command, for ranking the error's causes (SMPCtlDiagnosis judges it).
enum DeviceFactsReader {
    /// The longest the read may take: the device has just answered, so a slower one is skipped.
    static let limit: Duration = .seconds(5)

    /// The facts after `error`, or `nil` when it is not an image-group device error or nothing could be read in time.
    static func read(
        after error: SMPClientError, client: SMPClient, connection: ConnectionSpec, image: Int = 0, hashSent: [UInt8]? = nil
    ) async -> DeviceFacts? {
        guard case .device(let deviceError) = error, deviceError.requestGroup == .image else { return nil }
        let read: DeviceFacts? = await withTaskGroup(of: DeviceFacts?.self) { group in
            group.addTask { await client.readDeviceFacts(image: image) }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard var facts = read, facts.reachable else { return nil }
        facts.link = DeviceFacts.Link(connection)
        facts.hashSent = hashSent
        return facts
    }
}

extension DeviceFacts.Link {
    init(_ connection: ConnectionSpec) {
        switch connection {
        case .simulator(let options): self = options["state"] == nil ? .inProcessSimulator : .savedSimulator
        case .udp: self = .udp
        case .serial: self = .serial
        case .ble: self = .ble
        }
    }
}
