import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import SMPCtlBlueZ
import SMPCtlDBus
import SMPCtlPOSIX
import SMPCtlProtocol
import SMPCtlTransport

/// How the fake bluetoothd behaves.
struct FakeBlueZOptions: Sendable {
    var mtu = 65
    /// Whether AcquireWrite/AcquireNotify work (otherwise `NotSupported`, as for chars without write-without-response).
    var supportsAcquire = true
    /// GATT access answers `NotPermitted "Not paired"`, as BlueZ does for an encrypted characteristic.
    var requiresPairing = false
    var adapterPowered = true
    var deviceName = "smp-sim"
    var deviceAddress = "00:AA:01:00:00:00"
    /// How long `Disconnect` takes before the link drops and the call is answered (bluetoothd: 2 s,
    /// DISCONNECT_TIMER in src/device.c).
    var disconnectDelay: Duration = .zero
    /// Scans (StartDiscovery calls) whose advertising report is lost before the device appears,
    /// as BlueZ 5.66's emulated controller loses its one report on a busy host (bluez-vm-notes.md).
    var lostScans = 0
    /// Calls that never answer (until the fake stops): `StartDiscovery`, `Connect`, `StopNotify`,
    /// `AcquireNotify`, `StartNotify`, `AcquireWrite`, `Pair`, and `MTU` for reading that property.
    var hang: Set<String> = []
    /// `Connect` calls (counted from 1) that never answer and leave the link down, as one after a
    /// reset in the BLE VM did ("ACL packet for unknown connection handle"); the next one works.
    var unansweredConnects: Set<Int> = []
    /// The call during which the link drops (`Connected` turns false) before the call hangs;
    /// `ServicesResolved` drops it after `Connect` answered, before the services resolve.
    var dropLinkDuring: String?
    /// `Connected` and `ServicesResolved` turn true without a `PropertiesChanged` signal, as
    /// bluetoothd 5.66 was seen doing in the VM when the ATT channel came up before the kernel's
    /// Device Connected event (`device_add_connection() ... is already connected`); `GetAll` and
    /// `Get` still answer the true state.
    var silentLinkSignals = false
    /// Whether the characteristic's properties include `MTU` (BlueZ 5.62 and later).
    var mtuProperty = true
    /// How `Pair` authenticates.
    var pairing: FakePairingMethod = .justWorks
    /// With passkey pairing: this long after asking RequestPasskey, cancel it as bluetoothd does
    /// when the pairing times out or the device gives up: `Agent1.Cancel` while the question is
    /// still open, then `Pair` fails with AuthenticationCanceled.
    var cancelsPasskeyAfter: Duration?
    /// `Pair` fails with this error after the agent answered (the device refused, say).
    var pairingFailure: DBusErrorName?
    /// The characteristic's flags say it needs encryption (`encrypt-write`, `encrypt-notify`).
    var encryptFlags = false
    /// Every n-th write reaches the device after the one that follows it (0: in order), as when
    /// bluetoothd spreads writes over several ATT bearers (EATT; bluez-vm-notes.md). A held write
    /// with no write after it goes alone after 30 ms.
    var reorderEvery = 0
    /// With `reorderEvery`, the device gathers writes as Zephyr's reassembly does, in a net_buf of
    /// this size (``SMPServerReassembly``): a write that arrives first but is not a packet's start
    /// is refused, and the packet it broke is lost.
    var netbufSize = 2048
    /// The device's GATT service lists Server Supported Features (0x2B3A) with the EATT bit, as a
    /// BlueZ or Zephyr (`CONFIG_BT_EATT`) GATT server with EATT does.
    var offersEATT = false
}

/// How the fake device pairs.
enum FakePairingMethod: Sendable, Equatable {
    /// Just Works: an agent that can show something is asked RequestConfirmation; NoInputNoOutput none.
    case justWorks
    /// Passkey entry: the agent is asked RequestPasskey and must answer this passkey.
    case passkey(UInt32)
}

/// A fake `org.bluez` on a private bus: ObjectManager, one adapter, one SMP device found by discovery,
/// and its SMP characteristic, behind which an ``SMPPacketServer`` (the simulator) answers.
actor FakeBlueZ {
    static let adapterPath = "/org/bluez/hci0"
    let options: FakeBlueZOptions
    let bus: BusConnection
    let server: any SMPPacketServer
    let devicePath: String
    var servicePath: String { devicePath + "/service0010" }
    var characteristicPath: String { devicePath + "/service0010/char0011" }

    private var deviceKnown = false
    private var servicesKnown = false
    private(set) var connected = false
    private(set) var disconnectCalls = 0
    private var servicesResolved = false
    private var notifying = false
    /// Whether discovery is on (StartDiscovery called, StopDiscovery not since).
    private(set) var discovering = false
    private var writeSocket: (mine: Int32, given: Int32)?
    private var notifySocket: (mine: Int32, given: Int32)?
    private var writeReader: DescriptorReader?
    private var reassembler = SMPReassembler(maxPacketLength: 8 + 65535)
    private lazy var zephyrReassembly = SMPServerReassembly(netbufSize: options.netbufSize, reassembles: true)
    /// Counts dropped links: a write still queued from a dropped link is lost, as on the air.
    private var linkGeneration = 0

    /// What the fake saw, for assertions.
    private(set) var connectCount = 0
    private(set) var discoveryStarts = 0
    private(set) var writes = 0
    private(set) var largestWrite = 0
    private(set) var oversizeWrites = 0
    private(set) var notifications = 0
    private(set) var largestNotification = 0
    private(set) var paired = false
    private(set) var bonded = false
    private(set) var trusted = false
    private(set) var pairCalls = 0
    /// GATT accesses refused with "Not paired".
    private(set) var notPairedRefusals = 0
    /// The agent registered through AgentManager1: its bus name, path and capability.
    private(set) var agent: (sender: String, path: String, capability: String)?
    private(set) var defaultAgentRequested = false
    private(set) var agentUnregistered = false
    /// What the agent answered to RequestPasskey.
    private(set) var receivedPasskey: UInt32?
    /// The agent methods the fake called, in order.
    private(set) var agentCalls: [String] = []
    /// With `cancelsPasskeyAfter`: how long the agent took to answer Cancel (nil: no answer within 3 s).
    private(set) var cancelAnsweredIn: Duration?
    /// With `cancelsPasskeyAfter`: the cancelled RequestPasskey's answer ("answered", or the
    /// error's name), nil when it had none within 3 s of the Cancel.
    private(set) var cancelledQuestionOutcome: String?
    private var stopped = false

    private init(bus: BusConnection, server: any SMPPacketServer, options: FakeBlueZOptions) {
        self.bus = bus
        self.server = server
        self.options = options
        devicePath = Self.adapterPath + "/dev_" + options.deviceAddress.replacingOccurrences(of: ":", with: "_")
    }

    /// Connects to the bus at `address`, takes the name `org.bluez`, and exports the objects.
    static func start(address: String, server: any SMPPacketServer, options: FakeBlueZOptions = FakeBlueZOptions())
        async throws -> FakeBlueZ
    {
        let bus = try await BusConnection.connect(address: address)
        let fake = FakeBlueZ(bus: bus, server: server, options: options)
        try await bus.requestName(BlueZ.serviceName)
        for role in [FakeObject.Role.root, .agentManager, .adapter, .device, .service, .characteristic, .gattService, .serverFeatures] {
            try await bus.export(FakeObject(fake: fake, role: role), at: await fake.path(of: role))
        }
        return fake
    }

    func stop() async {
        stopped = true
        closeSockets()
        await writeReader?.stop()
        await bus.close()
    }

    func path(of role: FakeObject.Role) -> String {
        switch role {
        case .root: "/"
        case .agentManager: BlueZ.agentManagerPath
        case .adapter: Self.adapterPath
        case .device: devicePath
        case .service: servicePath
        case .characteristic: characteristicPath
        case .gattService: devicePath + "/service0001"
        case .serverFeatures: devicePath + "/service0001/char0002"
        }
    }

    // MARK: - Properties

    func properties(of role: FakeObject.Role, interface: String) -> [String: DBusValue]? {
        switch (role, interface) {
        case (.adapter, BlueZ.adapterInterface):
            return ["Address": .string("00:AA:01:01:00:01"), "Powered": .bool(options.adapterPowered),
                "Discovering": .bool(discovering), "Name": .string("fake")]
        case (.device, BlueZ.deviceInterface) where deviceKnown:
            return ["Address": .string(options.deviceAddress), "AddressType": .string("random"),
                "Name": .string(options.deviceName), "Alias": .string(options.deviceName), "RSSI": .int16(-52),
                "Connected": .bool(connected), "ServicesResolved": .bool(servicesResolved), "Paired": .bool(paired),
                "Bonded": .bool(bonded), "Trusted": .bool(trusted),
                "Adapter": .objectPath(Self.adapterPath), "UUIDs": .strings([BlueZ.smpServiceUUID])]
        case (.service, BlueZ.gattServiceInterface) where servicesKnown:
            return ["UUID": .string(BlueZ.smpServiceUUID), "Primary": .bool(true), "Device": .objectPath(devicePath)]
        case (.characteristic, BlueZ.gattCharacteristicInterface) where servicesKnown:
            var properties: [String: DBusValue] = [
                "UUID": .string(BlueZ.smpCharacteristicUUID), "Service": .objectPath(servicePath),
                "Flags": .strings(["write-without-response", "notify"] + (options.encryptFlags ? ["encrypt-write", "encrypt-notify"] : [])),
                "Notifying": .bool(notifying),
                "Value": .bytes([])]
            if options.mtuProperty { properties["MTU"] = .uint16(UInt16(options.mtu)) }
            return properties
        case (.gattService, BlueZ.gattServiceInterface) where servicesKnown && options.offersEATT:
            return ["UUID": .string("00001801-0000-1000-8000-00805f9b34fb"), "Primary": .bool(true),
                "Device": .objectPath(devicePath)]
        case (.serverFeatures, BlueZ.gattCharacteristicInterface) where servicesKnown && options.offersEATT:
            return ["UUID": .string("00002b3a-0000-1000-8000-00805f9b34fb"),
                "Service": .objectPath(path(of: .gattService)), "Flags": .strings(["read"]), "Value": .bytes([])]
        case (.agentManager, BlueZ.agentManagerInterface):
            return [:]
        default:
            return nil
        }
    }

    private func interfaces(of role: FakeObject.Role) -> DBusValue {
        let name: String
        switch role {
        case .adapter: name = BlueZ.adapterInterface
        case .device: name = BlueZ.deviceInterface
        case .service: name = BlueZ.gattServiceInterface
        case .characteristic, .serverFeatures: name = BlueZ.gattCharacteristicInterface
        case .gattService: name = BlueZ.gattServiceInterface
        case .root, .agentManager: return .dictionary(keySignature: "s", valueSignature: "a{sv}", [])
        }
        let properties = self.properties(of: role, interface: name) ?? [:]
        return .dictionary(keySignature: "s", valueSignature: "a{sv}", [
            DBusDictionaryEntry(key: .string(name), value: .propertyDictionary(properties))
        ])
    }

    private func managedObjects() -> DBusValue {
        var roles: [FakeObject.Role] = [.adapter]
        if deviceKnown { roles.append(.device) }
        if servicesKnown { roles += [.service, .characteristic] }
        if servicesKnown, options.offersEATT { roles += [.gattService, .serverFeatures] }
        return .dictionary(keySignature: "o", valueSignature: "a{sa{sv}}", roles.map {
            DBusDictionaryEntry(key: .objectPath(path(of: $0)), value: interfaces(of: $0))
        })
    }

    private func announce(_ role: FakeObject.Role) async throws(DBusError) {
        try await bus.emitSignal(path: "/", interface: DBusInterface.objectManager, member: "InterfacesAdded",
            arguments: [.objectPath(path(of: role)), interfaces(of: role)])
    }

    private func changed(_ role: FakeObject.Role, _ interface: String, _ values: [String: DBusValue]) async {
        try? await bus.emitPropertiesChanged(path: path(of: role), interface: interface, changed: values)
    }

    // MARK: - Methods

    /// Never answers, as bluetoothd was seen not to: waits until the fake stops (at most a minute).
    private func hangForever() async {
        let deadline = ContinuousClock.now + .seconds(60)
        while !stopped, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
    }

    /// A `Properties.Get` or `GetAll`; `MTU` may hang.
    func propertiesForGet(of role: FakeObject.Role, interface: String) async -> [String: DBusValue]? {
        if role == .characteristic, options.hang.contains("MTU") { await hangForever() }
        return properties(of: role, interface: interface)
    }

    func setProperty(_ role: FakeObject.Role, interface: String, name: String, value: DBusValue) async throws(DBusError) {
        guard role == .device, interface == BlueZ.deviceInterface, name == "Trusted", let flag = value.boolValue else {
            throw DBusError("org.freedesktop.DBus.Error.PropertyReadOnly", "\(interface).\(name) is read-only")
        }
        trusted = flag
        await changed(.device, BlueZ.deviceInterface, ["Trusted": .bool(flag)])
    }

    func handle(_ role: FakeObject.Role, _ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        if options.dropLinkDuring == call.member, call.member != "Connect" {
            await dropLink()
            await hangForever()
            throw DBusError(.bluezNotConnected, "Not Connected")
        }
        if options.hang.contains(call.member) {
            await hangForever()
            throw DBusError(.bluezFailed, "the fake stopped")
        }
        switch (role, call.member) {
        case (.agentManager, "RegisterAgent"):
            guard call.arguments.count == 2, let path = call.arguments[0].stringValue,
                let capability = call.arguments[1].stringValue
            else { throw DBusError(.invalidArgs, "RegisterAgent takes (o, s)") }
            let known = ["", "DisplayOnly", "DisplayYesNo", "KeyboardOnly", "NoInputNoOutput", "KeyboardDisplay"]
            guard known.contains(capability) else { throw DBusError("org.bluez.Error.InvalidArguments", "Invalid Arguments") }
            if agent?.sender == call.sender { throw DBusError("org.bluez.Error.AlreadyExists", "Already Exists") }
            agent = (call.sender, path, capability.isEmpty ? "KeyboardDisplay" : capability)
            return []
        case (.agentManager, "RequestDefaultAgent"):
            guard agent?.sender == call.sender, agent?.path == call.arguments.first?.stringValue else {
                throw DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
            }
            defaultAgentRequested = true
            return []
        case (.agentManager, "UnregisterAgent"):
            guard agent?.sender == call.sender, agent?.path == call.arguments.first?.stringValue else {
                throw DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
            }
            agent = nil
            agentUnregistered = true
            return []
        case (.device, "Pair"):
            return try await pair()
        case (.device, "CancelPairing"):
            return []
        case (.root, "GetManagedObjects"):
            return [managedObjects()]
        case (.adapter, "SetDiscoveryFilter"):
            return []
        case (.adapter, "StartDiscovery"):
            guard options.adapterPowered else { throw DBusError(.bluezNotReady, "Resource Not Ready") }
            discovering = true
            discoveryStarts += 1
            if !deviceKnown, discoveryStarts > options.lostScans {
                deviceKnown = true
                try await announce(.device)
            }
            return []
        case (.adapter, "StopDiscovery"):
            discovering = false
            return []
        case (.device, "Connect"):
            connectCount += 1
            if options.unansweredConnects.contains(connectCount) {
                await hangForever()
                throw DBusError(.bluezFailed, "the fake stopped")
            }
            try await connectLink()
            return []
        case (.device, "Disconnect"):
            guard connected else { throw DBusError(.bluezNotConnected, "Not Connected") }
            disconnectCalls += 1
            if options.disconnectDelay > .zero { try? await Task.sleep(for: options.disconnectDelay) }
            await dropLink()
            return []
        case (.serverFeatures, "ReadValue"):
            return [.bytes([0x01])]
        case (.characteristic, let member):
            return try await handleCharacteristic(member, call.arguments)
        default:
            throw DBusError(.unknownMethod, "no method \(call.member) at \(call.path)")
        }
    }

    private func connectLink() async throws(DBusError) {
        connected = true
        if !options.silentLinkSignals { await changed(.device, BlueZ.deviceInterface, ["Connected": .bool(true)]) }
        if options.dropLinkDuring == "Connect" {
            await dropLink()
            await hangForever()
            throw DBusError(.bluezFailed, "le-connection-abort-by-local")
        }
        if options.dropLinkDuring == "ServicesResolved" {
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(200))
                await self?.dropLink()
            }
            return
        }
        if options.hang.contains("ServicesResolved") { return }
        if !servicesKnown {
            servicesKnown = true
            try await announce(.service)
            try await announce(.characteristic)
            if options.offersEATT {
                try await announce(.gattService)
                try await announce(.serverFeatures)
            }
        }
        servicesResolved = true
        if !options.silentLinkSignals { await changed(.device, BlueZ.deviceInterface, ["ServicesResolved": .bool(true)]) }
    }

    /// `Device1.Pair`: connects if needed, asks the registered agent as the method requires, and
    /// bonds. Errors as bluetoothd's: AlreadyExists, AuthenticationFailed, AuthenticationCanceled.
    private func pair() async throws(DBusError) -> [DBusValue] {
        pairCalls += 1
        guard !paired else { throw DBusError("org.bluez.Error.AlreadyExists", "Already Exists") }
        if !connected { try await connectLink() }
        switch options.pairing {
        case .justWorks:
            if let agent, agent.capability != "NoInputNoOutput" {
                do {
                    _ = try await callAgent(agent, "RequestConfirmation", [.objectPath(devicePath), .uint32(123_456)])
                } catch {
                    throw DBusError(.bluezAuthenticationCanceled, "Authentication Canceled")
                }
            }
        case .passkey(let expected):
            guard let agent, agent.capability == "KeyboardDisplay" || agent.capability == "KeyboardOnly" else {
                // No way to enter the passkey: the device's MITM requirement fails.
                throw DBusError(.bluezAuthenticationFailed, "Authentication Failed")
            }
            if let delay = options.cancelsPasskeyAfter { try await askAndCancel(agent, after: delay) }
            let reply: [DBusValue]
            do {
                reply = try await callAgent(agent, "RequestPasskey", [.objectPath(devicePath)])
            } catch {
                throw DBusError(.bluezAuthenticationCanceled, "Authentication Canceled")
            }
            guard case .uint32(let passkey) = reply.first else {
                throw DBusError(.bluezAuthenticationFailed, "Authentication Failed")
            }
            receivedPasskey = passkey
            guard passkey == expected else { throw DBusError(.bluezAuthenticationFailed, "Authentication Failed") }
        }
        if let failure = options.pairingFailure {
            throw DBusError(failure, failure == .bluezAuthenticationCanceled ? "Authentication Canceled" : "Authentication Failed")
        }
        paired = true
        bonded = true
        await changed(.device, BlueZ.deviceInterface, ["Paired": .bool(true), "Bonded": .bool(true)])
        return []
    }

    /// Asks RequestPasskey, and `delay` later calls Cancel while the question is open (each
    /// answer waited for at most 3 s, as recorded); then fails the pairing as cancelled.
    private func askAndCancel(_ agent: (sender: String, path: String, capability: String), after delay: Duration)
        async throws(DBusError) -> Never
    {
        let devicePath = self.devicePath
        Task {
            let outcome: String
            do throws(DBusError) {
                _ = try await callAgent(agent, "RequestPasskey", [.objectPath(devicePath)])
                outcome = "answered"
            } catch {
                outcome = error.name.rawValue
            }
            cancelledQuestionOutcome = outcome
        }
        try? await Task.sleep(for: delay)
        let start = ContinuousClock.now
        if (try? await callAgent(agent, "Cancel", [], timeout: .seconds(3))) != nil {
            cancelAnsweredIn = ContinuousClock.now - start
        }
        let cancelled = ContinuousClock.now
        while cancelledQuestionOutcome == nil, ContinuousClock.now - cancelled < .seconds(3) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        throw DBusError(.bluezAuthenticationCanceled, "Authentication Canceled")
    }

    private func callAgent(_ agent: (sender: String, path: String, capability: String), _ member: String,
        _ arguments: [DBusValue], timeout: Duration = .seconds(30)) async throws(DBusError) -> [DBusValue]
    {
        agentCalls.append(member)
        return try await bus.call(
            destination: agent.sender, path: agent.path, interface: BlueZ.agentInterface, member: member,
            arguments: arguments, timeout: timeout)
    }

    private func handleCharacteristic(_ member: String, _ arguments: [DBusValue]) async throws(DBusError) -> [DBusValue] {
        guard connected else { throw DBusError(.bluezNotConnected, "Not Connected") }
        let gattAccess = ["WriteValue", "StartNotify", "AcquireWrite", "AcquireNotify"]
        if options.requiresPairing, !paired, gattAccess.contains(member) {
            notPairedRefusals += 1
            throw DBusError(.bluezNotPermitted, "Not paired")
        }
        switch member {
        case "WriteValue":
            guard writeSocket == nil else { throw DBusError(.bluezNotPermitted, "Write acquired") }
            guard let bytes = arguments.first?.byteArray else { throw DBusError(.invalidArgs, "WriteValue takes ay") }
            guard bytes.count <= options.mtu - 3 else {
                oversizeWrites += 1
                throw DBusError(.bluezFailed, "Failed to initiate write")
            }
            if Self.writeType(arguments) == "request" {
                // A write request is answered after the device's ATT layer took it, so the next
                // one cannot overtake it on another bearer: delivered in order, then answered.
                writeRequests += 1
                await deliver(bytes)
            } else {
                await receive(bytes)
            }
            return []
        case "StartNotify":
            guard notifySocket == nil else { throw DBusError(.bluezNotPermitted, "Notify acquired") }
            notifying = true
            return []
        case "StopNotify":
            notifying = false
            return []
        case "AcquireWrite", "AcquireNotify":
            guard options.supportsAcquire else { throw DBusError(.bluezNotSupported, "Operation is not supported") }
            if member == "AcquireNotify", notifying { throw DBusError(.bluezInProgress, "Notify already started") }
            var ends: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &ends) == 0 else {
                throw DBusError(.bluezFailed, "socketpair failed")
            }
            if member == "AcquireWrite" {
                writeSocket = (ends[0], ends[1])
                let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
                writeReader = DescriptorReader(fd: ends[0], bufferSize: 1024, datagrams: true) { output in
                    switch output {
                    case .bytes(let bytes): continuation.yield(bytes)
                    case .closed: continuation.finish()
                    }
                }
                let generation = linkGeneration
                Task { [weak self] in
                    for await bytes in stream { await self?.receiveSocketWrite(bytes, generation: generation) }
                }
            } else {
                notifySocket = (ends[0], ends[1])
            }
            return [.unixFD(ends[1]), .uint16(UInt16(options.mtu))]
        default:
            throw DBusError(.unknownMethod, "no method \(member)")
        }
    }

    private func receiveSocketWrite(_ bytes: [UInt8], generation: Int) async {
        guard generation == linkGeneration else { return }
        guard bytes.count <= options.mtu - 3 else {
            oversizeWrites += 1
            return
        }
        await receive(bytes)
    }

    /// `WriteValue`'s `type` option (`command`, `request`, ...), if given.
    private static func writeType(_ arguments: [DBusValue]) -> String? {
        guard arguments.count > 1, let options = arguments[1].stringKeyedDictionary else { return nil }
        switch options["type"] {
        case .variant(.string(let type))?, .string(let type)?: return type
        default: return nil
        }
    }

    /// `WriteValue` calls of type `request`.
    private(set) var writeRequests = 0

    /// A write held back by ``FakeBlueZOptions/reorderEvery``, with its number.
    private var heldWrite: (bytes: [UInt8], number: Int)?
    private var writesArrived = 0
    /// Writes delivered after the one that followed them.
    private(set) var reorderedWrites = 0
    /// With `reorderEvery`: packets the device took, in a row up to now, that came in one write each.
    private(set) var trailingOneWritePackets = 0
    private var piecesOfCurrentPacket = 0

    /// One write as it reaches the device: in order, or held behind the next (``FakeBlueZOptions/reorderEvery``).
    private func receive(_ bytes: [UInt8]) async {
        guard options.reorderEvery > 0 else { return await deliver(bytes) }
        writesArrived += 1
        if let held = heldWrite {
            heldWrite = nil
            reorderedWrites += 1
            await deliver(bytes)
            await deliver(held.bytes)
            return
        }
        guard writesArrived % options.reorderEvery == 0 else { return await deliver(bytes) }
        let number = writesArrived
        heldWrite = (bytes, number)
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(30))
            await self?.flushHeldWrite(number)
        }
    }

    private func flushHeldWrite(_ number: Int) async {
        guard let held = heldWrite, held.number == number else { return }
        heldWrite = nil
        await deliver(held.bytes)
    }

    /// One write of at most MTU−3 bytes: reassemble, let the server answer, notify in MTU−3 pieces.
    private func deliver(_ bytes: [UInt8]) async {
        writes += 1
        largestWrite = max(largestWrite, bytes.count)
        var packets: [[UInt8]] = []
        if options.reorderEvery > 0 {
            piecesOfCurrentPacket += 1
            switch zephyrReassembly.collect(bytes) {
            case .packet(let packet):
                packets = [packet]
                trailingOneWritePackets = piecesOfCurrentPacket == 1 ? trailingOneWritePackets + 1 : 0
                piecesOfCurrentPacket = 0
            case .refused:
                piecesOfCurrentPacket = 0
            case .incomplete:
                break
            }
        } else {
            do {
                packets = try reassembler.append(bytes)
            } catch {
                return
            }
        }
        for packet in packets {
            let reply = await server.handle(packet)
            for response in reply.responses { await notify(response) }
            let isReset = packet.count >= 8 && packet[0] & 0x07 == 2 && packet[4] == 0 && packet[5] == 0 && packet[7] == 5
            if reply.disconnect || isReset {
                await dropLink()
                return
            }
        }
    }

    private func notify(_ packet: [UInt8]) async {
        let piece = options.mtu - 3
        var start = 0
        while start < packet.count {
            let chunk = Array(packet[start..<min(start + piece, packet.count)])
            start += chunk.count
            notifications += 1
            largestNotification = max(largestNotification, chunk.count)
            if let socket = notifySocket {
                _ = sendDatagram(fd: socket.mine, chunk)
            } else if notifying {
                await changed(.characteristic, BlueZ.gattCharacteristicInterface, ["Value": .bytes(chunk)])
            }
        }
    }

    private func closeSockets() {
        for socket in [writeSocket, notifySocket].compactMap({ $0 }) {
            close(socket.mine)
            close(socket.given)
        }
        writeSocket = nil
        notifySocket = nil
    }

    /// The link drops: sockets hang up, Connected and ServicesResolved turn false (BlueZ keeps the GATT objects).
    func dropLink() async {
        linkGeneration += 1
        closeSockets()
        let reader = writeReader
        writeReader = nil
        await reader?.stop()
        reassembler.reset()
        zephyrReassembly.reset()
        connected = false
        servicesResolved = false
        notifying = false
        await changed(.device, BlueZ.deviceInterface, ["Connected": .bool(false), "ServicesResolved": .bool(false)])
    }
}

/// One exported object of the fake; calls go to the actor.
struct FakeObject: DBusObjectHandler {
    enum Role: Sendable { case root, agentManager, adapter, device, service, characteristic, gattService, serverFeatures }
    let fake: FakeBlueZ
    let role: Role

    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        try await fake.handle(role, call)
    }

    func properties(of interface: String) async -> [String: DBusValue]? {
        await fake.propertiesForGet(of: role, interface: interface)
    }

    func setProperty(interface: String, name: String, value: DBusValue) async throws(DBusError) {
        try await fake.setProperty(role, interface: interface, name: name, value: value)
    }
}
