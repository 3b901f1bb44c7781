import Foundation
import SMPCtlClient
import SMPCtlConnection
import SMPCtlFleet
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport
import Testing
import SMPCtlLocking

enum FleetFixture {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let image = packageRoot.appendingPathComponent("Examples/images/blinky-1.1.0.signed.bin").path
    static let imageHash = "bbbb0742c8f06e0d32ad81f346c9aaf5ac370c48da21ecbdf7b29b38f276a620"

    /// A new empty folder.
    static func folder(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("smpctl-fleet-\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Writes `text` as a manifest in `folder` and loads it.
    static func manifest(_ text: String, in folder: String, name: String = "fleet.yaml") throws(ManifestError) -> FleetManifest {
        let path = folder + "/" + name
        try? Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return try FleetManifest.load(path: path, environment: [:])
    }

    /// The manifest a simulated fleet's devices make, with the example image.
    static func manifestText(for fleet: SimulatedFleet, defaults: [(String, String)] = [("timeout", "5"), ("reconnect-timeout", "10"), ("attempts", "2")]) -> String {
        FleetManifestWriter.manifest(
            devices: fleet.devices.enumerated().map { index, device in
                FleetManifestWriter.Device(
                    name: device.name, connection: fleet.connection(device),
                    labels: [("gateway", index % 2 == 0 ? "gw-a" : "gw-b"), ("sim-fault", device.fault.rawValue)])
            },
            imagePath: image, version: "1.1.0", defaults: defaults)
    }

    /// Transports for UDP connections only (what the simulated fleets use).
    static let udpFactory: FleetTransportFactory = { spec in
        guard case .udp(let host, let port, let limit) = spec else {
            throw SMPTransportError(.openFailed, "the tests reach devices over UDP only")
        }
        return UDPTransport(address: try SocketAddress.resolve(host: host, port: port), maximumDatagram: limit)
    }

    static func imageBytes() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
    }

    /// Reads a device's image list over UDP, as a person checking the result would.
    static func readBack(port: UInt16) async throws -> [ImageManagement.SlotState] {
        let transport = UDPTransport(address: try SocketAddress.resolve(host: "127.0.0.1", port: port))
        var options = SMPClientOptions()
        options.timeout = .seconds(5)
        let client = SMPClient(transport: transport, options: options)
        try await client.open()
        defer { Task { await client.close() } }
        return try await client.readImageState().images
    }

    static func hex(_ bytes: [UInt8]?) -> String? {
        bytes.map { $0.map { String(format: "%02x", $0) }.joined() }
    }
}

/// Collects events of a run.
final class EventLog: Sendable {
    private let events = MutexBox<[FleetEvent]>([])
    func add(_ event: FleetEvent) { events.update { $0.append(event) } }
    var all: [FleetEvent] { events.value }
}

final class MutexBox<Value: Sendable>: Sendable {
    private let mutex: LockedValue<Value>
    init(_ value: Value) { mutex = LockedValue(value) }
    var value: Value { mutex.withLock { $0 } }
    func update(_ body: (inout Value) -> Void) { mutex.withLock { body(&$0) } }
}

/// The built `smpctl`, run as a child process.
enum SMPCtlProcess {
    static var executable: URL {
        get throws {
            var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            while directory.path != "/" {
                let candidate = directory.appendingPathComponent("smpctl")
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                    return candidate
                }
                directory = directory.deletingLastPathComponent()
            }
            let fallback = FleetFixture.packageRoot.appendingPathComponent(".build/debug/smpctl")
            guard FileManager.default.fileExists(atPath: fallback.path) else {
                throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "build smpctl first (swift build)"])
            }
            return fallback
        }
    }

    /// Starts smpctl with its output going to files in `folder` (NAME.out, NAME.err).
    static func start(_ arguments: [String], folder: String, name: String, directory: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = try executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "SMPCTL_CONNECTION")
        process.environment = environment
        _ = FileManager.default.createFile(atPath: folder + "/\(name).out", contents: nil)
        _ = FileManager.default.createFile(atPath: folder + "/\(name).err", contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/\(name).out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/\(name).err"))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs smpctl to the end (at most `timeout` seconds) and returns what it printed.
    static func run(_ arguments: [String], folder: String, name: String, directory: String? = nil, timeout: Double = 120) async throws -> Result {
        let process = try start(arguments, folder: folder, name: name, directory: directory)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            process.terminate()
            Issue.record("smpctl \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        let out = (try? String(contentsOfFile: folder + "/\(name).out", encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: folder + "/\(name).err", encoding: .utf8)) ?? ""
        return Result(status: process.terminationStatus, stdout: out, stderr: err)
    }
}
