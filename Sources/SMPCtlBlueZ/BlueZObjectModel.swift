public import SMPCtlDBus

/// An adapter as the object model sees it.
public struct BlueZAdapterInfo: Sendable, Hashable {
    public var path: String
    /// The interface name, such as `hci0`.
    public var name: String { path.split(separator: "/").last.map(String.init) ?? path }
    public var address: String
    public var powered: Bool
    public var discovering: Bool
}

/// A device as the object model sees it.
public struct BlueZDeviceInfo: Sendable, Hashable {
    public var path: String
    public var adapterPath: String
    public var address: String
    /// `public` or `random`.
    public var addressType: String
    public var name: String?
    public var alias: String?
    /// Present only while discovering.
    public var rssi: Int?
    public var connected: Bool
    public var servicesResolved: Bool
    public var paired: Bool
    /// Keys are stored (`Bonded`; false when this BlueZ does not report the property).
    public var bonded: Bool = false
    /// bluetoothd accepts the device without asking an agent.
    public var trusted: Bool = false
    /// Advertised or resolved service UUIDs, lower-case.
    public var uuids: [String]

    /// Whether the device advertises (or has) the SMP service.
    public var hasSMPService: Bool { uuids.contains(BlueZ.smpServiceUUID) }
}

/// A GATT characteristic as the object model sees it.
public struct BlueZCharacteristicInfo: Sendable, Hashable {
    public var path: String
    public var servicePath: String
    public var uuid: String
    public var flags: [String]
    /// The ATT MTU, when BlueZ reports it (5.62 and later).
    public var mtu: Int?
}

/// BlueZ's objects, read through `GetManagedObjects` and kept current from
/// `InterfacesAdded`, `InterfacesRemoved` and `PropertiesChanged`.
public actor BlueZObjectModel {
    /// Every object: path → interface → property → value.
    public private(set) var objects: [String: [String: [String: DBusValue]]] = [:]
    private var tasks: [Task<Void, Never>] = []

    private init() {}

    /// Subscribes to the signals, then reads every object.
    ///
    /// - Throws: the D-Bus error of `GetManagedObjects`, such as `ServiceUnknown` when bluetoothd is not running.
    public static func load(bus: BusConnection) async throws(DBusError) -> BlueZObjectModel {
        let model = BlueZObjectModel()
        // One stream for the three kinds, so that the model sees them in the bus's order.
        let signals = try await bus.signals(matchingAny: [
            .interfacesAdded(sender: BlueZ.serviceName),
            .interfacesRemoved(sender: BlueZ.serviceName),
            .propertiesChanged(sender: BlueZ.serviceName, pathNamespace: "/org/bluez"),
        ])
        await model.follow(signals)
        do {
            let snapshot = try await BlueZObjectManagerProxy(bus: bus).managedObjects()
            await model.merge(snapshot)
        } catch {
            await model.stop()
            throw error
        }
        return model
    }

    private func follow(_ signals: AsyncStream<DBusSignal>) {
        tasks.append(Task { [weak self] in
            for await signal in signals {
                await self?.apply(signal)
            }
        })
    }

    private func apply(_ signal: DBusSignal) {
        switch (signal.interface, signal.member) {
        case (DBusInterface.objectManager, "InterfacesAdded"):
            guard let path = signal.arguments.first?.stringValue, signal.arguments.count >= 2 else { return }
            addInterfaces(path: path, interfaces: interfacesAndProperties(signal.arguments[1]))
        case (DBusInterface.objectManager, "InterfacesRemoved"):
            guard let path = signal.arguments.first?.stringValue, signal.arguments.count >= 2 else { return }
            removeInterfaces(path: path, interfaces: signal.arguments[1].stringArray ?? [])
        case (DBusInterface.properties, "PropertiesChanged"):
            guard signal.arguments.count >= 2, let interface = signal.arguments[0].stringValue else { return }
            let values = signal.arguments[1].stringKeyedDictionary ?? [:]
            let invalidated = signal.arguments.count > 2 ? signal.arguments[2].stringArray ?? [] : []
            changeProperties(path: signal.path, interface: interface, values: values, invalidated: invalidated)
        default:
            return
        }
    }

    /// Stops following the signals.
    public func stop() {
        for task in tasks { task.cancel() }
        tasks = []
    }

    /// Replaces the cached properties of `interface` at `path` with ones read from bluetoothd, for a
    /// change whose `PropertiesChanged` never came (see ``BLETransport``'s wait for `ServicesResolved`).
    public func refresh(path: String, interface: String, properties: [String: DBusValue]) {
        addInterfaces(path: path, interfaces: [interface: properties])
    }

    private func merge(_ snapshot: [String: [String: [String: DBusValue]]]) {
        for (path, interfaces) in snapshot { addInterfaces(path: path, interfaces: interfaces) }
    }

    private func addInterfaces(path: String, interfaces: [String: [String: DBusValue]]) {
        for (name, properties) in interfaces {
            objects[path, default: [:]][name, default: [:]].merge(properties) { _, new in new }
        }
    }

    private func removeInterfaces(path: String, interfaces: [String]) {
        for name in interfaces { objects[path]?[name] = nil }
        if objects[path]?.isEmpty == true { objects[path] = nil }
    }

    private func changeProperties(path: String, interface: String, values: [String: DBusValue], invalidated: [String]) {
        // Only objects already known: a change for an unknown object is not enough to build one.
        guard objects[path]?[interface] != nil else { return }
        // Notification values are the transport's business; do not copy every one into the cache.
        let kept = interface == BlueZ.gattCharacteristicInterface ? values.filter { $0.key != "Value" } : values
        objects[path]?[interface]?.merge(kept) { _, new in new }
        for name in invalidated { objects[path]?[interface]?[name] = nil }
    }

    // MARK: - Typed views

    public var adapters: [BlueZAdapterInfo] {
        objects.compactMap { path, interfaces -> BlueZAdapterInfo? in
            guard let properties = interfaces[BlueZ.adapterInterface] else { return nil }
            return BlueZAdapterInfo(
                path: path, address: properties["Address"]?.stringValue ?? "",
                powered: properties["Powered"]?.boolValue ?? false,
                discovering: properties["Discovering"]?.boolValue ?? false)
        }.sorted { $0.path < $1.path }
    }

    public var devices: [BlueZDeviceInfo] {
        objects.compactMap { path, interfaces -> BlueZDeviceInfo? in
            guard let properties = interfaces[BlueZ.deviceInterface] else { return nil }
            return BlueZDeviceInfo(
                path: path, adapterPath: properties["Adapter"]?.stringValue ?? parentPath(path),
                address: properties["Address"]?.stringValue ?? "",
                addressType: properties["AddressType"]?.stringValue ?? "public",
                name: properties["Name"]?.stringValue, alias: properties["Alias"]?.stringValue,
                rssi: properties["RSSI"]?.integerValue, connected: properties["Connected"]?.boolValue ?? false,
                servicesResolved: properties["ServicesResolved"]?.boolValue ?? false,
                paired: properties["Paired"]?.boolValue ?? false,
                bonded: properties["Bonded"]?.boolValue ?? false, trusted: properties["Trusted"]?.boolValue ?? false,
                uuids: (properties["UUIDs"]?.stringArray ?? []).map { $0.lowercased() })
        }.sorted { $0.path < $1.path }
    }

    public func device(at path: String) -> BlueZDeviceInfo? { devices.first { $0.path == path } }

    /// The characteristics under `devicePath` with `uuid`, in a service with `serviceUUID`.
    public func characteristics(of devicePath: String, uuid: String, serviceUUID: String) -> [BlueZCharacteristicInfo] {
        objects.compactMap { path, interfaces -> BlueZCharacteristicInfo? in
            guard path.hasPrefix(devicePath + "/"), let properties = interfaces[BlueZ.gattCharacteristicInterface],
                properties["UUID"]?.stringValue?.lowercased() == uuid.lowercased()
            else { return nil }
            let servicePath = properties["Service"]?.stringValue ?? parentPath(path)
            let service = objects[servicePath]?[BlueZ.gattServiceInterface]
            guard service?["UUID"]?.stringValue?.lowercased() == serviceUUID.lowercased() else { return nil }
            return BlueZCharacteristicInfo(
                path: path, servicePath: servicePath, uuid: uuid.lowercased(),
                flags: properties["Flags"]?.stringArray ?? [], mtu: properties["MTU"]?.integerValue)
        }.sorted { $0.path < $1.path }
    }

    /// Waits until `condition` returns a value, checking every 20 ms; `nil` after `timeout` or on cancellation.
    public func wait<T: Sendable>(timeout: Duration, _ condition: @Sendable (isolated BlueZObjectModel) -> T?) async
        -> T?
    {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let value = condition(self) { return value }
            guard ContinuousClock.now < deadline, !Task.isCancelled else { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

private func parentPath(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
    return String(path[..<slash])
}
