import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlProtocol

struct FSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fs",
        abstract: "Upload, download, inspect and hash files on the device's file system (file group 8).",
        discussion: """
            Paths on the device are absolute, such as /lfs/config.bin, and at most \
            CONFIG_MCUMGR_GRP_FS_PATH_LEN bytes (64 by default). Uploads and downloads continue \
            a transfer that an earlier run left when the device's hash confirms the part already \
            transferred (--restart starts again at 0), and compare the whole file's sha256 (or \
            crc32) with the device's at the end when the device has the hash command.
            """,
        subcommands: [
            FSUploadCommand.self, FSDownloadCommand.self, FSStatCommand.self, FSHashCommand.self,
            FSSupportedHashesCommand.self, FSCloseCommand.self,
        ])

    /// The JSON of a transfer's result.
    static func json(_ result: FileTransferResult, remote: String, local: String) -> JSONValue {
        var check: JSONValue = .null
        if case .matched(let type, let hex) = result.check { check = ["type": .string(type), "output": .string(hex)] }
        return [
            "ok": true, "remote": .string(remote), "local": .string(local), "length": .int(result.length),
            "resumed_from": .int(result.resumedFrom), "chunks": .int(result.chunks), "chunk_size": .int(result.chunkSize),
            "seconds": .double(result.seconds), "hash_check": check,
            "hash_checked": .bool(result.check.type != nil), "window": .int(result.window),
            "rewinds": .int(result.rewinds),
        ]
    }

    /// What the summary says about the hash comparison.
    static func checkText(_ check: FileHashCheck) -> String {
        switch check {
        case .matched(let type, _): "\(type) matches the device's"
        case .unsupported: "not compared: the device has no hash command"
        case .empty: "empty file"
        }
    }

    /// A hint for an `rc 3` answer to a name longer than Zephyr's default path length.
    static func nameHint(_ error: SMPClientError, name: String) {
        guard case .device(let deviceError) = error, deviceError.kind == .smp(.invalidArgument),
            name.utf8.count > FileManagement.defaultPathLength
        else { return }
        Output.diagnostic(
            "  hint: the name is \(name.utf8.count) bytes; Zephyr refuses names longer than CONFIG_MCUMGR_GRP_FS_PATH_LEN (64 by default) with rc 3")
    }
}

/// Options of both transfer directions.
struct FSTransferArguments: ParsableArguments {
    @Flag(help: "Start again at offset 0 instead of continuing a transfer an earlier run left.") var restart = false

    @Option(help: ArgumentHelp("Give up if the transfer has not finished after this many seconds.", valueName: "seconds"))
    var deadline: Double?

    func validate() throws {
        if let deadline, !(deadline > 0 && deadline <= 86_400) {
            throw ValidationError("--deadline must be between 0 and 86400 seconds")
        }
    }

    var options: FileTransferOptions {
        var options = FileTransferOptions()
        options.resume = !restart
        options.deadline = deadline.map { .milliseconds(Int64($0 * 1000)) }
        return options
    }
}

struct FSUploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Upload a local file to a path on the device.",
        discussion: """
            Each request is sized to fill the device's SMP buffer on this link exactly, and up to \
            --window requests are in flight (default: the device's buffer count less one). Zephyr \
            refuses a chunk at another offset than the file's length with the length it has, so \
            after a lost or reordered chunk the upload continues there. An existing \
            file at REMOTE is replaced, unless it holds the start of LOCAL (checked by the device's \
            hash), in which case the upload continues from its end.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The local file.") var local: String
    @Argument(help: "The path on the device, such as /lfs/config.bin.") var remote: String
    @OptionGroup var transfer: FSTransferArguments
    @Option(help: ArgumentHelp("Upload chunks kept in flight (default: the device's buffer count less one).", valueName: "n"))
    var window: Int?

    func validate() throws {
        if let window, !(1...32).contains(window) { throw ValidationError("--window must be between 1 and 32") }
    }

    func run() async throws {
        let output = Output(json: global.json)
        var options = transfer.options
        options.window = window
        // What FirmwareFile refuses, said for files rather than firmware images.
        if let size = (try? FileManager.default.attributesOfItem(atPath: local))?[.size] as? Int {
            if size == 0 {
                output.fail(
                    status: .usage,
                    message: "\(local) is empty: Zephyr's fs_mgmt.c does not truncate an existing file for an upload without data, so smpctl uploads no empty files",
                    fields: ["error": "input"])
                throw CommandFailure(status: .usage)
            }
            if size > FirmwareFile.maximumLength {
                output.fail(
                    status: .usage, message: "\(local) is \(size) bytes, more than the \(FirmwareFile.maximumLength) bytes smpctl uploads",
                    fields: ["error": "input"])
                throw CommandFailure(status: .usage)
            }
        }
        let file: FirmwareFile
        do throws(SMPClientError) {
            file = try FirmwareFile(path: local)
        } catch {
            output.report(error)
            throw CommandFailure(status: .usage)
        }
        let bar = ProgressBar(label: "upload", enabled: !global.json && Output.stderrIsTerminal, output: output)
        let remote = self.remote
        var failure: SMPClientError?
        let result: FileTransferResult
        do {
            result = try await global.withClient { client, _ throws(SMPClientError) in
                do throws(SMPClientError) {
                    return try await client.uploadFile(file, to: remote, options: options) { bar.update($0) }
                } catch {
                    failure = error
                    throw error
                }
            }
        } catch {
            if let failure, !global.json { FSCommand.nameHint(failure, name: remote) }
            throw error
        }
        if result.resumedFrom == result.length, result.chunks == 0 {
            output.line("\(remote) already holds \(local) (\(FSCommand.checkText(result.check))); nothing was sent")
            output.document(FSCommand.json(result, remote: remote, local: local))
            return
        }
        if result.resumedFrom > 0 { output.line("resumed at offset \(result.resumedFrom)") }
        output.line("uploaded \(formatBytes(result.length)) to \(remote) in \(String(format: "%.2f", result.seconds)) s (\(result.chunks) chunks of up to \(result.chunkSize) bytes, \(result.window) in flight\(result.rewinds > 0 ? ", \(result.rewinds) refused at an unexpected offset" : "")); \(FSCommand.checkText(result.check))")
        output.document(FSCommand.json(result, remote: remote, local: local))
    }
}

struct FSDownloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Download a file from the device.",
        discussion: """
            The data goes to LOCAL.part, which becomes LOCAL once the whole file is there and its \
            hash matches the device's (exit status 5 when it does not). An interrupted download \
            leaves LOCAL.part; the next run continues it.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The path on the device.") var remote: String
    @Argument(help: "The local file to write.") var local: String
    @OptionGroup var transfer: FSTransferArguments

    func run() async throws {
        let output = Output(json: global.json)
        let bar = ProgressBar(label: "download", enabled: !global.json && Output.stderrIsTerminal, output: output)
        let (remote, local) = (self.remote, self.local)
        var failure: SMPClientError?
        let result: FileTransferResult
        do {
            result = try await global.withClient { client, _ throws(SMPClientError) in
                do throws(SMPClientError) {
                    return try await client.downloadFile(remote, to: local, options: transfer.options) { bar.update($0) }
                } catch {
                    failure = error
                    throw error
                }
            }
        } catch {
            if let failure, !global.json { FSCommand.nameHint(failure, name: remote) }
            throw error
        }
        if result.resumedFrom > 0 { output.line("resumed at offset \(result.resumedFrom)") }
        output.line("downloaded \(formatBytes(result.length)) from \(remote) to \(local) in \(String(format: "%.2f", result.seconds)) s (\(result.chunks) chunks of up to \(result.chunkSize) bytes, \(result.window) in flight\(result.rewinds > 0 ? ", \(result.rewinds) refused at an unexpected offset" : "")); \(FSCommand.checkText(result.check))")
        output.document(FSCommand.json(result, remote: remote, local: local))
    }
}

struct FSStatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat", abstract: "Show the length of a file on the device.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The path on the device.") var remote: String

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(FileManagement.StatusRequest(name: remote))
        }
        let output = Output(json: global.json)
        output.line("\(remote): \(response.length) bytes")
        output.document(["ok": true, "remote": .string(remote), "length": .int(response.length)])
    }
}

struct FSHashCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash", abstract: "Show the device's hash or checksum of a file.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The path on the device.") var remote: String
    @Option(help: ArgumentHelp("sha256 or crc32 (default: the device's default, crc32 where it has it).", valueName: "type"))
    var type: String?
    @Option(help: ArgumentHelp("Hash from this offset.", valueName: "bytes")) var offset: UInt32?
    @Option(help: ArgumentHelp("Hash at most this many bytes.", valueName: "bytes")) var length: UInt32?

    func validate() throws {
        if let type, type != "sha256" && type != "crc32" { throw ValidationError("--type takes sha256 or crc32") }
        if length == 0 { throw ValidationError("--length must be at least 1") }
    }

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(FileManagement.HashRequest(
                name: remote, type: type, offset: offset.map(Int.init), length: length.map(Int.init)))
        }
        let output = Output(json: global.json)
        output.line("\(response.type) \(response.hex)  \(remote) (\(response.length) bytes from offset \(response.offset))")
        output.document([
            "ok": true, "remote": .string(remote), "type": .string(response.type), "output": .string(response.hex),
            "offset": .int(response.offset), "length": .int(response.length),
        ])
    }
}

struct FSSupportedHashesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supported-hashes", abstract: "List the hash and checksum types the device supports.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(FileManagement.SupportedHashesRequest())
        }
        let output = Output(json: global.json)
        for type in response.types {
            output.line("\(type.name): \(type.size) bytes, \(type.format == 1 ? "byte string" : "number")")
        }
        output.document([
            "ok": true,
            "types": .array(response.types.map {
                ["name": .string($0.name), "size": .int($0.size), "format": .string($0.format == 1 ? "bytes" : "number")]
            }),
        ])
    }
}

struct FSCloseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "close", abstract: "Close the file an interrupted upload or download left open on the device.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.withClient { client, _ throws(SMPClientError) in
            _ = try await client.send(FileManagement.CloseRequest())
        }
        let output = Output(json: global.json)
        output.line("closed")
        output.document(["ok": true, "closed": true])
    }
}
