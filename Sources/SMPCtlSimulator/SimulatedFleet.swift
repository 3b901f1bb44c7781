// Many independent simulated devices on UDP, for fleet updates: consecutive ports (or one free
// port each), with a fault on every k-th device, and a count of the requests each one received.

import SMPCtlPOSIX
public import SMPCtlTransport
import SMPCtlLocking

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What is wrong with one simulated device of a fleet.
public enum SimulatedFleetFault: String, Sendable, CaseIterable {
    case none
    /// Nothing listens on its port.
    case unreachable
    /// It already runs the fleet's image.
    case current
    /// Its bootloader refuses every new image (as with a signature from another key).
    case reject
    /// Its link drops in the middle of the upload and comes back after an outage.
    case drop
    /// It sits behind a slow emulated link.
    case slow
}

/// How to build a simulated fleet.
public struct SimulatedFleetOptions: Sendable {
    public var count: Int
    public var host = "127.0.0.1"
    /// The first port; 0 gives each device a free port of its own.
    public var basePort: UInt16 = 0
    /// Every k-th device (1-based: device k, 2k, ...) gets the fault; the first fault in the
    /// order unreachable, current, reject, drop, slow wins.
    public var unreachableEvery: Int?
    public var currentEvery: Int?
    public var rejectEvery: Int?
    public var dropEvery: Int?
    public var slowEvery: Int?
    /// Request bytes after which a `drop` device's link goes down.
    public var dropAfterBytes = 20_000
    /// How long a dropped link stays down (UDP has no connection to cut, so the device goes
    /// silent, as when its network goes away).
    public var outage: Duration = .milliseconds(1500)
    /// The link of `slow` devices.
    public var slowLink: LinkModel = .ideal
    /// The image `current` devices run (a signed image's bytes).
    public var currentImage: [UInt8]?
    /// The configuration every device starts from.
    public var configuration = SimulatorConfiguration()
    public var bootTime: Duration = .milliseconds(150)

    /// The most devices one fleet serves.
    public static let maximumCount = 10_000

    public init(count: Int) { self.count = count }

    /// The fault of device `index` (0-based).
    public func fault(ofDevice index: Int) -> SimulatedFleetFault {
        let number = index + 1
        func hits(_ every: Int?) -> Bool { every.map { $0 > 0 && number % $0 == 0 } ?? false }
        if hits(unreachableEvery) { return .unreachable }
        if hits(currentEvery), currentImage != nil { return .current }
        if hits(rejectEvery) { return .reject }
        if hits(dropEvery) { return .drop }
        if hits(slowEvery) { return .slow }
        return .none
    }
}

/// One device of a simulated fleet.
public struct SimulatedFleetDevice: Sendable {
    public var name: String
    public var port: UInt16
    public var fault: SimulatedFleetFault
    /// The server behind the port; `nil` for an unreachable device.
    public var server: FleetDeviceServer?
}

/// A simulated device as a fleet sees it: it counts the requests it receives, and turns the
/// simulator's link drop into an outage, as a UDP device whose network goes away.
public final class FleetDeviceServer: SMPPacketServer {
    public let simulator: SimulatorServer
    public let outage: Duration
    private struct State {
        var requests = 0
        var lost = 0
        var downUntil: ContinuousClock.Instant?
    }

    private let state = LockedValue(State())

    public init(simulator: SimulatorServer, outage: Duration) {
        self.simulator = simulator
        self.outage = outage
    }

    /// Requests received (including those lost to an outage).
    public var requestCount: Int { state.withLock { $0.requests } }
    /// Requests lost while the link was down.
    public var lostCount: Int { state.withLock { $0.lost } }

    public var frameLimits: SMPServerFrameLimits { simulator.frameLimits }

    public func handle(_ packet: [UInt8]) async -> SMPServerReply {
        let now = ContinuousClock.now
        let down = state.withLock { state -> Bool in
            state.requests += 1
            if let until = state.downUntil, now < until {
                state.lost += 1
                return true
            }
            state.downUntil = nil
            return false
        }
        if down { return SMPServerReply(responses: []) }
        var reply = await simulator.handle(packet)
        if reply.disconnect {
            reply.disconnect = false
            state.withLock { $0.downUntil = ContinuousClock.now + outage }
        }
        return reply
    }
}

/// N simulated devices served over UDP until ``stop()``.
public final class SimulatedFleet: Sendable {
    public let devices: [SimulatedFleetDevice]
    public let host: String
    private let endpoints: [UDPServerEndpoint]

    public init(_ options: SimulatedFleetOptions) throws(SMPTransportError) {
        guard (1...SimulatedFleetOptions.maximumCount).contains(options.count) else {
            throw SMPTransportError(.openFailed, "a simulated fleet has 1 to \(SimulatedFleetOptions.maximumCount) devices")
        }
        if options.basePort != 0, Int(options.basePort) + options.count - 1 > Int(UInt16.max) {
            throw SMPTransportError(.openFailed, "ports \(options.basePort) and up do not leave room for \(options.count) devices")
        }
        let width = String(options.count).count
        var devices: [SimulatedFleetDevice] = []
        var endpoints: [UDPServerEndpoint] = []
        // A port read for an unreachable device is free again once closed, and the system may hand
        // it to a later device: every port is checked against those taken, and a repeat is bound
        // again.
        var taken = Set<UInt16>()
        var repeats: [UDPServerEndpoint] = []
        defer { for endpoint in repeats { endpoint.stop() } }
        do throws(SMPTransportError) {
            for index in 0..<options.count {
                let number = String(index + 1)
                let name = "sim-" + String(repeating: "0", count: max(0, width - number.count)) + number
                let fault = options.fault(ofDevice: index)
                let wanted = options.basePort == 0 ? 0 : options.basePort &+ UInt16(index)
                if fault == .unreachable {
                    var port = wanted
                    if wanted == 0 {
                        for _ in 0..<64 {
                            port = try Self.freePort(host: options.host)
                            if !taken.contains(port) { break }
                        }
                    }
                    guard taken.insert(port).inserted else {
                        throw SMPTransportError(.openFailed, "no free port for \(name)")
                    }
                    devices.append(SimulatedFleetDevice(name: name, port: port, fault: fault, server: nil))
                    continue
                }
                var configuration = options.configuration
                configuration.faultSeed = configuration.faultSeed &+ UInt64(index)
                var link = LinkModel.ideal
                switch fault {
                case .current: configuration.initialImage = options.currentImage
                case .reject: configuration.bootloaderRejectsImages = true
                case .drop: configuration.disconnectAfterBytes = options.dropAfterBytes
                case .slow: link = options.slowLink
                case .none, .unreachable: break
                }
                if let limit = link.maximumRequestSize { configuration.bufferSize = min(configuration.bufferSize, limit) }
                let simulator = SimulatorServer(device: SimulatedDevice(configuration: configuration), bootTime: options.bootTime, link: link)
                let server = FleetDeviceServer(simulator: simulator, outage: options.outage)
                var endpoint = try UDPServerEndpoint(host: options.host, port: wanted, server: server)
                var tries = 0
                while !taken.insert(endpoint.boundPort).inserted {
                    tries += 1
                    guard wanted == 0, tries < 64 else {
                        endpoint.stop()
                        throw SMPTransportError(.openFailed, "port \(endpoint.boundPort) for \(name) is already taken")
                    }
                    // Kept bound until the fleet is built, so the next try gets another port.
                    repeats.append(endpoint)
                    endpoint = try UDPServerEndpoint(host: options.host, port: 0, server: server)
                }
                endpoints.append(endpoint)
                devices.append(SimulatedFleetDevice(name: name, port: endpoint.boundPort, fault: fault, server: server))
            }
        } catch {
            for endpoint in endpoints { endpoint.stop() }
            throw error
        }
        self.devices = devices
        self.endpoints = endpoints
        self.host = options.host
    }

    /// Stops every endpoint.
    public func stop() {
        for endpoint in endpoints { endpoint.stop() }
    }

    /// The connection string of a device.
    public func connection(_ device: SimulatedFleetDevice) -> String {
        host.contains(":") ? "udp:[\(host)]:\(device.port)" : "udp:\(host):\(device.port)"
    }

    /// A port nobody listens on: bound, read and closed.
    static func freePort(host: String) throws(SMPTransportError) -> UInt16 {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(bare, "0", &hints, &result) == 0, let first = result, let address = first.pointee.ai_addr else {
            throw SMPTransportError(.invalidAddress, "cannot resolve \(host)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SMPTransportError(.openFailed, "cannot create a UDP socket", errno: errno) }
        defer { close(fd) }
        guard bind(fd, address, first.pointee.ai_addrlen) == 0 else {
            throw SMPTransportError(.openFailed, "cannot bind a UDP port on \(host)", errno: errno)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        // sin_port and sin6_port sit at the same offset.
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }
}
