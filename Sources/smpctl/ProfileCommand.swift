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
        @Argument(help: "The connection, such as udp:192.0.2.1 or serial:/dev/ttyACM0.") var connection: String

        func run() throws {
            do {
                try ProfileStore.validate(name: name)
                guard try ConnectionSpec.parse(connection) != nil else {
                    throw ValidationError("\"\(connection)\" is not a connection.\n" + ConnectionSpec.forms)
                }
            } catch let error as ConnectionError {
                throw ValidationError(error.message)
            }
            let store = ProfileStore.current
            var profiles = try store.load()
            profiles[name] = connection
            try store.save(profiles)
            print("saved \(name) = \(connection)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List saved connections.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let profiles = try ProfileStore.current.load()
            if global.json {
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

        func run() throws {
            let store = ProfileStore.current
            var profiles = try store.load()
            guard profiles.removeValue(forKey: name) != nil else { throw ValidationError("no profile named \(name)") }
            try store.save(profiles)
        }
    }
}

extension ProfileStore {
    /// The store named by this process's environment (XDG_CONFIG_HOME or HOME).
    static var current: ProfileStore { ProfileStore(environment: ProcessInfo.processInfo.environment) }
}
