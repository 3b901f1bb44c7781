import ArgumentParser
import SMPCtlClient
import SMPCtlProtocol

struct SettingsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings",
        abstract: "Read, write, delete, commit, load and save device settings (settings group 3).",
        discussion: """
            Values written with `settings set` change the running value only; `settings save` \
            writes them to storage and `settings commit` applies them. `settings delete` removes a \
            key from storage.
            """,
        subcommands: [
            SettingsGetCommand.self, SettingsSetCommand.self, SettingsDeleteCommand.self,
            SettingsActionCommand<CommitAction>.self, SettingsActionCommand<LoadAction>.self,
            SettingsActionCommand<SaveAction>.self,
        ])
}

/// Parses hexadecimal text ("0a00", "0a 00", "0x0a00") into bytes.
enum HexText {
    static func bytes(_ text: String) -> [UInt8]? {
        var digits = text.filter { !$0.isWhitespace && $0 != ":" }
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits.removeFirst(2) }
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    static func string(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

struct SettingsGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Read one setting.",
        discussion: "Without --hex or --text, the value is printed as text when it is printable UTF-8, else as hex.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The setting's name, such as app/name.") var name: String
    @Flag(help: "Print the value as hexadecimal.") var hex = false
    @Flag(help: "Print the value as UTF-8 text (invalid bytes are replaced).") var text = false
    @Option(name: .customLong("max-size"), help: ArgumentHelp("Ask for at most this many bytes.", valueName: "bytes"))
    var maxSize: UInt32?

    func validate() throws {
        if hex && text { throw ValidationError("--hex and --text exclude each other") }
    }

    func run() async throws {
        let response = try await global.withClient { client, _ throws(SMPClientError) in
            try await client.send(SettingsManagement.ReadRequest(name: name, maxSize: maxSize))
        }
        let output = Output(json: global.json)
        let decoded = String(validating: response.value, as: UTF8.self)
        let printable = decoded.map { $0.unicodeScalars.allSatisfy { !$0.properties.generalCategory.isControl } } ?? false
        if hex || (!text && !printable) {
            output.line(HexText.string(response.value))
        } else {
            output.line(String(decoding: response.value, as: UTF8.self))
        }
        output.document([
            "ok": true, "name": .string(name), "hex": .string(HexText.string(response.value)),
            "text": decoded.json, "max_size": response.maxSize.json,
        ])
    }
}

extension Unicode.GeneralCategory {
    var isControl: Bool {
        switch self {
        case .control, .format, .surrogate, .privateUse, .unassigned: true
        default: false
        }
    }
}

struct SettingsSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Write one setting's running value (save it with `settings save`).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The setting's name.") var name: String
    @Argument(help: "The value: UTF-8 text, or hexadecimal bytes with --hex.") var value: String
    @Flag(help: "Read VALUE as hexadecimal bytes (such as 0a000000).") var hex = false

    func run() async throws {
        let output = Output(json: global.json)
        let bytes: [UInt8]
        if hex {
            guard let parsed = HexText.bytes(value) else {
                output.fail(status: .usage, message: "--hex: \"\(value)\" is not hexadecimal bytes", fields: ["error": "usage"])
                throw CommandFailure(status: .usage)
            }
            bytes = parsed
        } else {
            bytes = Array(value.utf8)
        }
        try await global.withClient { client, _ throws(SMPClientError) in
            _ = try await client.send(SettingsManagement.WriteRequest(name: name, value: bytes))
        }
        output.line("\(name) set (\(bytes.count) bytes)")
        output.document(["ok": true, "name": .string(name), "hex": .string(HexText.string(bytes))])
    }
}

struct SettingsDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete one setting from storage.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The setting's name.") var name: String

    func run() async throws {
        try await global.withClient { client, _ throws(SMPClientError) in
            _ = try await client.send(SettingsManagement.DeleteRequest(name: name))
        }
        let output = Output(json: global.json)
        output.line("\(name) deleted")
        output.document(["ok": true, "name": .string(name), "deleted": true])
    }
}

/// One of the settings actions without arguments.
protocol SettingsActionKind {
    static var action: SettingsManagement.ActionRequest.Action { get }
    static var abstract: String { get }
    static var done: String { get }
}

enum CommitAction: SettingsActionKind {
    static let action = SettingsManagement.ActionRequest.Action.commit
    static let abstract = "Apply the settings written so far (settings_commit)."
    static let done = "settings committed"
}

enum LoadAction: SettingsActionKind {
    static let action = SettingsManagement.ActionRequest.Action.load
    static let abstract = "Load the saved settings from storage into the running values (settings_load)."
    static let done = "settings loaded"
}

enum SaveAction: SettingsActionKind {
    static let action = SettingsManagement.ActionRequest.Action.save
    static let abstract = "Save the running settings to storage (settings_save)."
    static let done = "settings saved"
}

struct SettingsActionCommand<Kind: SettingsActionKind>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Kind.action.rawValue, abstract: Kind.abstract)
    }

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.withClient { client, _ throws(SMPClientError) in
            _ = try await client.send(SettingsManagement.ActionRequest(Kind.action))
        }
        let output = Output(json: global.json)
        output.line(Kind.done)
        output.document(["ok": true, "action": .string(Kind.action.rawValue)])
    }
}
