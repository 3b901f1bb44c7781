import SMPCtlDBus

/// Discovers LE devices through BlueZ: those advertising the SMP service, or all.
public struct BlueZScanner: Sendable {
    /// An adapter name such as `hci1`; `nil` takes the first powered adapter.
    public var adapter: String?
    /// A D-Bus address; `nil` means the system bus (or `DBUS_SYSTEM_BUS_ADDRESS`).
    public var busAddress: String?
    /// List every device, not only those advertising the SMP service.
    public var includeAll: Bool
    /// How long one scan runs before discovery restarts, within the scan's duration: BlueZ 5.66's
    /// emulated controller reports a device's advertising once per scan, and a busy host can lose
    /// that report (bluez-vm-notes.md); the VM test saw three 10-second scans in a row miss it.
    public var rescanInterval: Duration = .seconds(4)

    public init(adapter: String? = nil, busAddress: String? = nil, includeAll: Bool = false) {
        self.adapter = adapter
        self.busAddress = busAddress
        self.includeAll = includeAll
    }

    /// Scans for `duration`; `onUpdate` runs whenever a listed device appears or changes (RSSI, name).
    /// Returns the devices seen, sorted by address.
    public func scan(for duration: Duration, onUpdate: @Sendable (BlueZDeviceInfo) -> Void = { _ in })
        async throws(BlueZError) -> [BlueZDeviceInfo]
    {
        let address = busAddress ?? BusConnection.systemBusAddress()
        let bus: BusConnection
        do {
            bus = try await BusConnection.connect(address: address)
        } catch {
            throw BlueZError.from(error, while: "connecting to the system D-Bus at \(address)")
        }
        defer { Task { await bus.close() } }
        let model: BlueZObjectModel
        do {
            model = try await BlueZObjectModel.load(bus: bus)
        } catch {
            throw BlueZError.from(error, while: "reading BlueZ's objects")
        }
        let chosen: BlueZAdapterInfo
        do {
            chosen = try await BLETransport.chooseAdapter(model: model, name: adapter)
        } catch {
            await model.stop()
            throw error
        }
        let proxy = BlueZAdapterProxy(bus: bus, path: chosen.path)
        try? await proxy.setDiscoveryFilter(uuids: includeAll ? [] : [BlueZ.smpServiceUUID])
        do {
            try await proxy.startDiscovery()
        } catch where error.name == .bluezInProgress {
        } catch {
            await model.stop()
            throw BlueZError.from(error, while: "starting discovery on \(chosen.name)")
        }
        var seen: [String: BlueZDeviceInfo] = [:]
        let deadline = ContinuousClock.now + duration
        var nextRescan = ContinuousClock.now + max(rescanInterval, .milliseconds(200))
        while !Task.isCancelled {
            if ContinuousClock.now >= nextRescan, ContinuousClock.now < deadline {
                // A fresh scan: the controller reports what advertises again.
                // Bounded by what is left of the scan, so a bluetoothd that stops answering cannot stretch it.
                let left = max(.milliseconds(100), deadline - ContinuousClock.now)
                try? await proxy.stopDiscovery(timeout: left)
                try? await proxy.startDiscovery(timeout: max(.milliseconds(100), deadline - ContinuousClock.now))
                nextRescan = ContinuousClock.now + max(rescanInterval, .milliseconds(200))
            }
            for device in await model.devices
            where device.adapterPath == chosen.path && (includeAll || device.hasSMPService) {
                if seen[device.path] != device {
                    seen[device.path] = device
                    onUpdate(device)
                }
            }
            guard ContinuousClock.now < deadline else { break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        try? await proxy.stopDiscovery()
        await model.stop()
        return seen.values.sorted { $0.address < $1.address }
    }
}
