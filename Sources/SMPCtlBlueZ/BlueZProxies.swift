import SMPCtlPOSIX
public import SMPCtlDBus

/// Names BlueZ uses on D-Bus, and the SMP GATT UUIDs.
public enum BlueZ {
    /// bluetoothd's bus name.
    public static let serviceName = "org.bluez"
    public static let adapterInterface = "org.bluez.Adapter1"
    public static let deviceInterface = "org.bluez.Device1"
    public static let agentManagerInterface = "org.bluez.AgentManager1"
    public static let agentInterface = "org.bluez.Agent1"
    /// Where bluetoothd exports `AgentManager1`.
    public static let agentManagerPath = "/org/bluez"
    public static let gattServiceInterface = "org.bluez.GattService1"
    public static let gattCharacteristicInterface = "org.bluez.GattCharacteristic1"
    /// The SMP service UUID, lower-case as BlueZ writes it.
    public static let smpServiceUUID = "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
    /// The SMP characteristic UUID, lower-case as BlueZ writes it.
    public static let smpCharacteristicUUID = "da2e7828-fbce-4e01-ae9e-261174997c48"
    /// The ATT MTU before any exchange.
    public static let defaultMTU = 23
}

/// `org.freedesktop.DBus.ObjectManager` at bluetoothd's root.
public struct BlueZObjectManagerProxy: Sendable {
    public let bus: BusConnection
    public init(bus: BusConnection) { self.bus = bus }

    /// Every object with its interfaces and their properties (`a{oa{sa{sv}}}`).
    public func managedObjects() async throws(DBusError) -> [String: [String: [String: DBusValue]]] {
        let reply = try await bus.call(
            destination: BlueZ.serviceName, path: "/", interface: DBusInterface.objectManager,
            member: "GetManagedObjects", timeout: .seconds(10))
        guard let objects = reply.first?.stringKeyedDictionary else {
            throw DBusError(.invalidReply, "GetManagedObjects did not return a{oa{sa{sv}}}")
        }
        var result: [String: [String: [String: DBusValue]]] = [:]
        for (path, interfaces) in objects {
            result[path] = interfacesAndProperties(interfaces)
        }
        return result
    }
}

/// Decodes an `a{sa{sv}}` value.
func interfacesAndProperties(_ value: DBusValue) -> [String: [String: DBusValue]] {
    var result: [String: [String: DBusValue]] = [:]
    for (name, properties) in value.stringKeyedDictionary ?? [:] {
        result[name] = properties.stringKeyedDictionary ?? [:]
    }
    return result
}

/// `org.bluez.Adapter1` of one adapter.
public struct BlueZAdapterProxy: Sendable {
    public let bus: BusConnection
    /// Such as `/org/bluez/hci0`.
    public let path: String
    public init(bus: BusConnection, path: String) {
        self.bus = bus
        self.path = path
    }

    /// Restricts discovery, for example to LE devices advertising `uuids`.
    public func setDiscoveryFilter(uuids: [String], transport: String = "le") async throws(DBusError) {
        var filter: [String: DBusValue] = ["Transport": .string(transport)]
        if !uuids.isEmpty { filter["UUIDs"] = .strings(uuids) }
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.adapterInterface, member: "SetDiscoveryFilter",
            arguments: [.propertyDictionary(filter)])
    }

    public func startDiscovery(timeout: Duration = BusConnection.defaultTimeout) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.adapterInterface, member: "StartDiscovery",
            timeout: timeout)
    }

    public func stopDiscovery(timeout: Duration = BusConnection.defaultTimeout) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.adapterInterface, member: "StopDiscovery",
            timeout: timeout)
    }

    /// Whether the adapter is powered.
    public func isPowered() async throws(DBusError) -> Bool {
        let value = try await bus.property(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.adapterInterface, name: "Powered")
        return value.boolValue ?? false
    }
}

/// `org.bluez.Device1` of one device.
public struct BlueZDeviceProxy: Sendable {
    public let bus: BusConnection
    /// Such as `/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF`.
    public let path: String
    public init(bus: BusConnection, path: String) {
        self.bus = bus
        self.path = path
    }

    /// Connects; for LE this also starts GATT discovery (wait for `ServicesResolved` afterwards).
    public func connect(timeout: Duration) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.deviceInterface, member: "Connect",
            timeout: timeout)
    }

    /// Pairs (and bonds, when both sides allow it) through the agent registered by this connection,
    /// or the default agent. Errors per `doc/org.bluez.Device.rst`: `AlreadyExists` (paired already),
    /// `AuthenticationFailed`, `AuthenticationCanceled`, `AuthenticationRejected`,
    /// `AuthenticationTimeout`, `ConnectionAttemptFailed`, `Failed`, `InProgress`.
    public func pair(timeout: Duration) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.deviceInterface, member: "Pair",
            timeout: timeout)
    }

    /// Asks bluetoothd to stop a pairing under way, without waiting for the answer (a pairing that
    /// stalled may keep the answer from coming).
    public func requestCancelPairing() async throws(DBusError) {
        try await bus.send(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.deviceInterface, member: "CancelPairing")
    }

    /// Sets `Trusted`, so that bluetoothd accepts the device's later connections without asking an agent.
    public func setTrusted(_ trusted: Bool, timeout: Duration = .seconds(10)) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: DBusInterface.properties, member: "Set",
            arguments: [.string(BlueZ.deviceInterface), .string("Trusted"), .variant(.bool(trusted))],
            timeout: timeout)
    }

    /// Every `Device1` property as bluetoothd has it now (`Properties.GetAll`), for re-reading a
    /// state whose `PropertiesChanged` never came.
    public func properties(timeout: Duration = .seconds(5)) async throws(DBusError) -> [String: DBusValue] {
        let reply = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: DBusInterface.properties, member: "GetAll",
            arguments: [.string(BlueZ.deviceInterface)], timeout: timeout)
        guard let dictionary = reply.first?.stringKeyedDictionary else {
            throw DBusError(.invalidReply, "Properties.GetAll of \(path) returned no dictionary")
        }
        return dictionary.mapValues(\.unwrapped)
    }

    public func disconnect() async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.deviceInterface, member: "Disconnect",
            timeout: .seconds(10))
    }

    /// Asks for the disconnect without waiting for it. bluetoothd answers `Disconnect` only after
    /// its disconnect timer (2 s in BlueZ 5.66, `src/device.c`), but disconnects all the same
    /// when nobody waits for the answer.
    public func requestDisconnect() async throws(DBusError) {
        try await bus.send(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.deviceInterface, member: "Disconnect")
    }
}

/// `org.bluez.GattCharacteristic1` of one characteristic.
public struct BlueZCharacteristicProxy: Sendable {
    public let bus: BusConnection
    public let path: String
    public init(bus: BusConnection, path: String) {
        self.bus = bus
        self.path = path
    }

    /// A socket for Write Commands and the ATT MTU. The caller owns (and closes) the descriptor.
    public func acquireWrite(timeout: Duration = .seconds(10)) async throws(DBusError) -> (fd: Int32, mtu: Int) {
        try await acquire("AcquireWrite", timeout: timeout)
    }

    /// A socket that receives notifications and the ATT MTU. The caller owns (and closes) the descriptor.
    public func acquireNotify(timeout: Duration = .seconds(10)) async throws(DBusError) -> (fd: Int32, mtu: Int) {
        try await acquire("AcquireNotify", timeout: timeout)
    }

    private func acquire(_ member: String, timeout: Duration) async throws(DBusError) -> (fd: Int32, mtu: Int) {
        let reply = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.gattCharacteristicInterface, member: member,
            arguments: [.propertyDictionary([:])], timeout: timeout)
        var fd: Int32 = -1
        var mtu: Int?
        for value in reply {
            if case .unixFD(let descriptor) = value {
                fd = descriptor
            } else if let number = value.integerValue {
                mtu = number
            }
        }
        guard fd >= 0, let mtu else {
            if fd >= 0 { closeDescriptor(fd) }
            throw DBusError(.invalidReply, "\(member) did not return (h fd, q mtu)")
        }
        return (fd, mtu)
    }

    /// Writes without response (`type: command`); `value` must fit one ATT PDU (MTU−3 bytes).
    public func writeCommand(_ value: [UInt8]) async throws(DBusError) {
        try await writeValue(value, type: "command", timeout: .seconds(10))
    }

    /// `WriteValue` with type `request`: an ATT Write Request, answered once the device's ATT
    /// layer took the value. BlueZ sends it whatever the characteristic's flags say
    /// (src/gatt-client.c, `characteristic_write_value`), and Zephyr's GATT server checks only
    /// the attribute's permissions, not its properties (subsys/bluetooth/host/gatt.c,
    /// `bt_gatt_check_perm`), so the SMP characteristic takes it.
    public func writeRequest(_ value: [UInt8], timeout: Duration = .seconds(10)) async throws(DBusError) {
        try await writeValue(value, type: "request", timeout: timeout)
    }

    private func writeValue(_ value: [UInt8], type: String, timeout: Duration) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.gattCharacteristicInterface,
            member: "WriteValue", arguments: [.bytes(value), .propertyDictionary(["type": .string(type)])],
            timeout: timeout)
    }

    /// Starts notifications, which then arrive as `PropertiesChanged` of `Value`.
    public func startNotify(timeout: Duration = .seconds(10)) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.gattCharacteristicInterface,
            member: "StartNotify", timeout: timeout)
    }

    public func stopNotify(timeout: Duration = .seconds(10)) async throws(DBusError) {
        _ = try await bus.call(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.gattCharacteristicInterface,
            member: "StopNotify", timeout: timeout)
    }

    /// Asks for `StopNotify` without waiting for the answer.
    public func requestStopNotify() async throws(DBusError) {
        try await bus.send(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.gattCharacteristicInterface,
            member: "StopNotify")
    }

    /// The ATT MTU (BlueZ 5.62 and later).
    public func mtu(timeout: Duration = .seconds(10)) async throws(DBusError) -> Int {
        let value = try await bus.property(
            destination: BlueZ.serviceName, path: path, interface: BlueZ.gattCharacteristicInterface, name: "MTU",
            timeout: timeout)
        guard let mtu = value.integerValue else { throw DBusError(.invalidReply, "MTU is not a number") }
        return mtu
    }
}
