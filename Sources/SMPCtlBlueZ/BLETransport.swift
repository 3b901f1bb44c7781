import Foundation
import SMPCtlDBus
import SMPCtlFiles
import SMPCtlPOSIX
import SMPCtlProtocol
public import SMPCtlTransport
import SMPCtlLocking

/// SMP over Bluetooth LE through BlueZ's D-Bus API: no root and no raw HCI; bluetoothd stays in charge.
///
/// `open` finds the device by name or address (discovering it first when BlueZ does not know it),
/// connects, waits for `ServicesResolved`, finds the SMP characteristic by UUID, and subscribes.
/// It prefers `AcquireWrite`/`AcquireNotify` sockets and falls back to `WriteValue` (type `command`)
/// and `StartNotify`. No write exceeds MTU−3 bytes. `open` again reconnects, as after a device reset.
public actor BLETransport: SMPTransport {
    /// Where and how to connect.
    public struct Configuration: Sendable {
        /// A device name (`Name` or `Alias`) or address (`AA:BB:CC:DD:EE:FF`).
        public var target: String
        /// An adapter name such as `hci1`; `nil` takes the first powered adapter.
        public var adapter: String?
        /// A D-Bus address; `nil` means the system bus (or `DBUS_SYSTEM_BUS_ADDRESS`).
        public var busAddress: String?
        /// How long to discover an unknown device.
        public var discoveryTimeout: Duration = .seconds(30)
        /// How long one scan runs before discovery restarts, within `discoveryTimeout`: a
        /// controller may report a device's advertising once per scan, and a busy host can lose
        /// that report (the kernel restarts an LE scan by itself only about every 10 s).
        public var rescanInterval: Duration = .seconds(4)
        /// While waiting for `ServicesResolved`, how often the device's properties are read again
        /// in case bluetoothd changed them without a `PropertiesChanged` signal.
        public var propertyResyncInterval: Duration = .seconds(1)
        /// How long `Connect` may take, and then again how long resolving services may take.
        public var connectTimeout: Duration = .seconds(30)
        /// How long each GATT setup call may take: `StopNotify`/`AcquireNotify` or `StartNotify`
        /// (notification subscription), `AcquireWrite`, the `MTU` read; also each discovery call.
        public var gattTimeout: Duration = .seconds(10)
        /// Whether smpctl may pair when the device asks for an encrypted link.
        public var pairing: BLEPairingPolicy = .never
        /// How long `Device1.Pair` may take, a passkey entry included.
        public var pairingTimeout: Duration = .seconds(60)
        /// What the pairing agent answers; `nil` is Just Works (`NoInputNoOutput`).
        public var agentResponder: (any BlueZAgentResponder)?
        /// Try `AcquireWrite`/`AcquireNotify` before `WriteValue`/`StartNotify`.
        public var preferAcquiredSockets = true
        /// Write commands (the default) or write requests one at a time (``WriteMode``).
        public var writeMode: WriteMode = .command
        /// Disconnect the device on `close()`.
        public var disconnectOnClose = true
        /// bluetoothd's configuration, read for its `[GATT] Channels` (EATT bearers); `nil` skips
        /// the EATT check (every request may then span several writes).
        public var bluetoothConfigurationPath: String? = "/etc/bluetooth/main.conf"

        public init(target: String, adapter: String? = nil, busAddress: String? = nil) {
            self.target = target
            self.adapter = adapter
            self.busAddress = busAddress
        }
    }

    /// How bytes move in one direction.
    public enum DataPath: String, Sendable {
        /// A socket from `AcquireWrite` or `AcquireNotify`.
        case socket
        /// `WriteValue` (type `command`) or `StartNotify` with `PropertiesChanged`.
        case dbus
    }

    /// How writes go out.
    public enum WriteMode: String, Sendable {
        /// Write commands (write without response): streamed, as many per connection event as
        /// the link carries. On a link with several bearers each request is kept to one write.
        case command
        /// Write requests: `WriteValue` type `request`, each answered before the next. They keep
        /// their order across EATT bearers, so a request may span several writes on any link, at
        /// the cost of an ATT round trip per write (BENCHMARKS.md, "BLE in the VM").
        case request
    }

    public nonisolated let description: String
    public let configuration: Configuration
    /// The ATT MTU of the current link.
    public private(set) var mtu = BlueZ.defaultMTU
    /// The write path of the current link.
    public private(set) var writePath: DataPath?
    /// The notification path of the current link.
    public private(set) var notifyPath: DataPath?
    /// Whether the current link likely runs several ATT bearers (EATT): the device's GATT server
    /// offers EATT and the local bluetoothd opens more than one channel. Writes and notifications
    /// may then arrive out of order, so every request is kept to one write.
    public private(set) var multipleBearers = false
    /// Whether every piece goes out as a write request, one at a time (``WriteMode/request``).
    /// bluetoothd hands each queued write to whichever bearer is free (src/shared/att.c,
    /// `pick_next_send_op`), so write commands can overtake each other on an EATT link; the next
    /// write request is queued only after the last one was answered, so the pieces arrive in
    /// order and a packet may span several writes again.
    public var orderedWrites: Bool { configuration.writeMode == .request }
    /// Writes made on the current and earlier links, for reports and tests.
    public private(set) var writeCount = 0
    /// The largest single write made.
    public private(set) var largestWrite = 0
    /// Why the last `open` failed, with the connect phase that failed or stalled.
    public private(set) var lastOpenError: BlueZError?

    private var bus: BusConnection?
    private var session: Session?
    private var sending = false
    private var sendWaiters: [CheckedContinuation<Void, Never>] = []

    private struct Session {
        let model: BlueZObjectModel
        let device: BlueZDeviceProxy
        let characteristic: BlueZCharacteristicProxy
        let link: LinkState
        var writeFD: Int32?
        var notifyFD: Int32?
        var reader: DescriptorReader?
        var tasks: [Task<Void, Never>] = []
        var startedNotify = false
    }

    public init(configuration: Configuration) {
        self.configuration = configuration
        var text = "ble \(configuration.target)"
        if let adapter = configuration.adapter { text += " via \(adapter)" }
        description = text
    }

    /// A transport to `target` (name or address).
    public init(target: String, adapter: String? = nil, busAddress: String? = nil) {
        self.init(configuration: Configuration(target: target, adapter: adapter, busAddress: busAddress))
    }

    /// The largest value written at once: MTU − 3, and never more than 510 bytes. The Bluetooth
    /// Core spec caps an attribute value at 512 bytes (Vol 3, Part F, 3.2.9) and a BlueZ GATT
    /// server silently drops write commands over 510 bytes (shared/reference/bluez-vm-notes.md).
    public static let largestWrite = 510

    /// The largest piece one write carries on the current link.
    public var writeSize: Int { min(mtu - 3, Self.largestWrite) }

    /// One write per piece; a packet may span several writes when the device reassembles, unless
    /// the link runs several bearers (``multipleBearers``) with write commands: their writes can
    /// be put together out of order. Ordered writes (``orderedWrites``) may span again.
    public var framing: SMPFraming {
        SMPFraming(
            maximumWrite: writeSize, splitsAcrossWrites: !multipleBearers || orderedWrites,
            maximumPacket: Int(UInt16.max) + 8)
    }

    /// The GATT service's Server Supported Features characteristic (Core spec Vol 3, Part G,
    /// 7.4): bit 0 says the server takes EATT bearers.
    static let serverSupportedFeaturesUUID = "00002b3a-0000-1000-8000-00805f9b34fb"
    static let gattServiceUUID = "00001801-0000-1000-8000-00805f9b34fb"
    /// The largest bluetoothd configuration read.
    static let largestConfiguration = 64 * 1024

    /// `[GATT] Channels` of a bluetoothd `main.conf`: 3 when the file does not set it (BlueZ 5.66's
    /// default, src/main.conf), clamped to 1–5 as bluetoothd does.
    static func gattChannels(configuration text: Substring) -> Int {
        var inGATT = false
        var channels = 3
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.isEmpty { continue }
            if line.hasPrefix("[") {
                inGATT = line == "[GATT]"
                continue
            }
            guard inGATT, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if key == "Channels", let number = Int(value.prefix(4)) { channels = min(max(number, 1), 5) }
        }
        return channels
    }

    /// Whether the local bluetoothd opens EATT bearers, from its configuration file (a regular
    /// file of at most 64 KiB; anything else counts as the default).
    static func localChannels(path: String) -> Int {
        guard let data = try? RegularFile.read(path, limit: largestConfiguration) else { return 3 }
        return gattChannels(configuration: Substring(String(decoding: data, as: UTF8.self)))
    }

    /// Whether the device's GATT server offers EATT: its Server Supported Features (read within 3 s).
    private static func peerOffersEATT(bus: BusConnection, model: BlueZObjectModel, devicePath: String) async -> Bool {
        guard
            let features = await model.characteristics(
                of: devicePath, uuid: serverSupportedFeaturesUUID, serviceUUID: gattServiceUUID
            ).first
        else { return false }
        let reply = try? await bus.call(
            destination: BlueZ.serviceName, path: features.path, interface: BlueZ.gattCharacteristicInterface,
            member: "ReadValue", arguments: [.propertyDictionary([:])], timeout: .seconds(3))
        guard let first = reply?.first?.byteArray?.first else { return false }
        return first & 0x01 != 0
    }

    /// The link as far as BlueZ shows it: the negotiated MTU. The connection interval, PHY and data
    /// length are not visible through BlueZ's D-Bus API, so the model assumes values that draw no
    /// advice (15 ms, 2M PHY, DLE 251 above MTU 27); the client adds whether the device reassembles.
    public var linkModel: LinkModel? {
        LinkModel(medium: .ble(
            mtu: mtu, interval: .milliseconds(15), packetsPerEvent: 6, phy: .le2M, dataLength: mtu > 27 ? 251 : 27,
            reassembly: false))
    }

    // MARK: - Opening

    public func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError) {
        await close()
        lastOpenError = nil
        do {
            try await establish(events: events)
        } catch {
            lastOpenError = error
            throw SMPTransportError(error.code == .disconnected ? .disconnected : .openFailed, error.description)
        }
    }

    private func connectBus() async throws(BlueZError) -> BusConnection {
        if let bus { return bus }
        let address = configuration.busAddress ?? BusConnection.systemBusAddress()
        do {
            let connection = try await BusConnection.connect(address: address)
            bus = connection
            return connection
        } catch {
            throw BlueZError.from(error, while: "connecting to the system D-Bus at \(address)")
        }
    }

    /// Whether `device` is the one asked for, on `adapterPath`.
    private static func isTarget(_ device: BlueZDeviceInfo, target: String, adapterPath: String) -> Bool {
        guard device.adapterPath == adapterPath else { return false }
        return device.address.caseInsensitiveCompare(target) == .orderedSame || device.name == target
            || device.alias == target
    }

    private func establish(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(BlueZError) {
        let bus = try await connectBus()
        let model: BlueZObjectModel
        do {
            model = try await BlueZObjectModel.load(bus: bus)
        } catch {
            throw BlueZError.from(error, while: "reading BlueZ's objects")
        }
        do {
            try await establish(bus: bus, model: model, events: events)
        } catch {
            await model.stop()
            throw error
        }
    }

    private func establish(bus: BusConnection, model: BlueZObjectModel,
        events: AsyncStream<SMPTransportEvent>.Continuation) async throws(BlueZError)
    {
        let device = try await findDevice(bus: bus, model: model)
        await waitOutPendingDisconnect(device, model: model)
        let deviceProxy = BlueZDeviceProxy(bus: bus, path: device.path)
        let watch: LinkWatch
        do {
            watch = try await LinkWatch.start(bus: bus, devicePath: device.path)
        } catch {
            throw BlueZError.from(error, while: "subscribing to the device's state")
        }
        defer { watch.stop() }
        let mayPair = configuration.pairing == .whenRequired
        var paired = false
        while true {
            // Any drop from here on ends this attempt, in a phase or between two.
            let mark = watch.mark()
            let (characteristic, connectedHere) = try await connectAndResolve(
                device, proxy: deviceProxy, model: model, watch: mark)
            let known = await model.device(at: device.path)
            if mayPair, !paired, Self.requiresEncryption(characteristic), known?.paired != true {
                // The characteristic says it needs an encrypted link: pair before the first access.
                _ = try await pair(device: device, bus: bus, model: model)
                paired = true
            }
            let link = LinkState(events: events, device: device.address)
            var session = Session(
                model: model, device: deviceProxy,
                characteristic: BlueZCharacteristicProxy(bus: bus, path: characteristic.path), link: link)
            do {
                try await subscribe(&session, bus: bus, characteristic: characteristic, devicePath: device.path,
                    watch: mark)
                self.session = session
                if let path = configuration.bluetoothConfigurationPath, Self.localChannels(path: path) > 1 {
                    multipleBearers = await Self.peerOffersEATT(bus: bus, model: model, devicePath: device.path)
                } else {
                    multipleBearers = false
                }
                return
            } catch {
                let retry = error.code == .authenticationRequired && mayPair && !paired
                await Self.release(session, disconnect: connectedHere && !retry, stopModel: false)
                guard retry else { throw error }
            }
            // The device refused an unencrypted access ("Not paired"): pair, then try once more.
            _ = try await pair(device: device, bus: bus, model: model)
            paired = true
        }
    }

    /// Pairs `device` with smpctl's agent (within `pairingTimeout`), then waits briefly until the
    /// object model shows it paired.
    private func pair(device: BlueZDeviceInfo, bus: BusConnection, model: BlueZObjectModel) async throws(BlueZError)
        -> BlueZPairingReport
    {
        let report = try await BlueZPairing.pair(
            bus: bus, devicePath: device.path, address: device.address,
            responder: configuration.agentResponder ?? JustWorksResponder(), timeout: configuration.pairingTimeout)
        let path = device.path
        _ = await model.wait(timeout: .seconds(2)) { model -> Bool? in model.device(at: path)?.paired == true ? true : nil }
        return report
    }

    /// `smpctl pair`: finds the device (discovering it if needed), pairs it with smpctl's agent and
    /// marks it trusted, and reports its state. The link is released afterwards when
    /// `disconnectOnClose` is set. An open link is closed first.
    public func pair() async throws(BlueZError) -> BlueZPairingReport {
        await close()
        let bus = try await connectBus()
        let model: BlueZObjectModel
        do {
            model = try await BlueZObjectModel.load(bus: bus)
        } catch {
            throw BlueZError.from(error, while: "reading BlueZ's objects")
        }
        do {
            let device = try await findDevice(bus: bus, model: model)
            await waitOutPendingDisconnect(device, model: model)
            let report = try await pair(device: device, bus: bus, model: model)
            if configuration.disconnectOnClose, await model.device(at: device.path)?.connected == true,
                (try? await BlueZDeviceProxy(bus: bus, path: device.path).requestDisconnect()) != nil
            {
                DisconnectMarker.record(address: device.address)
            }
            await model.stop()
            return report
        } catch {
            await model.stop()
            throw error
        }
    }

    /// Whether the characteristic's flags ask for an encrypted or authenticated link.
    static func requiresEncryption(_ characteristic: BlueZCharacteristicInfo) -> Bool {
        characteristic.flags.contains { $0.hasPrefix("encrypt-") || $0.hasPrefix("secure-") }
    }

    /// Finds the device on the chosen adapter, discovering it when BlueZ does not know it yet.
    private func findDevice(bus: BusConnection, model: BlueZObjectModel) async throws(BlueZError) -> BlueZDeviceInfo {
        let adapter = try await Self.chooseAdapter(model: model, name: configuration.adapter)
        let target = configuration.target
        let adapterPath = adapter.path
        var found = await model.devices.first { Self.isTarget($0, target: target, adapterPath: adapterPath) }
        if found == nil {
            let adapterProxy = BlueZAdapterProxy(bus: bus, path: adapterPath)
            let clock = ContinuousClock()
            let deadline = clock.now + configuration.discoveryTimeout
            let callBound = configuration.gattTimeout
            _ = await Phase.run(within: callBound, watch: nil) { () async throws(DBusError) in
                try await adapterProxy.setDiscoveryFilter(uuids: [])
            }
            // StopDiscovery goes out even when the open is cancelled meanwhile (a D-Bus call does
            // not start in a cancelled task, so it runs in a task of its own): otherwise bluetoothd
            // keeps scanning for this client until its bus connection closes, and the transport
            // keeps that across opens. Bounded by callBound, and by 2 s once cancelled.
            func stopDiscovery() async {
                let bound = Task.isCancelled ? min(callBound, .seconds(2)) : callBound
                await Task {
                    _ = await Phase.run(within: bound, watch: nil) { () async throws(DBusError) in
                        try await adapterProxy.stopDiscovery(timeout: Phase.callTimeout(bound))
                    }
                }.value
            }
            // The controller may report a device's advertising once per scan, and a busy host can
            // lose that report (bluez-vm-notes.md: BlueZ 5.66's emulated controller; real
            // controllers that filter duplicates in hardware do the same): scan again every few
            // seconds until the device appears or the discovery timeout ends.
            while found == nil, clock.now < deadline, !Task.isCancelled {
                let bound = max(.milliseconds(100), min(callBound, deadline - clock.now))
                switch await Phase.run(within: bound, watch: nil, { () async throws(DBusError) in
                    try await adapterProxy.startDiscovery(timeout: Phase.callTimeout(bound))
                }) {
                case .answered(.success):
                    break
                case .answered(.failure(let error)) where error.name == .bluezInProgress:
                    break  // Someone else is discovering; their results serve us too.
                case .answered(.failure(let error)):
                    // Cancelled while StartDiscovery was on its way: bluetoothd may have started.
                    if error.name == .cancelled { await stopDiscovery() }
                    throw BlueZError.from(error, while: "starting discovery on \(adapter.name)").in(.discovery)
                case .timedOut, .dropped:
                    throw BlueZError(
                        .stalled,
                        "StartDiscovery on \(adapter.name) did not answer within \(secondsText(bound)) (discovery). Check that bluetoothd is responsive (`bluetoothctl show`), or restart it (`sudo systemctl restart bluetooth`).",
                        phase: .discovery)
                }
                let scan = min(deadline - clock.now, max(configuration.rescanInterval, .milliseconds(100)))
                found = await model.wait(timeout: scan) { model in
                    model.devices.first { Self.isTarget($0, target: target, adapterPath: adapterPath) }
                }
                await stopDiscovery()
            }
        }
        guard let device = found else {
            throw BlueZError(
                .deviceNotFound,
                "no device named or addressed \"\(target)\" was found on \(adapter.name) within \(secondsText(configuration.discoveryTimeout)) (discovery). Check that it is powered, advertising and in range; `smpctl scan --all` lists the devices in range.",
                phase: .discovery)
        }
        return device
    }

    /// An earlier command asked bluetoothd to disconnect without waiting for it, and bluetoothd
    /// does so up to 2 s later: using the link now would lose it mid-command, so wait for the drop.
    private func waitOutPendingDisconnect(_ device: BlueZDeviceInfo, model: BlueZObjectModel) async {
        guard device.connected, let requested = DisconnectMarker.requested(address: device.address),
            requested < DisconnectMarker.window
        else { return }
        let devicePath = device.path
        _ = await model.wait(timeout: DisconnectMarker.window - requested) { model -> Bool? in
            model.device(at: devicePath).map { $0.connected ? nil : true } ?? true
        }
    }

    /// Connects unless the link is up with its services resolved, waits for `ServicesResolved`,
    /// and finds the SMP characteristic. Returns whether this call made the connection.
    private func connectAndResolve(_ device: BlueZDeviceInfo, proxy: BlueZDeviceProxy, model: BlueZObjectModel,
        watch: LinkMark) async throws(BlueZError) -> (BlueZCharacteristicInfo, Bool)
    {
        let address = device.address
        let devicePath = device.path
        let state = await model.device(at: devicePath) ?? device
        let bound = configuration.connectTimeout
        var connectedHere = false
        if !(state.connected && state.servicesResolved) {
            switch await Phase.run(within: bound, watch: watch, { () async throws(DBusError) in
                try await proxy.connect(timeout: Phase.callTimeout(bound))
            }) {
            case .answered(.success):
                connectedHere = true
            case .answered(.failure(let error))
            where error.name == .bluezAlreadyConnected || error.name == .bluezInProgress:
                break  // Connected already, or a connection is under way: wait for the services below.
            case .answered(.failure(let error)):
                let classified = BlueZError.from(error, while: "connecting", device: address)
                guard classified.code == .failed else { throw classified.in(.connect) }
                throw BlueZError(
                    .connectFailed,
                    "could not connect to \(address): \(error.message) (Connect). Check that it is in range and connectable; a device already connected to another central (a phone, for example) may refuse.",
                    underlying: error, phase: .connect)
            case .timedOut:
                throw Self.stalled(.connect, call: "Connect", within: bound, address: address)
            case .dropped:
                throw Self.dropped(.connect, address: address)
            }
        }
        let resync = configuration.propertyResyncInterval
        switch await Phase.run(within: bound, watch: watch, { () async throws(DBusError) -> Bool in
            // bluetoothd does not always say so: in the VM, when the ATT channel came up before the
            // kernel's Device Connected event, it logged `device_add_connection() ... is already
            // connected` and emitted neither `Connected` nor `ServicesResolved` as true, although
            // `Properties.Get` returned both true (scripts/ble-vm/README.md). Waiting for the signal
            // alone then stalls until the deadline; so the device's properties are read again every
            // `propertyResyncInterval` until the phase's own deadline ends the wait.
            let clock = ContinuousClock()
            let deadline = clock.now + Phase.callTimeout(bound)
            while clock.now < deadline {
                let slice = min(resync, deadline - clock.now)
                let resolved = await model.wait(timeout: slice) { model -> Bool? in
                    guard let info = model.device(at: devicePath), info.connected, info.servicesResolved else { return nil }
                    return true
                }
                if resolved == true { return true }
                if Task.isCancelled { return false }
                if let current = try? await proxy.properties(timeout: max(.milliseconds(100), min(resync, deadline - clock.now))) {
                    await model.refresh(path: devicePath, interface: BlueZ.deviceInterface, properties: current)
                }
            }
            return false
        }) {
        case .answered(.success(true)):
            break
        case .answered, .timedOut:
            // Release a link this call made rather than leave bluetoothd holding it.
            if connectedHere, (try? await proxy.requestDisconnect()) != nil { DisconnectMarker.record(address: address) }
            throw Self.stalled(.servicesResolved, call: "ServicesResolved", within: bound, address: address)
        case .dropped:
            throw Self.dropped(.servicesResolved, address: address)
        }
        guard
            let characteristic = await model.characteristics(
                of: devicePath, uuid: BlueZ.smpCharacteristicUUID, serviceUUID: BlueZ.smpServiceUUID
            ).first
        else {
            throw BlueZError(
                .characteristicNotFound,
                "\(address) has no SMP characteristic (service 8D53DC1D-1DB7-4CD3-868B-8A527460AA84). Its firmware may lack the SMP Bluetooth transport (CONFIG_MCUMGR_TRANSPORT_BT), or BlueZ's cache is stale after an update: run `bluetoothctl remove \(address)` and try again.")
        }
        return (characteristic, connectedHere)
    }

    /// The error of a phase whose call did not answer within its deadline, with what to check next.
    static func stalled(_ phase: BLEConnectPhase, call: String, within bound: Duration, address: String) -> BlueZError {
        let time = secondsText(bound)
        let message: String
        switch phase {
        case .discovery:
            message = "\(call) did not answer within \(time) (discovery). Check that bluetoothd is responsive (`bluetoothctl show`)."
        case .connect:
            message = "Connect to \(address) did not answer within \(time) (Connect). Check that it is powered, in range and advertising connectably (one connected to another central, a phone for example, stops advertising); `bluetoothctl info \(address)` shows what BlueZ knows of it."
        case .servicesResolved:
            message = "connected to \(address) but its GATT services were not resolved within \(time) (\(phase.rawValue)). Move it closer and try again; if its firmware changed its GATT table, `bluetoothctl remove \(address)` clears BlueZ's cache."
        case .notificationSubscription:
            message = "connected to \(address) but \(call) did not answer within \(time) (notification subscription). bluetoothd has been seen to stop answering StartNotify after a failed pairing: pair again with `smpctl pair ble:\(address)` (after `bluetoothctl remove \(address)` if an old bond is stale), or restart bluetoothd (`sudo systemctl restart bluetooth`)."
        case .writeAccess:
            message = "connected to \(address) but AcquireWrite did not answer within \(time) (write access (AcquireWrite)). Try BlueZ's WriteValue path with `ble:\(address)?write=dbus`, and check `bluetoothctl info \(address)`."
        case .mtuRead:
            message = "connected to \(address) but reading its MTU did not answer within \(time) (MTU read). Try again; if it keeps happening, restart bluetoothd (`sudo systemctl restart bluetooth`)."
        case .pairing:
            message = "pairing with \(address) did not finish within \(time) (pairing). Enter or confirm the passkey if the device shows one, check that it accepts pairing (some need a button press), then run `smpctl pair ble:\(address)` again."
        }
        return BlueZError(.stalled, message, phase: phase)
    }

    /// The error of a phase during which `Device1.Connected` turned false.
    static func dropped(_ phase: BLEConnectPhase, address: String) -> BlueZError {
        BlueZError(
            .disconnected,
            "the link to \(address) dropped during \(phase.rawValue) (Device1.Connected turned false). Move it closer and check that no other central holds it; a device that needs an encrypted link may drop an unpaired one: pair it with `smpctl pair ble:\(address)`, or connect with `ble:\(address)?pair=yes`.",
            phase: phase)
    }

    static func chooseAdapter(model: BlueZObjectModel, name: String?) async throws(BlueZError)
        -> BlueZAdapterInfo
    {
        let adapters = await model.adapters
        guard !adapters.isEmpty else {
            throw BlueZError(
                .noAdapter,
                "no Bluetooth adapter found. Plug one in, check `bluetoothctl list`, and check that it is not blocked (`rfkill list`).")
        }
        let adapter: BlueZAdapterInfo
        if let name {
            guard let match = adapters.first(where: { $0.name == name || $0.address.caseInsensitiveCompare(name) == .orderedSame }) else {
                throw BlueZError(
                    .noAdapter,
                    "no Bluetooth adapter \(name); available: \(adapters.map(\.name).joined(separator: ", ")).")
            }
            adapter = match
        } else {
            adapter = adapters.first(where: \.powered) ?? adapters[0]
        }
        guard adapter.powered else {
            throw BlueZError(
                .adapterPoweredOff,
                "the Bluetooth adapter \(adapter.name) is powered off. Power it on with `bluetoothctl power on` (and `rfkill unblock bluetooth` if it is blocked).")
        }
        return adapter
    }

    /// Runs one GATT call of a connect phase within `configuration.gattTimeout`, watching the link.
    private func step<Value: Sendable>(
        _ phase: BLEConnectPhase, _ call: String, address: String, watch: LinkMark?,
        _ body: @escaping @Sendable (Duration) async throws(DBusError) -> Value
    ) async throws(BlueZError) -> Result<Value, DBusError> {
        let bound = configuration.gattTimeout
        switch await Phase.run(within: bound, watch: watch, { () async throws(DBusError) -> Value in
            try await body(Phase.callTimeout(bound))
        }) {
        case .answered(let result): return result
        case .timedOut: throw Self.stalled(phase, call: call, within: bound, address: address)
        case .dropped: throw Self.dropped(phase, address: address)
        }
    }

    /// Sets up notifications and writes, sockets first; every call within its phase's deadline.
    private func subscribe(_ session: inout Session, bus: BusConnection, characteristic: BlueZCharacteristicInfo,
        devicePath: String, watch: LinkMark) async throws(BlueZError)
    {
        let link = session.link
        let address = link.device
        let proxy = session.characteristic
        var mtu = characteristic.mtu ?? BlueZ.defaultMTU
        let assembler = NotificationAssembler()
        if configuration.preferAcquiredSockets {
            // StartNotify and AcquireNotify exclude each other.
            _ = try await step(.notificationSubscription, "StopNotify", address: address, watch: watch) {
                (timeout: Duration) async throws(DBusError) in try await proxy.stopNotify(timeout: timeout)
            }
            switch try await step(.notificationSubscription, "AcquireNotify", address: address, watch: watch, {
                (timeout: Duration) async throws(DBusError) -> AcquiredSocket in
                let acquired = try await proxy.acquireNotify(timeout: timeout)
                return AcquiredSocket(fd: acquired.fd, mtu: acquired.mtu)
            }) {
            case .success(let acquired):
                session.notifyFD = acquired.fd
                mtu = acquired.mtu
                session.reader = DescriptorReader(fd: acquired.fd, bufferSize: 1024, datagrams: true) { output in
                    switch output {
                    case .bytes(let bytes):
                        link.deliver(assembler.feed(bytes))
                    case .closed(let code):
                        link.reportDisconnect(
                            "the notification socket of \(address) closed" + (code.map { " (\(describeErrno($0)))" } ?? ""))
                    }
                }
                notifyPath = .socket
            case .failure(let error):
                if BlueZError.isAuthenticationFailure(error) {
                    throw BlueZError.from(error, while: "subscribing to SMP notifications", device: address)
                        .in(.notificationSubscription)
                }
            }
        }
        // The link drops when Device1.Connected turns false. Without a notification socket the
        // answers come as the characteristic's Value changes: both kinds are read from one stream,
        // in the bus's order, so an answer the device sent just before it dropped the link (the
        // answer to a reset, say) is delivered before the disconnect.
        let valuesOverDBus = session.notifyFD == nil
        var rules = [
            DBusMatchRule(
                sender: BlueZ.serviceName, path: devicePath, interface: DBusInterface.properties,
                member: "PropertiesChanged", argument0: BlueZ.deviceInterface)
        ]
        if valuesOverDBus {
            rules.append(
                DBusMatchRule(
                    sender: BlueZ.serviceName, path: proxy.path, interface: DBusInterface.properties,
                    member: "PropertiesChanged", argument0: BlueZ.gattCharacteristicInterface))
        }
        do {
            let changes = try await bus.signals(matchingAny: rules)
            session.tasks.append(Task {
                for await signal in changes {
                    guard signal.arguments.count >= 2, let changed = signal.arguments[1].stringKeyedDictionary else {
                        continue
                    }
                    if signal.path == devicePath {
                        guard changed["Connected"]?.boolValue == false else { continue }
                        link.reportDisconnect("\(address) disconnected")
                        return
                    }
                    if valuesOverDBus, let bytes = changed["Value"]?.byteArray {
                        link.deliver(assembler.feed(bytes))
                    }
                }
            })
        } catch {
            throw BlueZError.from(error, while: "subscribing to the device's state")
        }
        if valuesOverDBus {
            switch try await step(.notificationSubscription, "StartNotify", address: address, watch: watch, {
                (timeout: Duration) async throws(DBusError) in try await proxy.startNotify(timeout: timeout)
            }) {
            case .success:
                session.startedNotify = true
                notifyPath = .dbus
            case .failure(let error):
                throw BlueZError.from(error, while: "starting SMP notifications", device: address)
                    .in(.notificationSubscription)
            }
        }
        // Write requests go through WriteValue, which bluetoothd refuses once the write side is
        // acquired ("Write acquired", src/gatt-client.c).
        if configuration.preferAcquiredSockets, !orderedWrites {
            switch try await step(.writeAccess, "AcquireWrite", address: address, watch: watch, {
                (timeout: Duration) async throws(DBusError) -> AcquiredSocket in
                let acquired = try await proxy.acquireWrite(timeout: timeout)
                return AcquiredSocket(fd: acquired.fd, mtu: acquired.mtu)
            }) {
            case .success(let acquired):
                session.writeFD = acquired.fd
                mtu = acquired.mtu
                writePath = .socket
            case .failure(let error):
                if BlueZError.isAuthenticationFailure(error) {
                    throw BlueZError.from(error, while: "acquiring the SMP characteristic for writing", device: address)
                        .in(.writeAccess)
                }
            }
        }
        if session.writeFD == nil {
            writePath = .dbus
            if characteristic.mtu == nil, session.notifyFD == nil,
                case .success(let reported) = try await step(.mtuRead, "MTU", address: address, watch: watch, {
                    (timeout: Duration) async throws(DBusError) -> Int in try await proxy.mtu(timeout: timeout)
                })
            {
                mtu = reported
            }
        }
        // ATT's minimum; anything smaller is a broken report.
        self.mtu = max(BlueZ.defaultMTU, min(mtu, 517))
    }

    // MARK: - Sending

    private func lockSending() async {
        if !sending {
            sending = true
            return
        }
        await withCheckedContinuation { sendWaiters.append($0) }
    }

    private func unlockSending() {
        if sendWaiters.isEmpty {
            sending = false
        } else {
            sendWaiters.removeFirst().resume()
        }
    }

    public func send(_ packet: [UInt8]) async throws(SMPTransportError) {
        let limit = Int(UInt16.max) + 8
        guard packet.count <= limit else {
            throw SMPTransportError(.packetTooLarge, "a packet of \(packet.count) bytes exceeds the SMP limit of \(limit)")
        }
        await lockSending()
        defer { unlockSending() }
        guard let session else { throw SMPTransportError(.notConnected, "the BLE transport is not open") }
        let piece = writeSize
        var start = 0
        while start < packet.count {
            let chunk = Array(packet[start..<min(start + piece, packet.count)])
            start += chunk.count
            writeCount += 1
            largestWrite = max(largestWrite, chunk.count)
            if orderedWrites {
                do {
                    try await session.characteristic.writeRequest(chunk, timeout: configuration.gattTimeout)
                } catch {
                    throw Self.classifyWriteFailure(error, session: session)
                }
            } else if let fd = session.writeFD {
                if let code = sendDatagram(fd: fd, chunk) {
                    let reason = "writing to \(session.link.device) failed (\(describeErrno(code))): the link dropped"
                    session.link.reportDisconnect(reason)
                    throw SMPTransportError(.disconnected, reason, errno: code)
                }
            } else {
                do {
                    try await session.characteristic.writeCommand(chunk)
                } catch {
                    throw Self.classifyWriteFailure(error, session: session)
                }
            }
        }
    }

    /// A failed `WriteValue` as a transport error: a lost link (reported once to the link's
    /// events), or a failed send.
    private static func classifyWriteFailure(_ error: DBusError, session: Session) -> SMPTransportError {
        let classified = BlueZError.from(error, while: "writing an SMP request", device: session.link.device)
        if classified.code == .disconnected || error.name == .unknownObject || error.name == .unknownMethod {
            session.link.reportDisconnect(classified.message)
            return SMPTransportError(.disconnected, classified.description)
        }
        return SMPTransportError(.sendFailed, classified.description)
    }

    // MARK: - Closing

    public func close() async {
        guard let session else { return }
        self.session = nil
        await Self.release(session, disconnect: configuration.disconnectOnClose)
    }

    private static func release(_ session: Session, disconnect: Bool, stopModel: Bool = true) async {
        session.link.close()
        for task in session.tasks { task.cancel() }
        await session.reader?.stop()
        if let fd = session.notifyFD { closeDescriptor(fd) }
        if let fd = session.writeFD { closeDescriptor(fd) }
        // Neither waits for its answer: after a stalled phase the characteristic may not answer at
        // all, and the bus keeps the two requests in order.
        if session.startedNotify { try? await session.characteristic.requestStopNotify() }
        // Not waiting for the answer saves the ~2 s bluetoothd takes to send it; the link is still
        // released. The marker tells the next command (in this process or another) to let the
        // disconnect finish before it uses the link.
        if disconnect, (try? await session.device.requestDisconnect()) != nil {
            DisconnectMarker.record(address: session.link.device)
        }
        if stopModel { await session.model.stop() }
    }
}

/// A descriptor and MTU from `AcquireWrite` or `AcquireNotify`.
struct AcquiredSocket: Sendable {
    var fd: Int32
    var mtu: Int
}

/// Reassembles notifications into SMP packets; shared by the socket reader thread or the signal task.
final class NotificationAssembler: Sendable {
    private let reassembler = LockedValue(SMPReassembler(maxPacketLength: SMPHeader.size + Int(UInt16.max)))

    /// Feeds one notification; returns the completed packets, or why the bytes were dropped.
    func feed(_ bytes: [UInt8]) -> Result<[[UInt8]], SMPDecodingError> {
        reassembler.withLock { reassembler in
            do throws(SMPDecodingError) {
                return .success(try reassembler.append(bytes))
            } catch {
                return .failure(error)
            }
        }
    }
}

/// The event side of one link: delivers packets, and reports the disconnect once.
final class LinkState: Sendable {
    private let events: AsyncStream<SMPTransportEvent>.Continuation
    private let finished = LockedValue(false)
    /// The device's address, for messages.
    let device: String

    init(events: AsyncStream<SMPTransportEvent>.Continuation, device: String) {
        self.events = events
        self.device = device
    }

    func deliver(_ result: Result<[[UInt8]], SMPDecodingError>) {
        guard !finished.withLock({ $0 }) else { return }
        switch result {
        case .success(let packets):
            for packet in packets { events.yield(.packet(packet)) }
        case .failure(let error):
            events.yield(.invalid("notification dropped: \(error)"))
        }
    }

    func reportDisconnect(_ reason: String) {
        let first = finished.withLock { finished -> Bool in
            defer { finished = true }
            return !finished
        }
        guard first else { return }
        events.yield(
            .disconnected(
                SMPTransportError(
                    .disconnected,
                    "\(reason). Reconnect and try again; an interrupted upload resumes from the device's offset.")))
    }

    /// Stops delivering: the transport was closed on purpose.
    func close() { finished.withLock { $0 = true } }
}

/// A record, shared between smpctl processes, that a disconnect was asked of bluetoothd and may
/// still be pending: the modification time of an empty file per device address in the user's
/// runtime folder (`$XDG_RUNTIME_DIR/smpctl`, or `/tmp/smpctl-UID`). Nothing is read from the file.
enum DisconnectMarker {
    /// How long after the request the disconnect may still come: BlueZ's DISCONNECT_TIMER is 2 s;
    /// the margin is for slow hosts (the wait ends as soon as the link drops).
    static let window: Duration = .seconds(5)

    static func folder() -> String {
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") {
            return runtime + "/smpctl"
        }
        return "/tmp/smpctl-\(getuid())"
    }

    static func path(address: String) -> String {
        let name = address.filter { $0.isHexDigit || $0 == ":" }.replacingOccurrences(of: ":", with: "")
        return folder() + "/disconnect-" + String(name.prefix(32))
    }

    /// Notes that a disconnect of `address` was just requested. The folder may be in /tmp, where
    /// anyone can create names: it must be a real folder of ours, and the marker is opened without
    /// following a link and without truncating, so nothing else can be written through it.
    static func record(address: String) {
        let directory = folder()
        _ = mkdir(directory, 0o700)
        guard isPrivateFolder(directory) else { return }
        let fd = open(path(address: address), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        _ = futimens(fd, nil)
        _ = close(fd)
    }

    /// Whether `directory` is a folder (not a link) owned by this user and writable only by it.
    static func isPrivateFolder(_ directory: String) -> Bool {
        var info = stat()
        guard lstat(directory, &info) == 0 else { return false }
        return info.st_mode & S_IFMT == S_IFDIR && info.st_uid == getuid() && info.st_mode & 0o022 == 0
    }

    /// How long ago a disconnect of `address` was requested, if one was recorded.
    static func requested(address: String) -> Duration? {
        guard isPrivateFolder(folder()),
            let attributes = try? FileManager.default.attributesOfItem(atPath: path(address: address)),
            attributes[.type] as? FileAttributeType == .typeRegular,
            let date = attributes[.modificationDate] as? Date
        else { return nil }
        let age = Date().timeIntervalSince(date)
        guard age.isFinite, age >= 0, age < 3600 else { return nil }
        return .milliseconds(Int64(age * 1000))
    }
}
