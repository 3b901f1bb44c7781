import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A `dbus-daemon` of the tests' own, on a socket in a temporary directory; never the system bus.
public final class PrivateBus {
    public let address: String
    private let process: Process
    private let directory: URL

    /// Starts a daemon and waits until it prints its address.
    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-bus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let socketPath = directory.appendingPathComponent("bus").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        process.arguments = ["--session", "--address=unix:path=\(socketPath)", "--print-address", "--nofork"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // The first line of output is the address, printed once the daemon listens.
        var text = ""
        let handle = output.fileHandleForReading
        while !text.contains("\n") {
            let data = handle.availableData
            guard !data.isEmpty, text.count < 4096 else { break }
            text += String(decoding: data, as: UTF8.self)
        }
        let line = text.split(separator: "\n").first.map(String.init) ?? ""
        guard line.hasPrefix("unix:") else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw PrivateBusError(message: "dbus-daemon did not print an address (got \"\(text)\")")
        }
        address = line
    }

    /// Stops the daemon and removes its directory.
    public func stop() {
        // dbus-daemon does not always leave on SIGTERM; SIGKILL it.
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

public struct PrivateBusError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Runs `body` with a fresh private bus, stopping it afterwards whatever happens.
public func withPrivateBus<T>(_ body: (PrivateBus) async throws -> T) async throws -> T {
    let bus = try PrivateBus()
    do {
        let result = try await body(bus)
        bus.stop()
        return result
    } catch {
        bus.stop()
        throw error
    }
}
