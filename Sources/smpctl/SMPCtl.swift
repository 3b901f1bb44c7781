import ArgumentParser
import Foundation
import SMPCtlConnection

/// The `smpctl` command.
@main
struct SMPCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smpctl",
        abstract: "Update and manage microcontroller firmware over the Simple Management Protocol (SMP/mcumgr).",
        discussion: """
            smpctl talks to Zephyr, nRF Connect SDK and MCUboot devices over UDP, a serial port \
            or the embedded simulator (connection "sim").

            \(ConnectionSpec.forms)

            Exit status: \(ExitStatus.summary)
            """,
        version: SMPCtlVersion.string,
        subcommands: [
            DFUCommand.self, ImageCommand.self, EchoCommand.self, ResetCommand.self, ParamsCommand.self,
            InfoCommand.self, BootloaderInfoCommand.self, TaskStatCommand.self, DateTimeCommand.self,
            DiagnoseCommand.self, ExplainCommand.self, DoctorCommand.self, ScanCommand.self, PairCommand.self,
            SimulateCommand.self,
            ProfileCommand.self, FleetCommand.self, StatCommand.self, SettingsCommand.self, ShellCommand.self,
            EnumCommand.self, FSCommand.self, StorageCommand.self, OSCommand.self, RawCommand.self,
        ]
    )

    @OptionGroup var global: GlobalOptions

    static func main() async {
        // A bare `smpctl` is a usage error: print the usage, exit 2 (not the help's 0).
        if CommandLine.arguments.count <= 1 {
            FileHandle.standardError.write(Data(("Usage: " + usageString() + "\nSee 'smpctl --help' for the commands.\n").utf8))
            Foundation.exit(ExitStatus.usage.rawValue)
        }
        // SIGINT and SIGTERM cancel the command, which stops promptly and reports how far it got.
        let work = Task {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        }
        Interruption.install { work.cancel() }
        do {
            try await work.value
        } catch let failure as CommandFailure {
            Foundation.exit(failure.status.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                // Print ArgumentParser's message, but exit with our documented usage status.
                let message = fullMessage(for: error)
                if CommandLine.arguments.dropFirst().contains("--json") {
                    // Under --json a script reads standard output: the usage error is a JSON document there too.
                    print(Output.errorDocument(
                        status: .usage, message: message.isEmpty ? "usage error" : message, fields: ["error": "usage"]).text)
                    Foundation.exit(ExitStatus.usage.rawValue)
                }
                if !message.isEmpty { FileHandle.standardError.write(Data((message + "\n").utf8)) }
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}

/// The version printed by `--version`.
enum SMPCtlVersion {
    static let string = "0.1.0"
}

/// Exit statuses, documented in the man page.
enum ExitStatus: Int32, CaseIterable {
    case success = 0
    case failure = 1
    case usage = 2
    case transport = 3
    case device = 4
    case verification = 5
    /// `fleet run`: some devices failed, were unreachable or blocked.
    case fleetSomeFailed = 6
    /// `fleet run`: the failure threshold or a failed canary halted the rollout.
    case fleetHalted = 7
    /// Interrupted by SIGINT (Ctrl-C): 128 + 2, as shells report it.
    case interrupted = 130
    /// Stopped by SIGTERM: 128 + 15.
    case terminated = 143

    var meaning: String {
        switch self {
        case .success: "success"
        case .failure: "an unexpected failure"
        case .usage: "a usage error: bad arguments, connection string or input file"
        case .transport: "a connection or transport failure, including no response in time, a device that stops making progress, or --deadline passing"
        case .device: "the device answered with an error code"
        case .verification: "verification failed: the device's state after the operation is not what it should be, or the image fails a check (hash, signature, slot size)"
        case .fleetSomeFailed: "fleet run: some devices failed, were unreachable or blocked (the others are done)"
        case .fleetHalted: "fleet run: the rollout was halted by --max-failures or a failed canary; devices not started were left untouched"
        case .interrupted: "interrupted by Ctrl-C (SIGINT); running the same command again resumes an upload"
        case .terminated: "stopped by SIGTERM; running the same command again resumes an upload"
        }
    }

    /// The `error` kind of an error document when the command names no finer one.
    var errorKind: String {
        switch self {
        case .success: "none"
        case .failure: "failure"
        case .usage: "usage"
        case .transport: "transport"
        case .device: "device"
        case .verification: "verification"
        case .fleetSomeFailed: "fleet-some-failed"
        case .fleetHalted: "fleet-halted"
        case .interrupted, .terminated: "interrupted"
        }
    }

    static var summary: String {
        allCases.map { "\($0.rawValue) \($0.meaning)" }.joined(separator: "; ") + "."
    }
}

/// A failure already reported to the user; only its exit status is left to apply.
struct CommandFailure: Error {
    var status: ExitStatus
}
