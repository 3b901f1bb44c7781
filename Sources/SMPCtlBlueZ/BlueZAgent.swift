import Foundation
import SMPCtlDBus
import Synchronization
import SMPCtlLocking

// Pairing through BlueZ with an agent of smpctl's own.
//
// The interfaces, from bluez/bluez `doc/org.bluez.Agent.rst` and `doc/org.bluez.AgentManager.rst`:
// an application exports an object with `org.bluez.Agent1` at a path of its choosing and registers
// it with `AgentManager1.RegisterAgent(o path, s capability)` at /org/bluez; bluetoothd then calls
// that agent for pairings the application starts (`Device1.Pair`), and for others too once it is
// the default agent (`RequestDefaultAgent(o)`). Agent1's methods and signatures:
//   Release()                              RequestPinCode(o) -> s
//   DisplayPinCode(o, s)                   RequestPasskey(o) -> u (0-999999)
//   DisplayPasskey(o, u passkey, q entered)
//   RequestConfirmation(o, u passkey)      RequestAuthorization(o)
//   AuthorizeService(o, s uuid)            Cancel()
// Refusals are `org.bluez.Error.Rejected` or `org.bluez.Error.Canceled`.

/// When a BLE connection may pair.
public enum BLEPairingPolicy: String, Sendable, Hashable {
    /// Never: a device that needs an encrypted link gets an error that says how to pair it.
    case never
    /// When the SMP characteristic needs an encrypted link (its flags, or an access refused with
    /// "Not paired"): pair with smpctl's agent, then try the access once more.
    case whenRequired
}

/// The input and output an agent offers, as `AgentManager1.RegisterAgent` names them.
public enum BlueZAgentCapability: String, Sendable, Hashable {
    /// Just Works: no passkey is shown or entered.
    case noInputNoOutput = "NoInputNoOutput"
    case displayOnly = "DisplayOnly"
    case displayYesNo = "DisplayYesNo"
    case keyboardOnly = "KeyboardOnly"
    /// A passkey can be entered and shown (a terminal).
    case keyboardDisplay = "KeyboardDisplay"
}

/// What smpctl's agent answers when bluetoothd asks; the CLI prompts on the terminal, tests answer
/// from a script. Each answer must come in bounded time: bluetoothd waits for it.
public protocol BlueZAgentResponder: Sendable {
    var capability: BlueZAgentCapability { get }
    /// The passkey (0-999999) the device shows, or `nil` to refuse.
    func passkey(device: String) async -> UInt32?
    /// Whether `passkey` matches what the device shows (numeric comparison), or Just Works is accepted.
    func confirm(passkey: UInt32?, device: String) async -> Bool
    /// Shows a passkey to type on the device.
    func display(passkey: UInt32, device: String) async
    /// A legacy PIN (1-16 characters), or `nil` to refuse.
    func pinCode(device: String) async -> String?
    /// bluetoothd cancelled the request it made; a question still open for it may end (its
    /// answer is no longer read). Called while that question waits.
    func cancelled() async
}

extension BlueZAgentResponder {
    public func pinCode(device: String) async -> String? { nil }
    public func cancelled() async {}
}

/// Just Works, for when nobody can answer: capability `NoInputNoOutput`, confirmations accepted,
/// passkeys refused.
public struct JustWorksResponder: BlueZAgentResponder {
    public init() {}
    public var capability: BlueZAgentCapability { .noInputNoOutput }
    public func passkey(device: String) async -> UInt32? { nil }
    public func confirm(passkey: UInt32?, device: String) async -> Bool { true }
    public func display(passkey: UInt32, device: String) async {}
}

/// What a pairing did, and the device's state after it.
public struct BlueZPairingReport: Sendable, Hashable {
    public var address: String
    /// The device was paired before; `Pair` answered `AlreadyExists`.
    public var alreadyPaired: Bool
    public var paired: Bool
    /// Keys were stored, so later connections are encrypted without pairing again.
    public var bonded: Bool
    public var trusted: Bool
    /// The agent calls bluetoothd made, in order (`RequestPasskey`, `RequestConfirmation`, ...).
    public var agentRequests: [String]
}

extension DBusErrorName {
    static let bluezRejected: DBusErrorName = "org.bluez.Error.Rejected"
    static let bluezCanceled: DBusErrorName = "org.bluez.Error.Canceled"
    static let bluezAlreadyExists: DBusErrorName = "org.bluez.Error.AlreadyExists"
    static let bluezConnectionAttemptFailed: DBusErrorName = "org.bluez.Error.ConnectionAttemptFailed"
}

/// smpctl's `org.bluez.Agent1` object. It answers only bluetoothd (the owner of `org.bluez`) and
/// only about the device being paired (`devicePath`); anything else is rejected. A simulated
/// peripheral's agent (`devicePath` `nil`) answers for any central, as a device that accepts
/// Just Works pairing does.
struct BlueZAgentObject: DBusObjectHandler {
    let responder: any BlueZAgentResponder
    let devicePath: String?
    let address: String
    /// bluetoothd's unique name, when it could be read.
    let bluetoothd: String?
    let requests: RequestLog

    /// `Cancel` is answered beside the queue: bluetoothd sends it while the request it cancels
    /// (a passkey question, say) still waits for its answer, and waits for `Cancel`'s reply.
    func answersAtOnce(_ call: DBusMethodCall) -> Bool {
        call.member == "Cancel" && (call.interface == nil || call.interface == BlueZ.agentInterface)
    }

    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        guard call.interface == nil || call.interface == BlueZ.agentInterface else {
            throw DBusError(.unknownMethod, "no method \(call.interface ?? "").\(call.member) at \(call.path)")
        }
        if let bluetoothd, call.sender != bluetoothd {
            throw DBusError(.bluezRejected, "only bluetoothd may call this agent")
        }
        let arguments = call.arguments
        if ["RequestPinCode", "DisplayPinCode", "RequestPasskey", "DisplayPasskey", "RequestConfirmation",
            "RequestAuthorization", "AuthorizeService"].contains(call.member)
        {
            guard devicePath == nil || arguments.first?.stringValue == devicePath else {
                throw DBusError(.bluezRejected, "smpctl's agent answers only for \(address)")
            }
        }
        requests.append(call.member)
        switch call.member {
        case "Release":
            return []
        case "Cancel":
            await responder.cancelled()
            return []
        case "RequestPinCode":
            guard let pin = await responder.pinCode(device: address), (1...16).contains(pin.utf8.count) else {
                throw DBusError(.bluezRejected, "no PIN code")
            }
            return [.string(pin)]
        case "DisplayPinCode":
            guard arguments.count == 2, let pin = arguments[1].stringValue, let number = UInt32(pin),
                number <= 999_999
            else { return [] }
            await responder.display(passkey: number, device: address)
            return []
        case "RequestPasskey":
            guard let passkey = await responder.passkey(device: address), passkey <= 999_999 else {
                throw DBusError(.bluezRejected, "no passkey entered")
            }
            return [.uint32(passkey)]
        case "DisplayPasskey":
            guard arguments.count >= 2, let passkey = arguments[1].integerValue, (0...999_999).contains(passkey) else {
                return []
            }
            await responder.display(passkey: UInt32(passkey), device: address)
            return []
        case "RequestConfirmation":
            guard arguments.count == 2, let passkey = arguments[1].integerValue, (0...999_999).contains(passkey) else {
                throw DBusError(.invalidArgs, "RequestConfirmation takes (o, u)")
            }
            guard await responder.confirm(passkey: UInt32(passkey), device: address) else {
                throw DBusError(.bluezRejected, "the passkey was not confirmed")
            }
            return []
        case "RequestAuthorization", "AuthorizeService":
            // smpctl asked for this pairing, with this device.
            guard await responder.confirm(passkey: nil, device: address) else {
                throw DBusError(.bluezRejected, "not authorized")
            }
            return []
        default:
            throw DBusError(.unknownMethod, "no method \(call.member) in \(BlueZ.agentInterface)")
        }
    }
}

/// The agent calls bluetoothd made, in order (at most 64).
final class RequestLog: Sendable {
    private let list = LockedValue<[String]>([])
    func append(_ name: String) {
        list.withLock { list in
            if list.count < 64 { list.append(name) }
        }
    }
    var names: [String] { list.withLock { $0 } }
}

/// `Device1.Pair` with smpctl's agent registered for the call, then `Trusted`.
enum BlueZPairing {
    private static let counter = Atomic<Int>(0)

    static func pair(
        bus: BusConnection, devicePath: String, address: String, responder: any BlueZAgentResponder,
        timeout: Duration
    ) async throws(BlueZError) -> BlueZPairingReport {
        let number = counter.wrappingAdd(1, ordering: .relaxed).newValue
        let agentPath = "/org/smpctl/agent_\(getpid())_\(number)"
        let owner = await Phase.run(within: .seconds(5), watch: nil) { () async throws(DBusError) -> String? in
            let reply = try await bus.call(
                destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
                member: "GetNameOwner", arguments: [.string(BlueZ.serviceName)], timeout: .seconds(6))
            return reply.first?.stringValue
        }
        var bluetoothd: String?
        if case .answered(.success(let name)) = owner { bluetoothd = name }
        let agent = BlueZAgentObject(
            responder: responder, devicePath: devicePath, address: address, bluetoothd: bluetoothd,
            requests: RequestLog())
        do {
            try await bus.export(agent, at: agentPath)
        } catch {
            throw BlueZError.from(error, while: "exporting smpctl's pairing agent").in(.pairing)
        }
        let manager = BlueZAgentManagerProxy(bus: bus)
        switch await Phase.run(within: .seconds(10), watch: nil, { () async throws(DBusError) in
            try await manager.registerAgent(path: agentPath, capability: responder.capability, timeout: .seconds(11))
        }) {
        case .answered(.success):
            break
        case .answered(.failure(let error)) where error.name == .bluezAlreadyExists:
            break  // This connection has an agent registered already.
        case .answered(.failure(let error)):
            await bus.unexport(path: agentPath)
            throw BlueZError(
                .pairingFailed,
                "bluetoothd refused smpctl's pairing agent (pairing): \(error.message). Pair with `bluetoothctl pair \(address)` instead.",
                underlying: error, phase: .pairing)
        case .timedOut, .dropped:
            await bus.unexport(path: agentPath)
            throw BLETransport.stalled(.pairing, call: "RegisterAgent", within: .seconds(10), address: address)
        }
        // Not the default agent: for `Device1.Pair` bluetoothd asks the caller's agent (src/device.c,
        // new_auth takes the bonding request's agent), so the desktop's default agent stays, and
        // so does a simulated peripheral's on the same bluetoothd (the BLE VM test).
        let result = await pairAndTrust(
            bus: bus, devicePath: devicePath, address: address, capability: responder.capability, timeout: timeout)
        _ = await Phase.run(within: .seconds(5), watch: nil) { () async throws(DBusError) in
            try await manager.unregisterAgent(path: agentPath, timeout: .seconds(6))
        }
        await bus.unexport(path: agentPath)
        var report = try result.get()
        report.agentRequests = agent.requests.names
        return report
    }

    private static func pairAndTrust(
        bus: BusConnection, devicePath: String, address: String, capability: BlueZAgentCapability, timeout: Duration
    ) async -> Result<BlueZPairingReport, BlueZError> {
        let device = BlueZDeviceProxy(bus: bus, path: devicePath)
        var alreadyPaired = false
        switch await Phase.run(within: timeout, watch: nil, { () async throws(DBusError) in
            try await device.pair(timeout: Phase.callTimeout(timeout))
        }) {
        case .answered(.success):
            break
        case .answered(.failure(let error)) where error.name == .bluezAlreadyExists:
            alreadyPaired = true
        case .answered(.failure(let error)):
            return .failure(failure(error, address: address, capability: capability))
        case .timedOut, .dropped:
            try? await device.requestCancelPairing()
            return .failure(BLETransport.stalled(.pairing, call: "Pair", within: timeout, address: address))
        }
        _ = await Phase.run(within: .seconds(5), watch: nil) { () async throws(DBusError) in
            try await device.setTrusted(true, timeout: .seconds(6))
        }
        let properties = await Phase.run(within: .seconds(5), watch: nil) {
            () async throws(DBusError) -> [String: DBusValue] in
            let reply = try await bus.call(
                destination: BlueZ.serviceName, path: devicePath, interface: DBusInterface.properties,
                member: "GetAll", arguments: [.string(BlueZ.deviceInterface)], timeout: .seconds(6))
            return reply.first?.stringKeyedDictionary ?? [:]
        }
        var state: [String: DBusValue] = [:]
        if case .answered(.success(let values)) = properties { state = values }
        return .success(BlueZPairingReport(
            address: address, alreadyPaired: alreadyPaired, paired: state["Paired"]?.boolValue ?? !alreadyPaired,
            bonded: state["Bonded"]?.boolValue ?? false, trusted: state["Trusted"]?.boolValue ?? false,
            agentRequests: []))
    }

    /// A failed `Pair`, said for a user with what to do next.
    static func failure(_ error: DBusError, address: String, capability: BlueZAgentCapability) -> BlueZError {
        let again = "then run `smpctl pair ble:\(address)` again"
        let terminal = capability == .noInputNoOutput
            ? " smpctl answered as NoInputNoOutput (Just Works) because no terminal was available; a device that requires a passkey needs `smpctl pair` run on a terminal."
            : ""
        let message: String
        switch error.name {
        case .bluezAuthenticationFailed:
            message = "pairing with \(address) failed (pairing): the passkey was wrong or the keys did not match. Check the passkey the device shows; if it was paired before, remove the old bond on both sides (`bluetoothctl remove \(address)`, and the device's bond list), \(again).\(terminal)"
        case .bluezAuthenticationCanceled:
            message = "pairing with \(address) was cancelled (pairing), by the agent (no valid passkey was entered in time) or on the device. Run `smpctl pair ble:\(address)` on a terminal and answer the prompt.\(terminal)"
        case .bluezAuthenticationRejected:
            message = "\(address) rejected the pairing (pairing). Put it in pairing mode if it has one (some need a button press), \(again).\(terminal)"
        case .bluezAuthenticationTimeout:
            message = "pairing with \(address) timed out in bluetoothd (pairing). Enter or confirm the passkey promptly, \(again)."
        case .bluezConnectionAttemptFailed, .bluezNotConnected:
            message = "could not reach \(address) to pair (pairing). Check that it is powered and in range, \(again)."
        case .bluezInProgress:
            message = "another pairing with \(address) is under way (pairing). Let it finish (or `bluetoothctl cancel-pairing \(address)`), \(again)."
        default:
            let classified = BlueZError.from(error, while: "pairing", device: address)
            guard classified.code == .failed || classified.code == .authenticationRequired else {
                return classified.in(.pairing)
            }
            message = "pairing with \(address) failed (pairing): \(error.message). Try `bluetoothctl pair \(address)` to see bluetoothd's own report."
        }
        return BlueZError(.pairingFailed, message, underlying: error, phase: .pairing)
    }
}

/// `org.bluez.AgentManager1` at /org/bluez.
struct BlueZAgentManagerProxy: Sendable {
    let bus: BusConnection

    func registerAgent(path: String, capability: BlueZAgentCapability, timeout: Duration) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: BlueZ.agentManagerPath, interface: BlueZ.agentManagerInterface,
            member: "RegisterAgent", arguments: [.objectPath(path), .string(capability.rawValue)], timeout: timeout)
    }

    func requestDefaultAgent(path: String, timeout: Duration) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: BlueZ.agentManagerPath, interface: BlueZ.agentManagerInterface,
            member: "RequestDefaultAgent", arguments: [.objectPath(path)], timeout: timeout)
    }

    func unregisterAgent(path: String, timeout: Duration) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: BlueZ.agentManagerPath, interface: BlueZ.agentManagerInterface,
            member: "UnregisterAgent", arguments: [.objectPath(path)], timeout: timeout)
    }
}

/// The agent of a simulated peripheral (`smpctl simulate --ble --ble-security ...`): registered as
/// bluetoothd's default agent, it accepts Just Works pairing from any central, as a Zephyr device
/// without a `pairing_confirm` callback does (subsys/bluetooth/host/smp.c); passkeys are refused.
enum BlueZPeripheralAgent {
    static func register(bus: BusConnection, path: String) async throws(BlueZError) {
        // Only bluetoothd may ask it.
        let owner = try? await bus.call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "GetNameOwner", arguments: [.string(BlueZ.serviceName)], timeout: .seconds(5))
        let agent = BlueZAgentObject(
            responder: JustWorksResponder(), devicePath: nil, address: "any central",
            bluetoothd: owner?.first?.stringValue, requests: RequestLog())
        do {
            try await bus.export(agent, at: path)
            let manager = BlueZAgentManagerProxy(bus: bus)
            try await manager.registerAgent(path: path, capability: .noInputNoOutput, timeout: .seconds(5))
            try await manager.requestDefaultAgent(path: path, timeout: .seconds(5))
        } catch {
            await bus.unexport(path: path)
            throw BlueZError.from(error, while: "registering the peripheral's pairing agent")
        }
    }

    static func unregister(bus: BusConnection, path: String) async {
        _ = try? await BlueZAgentManagerProxy(bus: bus).unregisterAgent(path: path, timeout: .seconds(2))
        await bus.unexport(path: path)
    }
}
