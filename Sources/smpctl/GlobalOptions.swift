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
    /// `--timeout`, else the profile's, else 20 s.
    var timeout: Double { link.wait.timeout ?? profileOptions.timeout ?? TimeoutOption.defaultSeconds }
    /// `--retries`, else the profile's, else 3.
    var retries: Int { link.resend.retries ?? profileOptions.retries ?? RetriesOption.defaultCount }
    /// The options of the profile `-c` names (empty for a connection string, or when it does not resolve:
    /// `withClient` reports that).
    var profileOptions: ProfileOptions { (try? resolveConnectionAndProfile(connection))?.options ?? ProfileOptions() }
    var verbose: Bool { verbosity.verbose }
    var smpVersion: Int? { version.smpVersion }
    var json: Bool { output.json }

    /// Client options from the flags.
    var clientOptions: SMPClientOptions {
        var options = SMPClientOptions()
        options.timeout = .milliseconds(Int(timeout * 1000))
        options.retries = retries
        // The profile's window; an upload's own --window wins over it.
        options.uploadWindow = profileOptions.window
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
        let result: T
        do {
            try await client.open()
            result = try await body(client, output)
            if let ble = transport as? BLETransport { await Self.describeLink(ble, output: output) }
            await Interruption.uncancelled { await client.close() }
        } catch {
            // A device error is judged with the device's state, read before the connection closes.
            let target = meant?()
            let facts = await DeviceFactsReader.read(
                after: error, client: client, connection: spec, image: target?.image ?? 0, hashSent: target?.hash)
            await Interruption.uncancelled { await client.close() }
            output.report(error, operation: operation, facts: facts, hint: SimulatorStateFile.hint(for: error, connection: spec))
            if let failure = (transport as? SimulatorStateTransport)?.saveFailure { Output.diagnostic("smpctl: error: \(failure.message)") }
            throw CommandFailure(status: ExitStatus(error))
        }
        // `sim?state=FILE`: the command did not do its whole work if the state it left is not saved.
        if let failure = (transport as? SimulatorStateTransport)?.saveFailure {
            output.fail(status: .failure, message: failure.message, fields: ["error": "simulator-state"])
            throw CommandFailure(status: .failure)
        }
        return result
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
        let eatt = await ble.multipleBearers
        let ordered = await ble.orderedWrites
        if output.json {
            Output.diagnostic(
                "{\"event\":\"ble_link\",\"mtu\":\(mtu),\"write_path\":\"\(write)\",\"notify_path\":\"\(notify)\",\"writes\":\(writes),\"largest_write\":\(largest),\"eatt\":\(eatt),\"write_requests\":\(ordered)}")
        } else {
            let mode = ordered ? ", write requests one at a time" : (eatt ? ", one write per request" : "")
            Output.diagnostic("ble link: MTU \(mtu), writes via \(write), notifications via \(notify), \(writes) writes, largest \(largest) bytes\(eatt ? ", EATT" : "")\(mode)")
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
            discussion: "Defaults to the SMPCTL_CONNECTION environment variable. A profile's timeout, retries, window and adapter apply unless given here. sim?state=FILE keeps the simulator between commands.",
            valueName: "uri"),
        completion: Completion.connection)
    var connection: String?

    @OptionGroup var wait: TimeoutOption
    @OptionGroup var resend: RetriesOption
}

/// `--timeout`, a group of its own so that `scan` and `profile add` get the value the root
/// command decoded (ArgumentParser hands a subcommand the group of the same type that the root
/// decoded; an option of their own with the same name would never see it).
struct TimeoutOption: ParsableArguments {
    static let defaultSeconds = 20.0

    @Option(help: ArgumentHelp(
        "The longest wait in seconds for a response, per request in flight (default 20, or the profile's); below it the wait adapts to the measured round trip and the link. For scan: how long to scan (default 10).",
        valueName: "seconds"))
    var timeout: Double?

    func validate() throws {
        if let timeout, !(timeout > 0 && timeout <= 3600) { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
    }
}

/// `--retries`, a group of its own for `profile add` (see ``TimeoutOption``).
struct RetriesOption: ParsableArguments {
    static let defaultCount = 3

    @Option(help: ArgumentHelp("Times a request is sent again after a timeout (default 3, or the profile's).", valueName: "count"))
    var retries: Int?

    func validate() throws {
        if let retries, !(0...100).contains(retries) { throw ValidationError("--retries must be between 0 and 100") }
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
