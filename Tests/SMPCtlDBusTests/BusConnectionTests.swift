import SMPCtlTestSupport
import Foundation
import Testing
import SMPCtlDBus
import SMPCtlLocking
#if canImport(Glibc)
import Glibc
#endif

/// An object that echoes its arguments, fails on request, never answers `Hang`, and passes fds.
struct EchoObject: DBusObjectHandler {
    static let interface = "org.smpctl.Test.Echo"

    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        switch call.member {
        case "Echo":
            return call.arguments
        case "Fail":
            throw DBusError("org.smpctl.Test.Error.Refused", "refused on purpose")
        case "Hang":
            try? await Task.sleep(for: .seconds(3))
            return []
        case "WriteToFD":
            // Receives a descriptor, writes the given text into it, and closes it.
            guard call.arguments.count == 2, case .unixFD(let fd) = call.arguments[0],
                let text = call.arguments[1].stringValue
            else { throw DBusError(.invalidArgs, "WriteToFD takes (h, s)") }
            let bytes = Array(text.utf8)
            let written = write(fd, bytes, bytes.count)
            close(fd)
            return [.int32(Int32(written))]
        case "MakeFD":
            // Returns one end of a socket pair after writing the given text into the other end.
            guard let text = call.arguments.first?.stringValue else { throw DBusError(.invalidArgs, "MakeFD takes (s)") }
            var ends: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &ends) == 0 else {
                throw DBusError(.failed, "socketpair failed")
            }
            let bytes = Array(text.utf8)
            _ = write(ends[1], bytes, bytes.count)
            close(ends[1])
            // libdbus duplicates the descriptor when it marshals the reply; the duplicate travels.
            let given = ends[0]
            Task {
                try? await Task.sleep(for: .seconds(2))
                close(given)
            }
            return [.unixFD(given)]
        default:
            throw DBusError(.unknownMethod, "no method \(call.member)")
        }
    }

    func properties(of interface: String) async -> [String: DBusValue]? {
        guard interface == Self.interface else { return nil }
        return ["Name": .string("echo"), "Count": .uint32(7)]
    }
}

/// An object with a question that waits (up to 10 s) until `Cancel` ends it; `Cancel` is answered
/// at once, beside the queue, as an agent's is.
struct QuestionObject: DBusObjectHandler {
    let cancelled = LockedValue(false)

    func answersAtOnce(_ call: DBusMethodCall) -> Bool { call.member == "Cancel" }

    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        switch call.member {
        case "Ask":
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while clock.now < deadline {
                if cancelled.withLock({ $0 }) { return [.string("cancelled")] }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return [.string("nobody cancelled")]
        case "Cancel":
            cancelled.withLock { $0 = true }
            return []
        case "Echo":
            return call.arguments
        default:
            throw DBusError(.unknownMethod, "no method \(call.member)")
        }
    }
}

/// Two connections on a private bus: a server that owns `org.smpctl.Test` with an echo object, and a client.
func withEchoService(_ body: (BusConnection, BusConnection) async throws -> Void) async throws {
    try await withPrivateBus { bus in
        let server = try await BusConnection.connect(address: bus.address)
        let client = try await BusConnection.connect(address: bus.address)
        do {
            try await server.requestName("org.smpctl.Test")
            try await server.export(EchoObject(), at: "/org/smpctl/Echo")
            try await server.export(EchoObject(), at: "/org/smpctl/Slow")
            try await body(server, client)
        } catch {
            await client.close()
            await server.close()
            throw error
        }
        await client.close()
        await server.close()
    }
}

func echo(_ client: BusConnection, _ arguments: [DBusValue], path: String = "/org/smpctl/Echo",
    member: String = "Echo", timeout: Duration = .seconds(5)) async throws(DBusError) -> [DBusValue]
{
    try await client.call(
        destination: "org.smpctl.Test", path: path, interface: EchoObject.interface, member: member,
        arguments: arguments, timeout: timeout)
}

/// One example of every value kind, and the shapes BlueZ uses.
let everyValueKind: [(String, DBusValue)] = [
    ("byte", .byte(0xA5)),
    ("bool", .bool(true)),
    ("int16", .int16(-12345)),
    ("uint16", .uint16(65535)),
    ("int32", .int32(Int32.min)),
    ("uint32", .uint32(UInt32.max)),
    ("int64", .int64(Int64.min)),
    ("uint64", .uint64(UInt64.max)),
    ("double", .double(-1.5e300)),
    ("string", .string("héllo, wörld ✓")),
    ("empty string", .string("")),
    ("object path", .objectPath("/org/bluez/hci0/dev_00_AA_01_00_00_00")),
    ("signature", .signature("a{oa{sa{sv}}}")),
    ("byte array", .bytes([0, 1, 2, 254, 255])),
    ("empty byte array", .bytes([])),
    ("128 KiB byte array", .bytes((0..<131_072).map { UInt8(truncatingIfNeeded: $0 &* 7) })),
    ("array of byte arrays", .array(elementSignature: "ay", [.bytes([1, 2]), .bytes([])])),
    ("empty array", .array(elementSignature: "s", [])),
    ("array of arrays", .array(elementSignature: "ai", [.array(elementSignature: "i", [.int32(1)]), .array(elementSignature: "i", [])])),
    ("struct", .structure([.string("x"), .uint16(517), .variant(.bool(false))])),
    ("variant", .variant(.uint16(23))),
    ("variant of variant", .variant(.variant(.string("deep")))),
    ("a{sv}", .propertyDictionary(["type": .string("command"), "offset": .uint16(0), "Value": .bytes([1, 2])])),
    ("empty a{sv}", .propertyDictionary([:])),
    ("a{oa{sa{sv}}}", .dictionary(keySignature: "o", valueSignature: "a{sa{sv}}", [
        DBusDictionaryEntry(key: .objectPath("/org/bluez/hci0"), value: .dictionary(keySignature: "s", valueSignature: "a{sv}", [
            DBusDictionaryEntry(key: .string("org.bluez.Adapter1"), value: .propertyDictionary(["Powered": .bool(true), "Address": .string("00:AA:01:01:00:01")])),
        ])),
    ])),
    ("a{yu}", .dictionary(keySignature: "y", valueSignature: "u", [DBusDictionaryEntry(key: .byte(1), value: .uint32(2))])),
]

@Suite("D-Bus connection on a private bus", .serialized, .timeLimit(.minutes(1)))
struct BusConnectionTests {
    @Test("every value kind survives a round trip", arguments: everyValueKind.map(\.0))
    func roundTrip(kind: String) async throws {
        let value = try #require(everyValueKind.first { $0.0 == kind }?.1)
        try await withEchoService { _, client in
            let reply = try await echo(client, [value])
            #expect(reply == [value])
            #expect(reply.first?.signature == value.signature)
        }
    }

    @Test("a byte array built element by element reads back as one contiguous byte array")
    func byteArrayElementByElement() async throws {
        let bytes: [UInt8] = [9, 8, 7, 0, 255]
        try await withEchoService { _, client in
            let reply = try await echo(client, [.array(elementSignature: "y", bytes.map { .byte($0) })])
            #expect(reply == [.byteArray(bytes)])
            #expect(reply.first?.byteArray == bytes)
        }
    }

    @Test("several arguments keep their order")
    func severalArguments() async throws {
        try await withEchoService { _, client in
            let arguments = everyValueKind.map(\.1)
            let echoed = try await echo(client, arguments)
            #expect(echoed == arguments)
        }
    }

    @Test("a D-Bus error arrives with its name and message")
    func errorReply() async throws {
        try await withEchoService { _, client in
            let error = await #expect(throws: DBusError.self) { try await echo(client, [], member: "Fail") }
            #expect(error?.name.rawValue == "org.smpctl.Test.Error.Refused")
            #expect(error?.message == "refused on purpose")
            let unknown = await #expect(throws: DBusError.self) { try await echo(client, [], member: "Nope") }
            #expect(unknown?.name == .unknownMethod)
        }
    }

    @Test("a name nobody owns gives ServiceUnknown")
    func serviceUnknown() async throws {
        try await withEchoService { _, client in
            let error = await #expect(throws: DBusError.self) {
                try await client.call(destination: "org.bluez", path: "/", interface: DBusInterface.objectManager,
                    member: "GetManagedObjects")
            }
            #expect(error?.name == .serviceUnknown)
        }
    }

    @Test("a call without a reply times out with NoReply")
    func timeout() async throws {
        try await withEchoService { _, client in
            let start = ContinuousClock.now
            let error = await #expect(throws: DBusError.self) {
                try await echo(client, [], path: "/org/smpctl/Slow", member: "Hang", timeout: .milliseconds(200))
            }
            #expect(error?.name == .noReply)
            #expect(ContinuousClock.now - start < .seconds(2))
            // The connection still works.
            let echoed = try await echo(client, [.byte(1)])
            #expect(echoed == [.byte(1)])
        }
    }

    @Test("cancelling the task cancels the call")
    func cancellation() async throws {
        try await withEchoService { _, client in
            let task = Task { () async throws(DBusError) -> [DBusValue] in
                try await echo(client, [], path: "/org/smpctl/Slow", member: "Hang", timeout: .seconds(20))
            }
            try await Task.sleep(for: .milliseconds(100))
            let start = ContinuousClock.now
            task.cancel()
            let result = await task.result
            #expect(ContinuousClock.now - start < .seconds(1))
            guard case .failure(let failure) = result, let error = failure as? DBusError else {
                Issue.record("the cancelled call did not fail with a D-Bus error: \(result)")
                return
            }
            #expect(error.name == .cancelled)
            let echoed = try await echo(client, [.string("after")])
            #expect(echoed == [.string("after")])
        }
    }

    @Test("a call the handler answers at once does not wait behind one still open; the others keep their queue")
    func answeredAtOnce() async throws {
        try await withPrivateBus { bus in
            let server = try await BusConnection.connect(address: bus.address)
            let client = try await BusConnection.connect(address: bus.address)
            let path = "/org/smpctl/Question"
            try await server.export(QuestionObject(), at: path)
            func call(_ member: String, _ arguments: [DBusValue] = [], timeout: Duration) async throws(DBusError)
                -> [DBusValue]
            {
                try await client.call(
                    destination: server.uniqueName, path: path, interface: "org.smpctl.Test.Question",
                    member: member, arguments: arguments, timeout: timeout)
            }
            let start = ContinuousClock.now
            let question = Task { () async throws(DBusError) -> [DBusValue] in try await call("Ask", timeout: .seconds(15)) }
            try await Task.sleep(for: .milliseconds(200))
            // An ordinary call still waits its turn behind the open question...
            let queued = await #expect(throws: DBusError.self) {
                try await call("Echo", [.byte(1)], timeout: .milliseconds(300))
            }
            #expect(queued?.name == .noReply)
            // ...but Cancel is answered while the question is open, and ends it.
            _ = try await call("Cancel", timeout: .seconds(3))
            let answer = try await question.value
            #expect(answer == [.string("cancelled")])
            #expect(ContinuousClock.now - start < .seconds(5))
            #expect(try await call("Echo", [.byte(2)], timeout: .seconds(3)) == [.byte(2)])
            await client.close()
            await server.close()
        }
    }

    @Test("properties are read with Get and GetAll")
    func properties() async throws {
        try await withEchoService { _, client in
            let name = try await client.property(
                destination: "org.smpctl.Test", path: "/org/smpctl/Echo", interface: EchoObject.interface, name: "Name")
            #expect(name == .string("echo"))
            let all = try await client.call(
                destination: "org.smpctl.Test", path: "/org/smpctl/Echo", interface: DBusInterface.properties,
                member: "GetAll", arguments: [.string(EchoObject.interface)])
            #expect(all.first?.stringKeyedDictionary == ["Name": .string("echo"), "Count": .uint32(7)])
            let missing = await #expect(throws: DBusError.self) {
                try await client.property(destination: "org.smpctl.Test", path: "/org/smpctl/Echo",
                    interface: EchoObject.interface, name: "Nope")
            }
            #expect(missing?.name == .unknownProperty)
        }
    }

    @Test("signals arrive in order and the subscription ends cleanly")
    func signals() async throws {
        try await withEchoService { server, client in
            let changes = try await client.signals(matching: .propertiesChanged(interface: "org.bluez.GattCharacteristic1"))
            let added = try await client.signals(matching: .interfacesAdded())
            for index in 0..<50 {
                try await server.emitPropertiesChanged(
                    path: "/org/bluez/hci0/dev_1/service1/char2", interface: "org.bluez.GattCharacteristic1",
                    changed: ["Value": .bytes([UInt8(index)])])
            }
            // Another interface's change is not delivered to this subscription.
            try await server.emitPropertiesChanged(path: "/x", interface: "org.bluez.Device1", changed: ["RSSI": .int16(-40)])
            try await server.emitSignal(path: "/", interface: DBusInterface.objectManager, member: "InterfacesAdded",
                arguments: [.objectPath("/org/bluez/hci0/dev_1"), .dictionary(keySignature: "s", valueSignature: "a{sv}", [])])
            var values: [UInt8] = []
            for await signal in changes {
                #expect(signal.sender == server.uniqueName)
                guard let changed = signal.arguments.dropFirst().first?.stringKeyedDictionary,
                    let value = changed["Value"]?.byteArray?.first
                else { continue }
                values.append(value)
                if values.count == 50 { break }
            }
            #expect(values == (0..<50).map { UInt8($0) })
            var iterator = added.makeAsyncIterator()
            let first = await iterator.next()
            #expect(first?.arguments.first == .objectPath("/org/bluez/hci0/dev_1"))
        }
    }

    @Test("one stream over several rules keeps the bus's order across kinds and delivers each signal once")
    func signalsMatchingAny() async throws {
        try await withEchoService { server, client in
            // Both rules match a PropertiesChanged on /org/bluez/x: it must still arrive once.
            let stream = try await client.signals(matchingAny: [
                .interfacesAdded(), .propertiesChanged(), .propertiesChanged(pathNamespace: "/org/bluez"),
            ])
            for index in 0..<40 {
                if index.isMultiple(of: 2) {
                    try await server.emitSignal(
                        path: "/", interface: DBusInterface.objectManager, member: "InterfacesAdded",
                        arguments: [
                            .objectPath("/org/bluez/o\(index)"),
                            .dictionary(keySignature: "s", valueSignature: "a{sv}", []),
                        ])
                } else {
                    try await server.emitPropertiesChanged(
                        path: "/org/bluez/o\(index)", interface: "org.bluez.Device1", changed: ["RSSI": .int16(-40)])
                }
            }
            var seen: [String] = []
            for await signal in stream {
                if signal.member == "InterfacesAdded", case .objectPath(let path)? = signal.arguments.first {
                    seen.append(path)
                } else {
                    seen.append(signal.path)
                }
                if seen.count == 40 { break }
            }
            #expect(seen == (0..<40).map { "/org/bluez/o\($0)" })
        }
    }

    @Test("a closed connection ends its signal streams and fails calls")
    func closeEndsStreams() async throws {
        try await withPrivateBus { bus in
            let client = try await BusConnection.connect(address: bus.address)
            let stream = try await client.signals(matching: .interfacesRemoved())
            await client.close()
            var count = 0
            for await _ in stream { count += 1 }
            #expect(count == 0)
            let error = await #expect(throws: DBusError.self) {
                try await client.call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                    interface: "org.freedesktop.DBus", member: "GetId")
            }
            #expect(error?.name == .disconnected)
        }
    }

    @Test("file descriptors travel both ways")
    func fileDescriptors() async throws {
        try await withEchoService { _, client in
            // Sending: the service writes into our socket.
            var ends: [Int32] = [-1, -1]
            #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &ends) == 0)
            let reply = try await echo(client, [.unixFD(ends[1]), .string("sent")], member: "WriteToFD")
            close(ends[1])
            #expect(reply == [.int32(4)])
            var buffer = [UInt8](repeating: 0, count: 16)
            let count = read(ends[0], &buffer, 16)
            #expect(count == 4)
            #expect(Array(buffer.prefix(4)) == Array("sent".utf8))
            close(ends[0])
            // Receiving: we get a new descriptor, which we own.
            let made = try await echo(client, [.string("received")], member: "MakeFD")
            guard case .unixFD(let fd) = made.first else {
                Issue.record("no descriptor in \(made)")
                return
            }
            #expect(fd >= 0)
            let got = read(fd, &buffer, 16)
            #expect(got == 8)
            #expect(Array(buffer.prefix(8)) == Array("received".utf8))
            close(fd)
        }
    }

    @Test("a name has one owner")
    func requestName() async throws {
        try await withEchoService { _, client in
            await #expect(throws: DBusError.self) { try await client.requestName("org.smpctl.Test") }
            try await client.requestName("org.smpctl.Other")
        }
    }

    @Test("a bad address fails with a D-Bus error")
    func badAddress() async throws {
        let error = await #expect(throws: DBusError.self) {
            try await BusConnection.connect(address: "unix:path=/nonexistent/smpctl-test-bus")
        }
        #expect(error?.message.isEmpty == false)
    }

    @Test("DBUS_SYSTEM_BUS_ADDRESS overrides the system bus address")
    func systemBusAddress() {
        #expect(BusConnection.systemBusAddress(environment: ["DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/tmp/x"]) == "unix:path=/tmp/x")
        #expect(BusConnection.systemBusAddress(environment: [:]) == BusConnection.defaultSystemBusAddress)
    }
}
