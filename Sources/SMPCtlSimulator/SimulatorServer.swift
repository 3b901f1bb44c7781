public import SMPCtlTransport
import SMPCtlCBOR
import SMPCtlProtocol
import SMPCtlLocking

/// Serves a ``SimulatedDevice`` to a transport: in process, over UDP or over a pseudo-terminal.
///
/// After the device resets it stays silent for ``bootTime``, as a real device does while MCUboot
/// runs, so clients exercise their reconnect logic. With a ``LinkModel`` other than ideal, each
/// reply is delivered when the modelled link and flash would have delivered it.
public final class SimulatorServer: SMPPacketServer {
    /// The simulated device.
    public let device: SimulatedDevice
    /// How long the device ignores requests after a reset.
    public let bootTime: Duration
    /// The emulated link and flash timing.
    public let link: LinkModel

    private struct Clocks {
        var bootingUntil: ContinuousClock.Instant?
        /// When each direction of the link and the device's SMP thread are next free.
        var uplinkFree = ContinuousClock.now
        var deviceFree = ContinuousClock.now
        var downlinkFree = ContinuousClock.now
    }

    private let clocks = LockedValue(Clocks())

    /// Where `simulate -v` logs each request, erase, reset and boot decision; nil logs nothing.
    public let log: (@Sendable (String) -> Void)?

    public init(
        device: SimulatedDevice, bootTime: Duration = .milliseconds(150), link: LinkModel = .ideal,
        log: (@Sendable (String) -> Void)? = nil
    ) {
        self.log = log
        self.device = device
        self.bootTime = bootTime
        self.link = link
    }

    /// The device's transport limits (``SimulatorConfiguration/frameLimits``); an emulated BLE
    /// link without reassembly turns BLE reassembly off too.
    public var frameLimits: SMPServerFrameLimits {
        var limits = device.configuration.frameLimits
        if case .ble(_, _, _, _, _, let reassembly) = link.medium, !reassembly { limits.bleReassembly = false }
        return limits
    }

    public func handle(_ packet: [UInt8]) async -> SMPServerReply {
        let now = ContinuousClock.now
        let booting = clocks.withLock { clocks -> Bool in
            guard let deadline = clocks.bootingUntil else { return false }
            if now < deadline { return true }
            clocks.bootingUntil = nil
            return false
        }
        if let log {
            if let header = try? SMPHeader(decoding: packet.prefix(8)) {
                log("request: \(header.operation) group \(header.group.rawValue) command \(header.command) seq \(header.sequence), \(packet.count) bytes\(booting ? " (ignored: booting)" : "")")
            } else {
                log("request: \(packet.count) bytes without a valid SMP header\(booting ? " (ignored: booting)" : "")")
            }
        }
        if booting { return SMPServerReply(responses: []) }
        let flashSeconds = link.medium == .ideal && link.eraseTime == .zero && link.writeTimePerKiB == .zero
            ? 0 : await flashWork(packet)
        let output = await device.handle(packet)
        var reply = SMPServerReply(responses: output.responses, disconnect: output.disconnect)
        if link != .ideal {
            reply.deliverAt = clocks.withLock { clocks in
                let arrived = max(now, clocks.uplinkFree) + .seconds(link.transferSeconds(packet.count))
                clocks.uplinkFree = arrived
                let processed = max(arrived, clocks.deviceFree) + .seconds(flashSeconds)
                clocks.deviceFree = processed
                let responseBytes = output.responses.reduce(0) { $0 + $1.count }
                let sent = max(processed, clocks.downlinkFree) + .seconds(link.transferSeconds(responseBytes))
                clocks.downlinkFree = sent
                return sent
            }
        }
        if output.resetting {
            clocks.withLock { $0.bootingUntil = ContinuousClock.now + bootTime }
        }
        if let log {
            if output.resetting { log("reset: the device reboots; silent for \(bootTime)") }
            for line in await device.takeActivity() { log(line) }
        }
        return reply
    }

    /// The flash time an upload request costs: erasing on the first chunk, writing its data.
    private func flashWork(_ packet: [UInt8]) async -> Double {
        guard let header = try? SMPHeader(decoding: packet), header.group == .image,
            header.command == ImageManagement.Command.upload.rawValue,
            let map = try? SMPResponseDecoder.map(from: Array(packet.dropFirst(SMPHeader.size))),
            let data = map["data"]?.byteString
        else { return 0 }
        var sectors = 0
        if let length = map["len"]?.uint64, map["off"]?.uint64 == 0 {
            let sectorSize = max(1, device.configuration.sectorSize)
            sectors = (Int(clamping: length) + sectorSize - 1) / sectorSize
        }
        return link.flashSeconds(erasingSectors: sectors, writing: data.count)
    }
}
