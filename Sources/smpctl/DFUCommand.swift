public import ArgumentParser
public import SMPCtlClient
import Foundation
import SMPCtlProtocol
import SMPCtlLocking

extension FirmwareUpdateMode: ExpressibleByArgument {}

/// Whether the device was found in serial recovery, set from the client closure.
final class RecoveryFlag: Sendable {
    private let flag = LockedValue(false)
    func set() { flag.withLock { $0 = true } }
    var value: Bool { flag.withLock { $0 } }
}

struct DFUCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dfu",
        abstract: "Update the firmware: upload, test, reset, verify the new image runs, confirm.",
        discussion: """
            Modes: test-and-confirm (default) marks the image for one test boot, resets, checks \
            that the new image runs, then confirms it. confirm-only confirms before the reset. \
            test-only leaves the new image unconfirmed, so the next reset reverts it. upload-only \
            stops after the upload. If the device already holds the image, the upload is skipped.

            Before uploading, the file is inspected (see `smpctl image inspect`): a file that is not a \
            signed MCUboot image is refused with exit status 2, and an image larger than the device's \
            slot (from slot info, where the device supports it) is refused with exit status 5, unless \
            --force is given.

            A device in MCUboot's serial recovery (its image list has no active slot and no \
            splitStatus: no application runs) is updated the way recovery works: the image is \
            uploaded straight to the primary slot, with its length in the \
            first chunk, one request at a time, without an erase first and without test or \
            confirm (recovery answers those with rc 8, and the image boots as written); then the \
            device is reset and the application must run the new image. --mode test-only is \
            refused there, since recovery cannot give a test boot that reverts.

            FILE may be a DFU package (nRF Connect SDK's dfu_application.zip): each image its \
            manifest.json lists goes to its image_index, they are marked with the network core \
            first (MCUboot in nRF Connect SDK 2.6.0 to 3.4.0 skips the network core update when \
            the application core was marked first, NCSDK-34106), one reset follows, and every \
            image must run the new image afterwards.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var upload: UploadArguments

    @Option(help: ArgumentHelp("test-and-confirm (the default), confirm-only, test-only or upload-only.", valueName: "mode"))
    var mode: FirmwareUpdateMode?

    @Option(name: .customLong("reconnect-timeout"), help: ArgumentHelp("Seconds to wait for the device after the reset. Each attempt to reconnect may take half of what is left (at least 5 s), so one that never answers does not use it all.", valueName: "seconds"))
    var reconnectTimeout: Double = 30

    func run() async throws {
        let output = Output(json: global.json)
        let package: DFUPackageContents?
        do {
            package = try DFUPackageContents.load(path: upload.file)
        } catch {
            output.report(error, operation: nil)
            throw CommandFailure(status: ExitStatus(error))
        }
        if let package {
            defer { package.remove() }
            try await runPackage(package, output: output)
            return
        }
        let (file, identity) = try upload.load(output: output)
        guard let identity else {
            output.fail(status: .usage, message: "dfu needs a signed MCUboot image to verify; \(upload.file) is not one")
            throw CommandFailure(status: .usage)
        }
        output.line("image \(upload.file): version \(identity.version), hash \(hexString(identity.hash)), \(formatBytes(file.length))")
        let mode = self.mode ?? .testAndConfirm
        var options = FirmwareUpdateOptions(mode: mode, upload: upload.uploadOptions)
        options.reconnectTimeout = .milliseconds(Int(reconnectTimeout * 1000))
        let bar = ProgressBar(label: "upload", enabled: !global.json && Output.stderrIsTerminal, output: output)
        let requestedMode = self.mode
        let recovered = RecoveryFlag()
        try await global.runDeviceCommand { client throws(SMPClientError) -> FirmwareUpdateReport in
            let detection = try await client.detectRecovery()
            if detection.inRecovery {
                recovered.set()
                output.line("the device is in MCUboot serial recovery (\(detection.evidence.joined(separator: "; "))); the image goes straight to the primary slot")
                output.event(["event": "recovery", "evidence": .array(detection.evidence.map(JSONValue.string))])
                switch requestedMode {
                case .testOnly?:
                    throw .invalidInput(
                        "the device is in MCUboot serial recovery, which writes the primary slot directly: there is no test boot that reverts, "
                            + "so --mode test-only cannot be honoured (use --mode upload-only or leave --mode out; see `smpctl explain serial-recovery`)")
                case .testAndConfirm?, .confirmOnly?:
                    output.line("note: serial recovery writes the primary slot directly, so the image needs neither a test mark nor a confirmation; none is sent")
                case .uploadOnly?, nil:
                    break
                }
                return try await client.updateInRecovery(
                    file, imageHash: identity.hash, version: identity.version, detection: detection, options: options
                ) { event in
                    Self.describe(event, output: output, bar: bar)
                }
            }
            // The image list detectRecovery read serves the preflight and the update: read once.
            return try await client.update(file, imageHash: identity.hash, options: options, imageState: detection.state) { event in
                Self.describe(event, output: output, bar: bar, length: file.length)
            }
        } text: { report in
            if recovered.value {
                [report.running ? "done: the application runs the new image (written by serial recovery)" : "done: the image is in the primary slot"]
            } else {
                [report.confirmed ? "done: the new image is running and confirmed" : report.running ? "done: the new image is running (not confirmed)" : "done: the image is uploaded"]
            }
        } json: { report in
            [
                "ok": true, "mode": .string(mode.rawValue), "recovery": .bool(recovered.value), "image_hash": .string(hexString(identity.hash)),
                "version": .string(identity.version), "upload_skipped": .bool(report.uploadSkipped),
                "uploaded_bytes": report.upload.map { .int($0.length - $0.resumedFrom) } ?? 0,
                "resumed_from": report.upload.map { .int($0.resumedFrom) } ?? .null,
                "upload_seconds": report.upload.map { .double($0.seconds) } ?? .null,
                "reconnect_seconds": report.reconnectSeconds.map { .double($0) } ?? .null,
                "total_seconds": .double(bar.totalSeconds),
                "running": .bool(report.running), "confirmed": .bool(report.confirmed),
                "images": SlotTable.json(report.finalState),
            ]
        }
    }

    /// A DFU package (dfu_application.zip): every image to its image number, one reset.
    func runPackage(_ package: DFUPackageContents, output: Output) async throws {
        let mode = self.mode ?? .testAndConfirm
        for item in package.images.sorted(by: { $0.image < $1.image }) {
            output.line("image \(item.image) (\(package.cores[item.image] ?? "image \(item.image)")): version \(item.version), hash \(hexString(item.hash)), \(formatBytes(item.file.length))")
        }
        var options = FirmwareUpdateOptions(mode: mode, upload: upload.uploadOptions)
        options.reconnectTimeout = .milliseconds(Int(reconnectTimeout * 1000))
        let bar = ProgressBar(label: "upload", enabled: !global.json && Output.stderrIsTerminal, output: output)
        let requestedMode = self.mode
        let report = try await global.withClient { client, _ throws(SMPClientError) -> PackageUpdateReport in
            let detection = try await client.detectRecovery()
            guard detection.inRecovery else {
                return try await client.updateImages(package.images, options: options) { event in
                    Self.describe(event, output: output, bar: bar)
                }
            }
            // Serial recovery writes each image to its primary slot (bs_upload: image N, slot 0):
            // nothing to mark, so the order does not matter; one reset after the last upload.
            output.line("the device is in MCUboot serial recovery (\(detection.evidence.joined(separator: "; "))); each image goes straight to its primary slot")
            output.event(["event": "recovery", "evidence": .array(detection.evidence.map(JSONValue.string))])
            if requestedMode == .testOnly {
                throw .invalidInput(
                    "the device is in MCUboot serial recovery, which writes the primary slots directly: there is no test boot that reverts, "
                        + "so --mode test-only cannot be honoured (see `smpctl explain serial-recovery`)")
            }
            var result = PackageUpdateReport()
            let ordered = package.images.sorted { $0.image > $1.image }
            for (position, item) in ordered.enumerated() {
                var itemOptions = options
                itemOptions.upload.image = item.image
                let last = position == ordered.count - 1
                if !last || options.mode == .uploadOnly { itemOptions.mode = .uploadOnly }
                let single = try await client.updateInRecovery(
                    item.file, imageHash: item.hash, version: item.version, detection: detection, options: itemOptions
                ) { event in
                    Self.describe(event, output: output, bar: bar)
                }
                if !single.uploadSkipped { result.uploaded.append(item.image) }
                result.running = single.running
            }
            let final = try await client.readImageState()
            result.finalState = final.images
            if result.running {
                for item in package.images where !final.images.contains(where: {
                    $0.image == item.image && $0.slot == 0 && $0.active && $0.hash == item.hash
                }) {
                    throw .verificationFailed(.notRunningAfterReset,
                        "after the reset image \(item.image) does not run the image written by serial recovery (\(hexString(item.hash)))")
                }
                result.confirmed = package.images.allSatisfy { item in
                    final.images.contains { $0.image == item.image && $0.slot == 0 && $0.confirmed }
                }
            }
            return result
        }
        if !report.marked.isEmpty {
            output.line("marked in the order \(report.marked.map { "image \($0)" }.joined(separator: ", ")) (the network core first: NCSDK-34106)")
        }
        output.line(report.confirmed ? "done: every image is running and confirmed" : report.running ? "done: every image is running" : "done: the images are uploaded")
        output.document([
            "ok": true, "mode": .string(mode.rawValue), "package": true,
            "uploaded": .array(report.uploaded.map { .int($0) }), "marked": .array(report.marked.map { .int($0) }),
            "running": .bool(report.running), "confirmed": .bool(report.confirmed),
            "images": SlotTable.json(report.finalState),
        ])
    }

    static func describe(_ event: FirmwareUpdateEvent, output: Output, bar: ProgressBar, length: Int = 0) {
        switch event {
        case .preflight(let preflight):
            UploadCheckView.render(preflight, length: length, output: output, announcePresence: false)
        case .readParameters(let params, let supported):
            output.line(supported ? "device buffers: \(params.bufferCount) x \(params.bufferSize) bytes" : "device does not report buffer sizes; using \(params.bufferSize)-byte requests")
            output.event(["event": "params", "buf_size": .int(params.bufferSize), "buf_count": .int(params.bufferCount), "supported": .bool(supported)])
        case .speedAdvice(let findings):
            for finding in findings {
                output.line("speed: \(finding.summary): \(finding.why ?? "")")
                output.line("  to speed up: \(finding.fix ?? "") (\(finding.settings.joined(separator: ", ")))")
            }
            output.event([
                "event": "speed_advice",
                "findings": .array(findings.map { ["id": .string($0.id), "summary": .string($0.summary), "why": .string($0.why ?? ""), "settings": .array($0.settings.map(JSONValue.string))] }),
            ])
        case .alreadyOnDevice(let slot, let active, let confirmed):
            output.line("the device already holds this image in slot \(slot)\(active ? " and runs it" : ""); skipping the upload")
            output.event(["event": "already_on_device", "slot": .int(slot), "active": .bool(active), "confirmed": .bool(confirmed)])
        case .uploadStarted(let length, let budget):
            output.line("uploading \(formatBytes(length)) in requests of up to \(budget) bytes")
            output.event(["event": "upload_started", "length": .int(length), "request_size": .int(budget)])
        case .uploadProgress(let progress):
            bar.update(progress)
        case .uploadFinished(let result):
            if result.resumedFrom > 0 { output.line("resumed a previous upload at offset \(result.resumedFrom)") }
            var extra = String(format: "; %.2f s since the command started", bar.totalSeconds)
            if let summary = bar.summary { extra += ", " + summary }
            output.line("uploaded in \(String(format: "%.2f", result.seconds)) s, \(result.chunks) chunks\(extra)")
            output.event(["event": "upload_finished", "upload_seconds": .double(result.seconds), "resumed_from": .int(result.resumedFrom)])
        case .verifiedUpload(let slot):
            output.line("the device lists the new image in slot \(slot)")
            output.event(["event": "verified_upload", "slot": .int(slot)])
        case .markedForTest:
            output.line("marked for a test boot")
            output.event(["event": "marked", "permanent": false])
        case .markedPermanent:
            output.line("marked permanent")
            output.event(["event": "marked", "permanent": true])
        case .resetting:
            output.line("resetting the device")
            output.event(["event": "reset"])
        case .reconnected(let seconds):
            output.line(String(format: "device back after %.2f s", seconds))
            output.event(["event": "reconnected", "reconnect_seconds": .double(seconds)])
        case .runningNewImage(let confirmed):
            output.line("the new image is running\(confirmed ? " and confirmed" : "")")
            output.event(["event": "running", "confirmed": .bool(confirmed)])
        case .confirmed:
            output.line("confirmed")
            output.event(["event": "confirmed"])
        }
    }
}
