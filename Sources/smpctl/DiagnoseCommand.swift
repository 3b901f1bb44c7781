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
        let report = try await global.withClient { client, _ throws(SMPClientError) in
            await client.diagnose(image: image, fileLength: length, imageHash: hash)
        }
        output.line("reachable: \(report.reachable ? "yes" : "no") (SMP \(report.smpVersion))")
        if let params = report.parameters, report.parametersSupported {
            output.line("buffers: \(params.bufferCount) x \(params.bufferSize) bytes")
        }
        if let bootloader = report.bootloader {
            output.line("bootloader: \(bootloader)\(report.bootloaderMode.map { ", mode \(OSManagement.mcubootModeName($0))" } ?? "")")
        }
        if !report.images.isEmpty { SlotTable.lines(report.images).forEach(output.line) }
        if report.findings.isEmpty { output.line("no problems found") }
        for finding in report.findings.sorted(by: { $0.severity > $1.severity }) {
            output.line("")
            output.line("\(finding.severity.rawValue): \(finding.summary) [\(finding.id)]")
            output.line("  why: \(finding.why)")
            output.line("  fix: \(finding.fix)")
            if !finding.settings.isEmpty { output.line("  settings: \(finding.settings.joined(separator: ", "))") }
        }
        output.document([
            "ok": .bool(report.worst != .error), "reachable": .bool(report.reachable),
            "smp_version": .int(Int(report.smpVersion.rawValue) + 1),
            "buf_size": report.parametersSupported ? report.parameters.map { .int($0.bufferSize) } ?? .null : .null,
            "buf_count": report.parametersSupported ? report.parameters.map { .int($0.bufferCount) } ?? .null : .null,
            "bootloader": report.bootloader.json, "bootloader_mode": report.bootloaderMode.json,
            "images": SlotTable.json(report.images),
            "findings": .array(report.findings.map { finding in
                [
                    "id": .string(finding.id), "severity": .string(finding.severity.rawValue),
                    "summary": .string(finding.summary), "why": .string(finding.why), "fix": .string(finding.fix),
                    "settings": .array(finding.settings.map(JSONValue.string)),
                ]
            }),
        ])
        if report.worst == .error { throw CommandFailure(status: .verification) }
    }
}

/// Reads the device's state after a failed command, for ranking the error's causes (SMPCtlDiagnosis judges it).
enum DeviceFactsReader {
    /// The longest the read may take: the device has just answered, so a slower one is skipped.
    static let limit: Duration = .seconds(5)

    /// The facts after `error`, or `nil` when it is not an image-group device error or nothing could be read in time.
    static func read(after error: SMPClientError, client: SMPClient, connection: ConnectionSpec, image: Int = 0) async -> DeviceFacts? {
        guard case .device(let deviceError) = error, deviceError.requestGroup == .image else { return nil }
        let report: DeviceDiagnosis? = await withTaskGroup(of: DeviceDiagnosis?.self) { group in
            group.addTask { await client.diagnose(image: image) }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let report, report.reachable else { return nil }
        return DeviceFacts(report, link: DeviceFacts.Link(connection), image: image)
    }
}

extension DeviceFacts {
    /// The facts in a `diagnose` report.
    init(_ report: DeviceDiagnosis, link: Link?, image: Int, hashSent: [UInt8]? = nil) {
        self.init(
            link: link, image: image, images: report.images, slotInfo: report.slotInfo,
            bufferSize: report.parametersSupported ? report.parameters?.bufferSize : nil, bootloaderMode: report.bootloaderMode,
            hashSent: hashSent)
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
