import SMPCtlTestSupport
import Foundation
import SMPCtlLocking
import Testing
@testable import SMPCtlBlueZ
import SMPCtlDBus
import SMPCtlTransport

/// Records the requests and answers each with a fixed response.
private final class RecordingServer: SMPPacketServer {
    let requests = LockedValue<[[UInt8]]>([])
    let response: [UInt8]
    init(response: [UInt8]) { self.response = response }
    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        requests.withLock { $0.append(packet) }
        return SMPServerReply(responses: [response])
    }
}

/// Records the requests, answers each with a fixed response, and applies Zephyr's net_buf and
/// reassembly limits as a simulator would.
private final class LimitedServer: SMPPacketServer {
    let requests = LockedValue<[[UInt8]]>([])
    let frameLimits: SMPServerFrameLimits
    init(netbufSize: Int, reassembly: Bool) {
        frameLimits = SMPServerFrameLimits(netbufSize: netbufSize, bleReassembly: reassembly)
    }
    func handle(_ packet: [UInt8]) async -> SMPServerReply {
        requests.withLock { $0.append(packet) }
        return SMPServerReply(responses: [])
    }
}

/// A request packet of `size` bytes whose header gives its length; the body is `fill` bytes.
private func request(size: Int, sequence: UInt8, fill: UInt8 = 0xA5) -> [UInt8] {
    let length = size - 8
    return [0x0A, 0x00, UInt8(length >> 8), UInt8(length & 0xFF), 0x00, 0x00, sequence, 0x00]
        + Array(repeating: fill, count: length)
}

/// A fake adapter with GattManager1 and LEAdvertisingManager1, which, as bluetoothd does, reads the
/// application back (GetManagedObjects) and the advertisement (GetAll) when they are registered.
private actor FakeAdapter {
    let bus: BusConnection
    var alias = "BlueZ 5.66"
    var application: [String: DBusValue]?
    var advertisement: [String: DBusValue]?
    /// The agent registered through AgentManager1: its sender, path and capability, and whether it is the default.
    var agent: (sender: String, path: String, capability: String)?
    var defaultAgent = false
    var agentUnregistered = false
    init(bus: BusConnection) { self.bus = bus }

    func handle(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        switch (call.path, call.member) {
        case ("/", "GetManagedObjects"):
            let adapter = DBusValue.dictionary(
                keySignature: "s", valueSignature: "a{sv}",
                [DBusDictionaryEntry(key: .string(BlueZ.adapterInterface), value: .propertyDictionary(adapterProperties))])
            return [.dictionary(keySignature: "o", valueSignature: "a{sa{sv}}",
                [DBusDictionaryEntry(key: .objectPath("/org/bluez/hci0"), value: adapter)])]
        case (_, "RegisterApplication"):
            guard let path = call.arguments.first?.stringValue else { throw DBusError(.invalidArgs, "no path") }
            let reply = try await bus.call(
                destination: call.sender, path: path, interface: DBusInterface.objectManager, member: "GetManagedObjects")
            application = reply.first?.stringKeyedDictionary
            return []
        case (_, "RegisterAdvertisement"):
            guard let path = call.arguments.first?.stringValue else { throw DBusError(.invalidArgs, "no path") }
            let reply = try await bus.call(
                destination: call.sender, path: path, interface: DBusInterface.properties, member: "GetAll",
                arguments: [.string("org.bluez.LEAdvertisement1")])
            advertisement = reply.first?.stringKeyedDictionary
            return []
        case (_, "UnregisterApplication"), (_, "UnregisterAdvertisement"):
            return []
        case (BlueZ.agentManagerPath, "RegisterAgent"):
            guard let path = call.arguments.first?.stringValue, let capability = call.arguments.dropFirst().first?.stringValue
            else { throw DBusError(.invalidArgs, "RegisterAgent takes (o, s)") }
            agent = (call.sender ?? "", path, capability)
            return []
        case (BlueZ.agentManagerPath, "RequestDefaultAgent"):
            defaultAgent = agent?.path == call.arguments.first?.stringValue
            return []
        case (BlueZ.agentManagerPath, "UnregisterAgent"):
            agentUnregistered = agent?.path == call.arguments.first?.stringValue
            return []
        default:
            throw DBusError(.unknownMethod, call.member)
        }
    }

    var adapterProperties: [String: DBusValue] {
        ["Address": .string("00:AA:01:00:00:00"), "Powered": .bool(true), "Discovering": .bool(false),
            "Alias": .string(alias)]
    }

    func setAlias(_ value: DBusValue) { alias = value.stringValue ?? alias }
}

private struct FakeAdapterObject: DBusObjectHandler {
    let adapter: FakeAdapter
    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        try await adapter.handle(call)
    }
    func properties(of interface: String) async -> [String: DBusValue]? {
        interface == BlueZ.adapterInterface ? await adapter.adapterProperties : nil
    }
    func setProperty(interface: String, name: String, value: DBusValue) async throws(DBusError) {
        await adapter.setAlias(value)
    }
}

@Suite("BLE peripheral")
struct BLEPeripheralTests {
    /// A private bus with a fake bluetoothd (`org.bluez`): the root, hci0 and AgentManager1.
    private func withFakeAdapter(
        _ body: (_ bus: PrivateBus, _ bluez: BusConnection, _ adapter: FakeAdapter) async throws -> Void
    ) async throws {
        try await withPrivateBus { bus in
            let bluez = try await BusConnection.connect(address: bus.address)
            try await bluez.requestName(BlueZ.serviceName)
            let adapter = FakeAdapter(bus: bluez)
            for path in ["/", "/org/bluez/hci0", BlueZ.agentManagerPath] {
                try await bluez.export(FakeAdapterObject(adapter: adapter), at: path)
            }
            try await body(bus, bluez, adapter)
        }
    }

    @Test("registers the GATT application and advertisement, reassembles writes, notifies in MTU−3 pieces")
    func servesSMP() async throws {
        try await withFakeAdapter { bus, bluez, adapter in

            let response = (0..<100).map { UInt8($0) }
            let server = RecordingServer(response: response)
            let peripheral = try await BLEPeripheral.start(
                server: server, adapter: "hci0", name: "sim-test", busAddress: bus.address)

            let application = try #require(await adapter.application)
            let characteristic = try #require(
                application[BLEPeripheral.characteristicPath]?.stringKeyedDictionary?[BlueZ.gattCharacteristicInterface]?
                    .stringKeyedDictionary)
            #expect(characteristic["UUID"]?.stringValue == BlueZ.smpCharacteristicUUID)
            #expect(characteristic["Flags"]?.stringArray == ["write-without-response", "notify"])
            let advertisement = try #require(await adapter.advertisement)
            #expect(advertisement["LocalName"]?.stringValue == "sim-test")
            #expect(advertisement["ServiceUUIDs"]?.stringArray == [BlueZ.smpServiceUUID])
            #expect(await adapter.alias == "sim-test")

            let notifications = try await bluez.signals(
                matching: .propertiesChanged(pathNamespace: BLEPeripheral.characteristicPath))
            let path = BLEPeripheral.characteristicPath
            let peer = try await peripheralName(bluez: bluez, bus: bus)
            _ = try await bluez.call(destination: peer, path: path, interface: BlueZ.gattCharacteristicInterface,
                member: "StartNotify")
            let request: [UInt8] = [0x02, 0x00, 0x00, 0x1A, 0x00, 0x00, 0x01, 0x00] + Array(repeating: 0xA5, count: 26)
            for piece in [Array(request[0..<20]), Array(request[20...])] {
                _ = try await bluez.call(destination: peer, path: path, interface: BlueZ.gattCharacteristicInterface,
                    member: "WriteValue", arguments: [.bytes(piece), .propertyDictionary(["mtu": .uint16(23)])])
            }
            var received: [UInt8] = []
            var pieces: [Int] = []
            for await signal in notifications {
                guard let value = signal.arguments.dropFirst().first?.stringKeyedDictionary?["Value"]?.byteArray else { continue }
                received += value
                pieces.append(value.count)
                if received.count >= response.count { break }
            }
            #expect(server.requests.withLock { $0 } == [request])
            #expect(received == response)
            #expect(pieces.allSatisfy { $0 <= 20 })
            await peripheral.stop()
            #expect(await adapter.alias == "BlueZ 5.66")
            await bluez.close()
        }
    }

    @Test("notifications turned off drop a partly gathered request, as Zephyr's smp_bt_ccc_changed does")
    func stopNotifyDropsPartialPacket() async throws {
        try await withFakeAdapter { bus, bluez, adapter in
            let server = LimitedServer(netbufSize: 2048, reassembly: true)
            let peripheral = try await BLEPeripheral.start(
                server: server, adapter: "hci0", name: "sim-test", busAddress: bus.address)
            let peer = try await peripheralName(bluez: bluez, bus: bus)
            func call(_ member: String, _ arguments: [DBusValue] = []) async throws {
                _ = try await bluez.call(
                    destination: peer, path: BLEPeripheral.characteristicPath,
                    interface: BlueZ.gattCharacteristicInterface, member: member, arguments: arguments)
            }
            try await call("StartNotify")
            // The first 30 bytes of a 100-byte request, then the central goes away.
            let broken = request(size: 100, sequence: 1)
            try await call("WriteValue", [.bytes(Array(broken[0..<30])), .propertyDictionary([:])])
            try await call("StopNotify")
            // The next central's request is a packet of its own, not the rest of the broken one.
            try await call("StartNotify")
            let next = request(size: 40, sequence: 2)
            try await call("WriteValue", [.bytes(next), .propertyDictionary([:])])
            #expect(try await requests(of: server, count: 1) == [next])
            await peripheral.stop()
            await bluez.close()
        }
    }

    @Test(
        "--ble-security registers the characteristic with Zephyr's permission levels as BlueZ flags",
        arguments: [
            (BLEPeripheral.Security.open, ["write-without-response", "notify"]),
            (.encrypt, ["write-without-response", "encrypt-write", "encrypt-notify"]),
            (.authenticate, ["write-without-response", "encrypt-authenticated-write", "encrypt-authenticated-notify"]),
        ])
    func securityFlags(security: BLEPeripheral.Security, flags: [String]) async throws {
        try await withFakeAdapter { bus, bluez, adapter in
            let peripheral = try await BLEPeripheral.start(
                server: RecordingServer(response: [1]), adapter: "hci0", name: "sim-test", busAddress: bus.address,
                security: security)
            // A device that needs an encrypted link accepts Just Works from any central: its agent
            // is bluetoothd's default (the one asked for pairings nobody's Pair call started).
            if security == .open {
                #expect(await adapter.agent == nil)
            } else {
                let agent = try #require(await adapter.agent)
                #expect(agent.capability == "NoInputNoOutput")
                #expect(await adapter.defaultAgent)
                let central = "/org/bluez/hci0/dev_00_AA_01_01_00_01"
                _ = try await bluez.call(
                    destination: agent.sender, path: agent.path, interface: BlueZ.agentInterface,
                    member: "RequestAuthorization", arguments: [.objectPath(central)])
                await #expect(throws: DBusError.self) {
                    _ = try await bluez.call(
                        destination: agent.sender, path: agent.path, interface: BlueZ.agentInterface,
                        member: "RequestPasskey", arguments: [.objectPath(central)])
                }
            }
            let application = try #require(await adapter.application)
            let registered = application[BLEPeripheral.characteristicPath]?.stringKeyedDictionary?[
                BlueZ.gattCharacteristicInterface]?.stringKeyedDictionary
            #expect(registered?["Flags"]?.stringArray == flags)
            // What bluetoothd reads back with Properties.GetAll says the same.
            let peer = try await peripheralName(bluez: bluez, bus: bus)
            let reply = try await bluez.call(
                destination: peer, path: BLEPeripheral.characteristicPath, interface: DBusInterface.properties,
                member: "GetAll", arguments: [.string(BlueZ.gattCharacteristicInterface)])
            #expect(reply.first?.stringKeyedDictionary?["Flags"]?.stringArray == flags)
            await peripheral.stop()
            #expect(await adapter.agentUnregistered == (security != .open))
            await bluez.close()
        }
    }

    /// Starts a peripheral for `server` on a fake BlueZ and hands `write` a function that sends one
    /// write command to it as bluetoothd would.
    private func withPeripheral(
        _ server: any SMPPacketServer, reordering: BLEPeripheral.WriteReordering? = nil,
        _ body: (_ write: ([UInt8]) async throws -> Void) async throws -> Void
    ) async throws {
        try await withFakeAdapter { bus, bluez, adapter in
            let peripheral = try await BLEPeripheral.start(
                server: server, adapter: "hci0", name: "sim-test", busAddress: bus.address,
                writeReordering: reordering)
            let peer = try await peripheralName(bluez: bluez, bus: bus)
            try await body { bytes in
                _ = try await bluez.call(
                    destination: peer, path: BLEPeripheral.characteristicPath,
                    interface: BlueZ.gattCharacteristicInterface, member: "WriteValue",
                    arguments: [.bytes(bytes), .propertyDictionary(["mtu": .uint16(517)])])
            }
            await peripheral.stop()
            await bluez.close()
        }
    }

    /// Waits until `server` has seen `count` requests (or 5 s have passed) and returns them.
    private func requests(of server: LimitedServer, count: Int) async throws -> [[UInt8]] {
        for _ in 0..<500 {
            let seen = server.requests.withLock { $0 }
            if seen.count >= count { return seen }
            try await Task.sleep(for: .milliseconds(10))
        }
        return server.requests.withLock { $0 }
    }

    @Test("reassembles a request of the whole net_buf from 510-byte writes; a longer one is dropped")
    func reassemblesUpToNetbuf() async throws {
        let server = LimitedServer(netbufSize: 2048, reassembly: true)
        let whole = request(size: 2048, sequence: 1)
        let tooLong = request(size: 2049, sequence: 2)
        let small = request(size: 40, sequence: 3)
        try await withPeripheral(server) { write in
            for start in stride(from: 0, to: whole.count, by: 510) {
                try await write(Array(whole[start..<min(start + 510, whole.count)]))
            }
            // smp_reassembly_collect: expected 2049 > CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE → -ENOSR.
            for start in stride(from: 0, to: tooLong.count, by: 510) {
                try await write(Array(tooLong[start..<min(start + 510, tooLong.count)]))
            }
            try await write(small)
            let seen = try await requests(of: server, count: 2)
            // The pieces after the refused first write of `tooLong` start a new packet each: their
            // fill bytes read as a length of 0xA5A5, over the net_buf, so they are refused too.
            #expect(seen == [whole, small])
        }
    }

    @Test("without reassembly each write is a packet of its own")
    func noReassembly() async throws {
        let server = LimitedServer(netbufSize: 2048, reassembly: false)
        let split = request(size: 600, sequence: 1)
        try await withPeripheral(server) { write in
            try await write(Array(split[0..<300]))
            try await write(Array(split[300...]))
            let seen = try await requests(of: server, count: 2)
            #expect(seen == [Array(split[0..<300]), Array(split[300...])])
        }
    }

    @Test("EATT-style reordering: a held write goes after the next one, or alone after the hold time")
    func reordersWrites() async throws {
        let server = LimitedServer(netbufSize: 2048, reassembly: true)
        let one = request(size: 30, sequence: 1)
        let two = request(size: 30, sequence: 2)
        let three = request(size: 30, sequence: 3)
        let reordering = BLEPeripheral.WriteReordering(rate: 1, seed: 9, holdTime: .milliseconds(50))
        try await withPeripheral(server, reordering: reordering) { write in
            try await write(one)
            try await write(two)
            try await write(three)
            #expect(try await requests(of: server, count: 3) == [two, one, three])
        }
    }

    /// The peripheral's unique name: the only other connection on the private bus that is not the bus itself.
    private func peripheralName(bluez: BusConnection, bus: PrivateBus) async throws -> String {
        let reply = try await bluez.call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "ListNames")
        let names = reply.first?.stringArray ?? []
        return try #require(names.first { $0.hasPrefix(":") && $0 != bluez.uniqueName })
    }
}
