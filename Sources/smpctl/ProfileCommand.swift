import ArgumentParser
import Foundation
import SMPCtlConnection

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Save named connections in $XDG_CONFIG_HOME/smpctl/profiles.json.",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Save a connection under a name.")
        @Argument(help: "The profile name: 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'.") var name: String
        @Argument(help: "The connection, such as udp:192.0.2.1 or serial:/dev/ttyACM0.", completion: Completion.connection)
        var connection: String
        @OptionGroup var output: OutputOptions

        func run() throws {
            try ProfileStore.reporting(json: output.json) { () throws(ConnectionError) in
                try ProfileStore.validate(name: name)
                guard try ConnectionSpec.parse(connection) != nil else {
                    throw ConnectionError("\"\(connection)\" is not a connection.\n" + ConnectionSpec.forms)
                }
                let store = ProfileStore.current
                var profiles = try store.load()
                profiles[name] = connection
                try store.save(profiles)
            }
            if output.json {
                print(JSONValue.object(["ok": true, "name": .string(name), "connection": .string(connection)]).text)
            } else {
                print("saved \(name) = \(connection)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List saved connections.")
        @OptionGroup var output: OutputOptions

        func run() throws {
            let profiles = try ProfileStore.reporting(json: output.json) { () throws(ConnectionError) in try ProfileStore.current.load() }
            if output.json {
                print(JSONValue.object(["ok": true, "profiles": .object(profiles.mapValues(JSONValue.string))]).text)
            } else {
                for name in profiles.keys.sorted() {
                    let uri = profiles[name] ?? ""
                    var line = "\(name) = \(uri)"
                    // A hand-edited or old file may hold a connection that no longer parses.
                    do {
                        _ = try ProfileStore.connection(named: name, uri: uri)
                    } catch {
                        line += "  (not usable: \(error.message))"
                    }
                    print(line)
                }
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a saved connection.")
        @Argument(help: "The profile name.", completion: Completion.profileName) var name: String
        @OptionGroup var output: OutputOptions

        func run() throws {
            try ProfileStore.reporting(json: output.json) { () throws(ConnectionError) in
                let store = ProfileStore.current
                var profiles = try store.load()
                guard profiles.removeValue(forKey: name) != nil else { throw ConnectionError("no profile named \(name) in \(store.url.path)") }
                try store.save(profiles)
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
