import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlProtocol

struct EchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo", abstract: "Send text to the device and print what it echoes back.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The text to echo.") var text: String

    func run() async throws {
        // The round trip of the echo request alone (not the connect), as a ping would report it.
        try await global.runDeviceCommand { client throws(SMPClientError) in
            let clock = ContinuousClock()
            let start = clock.now
            let reply = try await client.send(OSManagement.EchoRequest(text))
            return (reply, (clock.now - start).seconds)
        } text: { reply, _ in
            [reply.text]
        } json: { reply, roundTrip in
            ["ok": true, "echo": .string(reply.text), "round_trip_seconds": .double(roundTrip)]
        }
    }
}

struct ResetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reset", abstract: "Reset the device.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Reset even when an application hook refuses (the device answered busy).") var force = false
    @Option(name: .customLong("boot-mode"), help: ArgumentHelp(
        "The boot mode for the next boot: 0 normal, 1 the bootloader's recovery mode (Zephyr 4.2+ with CONFIG_MCUMGR_GRP_OS_RESET_BOOT_MODE).",
        valueName: "n"))
    var bootMode: UInt8?

    func run() async throws {
        try await global.runDeviceCommand { client throws(SMPClientError) in
            _ = try await client.send(OSManagement.ResetRequest(force: force, bootMode: bootMode))
        } text: { _ in
            [bootMode.map { "reset requested (boot mode \($0))" } ?? "reset requested"]
        } json: { _ in
            ["ok": true, "reset": true, "boot_mode": bootMode.map { Int($0) }.json, "force": .bool(force)]
        }
    }
}

struct ParamsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "params", abstract: "Show the device's SMP buffer size and count (mcumgr params).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.runDeviceCommand { client throws(SMPClientError) in
            try await client.send(OSManagement.ParametersRequest())
        } text: { params in
            ["buf_size: \(params.bufferSize)\nbuf_count: \(params.bufferCount)"]
        } json: { params in
            ["ok": true, "buf_size": .int(params.bufferSize), "buf_count": .int(params.bufferCount)]
        }
    }
}

struct InfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show OS and application information.")

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Letters selecting fields: s n r v b m p i o, or a for all (the default).", valueName: "letters"))
    var format: String?
    @Flag(help: "Also list the management groups the device supports, when it has the enumeration group (10).")
    var groups = false

    func run() async throws {
        let (info, supported) = try await global.withClient { client, _ throws(SMPClientError) in
            let info = try await InfoCommand.read(client, format: format)
            guard groups else { return (info, [SMPGroupID]?.none) }
            // A device without enumeration answers rc 8 (not supported); that is not a failure.
            do throws(SMPClientError) {
                return (info, try await client.send(EnumerationManagement.ListRequest()).groups)
            } catch {
                if case .device(let deviceError) = error, deviceError.kind == .smp(.notSupported) { return (info, nil) }
                throw error
            }
        }
        let output = Output(json: global.json)
        output.line(info.output)
        var document: [String: JSONValue] = ["ok": true, "output": .string(info.output)]
        if groups {
            if let supported {
                output.line("groups: " + supported.map { $0.description }.joined(separator: ", "))
                document["groups"] = .array(supported.map(EnumCommand.json))
            } else {
                output.line("groups: unknown (the device has no enumeration group)")
                document["groups"] = .null
            }
        }
        output.document(.object(document))
    }
}

extension InfoCommand {
    /// The info line: with no format given, every field (`a`), so that the answer says more than
    /// the kernel name; a device that refuses `a` (OS_MGMT_ERR_INVALID_FORMAT, `rc 3` in v1) is
    /// asked again without a format, for its default.
    static func read(_ client: SMPClient, format: String?) async throws(SMPClientError) -> OSManagement.InfoResponse {
        if let format { return try await client.send(OSManagement.InfoRequest(format: format)) }
        do throws(SMPClientError) {
            return try await client.send(OSManagement.InfoRequest(format: "a"))
        } catch {
            guard case .device(let deviceError) = error,
                deviceError.kind == .smp(.invalidArgument)
                    || deviceError.kind == .group(.os, SMPErrorCatalog.code(named: "OS_MGMT_ERR_INVALID_FORMAT", in: .os) ?? 2)
            else { throw error }
            return try await client.send(OSManagement.InfoRequest())
        }
    }
}

struct OSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "os", abstract: "OS group commands (group 0) with their raw arguments.",
        subcommands: [OSInfoCommand.self])
}

struct OSInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Send the OS info command (0/7) with a format string and print its output.",
        discussion: """
            FORMAT holds letters as uname does: s kernel name, n node name, r release, v version, \
            b build date and time, m machine, p processor, i hardware platform, o operating \
            system, a all. Without FORMAT the request has none and the device answers its \
            default, the kernel name. An unknown letter is OS_MGMT_ERR_INVALID_FORMAT (exit status 4).
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The format letters.") var format: String?

    func validate() throws {
        if let format, format.utf8.count > 64 { throw ValidationError("FORMAT is at most 64 letters") }
    }

    func run() async throws {
        let info = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(OSManagement.InfoRequest(format: format))
        }
        let output = Output(json: global.json)
        output.line(info.output)
        output.document(["ok": true, "format": format.json, "output": .string(info.output)])
    }
}

struct BootloaderInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootloader-info", abstract: "Show the bootloader's name and MCUboot mode.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let (name, mode) = try await global.withClient { client, _ throws(SMPClientError) in
            let name = try await client.send(OSManagement.BootloaderInfoRequest())
            let mode = try? await client.send(OSManagement.BootloaderInfoRequest(query: "mode"))
            return (name, mode)
        }
        let output = Output(json: global.json)
        output.line("bootloader: \(name.bootloader ?? "unknown")")
        if let value = mode?.mode {
            output.line("mode: \(value) (\(OSManagement.mcubootModeName(value)))")
        }
        if let noDowngrade = mode?.noDowngrade { output.line("no-downgrade: \(noDowngrade)") }
        output.document([
            "ok": true, "bootloader": name.bootloader.json, "mode": (mode?.mode).json,
            "mode_name": (mode?.mode).map { .string(OSManagement.mcubootModeName($0)) } ?? .null,
            "no_downgrade": (mode?.noDowngrade).json,
        ])
    }
}

struct TaskStatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "taskstat", abstract: "Show per-thread statistics.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let stats = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(OSManagement.TaskStatisticsRequest())
        }
        let output = Output(json: global.json)
        output.line("task                 prio  state  stack use/size  switches")
        for task in stats.tasks {
            let name = task.name.padding(toLength: 20, withPad: " ", startingAt: 0)
            output.line("\(name) \(String(task.priority ?? 0).leftPad(5))  \(String(task.state ?? 0).leftPad(5))  \("\(task.stackUse ?? 0)/\(task.stackSize ?? 0)".leftPad(14))  \(String(task.contextSwitches ?? 0).leftPad(8))")
        }
        output.document([
            "ok": true,
            "tasks": .array(stats.tasks.map { task in
                [
                    "name": .string(task.name), "priority": task.priority.json, "state": task.state.json,
                    "stack_use": task.stackUse.json, "stack_size": task.stackSize.json,
                    "context_switches": task.contextSwitches.json, "runtime": task.runtime.json,
                ]
            }),
        ])
    }
}

struct DateTimeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datetime", abstract: "Read or set the device's date and time.")

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Set the clock to this value (yyyy-MM-ddTHH:mm:ss[.SSSSSS][+HH:MM]), or \"now\".", valueName: "datetime"))
    var set: String?

    func run() async throws {
        let output = Output(json: global.json)
        if let value = set {
            let text = value == "now" ? Self.now() : value
            try await global.withClient { client, _ throws(SMPClientError) in
                _ = try await client.send(OSManagement.DateTimeSetRequest(dateTime: text))
            }
            output.line("set to \(text)")
            output.document(["ok": true, "datetime": .string(text)])
        } else {
            let response = try await global.withClient { client, _ throws(SMPClientError) in
                try await client.send(OSManagement.DateTimeGetRequest())
            }
            output.line(response.dateTime)
            output.document(["ok": true, "datetime": .string(response.dateTime)])
        }
    }

    static func now() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"
        return formatter.string(from: Date())
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
