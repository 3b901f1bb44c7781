import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlProtocol

struct ShellCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell", abstract: "Run commands on the device's shell (shell group 9).",
        subcommands: [ShellExecCommand.self])
}

struct ShellExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run one shell command line on the device and print its output.",
        discussion: """
            Put -- before the command so that its options are not read as smpctl's: \
            smpctl shell exec -- kernel version. The words are sent as argv; the device joins \
            them with spaces. The output is printed as the device sent it, then the return code \
            on standard error when it is not 0. Exit status: 0 when the command returned 0, 4 \
            when it returned another code (the device answered, but the command failed), as for \
            any device error.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(parsing: .remaining, help: "The command and its arguments.") var command: [String]

    func validate() throws {
        if command.isEmpty { throw ValidationError("give a command: smpctl shell exec -- CMD ARGS...") }
    }

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(ShellManagement.ExecRequest(command))
        }
        let output = Output(json: global.json)
        if !global.json {
            FileHandle.standardOutput.write(Data(response.output.utf8))
            if response.returnCode != 0 { Output.diagnostic("smpctl: the command returned \(response.returnCode)") }
        }
        output.document([
            "ok": .bool(response.returnCode == 0), "output": .string(response.output), "return_code": .int(response.returnCode),
        ])
        if response.returnCode != 0 { throw CommandFailure(status: .device) }
    }
}
