import Foundation
import SMPCtlBlueZ
import SMPCtlClient
import SMPCtlConnection
import SMPCtlPOSIX
import SMPCtlSimulator
import SMPCtlTransport
import SMPCtlLocking

/// Resolves the connection from the option, the environment and the profiles.
func resolveConnection(_ option: String?) throws(ConnectionError) -> ConnectionSpec {
    try resolveConnectionAndProfile(option).spec
}

/// Resolves the connection and the options of the profile it names, once per process: the
/// profiles file is read once, and every option a command takes from it comes from that read.
func resolveConnectionAndProfile(_ option: String?) throws(ConnectionError) -> ResolvedConnection {
    try ConnectionResolution.resolve(option)
}

private enum ConnectionResolution {
    private static let resolved = LockedValue<[String: Result<ResolvedConnection, ConnectionError>]>([:])

    static func resolve(_ option: String?) throws(ConnectionError) -> ResolvedConnection {
        let key = option.map { "option:" + $0 } ?? "environment"
        if let known = resolved.withLock({ $0[key] }) { return try known.get() }
        let result = Result { () throws(ConnectionError) in
            try SMPCtlConnection.resolveConnectionAndProfile(option, environment: ProcessInfo.processInfo.environment)
        }
        resolved.withLock { $0[key] = result }
        return try result.get()
    }
}

/// Builds the transport for a connection.
func makeTransport(_ spec: ConnectionSpec) throws -> any SMPTransport {
    switch spec {
    case .simulator(var options):
        let statePath = options.removeValue(forKey: "state")
        if let statePath, statePath.isEmpty {
            throw ConnectionError("sim?state= needs a file, as in sim?state=device.json")
        }
        let server = try SimulatorOptions.server(from: options, statePath: statePath)
        // MCUboot's serial recovery speaks only the console framing, whose length and CRC take 4
        // bytes of its buffer (boot_serial_in_dec); the in-process link sizes requests the same way.
        let overhead = server.device.configuration.recovery == nil ? 0 : 4
        let transport = InProcessTransport(
            server: server, linkModel: server.link == .ideal ? nil : server.link, deviceBufferOverhead: overhead)
        guard let statePath else { return transport }
        return SimulatorStateTransport(inner: transport, device: server.device, path: statePath)
    case .udp(let host, let port, let limit):
        return UDPTransport(address: try SocketAddress.resolve(host: host, port: port), maximumDatagram: limit)
    case .serial(let path, let baud):
        return SerialTransport(path: path, baud: baud)
    case .ble(let target, let adapter, let options):
        // The system bus, or DBUS_SYSTEM_BUS_ADDRESS when set.
        var configuration = BLETransport.Configuration(target: target, adapter: adapter)
        configuration.preferAcquiredSockets = !options.dbusWrites
        configuration.writeMode = options.writeRequests ? .request : .command
        if options.pair {
            configuration.pairing = .whenRequired
            configuration.agentResponder = TerminalAgentResponder.ifTerminal()
        }
        return BLETransport(configuration: configuration)
    }
}
