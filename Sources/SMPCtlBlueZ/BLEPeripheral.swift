import SMPCtlDBus
public import SMPCtlTransport
import SMPCtlProtocol

/// Serves an SMP server as a BLE peripheral through BlueZ: a GATT application with the SMP
/// service, registered with `GattManager1`, and an advertisement registered with
/// `LEAdvertisingManager1`.
///
/// Writes to the SMP characteristic are gathered into packets as Zephyr's BLE transport does
/// (``SMPServerReassembly``: with `CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY` a request of up to the
/// server's net_buf size spans several writes; without it every write is a whole packet). Each
/// response goes back as notifications (PropertiesChanged on `Value`) of at most MTU−3 bytes.
public final class BLEPeripheral: Sendable {
    /// The largest notification sent. A BlueZ 5.66 peripheral drops write commands over 510 bytes
    /// (see shared notes); notifications are kept within the same bound to be safe. Requests are
    /// not bounded by it: a central splits them across writes and the peripheral reassembles.
    public static let maximumValueLength = 510

    /// The link security the SMP characteristic demands, as Zephyr's
    /// `CONFIG_MCUMGR_TRANSPORT_BT_PERM_RW*` choices do (subsys/mgmt/mcumgr/transport/src/smp_bt.c,
    /// `SMP_GATT_PERM`: the characteristic's write and its CCC descriptor need an encrypted, or an
    /// encrypted and authenticated (MITM-protected), link). BlueZ refuses the notification
    /// subscription on a weaker link and drops the writes.
    public enum Security: String, Sendable, Hashable, CaseIterable {
        /// `CONFIG_MCUMGR_TRANSPORT_BT_PERM_RW`: any link.
        case open
        /// `CONFIG_MCUMGR_TRANSPORT_BT_PERM_RW_ENCRYPT`: an encrypted link (Just Works pairing will do).
        case encrypt
        /// `CONFIG_MCUMGR_TRANSPORT_BT_PERM_RW_AUTHEN`: an authenticated link (passkey or numeric comparison).
        case authenticate

        /// The characteristic's BlueZ flags (src/gatt-database.c, `parse_chrc_flags`). The
        /// `encrypt-*-write` flags also announce write-with-response, which Zephyr's does not.
        var characteristicFlags: [String] {
            switch self {
            case .open: ["write-without-response", "notify"]
            case .encrypt: ["write-without-response", "encrypt-write", "encrypt-notify"]
            case .authenticate:
                ["write-without-response", "encrypt-authenticated-write", "encrypt-authenticated-notify"]
            }
        }
    }

    /// EATT-style reordering of incoming writes: bluetoothd spreads the writes of one client over
    /// several ATT bearers, so a later write can reach the application first. A write drawn with
    /// probability `rate` is held back and handed on right after the next write, or after
    /// `holdTime` if none comes.
    public struct WriteReordering: Sendable, Hashable {
        public var rate: Double
        public var seed: UInt64
        public var holdTime: Duration

        public init(rate: Double, seed: UInt64 = 1, holdTime: Duration = .milliseconds(30)) {
            self.rate = rate
            self.seed = seed
            self.holdTime = holdTime
        }
    }

    /// Object paths of the exported application.
    public static let applicationPath = "/org/smpctl/peripheral"
    static let servicePath = applicationPath + "/service0"
    static let characteristicPath = servicePath + "/char0"
    static let advertisementPath = applicationPath + "/advertisement0"
    static let agentPath = applicationPath + "/agent"

    static let gattManagerInterface = "org.bluez.GattManager1"
    static let advertisingManagerInterface = "org.bluez.LEAdvertisingManager1"
    static let advertisementInterface = "org.bluez.LEAdvertisement1"

    private let bus: BusConnection
    /// The adapter's object path, such as `/org/bluez/hci0`.
    public let adapterPath: String
    /// The advertised local name.
    public let name: String
    private let characteristic: PeripheralCharacteristic
    /// The adapter's alias before it was set to `name`, restored by ``stop()``.
    private let previousAlias: String?
    /// Whether a pairing agent was registered (``Security`` other than open), unregistered by ``stop()``.
    private let hasAgent: Bool

    private init(bus: BusConnection, adapterPath: String, name: String, characteristic: PeripheralCharacteristic,
        previousAlias: String?, hasAgent: Bool)
    {
        self.bus = bus
        self.adapterPath = adapterPath
        self.name = name
        self.characteristic = characteristic
        self.previousAlias = previousAlias
        self.hasAgent = hasAgent
    }

    private static func setAlias(_ alias: String, bus: BusConnection, adapterPath: String) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: adapterPath, interface: DBusInterface.properties, member: "Set",
            arguments: [.string(BlueZ.adapterInterface), .string("Alias"), .variant(.string(alias))], timeout: .seconds(5))
    }

    /// Exports the GATT application and the advertisement and registers both on the adapter.
    ///
    /// - Parameters:
    ///   - server: answers the SMP requests.
    ///   - adapter: an adapter name such as `hci0`; `nil` takes the first powered adapter.
    ///   - name: the advertised local name.
    ///   - busAddress: a D-Bus address; `nil` uses the system bus.
    ///   - writeReordering: reorder incoming writes as EATT can; `nil` keeps their order.
    ///   - security: the link security the characteristic demands.
    public static func start(
        server: any SMPPacketServer, adapter: String?, name: String, busAddress: String? = nil,
        writeReordering: WriteReordering? = nil, security: Security = .open
    ) async throws(BlueZError) -> BLEPeripheral {
        let bus: BusConnection
        do {
            bus = try await BusConnection.connect(address: busAddress ?? BusConnection.systemBusAddress())
        } catch {
            throw BlueZError.from(error, while: "connecting to the system bus")
        }
        do throws(BlueZError) {
            let model: BlueZObjectModel
            do {
                model = try await BlueZObjectModel.load(bus: bus)
            } catch {
                throw BlueZError.from(error, while: "reading BlueZ's objects")
            }
            let chosen = try await BLETransport.chooseAdapter(model: model, name: adapter)
            await model.stop()

            // A central that connects reads the GAP device name, which is the adapter's alias, and
            // BlueZ then names the device by it: set it to `name` so the device keeps one name.
            let previousAlias = (try? await bus.property(
                destination: BlueZ.serviceName, path: chosen.path, interface: BlueZ.adapterInterface, name: "Alias"))?
                .stringValue
            if previousAlias != name {
                do {
                    try await setAlias(name, bus: bus, adapterPath: chosen.path)
                } catch {
                    throw BlueZError.from(error, while: "setting the name of \(chosen.name)")
                }
            }
            let characteristic = PeripheralCharacteristic(
                bus: bus, server: server, reordering: writeReordering, security: security)
            do {
                try await bus.export(ApplicationObject(security: security), at: applicationPath)
                try await bus.export(ServiceObject(), at: servicePath)
                try await bus.export(characteristic, at: characteristicPath)
                try await bus.export(AdvertisementObject(name: name), at: advertisementPath)
            } catch {
                throw BlueZError.from(error, while: "exporting the GATT application")
            }
            do {
                _ = try await bus.call(
                    destination: BlueZ.serviceName, path: chosen.path, interface: gattManagerInterface,
                    member: "RegisterApplication", arguments: [.objectPath(applicationPath), .propertyDictionary([:])])
            } catch {
                throw BlueZError.from(error, while: "registering the SMP GATT service on \(chosen.name)")
            }
            do {
                _ = try await bus.call(
                    destination: BlueZ.serviceName, path: chosen.path, interface: advertisingManagerInterface,
                    member: "RegisterAdvertisement",
                    arguments: [.objectPath(advertisementPath), .propertyDictionary([:])])
            } catch {
                throw BlueZError.from(error, while: "registering the advertisement on \(chosen.name)")
            }
            if security != .open {
                // A central pairs before it may subscribe: accept Just Works, as a Zephyr device that
                // registers no pairing_confirm callback does (subsys/bluetooth/host/smp.c asks the
                // application for consent to Just Works only through that callback).
                try await BlueZPeripheralAgent.register(bus: bus, path: agentPath)
            }
            return BLEPeripheral(
                bus: bus, adapterPath: chosen.path, name: name, characteristic: characteristic,
                previousAlias: previousAlias == name ? nil : previousAlias, hasAgent: security != .open)
        } catch {
            await bus.close()
            throw error
        }
    }

    /// Unregisters the advertisement and the application and closes the bus connection.
    public func stop() async {
        _ = try? await bus.call(
            destination: BlueZ.serviceName, path: adapterPath, interface: Self.advertisingManagerInterface,
            member: "UnregisterAdvertisement", arguments: [.objectPath(Self.advertisementPath)], timeout: .seconds(2))
        _ = try? await bus.call(
            destination: BlueZ.serviceName, path: adapterPath, interface: Self.gattManagerInterface,
            member: "UnregisterApplication", arguments: [.objectPath(Self.applicationPath)], timeout: .seconds(2))
        if let previousAlias { try? await Self.setAlias(previousAlias, bus: bus, adapterPath: adapterPath) }
        if hasAgent { await BlueZPeripheralAgent.unregister(bus: bus, path: Self.agentPath) }
        await characteristic.finish()
        await bus.close()
    }

    /// Whether a central has notifications on.
    public var notifying: Bool { get async { await characteristic.notifying } }

    /// What the peripheral has received so far.
    public struct Statistics: Sendable, Hashable {
        /// Requests handed to the server.
        public var requests = 0
        /// The longest request, in bytes.
        public var largestRequest = 0
        /// The most writes one request was gathered from.
        public var mostWritesPerRequest = 0
        /// Writes refused (over the net_buf, not a header, past the expected length).
        public var refusedWrites = 0
    }

    /// What the peripheral has received so far.
    public var statistics: Statistics { get async { await characteristic.statistics } }

    // MARK: - Properties of the exported objects

    static var serviceProperties: [String: DBusValue] {
        [
            "UUID": .string(BlueZ.smpServiceUUID),
            "Primary": .bool(true),
            "Characteristics": .array(elementSignature: "o", [.objectPath(characteristicPath)]),
        ]
    }

    static func characteristicProperties(value: [UInt8], notifying: Bool, security: Security) -> [String: DBusValue] {
        [
            "UUID": .string(BlueZ.smpCharacteristicUUID),
            "Service": .objectPath(servicePath),
            "Flags": .strings(security.characteristicFlags),
            "Value": .bytes(value),
            "Notifying": .bool(notifying),
        ]
    }
}

/// The application root: answers `ObjectManager.GetManagedObjects` with the service and characteristic.
private struct ApplicationObject: DBusObjectHandler {
    let security: BLEPeripheral.Security

    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        guard call.member == "GetManagedObjects", call.interface == nil || call.interface == DBusInterface.objectManager
        else {
            throw DBusError(.unknownMethod, "no method \(call.member) at \(call.path)")
        }
        func entry(_ path: String, _ interface: String, _ properties: [String: DBusValue]) -> DBusDictionaryEntry {
            DBusDictionaryEntry(
                key: .objectPath(path),
                value: .dictionary(
                    keySignature: "s", valueSignature: "a{sv}",
                    [DBusDictionaryEntry(key: .string(interface), value: .propertyDictionary(properties))]))
        }
        let objects = DBusValue.dictionary(
            keySignature: "o", valueSignature: "a{sa{sv}}",
            [
                entry(BLEPeripheral.servicePath, BlueZ.gattServiceInterface, BLEPeripheral.serviceProperties),
                entry(
                    BLEPeripheral.characteristicPath, BlueZ.gattCharacteristicInterface,
                    BLEPeripheral.characteristicProperties(value: [], notifying: false, security: security)),
            ])
        return [objects]
    }
}

/// The SMP service object.
private struct ServiceObject: DBusObjectHandler {
    func properties(of interface: String) async -> [String: DBusValue]? {
        interface == BlueZ.gattServiceInterface ? BLEPeripheral.serviceProperties : nil
    }
}

/// The advertisement: connectable, with the SMP service UUID and the local name.
private struct AdvertisementObject: DBusObjectHandler {
    let name: String

    func properties(of interface: String) async -> [String: DBusValue]? {
        guard interface == BLEPeripheral.advertisementInterface else { return nil }
        return [
            "Type": .string("peripheral"),
            "ServiceUUIDs": .strings([BlueZ.smpServiceUUID]),
            "LocalName": .string(name),
        ]
    }

    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        guard call.member == "Release" else { throw DBusError(.unknownMethod, "no method \(call.member)") }
        return []
    }
}

/// What reaches the peripheral's SMP worker, in order.
private enum PeripheralInput: Sendable {
    /// One write of the central.
    case write([UInt8])
    /// Notifications were turned off: drop a partly gathered packet.
    case dropPartial
}

/// The SMP characteristic: takes writes, answers with notifications.
private actor PeripheralCharacteristic: DBusObjectHandler {
    private let bus: BusConnection
    private let server: any SMPPacketServer
    private(set) var notifying = false
    private var value: [UInt8] = []
    private var mtu = BlueZ.defaultMTU
    private let writes: AsyncStream<PeripheralInput>.Continuation
    private var worker: Task<Void, Never>?
    private let reordering: BLEPeripheral.WriteReordering?
    private let security: BLEPeripheral.Security
    private var reorderRandom: UInt64
    /// A write held back by the reordering, with a number that tells its flush timer apart.
    private var heldWrite: (bytes: [UInt8], number: Int)?
    private var heldCount = 0

    init(
        bus: BusConnection, server: any SMPPacketServer, reordering: BLEPeripheral.WriteReordering?,
        security: BLEPeripheral.Security
    ) {
        self.bus = bus
        self.server = server
        self.reordering = reordering
        self.security = security
        self.reorderRandom = reordering?.seed ?? 0
        let (stream, continuation) = AsyncStream<PeripheralInput>.makeStream(bufferingPolicy: .unbounded)
        self.writes = continuation
        Task { await self.run(stream) }
    }

    private func run(_ stream: AsyncStream<PeripheralInput>) {
        let limits = server.frameLimits
        worker = Task { [weak self] in
            // smp_bt_chr_write + smp_reassembly_collect (subsys/mgmt/mcumgr/transport/src/smp_bt.c,
            // smp_reassembly.c): refused writes are lost without a word to the central.
            var reassembly = SMPServerReassembly(netbufSize: limits.netbufSize, reassembles: limits.bleReassembly)
            var writes = 0
            for await input in stream {
                guard case .write(let fragment) = input else {
                    // Zephyr's smp_bt_ccc_changed (subsys/mgmt/mcumgr/transport/src/smp_bt.c): when
                    // notifications turn off (the central unsubscribed, or the link dropped and the
                    // CCC of an unbonded peer was cleared), smp_reassembly_drop discards the packet
                    // gathered so far.
                    reassembly.reset()
                    writes = 0
                    continue
                }
                writes += 1
                let outcome = reassembly.collect(fragment)
                guard case .packet(let packet) = outcome else {
                    if case .refused = outcome {
                        writes = 0
                        await self?.count(refused: true, packet: 0, writes: 0)
                    }
                    continue
                }
                guard let self else { return }
                await self.count(refused: false, packet: packet.count, writes: writes)
                writes = 0
                let reply = await self.server.handle(packet)
                if let deliverAt = reply.deliverAt { try? await Task.sleep(until: deliverAt, clock: .continuous) }
                for response in reply.responses { await self.notify(response) }
            }
        }
    }

    private(set) var statistics = BLEPeripheral.Statistics()

    private func count(refused: Bool, packet: Int, writes: Int) {
        if refused {
            statistics.refusedWrites += 1
            return
        }
        statistics.requests += 1
        statistics.largestRequest = max(statistics.largestRequest, packet)
        statistics.mostWritesPerRequest = max(statistics.mostWritesPerRequest, writes)
    }

    func finish() {
        if let held = heldWrite {
            heldWrite = nil
            writes.yield(.write(held.bytes))
        }
        writes.finish()
        worker?.cancel()
    }

    /// Hands a write to the worker, possibly out of order (``BLEPeripheral/WriteReordering``).
    private func receive(_ bytes: [UInt8]) {
        guard let reordering, reordering.rate > 0 else {
            writes.yield(.write(bytes))
            return
        }
        if let held = heldWrite {
            heldWrite = nil
            writes.yield(.write(bytes))
            writes.yield(.write(held.bytes))
            return
        }
        // SplitMix64, as the simulator's faults use.
        reorderRandom &+= 0x9E37_79B9_7F4A_7C15
        var z = reorderRandom
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        guard Double(z >> 11) / Double(UInt64(1) << 53) < reordering.rate else {
            writes.yield(.write(bytes))
            return
        }
        heldCount &+= 1
        let number = heldCount
        heldWrite = (bytes, number)
        let holdTime = reordering.holdTime
        Task { [weak self] in
            try? await Task.sleep(for: holdTime)
            await self?.flushHeld(number)
        }
    }

    private func flushHeld(_ number: Int) {
        guard let held = heldWrite, held.number == number else { return }
        heldWrite = nil
        writes.yield(.write(held.bytes))
    }

    /// Sends one response as notifications of at most MTU−3 (and at most 510) bytes.
    private func notify(_ response: [UInt8]) async {
        guard notifying else { return }
        let piece = max(1, min(mtu - 3, BLEPeripheral.maximumValueLength))
        var start = 0
        while start < response.count {
            let chunk = Array(response[start..<min(start + piece, response.count)])
            start += chunk.count
            value = chunk
            try? await bus.emitPropertiesChanged(
                path: BLEPeripheral.characteristicPath, interface: BlueZ.gattCharacteristicInterface,
                changed: ["Value": .bytes(chunk)])
        }
    }

    func properties(of interface: String) async -> [String: DBusValue]? {
        guard interface == BlueZ.gattCharacteristicInterface else { return nil }
        return BLEPeripheral.characteristicProperties(value: value, notifying: notifying, security: security)
    }

    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        switch call.member {
        case "WriteValue":
            guard let bytes = call.arguments.first?.byteArray else {
                throw DBusError("org.bluez.Error.InvalidArguments", "WriteValue takes a byte array and options")
            }
            if call.arguments.count > 1, let options = call.arguments[1].stringKeyedDictionary,
                let reported = options["mtu"]?.integerValue, reported >= BlueZ.defaultMTU
            {
                mtu = reported
            }
            receive(bytes)
            return []
        case "ReadValue":
            return [.bytes(value)]
        case "StartNotify":
            notifying = true
            return []
        case "StopNotify":
            notifying = false
            writes.yield(.dropPartial)
            return []
        default:
            throw DBusError("org.bluez.Error.NotSupported", "\(call.member) is not supported")
        }
    }
}
