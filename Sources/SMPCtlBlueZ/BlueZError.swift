public import SMPCtlDBus

/// A Bluetooth failure described for a user, with what to do next.
public struct BlueZError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable, Hashable {
        /// The system D-Bus cannot be reached.
        case busUnavailable
        /// Nobody owns `org.bluez` on the bus.
        case bluetoothdNotRunning
        /// No adapter, or not the one asked for.
        case noAdapter
        case adapterPoweredOff
        case deviceNotFound
        case connectFailed
        /// The device has no SMP characteristic.
        case characteristicNotFound
        /// The characteristic needs pairing or an authenticated link.
        case authenticationRequired
        /// The link dropped.
        case disconnected
        /// A connect phase did not answer within its deadline (``BlueZError/phase`` says which).
        case stalled
        /// `Device1.Pair` failed, was refused or was cancelled.
        case pairingFailed
        /// Any other BlueZ or D-Bus failure.
        case failed
    }

    public var code: Code
    /// The sentence shown to the user, ending with what to do next.
    public var message: String
    /// The D-Bus error behind it, if any.
    public var underlying: DBusError?
    /// The connect phase that failed or stalled, when the failure happened while opening a link.
    public var phase: BLEConnectPhase?

    public init(_ code: Code, _ message: String, underlying: DBusError? = nil, phase: BLEConnectPhase? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.phase = phase
    }

    /// The same error, naming `phase` (kept if one is named already).
    func `in`(_ phase: BLEConnectPhase) -> BlueZError {
        var copy = self
        guard copy.phase == nil else { return copy }
        copy.phase = phase
        if !copy.message.contains("(\(phase.rawValue))") { copy.message = "\(phase.rawValue): " + copy.message }
        return copy
    }

    public var description: String {
        guard let underlying else { return message }
        return "\(message) [\(underlying)]"
    }

    /// Whether a D-Bus error from a GATT or Device1 call means that pairing or authentication is missing.
    public static func isAuthenticationFailure(_ error: DBusError) -> Bool {
        switch error.name {
        case .bluezAuthenticationFailed, .bluezAuthenticationRejected, .bluezAuthenticationCanceled,
            .bluezAuthenticationTimeout, .bluezNotAuthorized:
            return true
        case .bluezNotPermitted, .bluezFailed:
            let text = error.message.lowercased()
            // BlueZ maps ATT insufficient authentication (0x05), encryption (0x0f) and key size (0x0c) to
            // NotPermitted "Not paired"; older versions report "Operation failed with ATT error: 0x05".
            return text.contains("paired") || text.contains("encrypt") || text.contains("authenticat")
                || text.hasSuffix("0x05") || text.hasSuffix("0x0f") || text.hasSuffix("0x0c")
        default:
            return false
        }
    }

    /// Classifies a D-Bus error from talking to bluetoothd; `context` says what was being done.
    public static func from(_ error: DBusError, while context: String, device: String? = nil) -> BlueZError {
        let who = device.map { " \($0)" } ?? ""
        switch error.name {
        case .serviceUnknown, .nameHasNoOwner:
            return BlueZError(
                .bluetoothdNotRunning,
                "bluetoothd is not running (no org.bluez on the system D-Bus) while \(context). Start it with `sudo systemctl start bluetooth`, and check that the adapter is not blocked (`rfkill list`).",
                underlying: error)
        case .disconnected, "org.freedesktop.DBus.Error.FileNotFound", "org.freedesktop.DBus.Error.NoServer",
            "org.freedesktop.DBus.Error.BadAddress":
            return BlueZError(
                .busUnavailable,
                "cannot reach the system D-Bus while \(context). Check that dbus is running, or set DBUS_SYSTEM_BUS_ADDRESS.",
                underlying: error)
        case "org.freedesktop.DBus.Error.AccessDenied":
            return BlueZError(
                .failed,
                "the system D-Bus refused access to bluetoothd while \(context). Add your user to the `bluetooth` group (`sudo usermod -aG bluetooth $USER`, then log in again).",
                underlying: error)
        default:
            break
        }
        if isAuthenticationFailure(error) {
            return BlueZError(
                .authenticationRequired,
                "the device\(who) requires pairing or an authenticated link (\(context)). Pair it with `smpctl pair ble:\(device ?? "ADDRESS")` (or `bluetoothctl pair \(device ?? "ADDRESS")` and `trust`), or add `pair=yes` to the connection (`ble:\(device ?? "ADDRESS")?pair=yes`) to let smpctl pair when the device asks.",
                underlying: error)
        }
        if error.name == .bluezNotReady {
            return BlueZError(
                .adapterPoweredOff,
                "the Bluetooth adapter is not ready (powered off?) while \(context). Power it on with `bluetoothctl power on`.",
                underlying: error)
        }
        if error.name == .bluezNotConnected {
            return BlueZError(
                .disconnected,
                "the device\(who) is not connected (\(context)). Bring it in range and try again; an interrupted upload resumes from the device's offset.",
                underlying: error)
        }
        return BlueZError(.failed, "BlueZ failed while \(context).", underlying: error)
    }
}
