import Foundation
import SMPCtlBlueZ
import SMPCtlClient
import SMPCtlConnection
import SMPCtlPOSIX
import SMPCtlSimulator
import SMPCtlTransport

/// Resolves the connection from the option, the environment and the profiles.
func resolveConnection(_ option: String?) throws(ConnectionError) -> ConnectionSpec {
    try SMPCtlConnection.resolveConnection(option, environment: ProcessInfo.processInfo.environment)
}

/// Builds the transport for a connection.
func makeTransport(_ spec: ConnectionSpec) throws -> any SMPTransport {
    switch spec {
    case .simulator(let options):
        let server = try SimulatorOptions.server(from: options)
        // MCUboot's serial recovery speaks only the console framing, whose length and CRC take 4
        // bytes of its buffer (boot_serial_in_dec); the in-process link sizes requests the same way.
        let overhead = server.device.configuration.recovery == nil ? 0 : 4
        return InProcessTransport(
            server: server, linkModel: server.link == .ideal ? nil : server.link, deviceBufferOverhead: overhead)
    case .udp(let host, let port, let limit):
        return UDPTransport(address: try SocketAddress.resolve(host: host, port: port), maximumDatagram: limit)
    case .serial(let path, let baud):
        return SerialTransport(path: path, baud: baud)
    case .ble(let target, let adapter, let options):
        // The system bus, or DBUS_SYSTEM_BUS_ADDRESS when set.
        var configuration = BLETransport.Configuration(target: target, adapter: adapter)
        configuration.preferAcquiredSockets = !options.dbusWrites
        if options.pair {
            configuration.pairing = .whenRequired
            configuration.agentResponder = TerminalAgentResponder.ifTerminal()
        }
        return BLETransport(configuration: configuration)
    }
}
