import Foundation
import Synchronization
import SMPCtlLocking

/// Answers method calls made to an object exported with ``BusConnection/export(_:at:)``.
///
/// Calls to one object are handled one at a time, in the order they arrived, except those
/// ``answersAtOnce(_:)`` picks out.
public protocol DBusObjectHandler: Sendable {
    /// Handles a method call (anything but `org.freedesktop.DBus.Properties`) and returns the reply's arguments.
    func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue]
    /// The properties of `interface`, for `Properties.Get` and `GetAll`; `nil` when the object lacks the interface.
    func properties(of interface: String) async -> [String: DBusValue]?
    /// Changes a property for `Properties.Set`.
    func setProperty(interface: String, name: String, value: DBusValue) async throws(DBusError)
    /// Whether `call` is answered at once, beside the object's queue, even while an earlier call
    /// still waits for its answer: an agent's `Cancel` must not wait behind the question it
    /// cancels. At most ``BusConnection/callsAnsweredAtOnceLimit`` such calls run at a time per
    /// object; beyond that they queue with the rest. `false` unless the handler says otherwise.
    func answersAtOnce(_ call: DBusMethodCall) -> Bool
}

extension DBusObjectHandler {
    public func handleMethodCall(_ call: DBusMethodCall) async throws(DBusError) -> [DBusValue] {
        throw DBusError(.unknownMethod, "no method \(call.interface ?? "").\(call.member) at \(call.path)")
    }

    public func properties(of interface: String) async -> [String: DBusValue]? { nil }

    public func setProperty(interface: String, name: String, value: DBusValue) async throws(DBusError) {
        throw DBusError("org.freedesktop.DBus.Error.PropertyReadOnly", "property \(interface).\(name) is read-only")
    }

    public func answersAtOnce(_ call: DBusMethodCall) -> Bool { false }
}

/// A connection to a D-Bus bus.
///
/// One dedicated thread owns the libdbus connection; every operation here is a job queued to that
/// thread, and only Swift values cross back. Close the connection with ``close()`` when done.
public final class BusConnection: Sendable {
    /// The well-known address of the system bus, used when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
    public static let defaultSystemBusAddress = "unix:path=/var/run/dbus/system_bus_socket"
    /// How long a method call waits for its reply unless told otherwise.
    public static let defaultTimeout: Duration = .seconds(25)

    private let thread: BusThread
    /// This connection's unique name on the bus, such as `:1.42`.
    public let uniqueName: String
    /// The address connected to.
    public let address: String
    private let nextID = Atomic<UInt64>(1)

    private init(thread: BusThread, uniqueName: String, address: String) {
        self.thread = thread
        self.uniqueName = uniqueName
        self.address = address
    }

    deinit {
        thread.enqueue { state in state.shutDown(DBusError(.disconnected, "the connection was released")) }
    }

    /// The system bus address: `DBUS_SYSTEM_BUS_ADDRESS` when set, otherwise the standard socket.
    public static func systemBusAddress(environment: [String: String]? = nil) -> String {
        let environment = environment ?? ProcessInfo.processInfo.environment
        if let address = environment["DBUS_SYSTEM_BUS_ADDRESS"], !address.isEmpty { return address }
        return defaultSystemBusAddress
    }

    /// Connects to the system bus (or to `DBUS_SYSTEM_BUS_ADDRESS` when that is set).
    public static func systemBus() async throws(DBusError) -> BusConnection {
        try await connect(address: systemBusAddress())
    }

    /// Connects to the bus at a D-Bus address such as `unix:path=/tmp/bus`, and registers with it.
    public static func connect(address: String) async throws(DBusError) -> BusConnection {
        let box = LockedValue<BusThread?>(nil)
        let result: Result<String, DBusError> = await awaitHandOver(
            missing: .failure(DBusError(.failed, "the bus thread did not start"))
        ) { deliver in
            let thread = BusThread.start(address: address, onStart: deliver)
            box.withLock { $0 = thread }
        }
        let name = try result.get()
        guard let thread = box.withLock({ $0 }) else {
            throw DBusError(.failed, "the bus thread did not start")
        }
        return BusConnection(thread: thread, uniqueName: name, address: address)
    }

    private func makeID() -> UInt64 { nextID.wrappingAdd(1, ordering: .relaxed).newValue }

    private static var closedError: DBusError { DBusError(.disconnected, "the D-Bus connection is closed") }

    /// Runs `body` on the bus thread and returns its result.
    private func onBusThread<T: Sendable>(_ body: @escaping @Sendable (BusState) -> Result<T, DBusError>)
        async throws(DBusError) -> T
    {
        let result: Result<T, DBusError> = await awaitHandOver(missing: .failure(Self.closedError)) { deliver in
            let accepted = thread.enqueue { state in deliver(body(state)) }
            if !accepted { deliver(.failure(Self.closedError)) }
        }
        return try result.get()
    }

    // MARK: - Method calls

    /// Calls a method and returns the reply's arguments.
    ///
    /// A D-Bus error reply is thrown as ``DBusError`` with its name and message. No reply within
    /// `timeout` throws `org.freedesktop.DBus.Error.NoReply`; cancelling the task cancels the call
    /// and throws ``DBusErrorName/cancelled``.
    public func call(
        destination: String?, path: String, interface: String?, member: String, arguments: [DBusValue] = [],
        timeout: Duration = BusConnection.defaultTimeout
    ) async throws(DBusError) -> [DBusValue] {
        let id = makeID()
        let thread = self.thread
        let milliseconds = Int32(clamping: max(1, timeout.components.seconds * 1000
            + timeout.components.attoseconds / 1_000_000_000_000_000))
        if Task.isCancelled { throw DBusError(.cancelled, "the call was cancelled") }
        let result: Result<[DBusValue], DBusError> = await withTaskCancellationHandler {
            // The reply is decoded on the bus thread; awaitHandOver passes it over under a lock
            // that ThreadSanitizer sees (a bare continuation resume is not always visible to it).
            await awaitHandOver(missing: .failure(Self.closedError)) { deliver in
                let accepted = thread.enqueue { state in
                    state.startCall(
                        id: id, destination: destination, path: path, interface: interface, member: member,
                        arguments: arguments, timeoutMilliseconds: milliseconds, completion: deliver)
                }
                if !accepted { deliver(.failure(Self.closedError)) }
            }
        } onCancel: {
            thread.enqueue { state in state.cancelCall(id: id) }
        }
        return try result.get()
    }

    /// Sends a method call that asks for no reply (`NO_REPLY_EXPECTED`) and returns once it is
    /// written to the bus, so that the process may exit right after. For calls whose reply only
    /// delays the caller, such as BlueZ's `Device1.Disconnect`, which answers about 2 s later.
    public func send(
        destination: String?, path: String, interface: String?, member: String, arguments: [DBusValue] = []
    ) async throws(DBusError) {
        try await onBusThread { state in
            let sent = state.sendWithoutReply(
                destination: destination, path: path, interface: interface, member: member,
                arguments: arguments, flush: true)
            return sent ? .success(()) : .failure(DBusError(.failed, "could not send \(member) to \(path)"))
        }
    }

    /// Reads one property through `org.freedesktop.DBus.Properties.Get`.
    public func property(destination: String, path: String, interface: String, name: String,
        timeout: Duration = BusConnection.defaultTimeout) async throws(DBusError) -> DBusValue
    {
        let reply = try await call(
            destination: destination, path: path, interface: DBusInterface.properties, member: "Get",
            arguments: [.string(interface), .string(name)], timeout: timeout)
        guard let value = reply.first else { throw DBusError(.invalidReply, "Properties.Get returned nothing") }
        return value.unwrapped
    }

    /// Asks the bus for a well-known name; throws when another connection owns it.
    public func requestName(_ name: String) async throws(DBusError) {
        // Flag 4: DBUS_NAME_FLAG_DO_NOT_QUEUE. Answer 1: primary owner; 4: already the owner.
        let reply = try await call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "RequestName", arguments: [.string(name), .uint32(4)])
        guard let code = reply.first?.integerValue, code == 1 || code == 4 else {
            throw DBusError(.failed, "the name \(name) is owned by another connection")
        }
    }

    // MARK: - Signals

    /// Subscribes to signals; the match rule is added before this returns and removed when the stream ends.
    ///
    /// The stream buffers without bound, so no notification is lost, and it finishes when the connection closes.
    public func signals(matching rule: DBusMatchRule) async throws(DBusError) -> AsyncStream<DBusSignal> {
        try await signals(matchingAny: [rule])
    }

    /// Subscribes to the signals that match any of `rules`, in one stream and in the order the bus sent them.
    ///
    /// Use one stream where the order between kinds of signal matters: BlueZ exports a device's
    /// GATT objects (`InterfacesAdded`) before it sets `ServicesResolved` (`PropertiesChanged`), and
    /// separate streams read by separate tasks can see the two the other way round.
    /// Each signal is delivered once, however many rules it matches.
    public func signals(matchingAny rules: [DBusMatchRule]) async throws(DBusError) -> AsyncStream<DBusSignal> {
        let id = makeID()
        let thread = self.thread
        let (stream, continuation) = AsyncStream<DBusSignal>.makeStream(bufferingPolicy: .unbounded)
        continuation.onTermination = { _ in
            thread.enqueue { state in state.removeSubscription(id: id) }
        }
        try await onBusThread { state in
            state.addSubscription(id: id, rules: rules, continuation: continuation)
            return .success(())
        }
        do {
            for rule in rules {
                _ = try await call(
                    destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
                    member: "AddMatch", arguments: [.string(rule.ruleText)])
            }
        } catch {
            continuation.finish()
            throw error
        }
        return stream
    }

    /// Emits a signal from `path`.
    public func emitSignal(path: String, interface: String, member: String, arguments: [DBusValue] = [])
        async throws(DBusError)
    {
        try await onBusThread { state in
            do throws(DBusError) {
                try state.emitSignal(path: path, interface: interface, member: member, arguments: arguments)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
    }

    /// Emits `org.freedesktop.DBus.Properties.PropertiesChanged` for `interface` at `path`.
    public func emitPropertiesChanged(path: String, interface: String, changed: [String: DBusValue],
        invalidated: [String] = []) async throws(DBusError)
    {
        try await emitSignal(
            path: path, interface: DBusInterface.properties, member: "PropertiesChanged",
            arguments: [.string(interface), .propertyDictionary(changed), .strings(invalidated)])
    }

    // MARK: - Exported objects

    /// Exports an object at `path`; its handler answers method calls and property reads.
    public func export(_ handler: any DBusObjectHandler, at path: String) async throws(DBusError) {
        let (stream, continuation) = AsyncStream<IncomingMethodCall>.makeStream(bufferingPolicy: .unbounded)
        try await onBusThread { state in
            do throws(DBusError) {
                try state.export(path: path, continuation: continuation)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        let thread = self.thread
        // The dispatcher takes every call as it arrives, so that one answered at once is seen
        // while an earlier call is still being answered; the rest go to the object's queue,
        // answered one at a time in order.
        let (queue, queued) = AsyncStream<IncomingMethodCall>.makeStream(bufferingPolicy: .unbounded)
        Task {
            for await incoming in queue {
                await Self.answerAndReply(incoming, handler: handler, thread: thread)
            }
        }
        Task {
            // Calls answered beside the queue, still running; at most callsAnsweredAtOnceLimit.
            let answeringAtOnce = LockedValue(0)
            for await incoming in stream {
                let startedApart = handler.answersAtOnce(incoming.call) && answeringAtOnce.withLock { running in
                    guard running < Self.callsAnsweredAtOnceLimit else { return false }
                    running += 1
                    return true
                }
                guard startedApart else {
                    queued.yield(incoming)
                    continue
                }
                Task {
                    await Self.answerAndReply(incoming, handler: handler, thread: thread)
                    answeringAtOnce.withLock { $0 -= 1 }
                }
            }
            queued.finish()
        }
    }

    /// How many calls an exported object may be answering at once beside its queue (``DBusObjectHandler/answersAtOnce(_:)``).
    public static let callsAnsweredAtOnceLimit = 4

    private static func answerAndReply(_ incoming: IncomingMethodCall, handler: any DBusObjectHandler, thread: BusThread) async {
        let result: Result<[DBusValue], DBusError>
        do throws(DBusError) {
            result = .success(try await answer(incoming.call, handler: handler))
        } catch {
            result = .failure(error)
        }
        thread.enqueue { state in state.reply(to: incoming, with: result) }
    }

    /// Stops answering calls at `path`.
    public func unexport(path: String) async {
        _ = try? await onBusThread { state in
            state.unexport(path: path)
            return .success(())
        }
    }

    private static func answer(_ call: DBusMethodCall, handler: any DBusObjectHandler) async throws(DBusError)
        -> [DBusValue]
    {
        guard call.interface == DBusInterface.properties else { return try await handler.handleMethodCall(call) }
        let interfaceName = call.arguments.first?.stringValue ?? ""
        switch call.member {
        case "Get":
            guard call.arguments.count == 2, let name = call.arguments[1].stringValue else {
                throw DBusError(.invalidArgs, "Get takes an interface and a property name")
            }
            guard let properties = await handler.properties(of: interfaceName) else {
                throw DBusError(.unknownInterface, "no interface \(interfaceName) at \(call.path)")
            }
            guard let value = properties[name] else {
                throw DBusError(.unknownProperty, "no property \(interfaceName).\(name) at \(call.path)")
            }
            return [.variant(value)]
        case "GetAll":
            guard let properties = await handler.properties(of: interfaceName) else {
                throw DBusError(.unknownInterface, "no interface \(interfaceName) at \(call.path)")
            }
            return [.propertyDictionary(properties)]
        case "Set":
            guard call.arguments.count == 3, let name = call.arguments[1].stringValue else {
                throw DBusError(.invalidArgs, "Set takes an interface, a property name and a value")
            }
            try await handler.setProperty(interface: interfaceName, name: name, value: call.arguments[2].unwrapped)
            return []
        default:
            throw DBusError(.unknownMethod, "no method \(DBusInterface.properties).\(call.member)")
        }
    }

    // MARK: - Closing

    /// Closes the connection: calls in flight fail, signal streams finish, exported objects go away.
    public func close() async {
        _ = try? await onBusThread { state in
            state.shutDown(DBusError(.disconnected, "the connection was closed"))
            return .success(())
        }
    }
}
