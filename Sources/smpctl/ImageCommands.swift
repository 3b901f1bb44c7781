import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlProtocol
import SMPCtlLocking

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "List, upload, test, confirm, erase and inspect firmware images.",
        subcommands: [
            ImageListCommand.self, ImageUploadCommand.self, ImageTestCommand.self, ImageConfirmCommand.self,
            ImageEraseCommand.self, ImageSlotInfoCommand.self, ImageInspectCommand.self,
        ])
}

/// Human and JSON renderings of slot states.
enum SlotTable {
    static func lines(_ slots: [ImageManagement.SlotState]) -> [String] {
        if slots.isEmpty { return ["no images"] }
        var lines = ["image slot version          flags                                   hash"]
        for slot in slots {
            var flags: [String] = []
            if slot.active { flags.append("active") }
            if slot.confirmed { flags.append("confirmed") }
            if slot.pending { flags.append("pending") }
            if slot.permanent { flags.append("permanent") }
            if slot.bootable { flags.append("bootable") }
            let version = slot.version.padding(toLength: 16, withPad: " ", startingAt: 0)
            let flagText = flags.joined(separator: ",").padding(toLength: 39, withPad: " ", startingAt: 0)
            lines.append("\(String(slot.image).leftPad(5)) \(String(slot.slot).leftPad(4)) \(version) \(flagText) \(slot.hash.map(hexString) ?? "-")")
        }
        return lines
    }

    static func json(_ slots: [ImageManagement.SlotState]) -> JSONValue {
        .array(slots.map { slot in
            [
                "image": .int(slot.image), "slot": .int(slot.slot), "version": .string(slot.version),
                "hash": slot.hash.map { .string(hexString($0)) } ?? .null, "active": .bool(slot.active),
                "confirmed": .bool(slot.confirmed), "pending": .bool(slot.pending), "permanent": .bool(slot.permanent),
                "bootable": .bool(slot.bootable),
            ]
        })
    }
}

struct ImageListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the images in every slot with their version, hash and flags.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.runDeviceCommand(operation: .list) { client throws(SMPClientError) in
            try await client.readImageState()
        } text: { state in
            SlotTable.lines(state.images)
        } json: { state in
            ["ok": true, "images": SlotTable.json(state.images)]
        }
    }
}

/// Options shared by `image upload` and `dfu`.
struct UploadArguments: ParsableArguments {
    @Argument(help: "The signed MCUboot image file (for example zephyr.signed.bin).", completion: Completion.signedImage)
    var file: String

    @Option(help: ArgumentHelp("The image number to update (1 is the nRF5340 network core).", valueName: "n"))
    var image: Int?

    @Flag(help: "Ask the device to refuse the image unless it is newer than the running one.") var upgrade = false

    @Option(help: ArgumentHelp("Align chunk data to this many bytes, for devices that need aligned writes.", valueName: "bytes"))
    var align: Int = 1

    @Option(name: .customLong("first-timeout"), help: ArgumentHelp("Seconds to wait for the first chunk, while the device erases the slot.", valueName: "seconds"))
    var firstTimeout: Double = 40

    @Flag(help: "Upload even if the file is not a valid signed MCUboot image or is larger than the slot.") var force = false

    @Option(help: ArgumentHelp("Upload chunks kept in flight (default: the device's buffer count less one).", valueName: "n"))
    var window: Int?

    @Option(help: ArgumentHelp("Give up if the upload has not finished after this many seconds (default: no limit beyond the progress checks).", valueName: "seconds"))
    var deadline: Double?

    func validate() throws {
        if let image, !(0...15).contains(image) { throw ValidationError("--image must be between 0 and 15") }
        guard [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].contains(align) else {
            throw ValidationError("--align must be a power of two from 1 to 512")
        }
        if let window, !(1...32).contains(window) { throw ValidationError("--window must be between 1 and 32") }
        guard firstTimeout > 0, firstTimeout <= 3600 else { throw ValidationError("--first-timeout must be between 0 and 3600") }
        if let deadline, !(deadline > 0 && deadline <= 86_400) { throw ValidationError("--deadline must be between 0 and 86400 seconds") }
    }

    var uploadOptions: UploadOptions {
        var options = UploadOptions(image: image, upgrade: upgrade, alignment: align)
        options.firstChunkTimeout = .milliseconds(Int(firstTimeout * 1000))
        options.window = window
        options.deadline = deadline.map { .milliseconds(Int64($0 * 1000)) }
        options.force = force
        return options
    }

    /// Opens the file and reads its image identity (`UploadImageFile.open`: files that are not images
    /// are refused unless forced, saying what the file is and what to upload instead).
    func load(output: Output) throws -> (FirmwareFile, FirmwareImageIdentity?) {
        do throws(SMPClientError) {
            let opened = try UploadImageFile.open(path: file, force: force)
            UploadCheckView.render(opened, output: output)
            return (opened.file, opened.identity)
        } catch {
            output.report(error)
            throw CommandFailure(status: ExitStatus(error))
        }
    }
}

struct ImageUploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Upload an image to the secondary slot, resuming a previous upload of the same file.",
        discussion: """
            Before uploading, the file is inspected (see `smpctl image inspect`): a file that is not a \
            signed MCUboot image is refused with exit status 2 and an explanation of what it is and what \
            to upload instead. Where the device supports slot info, an image larger than the slot is \
            refused with exit status 5 before anything is sent. --force overrides both. When the device \
            already holds the image, smpctl says so and uploads it again.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var upload: UploadArguments

    func run() async throws {
        let output = Output(json: global.json)
        let (file, identity) = try upload.load(output: output)
        let bar = ProgressBar(label: "upload", enabled: !global.json && Output.stderrIsTerminal, output: output)
        let report = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.uploadImage(file, imageHash: identity?.hash, options: upload.uploadOptions) { event in
                switch event {
                case .preflight(let preflight):
                    UploadCheckView.render(preflight, length: file.length, output: output, announcePresence: true)
                case .uploadProgress(let progress):
                    bar.update(progress)
                default:
                    break
                }
            }
        }
        let (result, state) = (report.upload, report.finalState)
        if result.resumedFrom > 0 { output.line("resumed at offset \(result.resumedFrom)") }
        var extra = String(format: "; %.2f s in all", bar.totalSeconds)
        if let summary = bar.summary { extra += ", " + summary }
        output.line("uploaded \(formatBytes(result.length)) in \(String(format: "%.2f", result.seconds)) s (\(result.chunks) chunks of up to \(result.chunkSize) bytes, \(result.window) in flight\(extra))")
        if let identity { output.line("device lists image \(hexString(identity.hash))") }
        output.document([
            "ok": true, "length": .int(result.length), "resumed_from": .int(result.resumedFrom),
            "chunks": .int(result.chunks), "chunk_size": .int(result.chunkSize), "window": .int(result.window),
            "upload_seconds": .double(result.seconds), "total_seconds": .double(bar.totalSeconds),
            "match": result.match.json, "image_hash": identity.map { .string(hexString($0.hash)) } ?? .null,
            "images": SlotTable.json(state.images),
        ])
    }
}

struct ImageTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test", abstract: "Mark an image to boot once at the next reset (it reverts unless confirmed).",
        discussion: """
            Name the image by its hash as `image list` shows it, by a prefix of that hash that only one \
            image on the device has (at least 4 hex digits), by the signed image file (its SHA-256 hash \
            TLV is read), or with --slot N.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var selection: ImageSelection

    func validate() throws {
        if selection.target == nil, selection.slot == nil { throw ValidationError("give the image: a hash, a unique hash prefix, a file, or --slot N") }
    }

    func run() async throws {
        // The image meant, once known: after a refusal the device's state is judged against it.
        let meant = MeantImage()
        let imageNumber = selection.imageNumber
        let (state, hash) = try await global.withClient(operation: .test, meant: { meant.value.withLock { $0 } }) {
            client, _ throws(SMPClientError) in
            let request = try selection.request()
            let images: [ImageManagement.SlotState]
            switch request {
            case .prefix, .slot: images = try await client.readImageState().images
            case .none, .hash: images = []
            }
            let hash = try ImageSelection.resolve(request, images: images)
            if let hash { meant.value.withLock { $0 = (imageNumber, hash) } }
            return (try await client.send(ImageManagement.StateWriteRequest(hash: hash, confirm: false)), hash)
        }
        let output = Output(json: global.json)
        SlotTable.lines(state.images).forEach(output.line)
        // What slot 1 holds now against the image meant (the answer lists every slot).
        let verdict = DeviceStateRanking.afterTest(DeviceFacts(image: imageNumber, images: state.images, hashSent: hash))
        if let verdict {
            output.line((verdict.isProblem ? "note: " : "") + verdict.summary)
            if let advice = verdict.advice { output.line("  " + advice) }
        }
        output.document(["ok": true, "images": SlotTable.json(state.images), "test_verdict": TestVerdictFormat.json(verdict)])
    }
}

/// The image a command is about, set once it is resolved and read after a failure.
final class MeantImage: Sendable {
    let value = LockedValue<(image: Int, hash: [UInt8])?>(nil)
}

/// The `test_verdict` of `image test --json`.
enum TestVerdictFormat {
    static func json(_ verdict: TestedImageVerdict?) -> JSONValue {
        guard let verdict else { return .null }
        return [
            "kind": .string(verdict.kind.rawValue), "summary": .string(verdict.summary),
            "advice": verdict.advice.map(JSONValue.string) ?? .null, "problem": .bool(verdict.isProblem),
        ]
    }
}

struct ImageConfirmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm", abstract: "Confirm an image permanently; with no hash, confirm the running image.",
        discussion: """
            Name the image by its hash as `image list` shows it, by a prefix of that hash that only one \
            image on the device has (at least 4 hex digits), by the signed image file (its SHA-256 hash \
            TLV is read), or with --slot N; with none of these, the running image is confirmed.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var selection: ImageSelection

    func run() async throws {
        try await global.runDeviceCommand(operation: .confirm) { client throws(SMPClientError) in
            let request = try selection.request()
            let images: [ImageManagement.SlotState]
            switch request {
            case .prefix, .slot: images = try await client.readImageState().images
            case .none, .hash: images = []
            }
            let hash = try ImageSelection.resolve(request, images: images)
            return try await client.send(ImageManagement.StateWriteRequest(hash: hash, confirm: true))
        } text: { state in
            SlotTable.lines(state.images)
        } json: { state in
            ["ok": true, "images": SlotTable.json(state.images)]
        }
    }
}

struct ImageEraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase", abstract: "Erase a slot (by default the inactive one).")

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("The slot to erase.", valueName: "n")) var slot: Int?

    func run() async throws {
        try await global.runDeviceCommand(operation: .erase) { client throws(SMPClientError) -> Bool in
            do throws(SMPClientError) {
                _ = try await client.send(ImageManagement.EraseRequest(slot: slot), timeout: .seconds(max(global.timeout, 30)))
                return false
            } catch .device(let error) {
                // Zephyr 3.5 answers an erase of a slot that holds no image with image-group rc 1
                // (UNKNOWN): when the image list shows the slot empty, there is nothing to erase.
                let target = slot ?? 1
                let state = try await client.readImageState()
                let listed = state.images.contains { $0.image * 2 + $0.slot == target }
                if !listed, error.rawCode == 1 { return true }
                throw .device(error)
            }
        } text: { alreadyEmpty in
            [alreadyEmpty ? "slot \(slot ?? 1) is already empty" : "erased"]
        } json: { alreadyEmpty in
            ["ok": true, "erased": .bool(!alreadyEmpty), "already_empty": .bool(alreadyEmpty), "slot": slot.json]
        }
    }
}

struct ImageSlotInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slot-info", abstract: "Show the size of every slot and the largest image that fits.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.runDeviceCommand { client throws(SMPClientError) in
            try await client.send(ImageManagement.SlotInfoRequest())
        } text: { info in
            info.images.flatMap { image in
                ["image \(image.image)\(image.maxImageSize.map { " (largest image \(formatBytes($0)))" } ?? "")"]
                    + image.slots.map { slot in
                        let size = slot.size.map { "\(formatBytes($0)) (\($0) bytes)" } ?? "cannot be opened (rc \(slot.rc ?? -1))"
                        return "  slot \(slot.slot): \(size)\(slot.uploadImageID.map { ", upload with --image \($0)" } ?? "")"
                    }
            }
        } json: { info in
            [
                "ok": true,
                "images": .array(info.images.map { image in
                    [
                        "image": .int(image.image), "max_image_size": image.maxImageSize.json,
                        "slots": .array(image.slots.map { slot in
                            [
                                "slot": .int(slot.slot), "size": slot.size.json, "upload_image_id": slot.uploadImageID.json,
                                "rc": slot.rc.json,
                            ]
                        }),
                    ]
                }),
            ]
        }
    }
}
