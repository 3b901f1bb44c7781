import ArgumentParser
import SMPCtlClient
import SMPCtlProtocol

struct EnumCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enum", abstract: "List the management groups the device supports (enumeration group 10).",
        subcommands: [EnumCountCommand.self, EnumListCommand.self, EnumSingleCommand.self, EnumDetailsCommand.self])

    /// A group ID with its name, for people.
    static func label(_ id: SMPGroupID) -> String { id.description }

    static func json(_ id: SMPGroupID) -> JSONValue {
        ["id": .int(Int(id.rawValue)), "name": id.name.json]
    }
}

struct EnumCountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "count", abstract: "Show how many groups the device supports.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(EnumerationManagement.CountRequest())
        }
        let output = Output(json: global.json)
        output.line(String(response.count))
        output.document(["ok": true, "count": .int(response.count)])
    }
}

struct EnumListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the IDs of the groups the device supports.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(EnumerationManagement.ListRequest())
        }
        let output = Output(json: global.json)
        for id in response.groups { output.line(EnumCommand.label(id)) }
        output.document(["ok": true, "groups": .array(response.groups.map(EnumCommand.json))])
    }
}

struct EnumSingleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "single", abstract: "Show the group at one index of the device's list (from 0).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The index, from 0.") var index: UInt32

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(EnumerationManagement.SingleRequest(index: index))
        }
        let output = Output(json: global.json)
        output.line(EnumCommand.label(response.groupID) + (response.isLast ? " (last)" : ""))
        output.document(["ok": true, "index": .int(Int(index)), "group": EnumCommand.json(response.groupID), "end": .bool(response.isLast)])
    }
}

struct EnumDetailsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "details", abstract: "Show each group's name and number of command handlers.")

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("group"), help: ArgumentHelp("Only this group (a name or number); may be repeated.", valueName: "group"))
    var groups: [String] = []

    func run() async throws {
        var ids: [SMPGroupID] = []
        let output = Output(json: global.json)
        for text in groups {
            guard let id = SMPGroupID(nameOrNumber: text) else {
                output.fail(status: .usage, message: "--group: unknown group \"\(text)\"", fields: ["error": "usage"])
                throw CommandFailure(status: .usage)
            }
            ids.append(id)
        }
        let request = EnumerationManagement.DetailsRequest(groups: ids.isEmpty ? nil : ids)
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(request)
        }
        for group in response.groups {
            var line = EnumCommand.label(group.groupID)
            if let name = group.name { line += ": \"\(name)\"" }
            if let handlers = group.handlers { line += ", \(handlers) handlers" }
            output.line(line)
        }
        output.document([
            "ok": true,
            "groups": .array(response.groups.map { group in
                ["id": .int(Int(group.groupID.rawValue)), "name": group.groupID.name.json,
                 "device_name": group.name.json, "handlers": group.handlers.json]
            }),
        ])
    }
}
