import ArgumentParser
import SMPCtlClient
import SMPCtlProtocol

struct StatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat", abstract: "List statistics groups and show their values (statistics group 2).",
        subcommands: [StatListCommand.self, StatShowCommand.self])
}

struct StatListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the names of the device's statistics groups.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(StatisticsManagement.ListRequest())
        }
        let output = Output(json: global.json)
        for name in response.groups { output.line(name) }
        output.document(["ok": true, "groups": .array(response.groups.map(JSONValue.string))])
    }
}

struct StatShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show every statistic of one group.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The statistics group's name (see `smpctl stat list`).") var group: String

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(StatisticsManagement.ShowRequest(name: group))
        }
        let output = Output(json: global.json)
        let width = response.fields.map(\.name.count).max() ?? 0
        output.line("\(response.name):")
        for field in response.fields {
            output.line("  \(field.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(field.value)")
        }
        var fields: [String: JSONValue] = [:]
        for field in response.fields {
            // JSON integers above Int.max would lose precision; such counters are written as text.
            fields[field.name] = field.value <= UInt64(Int.max) ? .int(Int(field.value)) : .string(String(field.value))
        }
        output.document(["ok": true, "group": .string(response.name), "fields": .object(fields)])
    }
}
