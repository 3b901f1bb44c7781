import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlProtocol

struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage", abstract: "Manage the device's storage partition (Zephyr basic group 63).",
        subcommands: [StorageEraseCommand.self])
}

struct StorageEraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Erase the device's storage partition: saved settings, NVS and file system data.",
        discussion: """
            Asks for confirmation on a terminal; --yes skips the question. Without --yes and with \
            standard input not a terminal, nothing is erased (exit status 2). Over SMP v1, Zephyr \
            reports a failed erase as success (basic_mgmt.c translates the failure to rc 0): use \
            SMP v2 to learn of a failure.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("y"), .long], help: "Erase without asking.") var yes = false

    func run() async throws {
        let output = Output(json: global.json)
        if !yes {
            guard isatty(STDIN_FILENO) == 1 else {
                output.fail(
                    status: .usage, message: "storage erase needs --yes when standard input is not a terminal; nothing was erased",
                    fields: ["error": "usage"])
                throw CommandFailure(status: .usage)
            }
            FileHandle.standardError.write(Data("Erase the storage partition of the device (saved settings and files are lost)? [y/N] ".utf8))
            let answer = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            guard answer == "y" || answer == "yes" else {
                output.fail(status: .failure, message: "not confirmed; nothing was erased", fields: ["error": "not-confirmed"])
                throw CommandFailure(status: .failure)
            }
        }
        try await global.withClient { client, _ throws(SMPClientError) in
            _ = try await client.send(ZephyrBasicManagement.EraseStorageRequest(), timeout: .seconds(max(global.timeout, 30)))
        }
        output.line("storage partition erased")
        output.document(["ok": true, "erased": true])
    }
}
