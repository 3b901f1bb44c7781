public import SMPCtlTransport
import Synchronization

/// Serves a ``SimulatedDevice`` to a transport: in process, over UDP or over a pseudo-terminal.
///
/// After the device resets it stays silent for ``bootTime``, as a real device does while MCUboot
/// runs, so clients exercise their reconnect logic.
public final class SimulatorServer: SMPPacketServer {
    /// The simulated device.
    public let device: SimulatedDevice
    /// How long the device ignores requests after a reset.
    public let bootTime: Duration
    private let bootingUntil = Mutex<ContinuousClock.Instant?>(nil)

    public init(device: SimulatedDevice, bootTime: Duration = .milliseconds(150)) {
        self.device = device
        self.bootTime = bootTime
    }

    public func handle(_ packet: [UInt8]) async -> SMPServerReply {
        let now = ContinuousClock.now
        let booting = bootingUntil.withLock { until -> Bool in
            guard let deadline = until else { return false }
            if now < deadline { return true }
            until = nil
            return false
        }
        if booting { return SMPServerReply(responses: []) }
        let output = await device.handle(packet)
        if output.resetting {
            bootingUntil.withLock { $0 = ContinuousClock.now + bootTime }
        }
        return SMPServerReply(responses: output.responses, disconnect: output.disconnect)
    }
}
