import ArgumentParser
import SMPCtlBlueZ
import Foundation
import SMPCtlConnection
import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlProtocol
import SMPCtlTransport

/// Options every device command takes. They come in three groups so that the offline commands
/// can take `--json` (and `explain` `--smp-version`) without listing the connection options:
/// ArgumentParser hands a subcommand the group of the same type that the root command decoded,
/// so `smpctl --json explain 5` and `smpctl explain 5 --json` both reach the subcommand.
struct GlobalOptions: ParsableArguments {
    @OptionGroup var link: LinkOptions
    @OptionGroup var version: SMPVersionOption
    @OptionGroup var output: OutputOptions
    @OptionGroup var verbosity: VerboseOption

    var connection: String? { link.connection }
    var timeout: Double { link.timeout }
    var retries: Int { link.retries }
    var verbose: Bool { verbosity.verbose }
    var smpVersion: Int? { version.smpVersion }
    var json: Bool { output.json }

    /// Client options from the flags.
    var clientOptions: SMPClientOptions {
        var options = SMPClientOptions()
        options.timeout = .milliseconds(Int(timeout * 1000))
        options.retries = retries
        if let smpVersion { options.forcedVersion = smpVersion == 1 ? .v1 : .v2 }
        if verbose {
            options.log = { line in Output.diagnostic(line) }
        }
        let json = self.json
        options.notice = { notice in ProgressBar.route(notice, json: json) }
        return options
    }

    /// Resolves the connection, opens it, runs `body`, and reports failures with the right exit status.
    /// `operation` ranks the causes in the failure's explanation; by default it is inferred from the error.
    /// `meant` gives, after a failure, the image the command was about (its number and hash) for the device's state.
    func withClient<T>(
        operation: OperationKind? = nil,
        meant: (@Sendable () -> (image: Int, hash: [UInt8])?)? = nil,
        _ body: (SMPClient, Output) async throws(SMPClientError) -> T
    ) async throws -> T {
        let output = Output(json: json)
        let spec: ConnectionSpec
        let transport: any SMPTransport
        do {
            spec = try resolveConnection(connection)
            transport = try makeTransport(spec)
        } catch {
            output.fail(status: .usage, message: "\(error)", fields: ["error": "connection"])
            throw CommandFailure(status: .usage)
        }
        let client = SMPClient(transport: transport, options: clientOptions)
        do {
            try await client.open()
            let result = try await body(client, output)
            if let ble = transport as? BLETransport { await Self.describeLink(ble, output: output) }
            await Interruption.uncancelled { await client.close() }
            return result
        } catch {
            // A device error is judged with the device's state, read before the connection closes.
            let target = meant?()
            let facts = await DeviceFactsReader.read(
                after: error, client: client, connection: spec, image: target?.image ?? 0, hashSent: target?.hash)
            await Interruption.uncancelled { await client.close() }
            output.report(error, operation: operation, facts: facts)
            throw CommandFailure(status: ExitStatus(error))
        }
    }
}

extension GlobalOptions {
    /// Reports the BLE link used (MTU, write and notify paths) on standard error.
    static func describeLink(_ ble: BLETransport, output: Output) async {
        let mtu = await ble.mtu
        let write = await ble.writePath?.rawValue ?? "none"
        let notify = await ble.notifyPath?.rawValue ?? "none"
        let writes = await ble.writeCount
        let largest = await ble.largestWrite
        if output.json {
            Output.diagnostic(
                "{\"event\":\"ble_link\",\"mtu\":\(mtu),\"write_path\":\"\(write)\",\"notify_path\":\"\(notify)\",\"writes\":\(writes),\"largest_write\":\(largest)}")
        } else {
            Output.diagnostic("ble link: MTU \(mtu), writes via \(write), notifications via \(notify), \(writes) writes, largest \(largest) bytes")
        }
    }
}

extension ExitStatus {
    init(_ error: SMPClientError) {
        switch error {
        case .device: self = .device
        case .malformedResponse, .transport, .timedOut, .stalled, .deadlineExceeded: self = .transport
        case .deviceLimit: self = .device
        case .verificationFailed: self = .verification
        case .invalidInput: self = .usage
        case .cancelled: self = Interruption.status
        case .refused(let refusal):
            switch refusal.reason {
            case .notAnImage: self = .usage
            case .imageTooLarge: self = .verification
            }
        }
    }
}

/// The connection and the request policy: device commands only.
struct LinkOptions: ParsableArguments {
    @Option(
        name: [.customShort("c"), .long],
        help: ArgumentHelp(
            "The device connection: sim, udp:HOST[:PORT], serial:PATH[?baud=N], ble:NAME-OR-ADDRESS, or a profile name.",
            discussion: "Defaults to the SMPCTL_CONNECTION environment variable.",
            valueName: "uri"),
        completion: Completion.connection)
    var connection: String?

    @Option(help: ArgumentHelp(
        "The longest wait in seconds for a response, per request in flight; below it the wait adapts to the measured round trip and the link.",
        valueName: "seconds"))
    var timeout: Double = 20

    @Option(help: ArgumentHelp("Times a request is sent again after a timeout.", valueName: "count"))
    var retries: Int = 3

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
        guard (0...100).contains(retries) else { throw ValidationError("--retries must be between 0 and 100") }
    }
}

/// `--smp-version`: forced on a device; for `explain`, the version of the failing exchange.
struct SMPVersionOption: ParsableArguments {
    @Option(name: .customLong("smp-version"), help: ArgumentHelp("Force SMP version 1 or 2 (default: 2, falling back to 1); for explain, the version of the failing exchange.", valueName: "1|2"))
    var smpVersion: Int?

    func validate() throws {
        if let smpVersion, smpVersion != 1 && smpVersion != 2 { throw ValidationError("--smp-version must be 1 or 2") }
    }
}

/// `-v`: device commands log every frame; `simulate` logs each request, erase, reset and boot decision.
struct VerboseOption: ParsableArguments {
    @Flag(name: [.customShort("v"), .long], help: "Log on standard error: every frame as hex and ignored responses (device commands); each request, erase, reset and boot decision (simulate).")
    var verbose = false
}

/// `--json`: every command, the offline ones included.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON document on standard output; progress goes to standard error as JSON Lines.")
    var json = false
}
