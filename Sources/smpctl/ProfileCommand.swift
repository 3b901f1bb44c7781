import ArgumentParser
import Foundation
import SMPCtlConnection

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Save named connections in $XDG_CONFIG_HOME/smpctl/profiles.json.",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save a connection under a name, with the options commands that name it use.",
            discussion: """
                --timeout, --retries, --window and --adapter are kept with the connection: a command given \
                -c NAME uses them unless it gives the option itself (its flags win). Adding a name again \
                replaces the profile, options included.
                """)
        @Argument(help: "The profile name: 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'.") var name: String
        @Argument(help: "The connection, such as udp:192.0.2.1 or serial:/dev/ttyACM0.", completion: Completion.connection)
        var connection: String
        // The same groups the root command decodes: `--timeout` and `--retries` reach them wherever they are written.
        @OptionGroup var wait: TimeoutOption
        @OptionGroup var resend: RetriesOption
        @Option(help: ArgumentHelp("Upload chunks kept in flight by image upload and dfu (1 to 32).", valueName: "n"))
        var window: Int?
        @Option(help: ArgumentHelp("The BlueZ adapter of a ble: connection, such as hci1.", valueName: "hciN"), completion: Completion.adapter)
        var adapter: String?
        @OptionGroup var output: OutputOptions

        var options: ProfileOptions {
            ProfileOptions(timeout: wait.timeout, retries: resend.retries, window: window, adapter: adapter)
        }

        func run() throws {
            try ProfileStore.reporting(json: output.json) { () throws(ConnectionError) in
                try ProfileStore.validate(name: name)
                guard let spec = try ConnectionSpec.parse(connection) else {
                    throw ConnectionError("\"\(connection)\" is not a connection.\n" + ConnectionSpec.forms)
                }
                try options.validate(for: spec)
                try ProfileStore.current.save(Profile(connection: connection, options: options), named: name)
            }
            let described = ProfileCommand.describe(options)
            if output.json {
                var document: [String: JSONValue] = ["ok": true, "name": .string(name), "connection": .string(connection)]
                if !options.isEmpty { document["options"] = ProfileCommand.json(options) }
                print(JSONValue.object(document).text)
            } else {
                print("saved \(name) = \(connection)\(described.isEmpty ? "" : " (\(described))")")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List saved connections and their options.")
        @OptionGroup var output: OutputOptions

        func run() throws {
            let profiles = try ProfileStore.reporting(json: output.json) { () throws(ConnectionError) in try ProfileStore.current.load() }
            if output.json {
                var options: [String: JSONValue] = [:]
                var problems: [String: JSONValue] = [:]
                for (name, profile) in profiles {
                    if !profile.options.isEmpty { options[name] = ProfileCommand.json(profile.options) }
                    if let problem = Self.problem(name, profile) { problems[name] = .string(problem) }
                }
                print(JSONValue.object([
                    "ok": true, "profiles": .object(profiles.mapValues { .string($0.connection) }),
                    "options": .object(options), "problems": .object(problems),
                ]).text)
            } else {
                for name in profiles.keys.sorted() {
                    guard let profile = profiles[name] else { continue }
                    var line = "\(name) = \(profile.connection)"
                    let described = ProfileCommand.describe(profile.options)
                    if !described.isEmpty { line += " (\(described))" }
                    if let problem = Self.problem(name, profile) { line += "  (not usable: \(problem))" }
                    print(Output.terminalSafe(line))
                }
            }
        }

        /// Why a profile cannot be used: a hand-edited or old file may hold one that no longer parses.
        static func problem(_ name: String, _ profile: Profile) -> String? {
            do {
                _ = try ProfileStore.resolve(named: name, profile)
                return nil
            } catch {
                return error.message
            }
        }
    }

    /// The options in words, for `profile add` and `profile list`.
    static func describe(_ options: ProfileOptions) -> String {
        var parts: [String] = []
        if let timeout = options.timeout { parts.append("timeout \(timeout) s") }
        if let retries = options.retries { parts.append("retries \(retries)") }
        if let window = options.window { parts.append("window \(window)") }
        if let adapter = options.adapter { parts.append("adapter \(adapter)") }
        return parts.joined(separator: ", ")
    }

    static func json(_ options: ProfileOptions) -> JSONValue {
        var object: [String: JSONValue] = [:]
        if let timeout = options.timeout { object["timeout_seconds"] = .double(timeout) }
        if let retries = options.retries { object["retries"] = .int(retries) }
        if let window = options.window { object["window"] = .int(window) }
        if let adapter = options.adapter { object["adapter"] = .string(adapter) }
        return .object(object)
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a saved connection.")
        @Argument(help: "The profile name.", completion: Completion.profileName) var name: String
        @OptionGroup var output: OutputOptions

        func run() throws {
            try ProfileStore.reporting(json: output.json) { () throws(ConnectionError) in
                let store = ProfileStore.current
                guard try store.load()[name] != nil else { throw ConnectionError("no profile named \(name) in \(store.url.path)") }
                try store.save(nil, named: name)
            }
            if output.json { print(JSONValue.object(["ok": true, "removed": .string(name)]).text) }
        }
    }
}

extension ProfileStore {
    /// The store named by this process's environment (XDG_CONFIG_HOME or HOME).
    static var current: ProfileStore { ProfileStore(environment: ProcessInfo.processInfo.environment) }

    /// Runs `body`; a profile error is reported as every other error (`smpctl: error: ...`, or a
    /// JSON error document with `"error": "profile"`) and exits 2.
    static func reporting<T>(json: Bool, _ body: () throws(ConnectionError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            Output(json: json).fail(status: .usage, message: error.message, fields: ["error": "profile"])
            throw CommandFailure(status: .usage)
        }
    }
}
