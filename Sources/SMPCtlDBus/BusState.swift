#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
internal import CSMPCtlDBus

/// A method call an exported object has yet to answer.
struct IncomingMethodCall: Sendable {
    var call: DBusMethodCall
    var serial: UInt32
    var expectsReply: Bool
}

/// Everything libdbus-related for one connection. It lives on, and is only touched by, the bus thread.
///
/// Not `Sendable`: it holds C pointers, and confinement to one thread is what makes them safe.
final class BusState {
    private struct PendingCall {
        let pending: OpaquePointer
        let completion: (Result<[DBusValue], DBusError>) -> Void
    }

    private struct TimeoutEntry {
        let timeout: OpaquePointer
        var deadline: ContinuousClock.Instant?
    }

    private struct Subscription {
        /// A signal is delivered once when any of these match.
        let rules: [DBusMatchRule]
        let continuation: AsyncStream<DBusSignal>.Continuation
    }

    private var connection: OpaquePointer?
    private(set) var isRunning = true
    private var watches: [OpaquePointer] = []
    private var timeouts: [TimeoutEntry] = []
    /// The watches polled in the last `poll`, with what poll reported.
    private var polled: [(watch: OpaquePointer, revents: Int16)] = []
    private var calls: [UInt64: PendingCall] = [:]
    private var cancelledBeforeStart: Set<UInt64> = []
    private var subscriptions: [UInt64: Subscription] = [:]
    private var exports: [String: AsyncStream<IncomingMethodCall>.Continuation] = [:]
    private var nextInternalID: UInt64 = 1 << 62

    /// The largest message accepted from the bus.
    static let maximumMessageSize = 16 << 20

    init(address: String, thread: BusThread, onStart: @escaping @Sendable (Result<String, DBusError>) -> Void)
        throws(DBusError)
    {
        _ = dbus_threads_init_default()
        var error = CSMPCtlDBus.DBusError()
        dbus_error_init(&error)
        guard let opened = dbus_connection_open_private(address, &error) else {
            throw takeError(&error, fallback: "cannot connect to the D-Bus address \(address)")
        }
        connection = opened
        dbus_connection_set_exit_on_disconnect(opened, 0)
        dbus_connection_set_max_message_size(opened, Self.maximumMessageSize)
        dbus_connection_set_max_message_unix_fds(opened, 64)
        let installed = installCallbacks(opened)
        guard installed else {
            releaseConnection()
            throw DBusError(.noMemory, "libdbus could not install its callbacks")
        }
        // The bus daemon wants Hello first; it answers with our unique name.
        startCall(
            id: takeInternalID(), destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus", member: "Hello", arguments: [], timeoutMilliseconds: 25_000
        ) { [weak self] result in
            // Runs on this thread (from completeFinishedCalls).
            switch result {
            case .success(let values):
                guard let name = values.first?.stringValue else {
                    onStart(.failure(DBusError(.invalidReply, "the bus answered Hello without a name")))
                    self?.shutDown(DBusError(.disconnected, "the bus did not accept the connection"))
                    return
                }
                if let connection = self?.connection { _ = dbus_bus_set_unique_name(connection, name) }
                onStart(.success(name))
            case .failure(let error):
                onStart(.failure(error))
                self?.shutDown(error)
            }
        }
    }

    private func installCallbacks(_ connection: OpaquePointer) -> Bool {
        let release: DBusFreeFunction = { data in
            guard let data else { return }
            Unmanaged<BusState>.fromOpaque(data).release()
        }
        let watchesSet = dbus_connection_set_watch_functions(
            connection,
            { watch, data in
                guard let watch, let data else { return 0 }
                Unmanaged<BusState>.fromOpaque(data).takeUnretainedValue().watches.append(watch)
                return 1
            },
            { watch, data in
                guard let watch, let data else { return }
                Unmanaged<BusState>.fromOpaque(data).takeUnretainedValue().watches.removeAll { $0 == watch }
            },
            nil,
            Unmanaged.passRetained(self).toOpaque(), release)
        let timeoutsSet = dbus_connection_set_timeout_functions(
            connection,
            { timeout, data in
                guard let timeout, let data else { return 0 }
                Unmanaged<BusState>.fromOpaque(data).takeUnretainedValue().timeoutAdded(timeout)
                return 1
            },
            { timeout, data in
                guard let timeout, let data else { return }
                Unmanaged<BusState>.fromOpaque(data).takeUnretainedValue().timeouts.removeAll { $0.timeout == timeout }
            },
            { timeout, data in
                guard let timeout, let data else { return }
                Unmanaged<BusState>.fromOpaque(data).takeUnretainedValue().timeoutToggled(timeout)
            },
            Unmanaged.passRetained(self).toOpaque(), release)
        let filterSet = dbus_connection_add_filter(
            connection,
            { _, message, data in
                guard let message, let data else { return DBUS_HANDLER_RESULT_NOT_YET_HANDLED }
                return Unmanaged<BusState>.fromOpaque(data).takeUnretainedValue().handleIncoming(message)
            },
            Unmanaged.passRetained(self).toOpaque(), release)
        return watchesSet != 0 && timeoutsSet != 0 && filterSet != 0
    }

    private func takeInternalID() -> UInt64 {
        nextInternalID += 1
        return nextInternalID
    }

    // MARK: - The loop

    private func timeoutAdded(_ timeout: OpaquePointer) {
        timeouts.append(TimeoutEntry(timeout: timeout, deadline: nil))
        timeoutToggled(timeout)
    }

    private func timeoutToggled(_ timeout: OpaquePointer) {
        guard let index = timeouts.firstIndex(where: { $0.timeout == timeout }) else { return }
        if dbus_timeout_get_enabled(timeout) != 0 {
            timeouts[index].deadline = .now + .milliseconds(Int(dbus_timeout_get_interval(timeout)))
        } else {
            timeouts[index].deadline = nil
        }
    }

    /// Waits until the wake-up pipe, a watch or a timeout needs attention.
    func pollOnce(wakeFD: Int32) {
        var descriptors = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        var order: [OpaquePointer] = []
        for watch in watches where dbus_watch_get_enabled(watch) != 0 {
            let flags = dbus_watch_get_flags(watch)
            var events: Int16 = 0
            if flags & DBUS_WATCH_READABLE.rawValue != 0 { events |= Int16(POLLIN) }
            if flags & DBUS_WATCH_WRITABLE.rawValue != 0 { events |= Int16(POLLOUT) }
            descriptors.append(pollfd(fd: dbus_watch_get_unix_fd(watch), events: events, revents: 0))
            order.append(watch)
        }
        var waitMilliseconds: Int32 = 1000
        let now = ContinuousClock.now
        for entry in timeouts {
            guard let deadline = entry.deadline else { continue }
            let remaining = deadline - now
            let milliseconds = max(0, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            waitMilliseconds = min(waitMilliseconds, Int32(clamping: milliseconds))
        }
        let ready = poll(&descriptors, nfds_t(descriptors.count), waitMilliseconds)
        polled = []
        guard ready > 0 else { return }
        for (index, watch) in order.enumerated() where descriptors[index + 1].revents != 0 {
            polled.append((watch, descriptors[index + 1].revents))
        }
    }

    func handleReadyWatches() {
        let ready = polled
        polled = []
        for (watch, revents) in ready where watches.contains(watch) {
            var flags: UInt32 = 0
            if revents & Int16(POLLIN) != 0 { flags |= DBUS_WATCH_READABLE.rawValue }
            if revents & Int16(POLLOUT) != 0 { flags |= DBUS_WATCH_WRITABLE.rawValue }
            if revents & Int16(POLLERR) != 0 { flags |= DBUS_WATCH_ERROR.rawValue }
            if revents & Int16(POLLHUP) != 0 { flags |= DBUS_WATCH_HANGUP.rawValue }
            _ = dbus_watch_handle(watch, flags)
        }
    }

    func handleExpiredTimeouts() {
        let now = ContinuousClock.now
        let expired = timeouts.filter { entry in entry.deadline.map { $0 <= now } ?? false }.map(\.timeout)
        for timeout in expired {
            guard let index = timeouts.firstIndex(where: { $0.timeout == timeout }) else { continue }
            timeouts[index].deadline = now + .milliseconds(Int(dbus_timeout_get_interval(timeout)))
            _ = dbus_timeout_handle(timeout)
        }
    }

    func dispatchAll() {
        guard let connection else { return }
        var rounds = 0
        while dbus_connection_dispatch(connection) == DBUS_DISPATCH_DATA_REMAINS, rounds < 10_000 {
            rounds += 1
        }
        if isRunning, dbus_connection_get_is_connected(connection) == 0 {
            shutDown(DBusError(.disconnected, "the D-Bus connection was closed by the bus"))
        }
    }

    /// Resumes the callers whose replies (or timeouts) arrived.
    func completeFinishedCalls() {
        let finished = calls.filter { dbus_pending_call_get_completed($0.value.pending) != 0 }
        for (id, call) in finished {
            calls[id] = nil
            let reply = dbus_pending_call_steal_reply(call.pending)
            dbus_pending_call_unref(call.pending)
            guard let reply else {
                call.completion(.failure(DBusError(.noReply, "no reply")))
                continue
            }
            let result = Self.decodeReply(reply)
            dbus_message_unref(reply)
            call.completion(result)
        }
    }

    private static func decodeReply(_ reply: OpaquePointer) -> Result<[DBusValue], DBusError> {
        if dbus_message_get_type(reply) == DBUS_MESSAGE_TYPE_ERROR {
            var error = CSMPCtlDBus.DBusError()
            dbus_error_init(&error)
            _ = dbus_set_error_from_message(&error, reply)
            return .failure(takeError(&error, fallback: "an error reply without a name"))
        }
        do {
            return .success(try readArguments(of: reply))
        } catch {
            return .failure(error)
        }
    }

    // MARK: - Shutting down

    /// Stops the loop, failing every call and ending every stream.
    func shutDown(_ reason: DBusError) {
        guard isRunning else { return }
        isRunning = false
        let pending = calls
        calls = [:]
        for (_, call) in pending {
            dbus_pending_call_cancel(call.pending)
            dbus_pending_call_unref(call.pending)
            call.completion(.failure(reason))
        }
        let streams = subscriptions
        subscriptions = [:]
        for (_, subscription) in streams { subscription.continuation.finish() }
        let exported = exports
        exports = [:]
        for (_, continuation) in exported { continuation.finish() }
    }

    /// Closes and releases the libdbus connection (after the loop ended).
    func releaseConnection() {
        guard let connection else { return }
        self.connection = nil
        dbus_connection_close(connection)
        dbus_connection_unref(connection)
    }

    // MARK: - Method calls

    /// Sends a method call; `completion` runs on this thread once with the reply or the error.
    func startCall(
        id: UInt64, destination: String?, path: String, interface: String?, member: String, arguments: [DBusValue],
        timeoutMilliseconds: Int32, completion: @escaping (Result<[DBusValue], DBusError>) -> Void
    ) {
        if cancelledBeforeStart.remove(id) != nil {
            completion(.failure(DBusError(.cancelled, "the call was cancelled")))
            return
        }
        guard isRunning, let connection else {
            completion(.failure(DBusError(.disconnected, "the D-Bus connection is closed")))
            return
        }
        let message: OpaquePointer
        do {
            message = try Self.makeMethodCall(
                destination: destination, path: path, interface: interface, member: member, arguments: arguments)
        } catch {
            completion(.failure(error))
            return
        }
        defer { dbus_message_unref(message) }
        var pending: OpaquePointer?
        guard dbus_connection_send_with_reply(connection, message, &pending, timeoutMilliseconds) != 0,
            let pending
        else {
            completion(.failure(DBusError(.disconnected, "the D-Bus connection is closed")))
            return
        }
        calls[id] = PendingCall(pending: pending, completion: completion)
    }

    /// Cancels a call; if it has not started yet, it will fail as soon as it does.
    func cancelCall(id: UInt64) {
        guard let call = calls.removeValue(forKey: id) else {
            // Either not started yet, or already finished; bound the record for the second case.
            if cancelledBeforeStart.count >= 1024 { cancelledBeforeStart.removeAll() }
            cancelledBeforeStart.insert(id)
            return
        }
        dbus_pending_call_cancel(call.pending)
        dbus_pending_call_unref(call.pending)
        call.completion(.failure(DBusError(.cancelled, "the call was cancelled")))
    }

    private static func makeMethodCall(
        destination: String?, path: String, interface: String?, member: String, arguments: [DBusValue]
    ) throws(DBusError) -> OpaquePointer {
        guard isValidObjectPath(path) else { throw DBusError(.invalidArgs, "\"\(path)\" is not a valid object path") }
        if let destination, dbus_validate_bus_name(destination, nil) == 0 {
            throw DBusError(.invalidArgs, "\"\(destination)\" is not a valid bus name")
        }
        if let interface, dbus_validate_interface(interface, nil) == 0 {
            throw DBusError(.invalidArgs, "\"\(interface)\" is not a valid interface name")
        }
        guard dbus_validate_member(member, nil) != 0 else {
            throw DBusError(.invalidArgs, "\"\(member)\" is not a valid member name")
        }
        guard let message = dbus_message_new_method_call(destination, path, interface, member) else {
            throw DBusError(.noMemory, "libdbus could not allocate a message")
        }
        do {
            try appendArguments(arguments, to: message)
        } catch {
            dbus_message_unref(message)
            throw error
        }
        return message
    }

    /// Sends a method call whose reply nobody waits for.
    @discardableResult
    func sendWithoutReply(destination: String?, path: String, interface: String?, member: String,
        arguments: [DBusValue], flush: Bool = false) -> Bool
    {
        guard isRunning, let connection,
            let message = try? Self.makeMethodCall(
                destination: destination, path: path, interface: interface, member: member, arguments: arguments)
        else { return false }
        dbus_message_set_no_reply(message, 1)
        let queued = dbus_connection_send(connection, message, nil) != 0
        dbus_message_unref(message)
        // Writing one small message to the bus socket: done at once unless the daemon is wedged.
        if queued, flush { dbus_connection_flush(connection) }
        return queued
    }

    // MARK: - Signals

    func addSubscription(id: UInt64, rules: [DBusMatchRule], continuation: AsyncStream<DBusSignal>.Continuation) {
        guard isRunning else {
            continuation.finish()
            return
        }
        subscriptions[id] = Subscription(rules: rules, continuation: continuation)
    }

    func removeSubscription(id: UInt64) {
        guard let subscription = subscriptions.removeValue(forKey: id) else { return }
        for rule in subscription.rules {
            sendWithoutReply(
                destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
                member: "RemoveMatch", arguments: [.string(rule.ruleText)])
        }
    }

    func emitSignal(path: String, interface: String, member: String, arguments: [DBusValue]) throws(DBusError) {
        guard isRunning, let connection else { throw DBusError(.disconnected, "the D-Bus connection is closed") }
        guard isValidObjectPath(path), dbus_validate_interface(interface, nil) != 0,
            dbus_validate_member(member, nil) != 0
        else {
            throw DBusError(.invalidArgs, "invalid signal \(path) \(interface).\(member)")
        }
        guard let message = dbus_message_new_signal(path, interface, member) else {
            throw DBusError(.noMemory, "libdbus could not allocate a signal")
        }
        defer { dbus_message_unref(message) }
        try appendArguments(arguments, to: message)
        guard dbus_connection_send(connection, message, nil) != 0 else {
            throw DBusError(.noMemory, "libdbus could not queue the signal")
        }
    }

    // MARK: - Exported objects

    func export(path: String, continuation: AsyncStream<IncomingMethodCall>.Continuation) throws(DBusError) {
        guard isRunning else { throw DBusError(.disconnected, "the D-Bus connection is closed") }
        guard isValidObjectPath(path) else { throw DBusError(.invalidArgs, "\"\(path)\" is not a valid object path") }
        guard exports[path] == nil else { throw DBusError(.failed, "an object is already exported at \(path)") }
        exports[path] = continuation
    }

    func unexport(path: String) {
        exports.removeValue(forKey: path)?.finish()
    }

    /// Sends the answer to an exported method call.
    func reply(to incoming: IncomingMethodCall, with result: Result<[DBusValue], DBusError>) {
        guard incoming.expectsReply, isRunning, let connection else { return }
        var outcome = result
        if case .success(let values) = result {
            if let message = dbus_message_new(DBUS_MESSAGE_TYPE_METHOD_RETURN) {
                do {
                    try appendArguments(values, to: message)
                    send(reply: message, to: incoming, on: connection)
                    return
                } catch {
                    dbus_message_unref(message)
                    outcome = .failure(DBusError(.failed, "the reply could not be marshalled: \(error)"))
                }
            } else {
                return
            }
        }
        guard case .failure(var error) = outcome else { return }
        if dbus_validate_error_name(error.name.rawValue, nil) == 0 {
            error = DBusError(.failed, error.description)
        }
        guard let message = dbus_message_new(DBUS_MESSAGE_TYPE_ERROR) else { return }
        _ = dbus_message_set_error_name(message, error.name.rawValue)
        if (try? appendArguments([.string(error.message)], to: message)) == nil {
            _ = try? appendArguments([.string("(unprintable error message)")], to: message)
        }
        send(reply: message, to: incoming, on: connection)
    }

    private func send(reply message: OpaquePointer, to incoming: IncomingMethodCall, on connection: OpaquePointer) {
        _ = dbus_message_set_reply_serial(message, incoming.serial)
        if !incoming.call.sender.isEmpty { _ = dbus_message_set_destination(message, incoming.call.sender) }
        dbus_message_set_no_reply(message, 1)
        _ = dbus_connection_send(connection, message, nil)
        dbus_message_unref(message)
    }

    // MARK: - Incoming messages

    private static func string(_ pointer: UnsafePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }

    private func handleIncoming(_ message: OpaquePointer) -> DBusHandlerResult {
        let type = dbus_message_get_type(message)
        let path = Self.string(dbus_message_get_path(message))
        let interface = dbus_message_get_interface(message).map { String(cString: $0) }
        let member = Self.string(dbus_message_get_member(message))
        let sender = Self.string(dbus_message_get_sender(message))
        if type == DBUS_MESSAGE_TYPE_SIGNAL {
            if interface == "org.freedesktop.DBus.Local", member == "Disconnected" {
                shutDown(DBusError(.disconnected, "the D-Bus connection was lost"))
                return DBUS_HANDLER_RESULT_HANDLED
            }
            deliverSignal(message, sender: sender, path: path, interface: interface ?? "", member: member)
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }
        guard type == DBUS_MESSAGE_TYPE_METHOD_CALL, let continuation = exports[path] else {
            return DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }
        let serial = dbus_message_get_serial(message)
        let expectsReply = dbus_message_get_no_reply(message) == 0
        var call = DBusMethodCall(sender: sender, path: path, interface: interface, member: member, arguments: [])
        do {
            call.arguments = try readArguments(of: message)
        } catch {
            reply(to: IncomingMethodCall(call: call, serial: serial, expectsReply: expectsReply), with: .failure(error))
            return DBUS_HANDLER_RESULT_HANDLED
        }
        continuation.yield(IncomingMethodCall(call: call, serial: serial, expectsReply: expectsReply))
        return DBUS_HANDLER_RESULT_HANDLED
    }

    private func deliverSignal(_ message: OpaquePointer, sender: String, path: String, interface: String, member: String) {
        let header = DBusSignal(sender: sender, path: path, interface: interface, member: member, arguments: [])
        // Match the header first, so that a signal nobody wants is not decoded (and carries no fds to leak).
        let candidates = subscriptions.filter { entry in
            entry.value.rules.contains { rule in
                var headerRule = rule
                headerRule.argument0 = nil
                return headerRule.matches(header)
            }
        }
        guard !candidates.isEmpty, let arguments = try? readArguments(of: message) else { return }
        var signal = header
        signal.arguments = arguments
        for (_, subscription) in candidates.sorted(by: { $0.key < $1.key }) 
        where subscription.rules.contains(where: { $0.matches(signal) })
        {
            subscription.continuation.yield(signal)
        }
    }
}

/// Turns a set libdbus error into a Swift one and frees it.
func takeError(_ error: inout CSMPCtlDBus.DBusError, fallback: String) -> DBusError {
    defer { dbus_error_free(&error) }
    guard dbus_error_is_set(&error) != 0 else { return DBusError(.failed, fallback) }
    let name = error.name.map { String(cString: $0) } ?? DBusErrorName.failed.rawValue
    let message = error.message.map { String(cString: $0) } ?? ""
    return DBusError(DBusErrorName(name), message)
}
