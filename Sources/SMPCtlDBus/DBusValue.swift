/// One D-Bus value, with enough type information to marshal it back exactly.
///
/// Containers carry their element signatures so that empty arrays and dictionaries keep their type.
/// A `.unixFD` received from the bus is a new descriptor owned by the receiver, who must close it;
/// a `.unixFD` sent is duplicated by libdbus, so the sender keeps (and later closes) its own.
public indirect enum DBusValue: Sendable, Hashable {
    case byte(UInt8)
    case bool(Bool)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case double(Double)
    case string(String)
    case objectPath(String)
    case signature(String)
    case unixFD(Int32)
    /// An array whose elements all have `elementSignature`. Byte arrays are ``byteArray(_:)``.
    case array(elementSignature: String, [DBusValue])
    /// A byte array (`ay`), kept contiguous: it is marshalled and read with one libdbus call, not
    /// one per byte. Arrays of bytes read from the bus always come in this form.
    case byteArray([UInt8])
    /// A dictionary (`a{kv}`), kept in wire order.
    case dictionary(keySignature: String, valueSignature: String, [DBusDictionaryEntry])
    case structure([DBusValue])
    case variant(DBusValue)

    /// The value's D-Bus type signature, such as `a{sv}`.
    public var signature: String {
        switch self {
        case .byte: "y"
        case .bool: "b"
        case .int16: "n"
        case .uint16: "q"
        case .int32: "i"
        case .uint32: "u"
        case .int64: "x"
        case .uint64: "t"
        case .double: "d"
        case .string: "s"
        case .objectPath: "o"
        case .signature: "g"
        case .unixFD: "h"
        case .array(let element, _): "a" + element
        case .byteArray: "ay"
        case .dictionary(let key, let value, _): "a{" + key + value + "}"
        case .structure(let fields): "(" + fields.map(\.signature).joined() + ")"
        case .variant: "v"
        }
    }

    // MARK: Convenience constructors

    /// A byte array (`ay`).
    public static func bytes(_ bytes: [UInt8]) -> DBusValue { .byteArray(bytes) }
    /// A string array (`as`).
    public static func strings(_ strings: [String]) -> DBusValue {
        .array(elementSignature: "s", strings.map { .string($0) })
    }
    /// A property or option dictionary (`a{sv}`); the values are wrapped in variants.
    public static func propertyDictionary(_ entries: [String: DBusValue]) -> DBusValue {
        .dictionary(
            keySignature: "s", valueSignature: "v",
            entries.sorted { $0.key < $1.key }.map { DBusDictionaryEntry(key: .string($0.key), value: .variant($0.value)) })
    }

    // MARK: Typed access

    /// The value inside any number of variants.
    public var unwrapped: DBusValue {
        if case .variant(let inner) = self { return inner.unwrapped }
        return self
    }

    public var stringValue: String? {
        switch unwrapped {
        case .string(let text), .objectPath(let text), .signature(let text): text
        default: nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let value) = unwrapped { return value }
        return nil
    }

    /// Any integer kind, converted when it fits.
    public var integerValue: Int? {
        switch unwrapped {
        case .byte(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int64(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        default: nil
        }
    }

    /// The bytes of an `ay`.
    public var byteArray: [UInt8]? {
        if case .byteArray(let bytes) = unwrapped { return bytes }
        guard case .array(let element, let items) = unwrapped, element == "y" else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(items.count)
        for item in items {
            guard case .byte(let byte) = item else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    /// The strings of an `as` or `ao`.
    public var stringArray: [String]? {
        guard case .array(_, let items) = unwrapped else { return nil }
        var strings: [String] = []
        for item in items {
            guard let text = item.stringValue else { return nil }
            strings.append(text)
        }
        return strings
    }

    /// The entries of a dictionary with string or object-path keys (`a{sv}`, `a{oa{sa{sv}}}`, ...).
    /// Variant values are unwrapped one level. A key that appears twice keeps its last value.
    public var stringKeyedDictionary: [String: DBusValue]? {
        guard case .dictionary(_, _, let entries) = unwrapped else { return nil }
        var result: [String: DBusValue] = [:]
        for entry in entries {
            guard let key = entry.key.stringValue else { return nil }
            if case .variant(let inner) = entry.value {
                result[key] = inner
            } else {
                result[key] = entry.value
            }
        }
        return result
    }
}

/// One key/value pair of a D-Bus dictionary.
public struct DBusDictionaryEntry: Sendable, Hashable {
    public var key: DBusValue
    public var value: DBusValue

    public init(key: DBusValue, value: DBusValue) {
        self.key = key
        self.value = value
    }
}

/// A D-Bus error name, such as `org.bluez.Error.NotPermitted`.
public struct DBusErrorName: Sendable, Hashable, RawRepresentable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    public static let failed: DBusErrorName = "org.freedesktop.DBus.Error.Failed"
    public static let noReply: DBusErrorName = "org.freedesktop.DBus.Error.NoReply"
    public static let serviceUnknown: DBusErrorName = "org.freedesktop.DBus.Error.ServiceUnknown"
    public static let nameHasNoOwner: DBusErrorName = "org.freedesktop.DBus.Error.NameHasNoOwner"
    public static let unknownMethod: DBusErrorName = "org.freedesktop.DBus.Error.UnknownMethod"
    public static let unknownObject: DBusErrorName = "org.freedesktop.DBus.Error.UnknownObject"
    public static let unknownInterface: DBusErrorName = "org.freedesktop.DBus.Error.UnknownInterface"
    public static let unknownProperty: DBusErrorName = "org.freedesktop.DBus.Error.UnknownProperty"
    public static let invalidArgs: DBusErrorName = "org.freedesktop.DBus.Error.InvalidArgs"
    public static let disconnected: DBusErrorName = "org.freedesktop.DBus.Error.Disconnected"
    public static let noMemory: DBusErrorName = "org.freedesktop.DBus.Error.NoMemory"
    /// Not sent by any peer: the call was cancelled by its task.
    public static let cancelled: DBusErrorName = "smpctl.DBus.Error.Cancelled"
    /// Not sent by any peer: a reply could not be decoded or had the wrong shape.
    public static let invalidReply: DBusErrorName = "smpctl.DBus.Error.InvalidReply"

    public static let bluezFailed: DBusErrorName = "org.bluez.Error.Failed"
    public static let bluezInProgress: DBusErrorName = "org.bluez.Error.InProgress"
    public static let bluezNotPermitted: DBusErrorName = "org.bluez.Error.NotPermitted"
    public static let bluezNotAuthorized: DBusErrorName = "org.bluez.Error.NotAuthorized"
    public static let bluezNotSupported: DBusErrorName = "org.bluez.Error.NotSupported"
    public static let bluezNotConnected: DBusErrorName = "org.bluez.Error.NotConnected"
    public static let bluezNotReady: DBusErrorName = "org.bluez.Error.NotReady"
    public static let bluezAlreadyConnected: DBusErrorName = "org.bluez.Error.AlreadyConnected"
    public static let bluezDoesNotExist: DBusErrorName = "org.bluez.Error.DoesNotExist"
    public static let bluezAuthenticationFailed: DBusErrorName = "org.bluez.Error.AuthenticationFailed"
    public static let bluezAuthenticationRejected: DBusErrorName = "org.bluez.Error.AuthenticationRejected"
    public static let bluezAuthenticationCanceled: DBusErrorName = "org.bluez.Error.AuthenticationCanceled"
    public static let bluezAuthenticationTimeout: DBusErrorName = "org.bluez.Error.AuthenticationTimeout"
}

/// A D-Bus error: what a peer answered, or a local failure named the same way.
public struct DBusError: Error, Sendable, Hashable, CustomStringConvertible {
    public var name: DBusErrorName
    public var message: String

    public init(_ name: DBusErrorName, _ message: String) {
        self.name = name
        self.message = message
    }

    public var description: String { message.isEmpty ? name.rawValue : "\(name.rawValue): \(message)" }
}

/// A signal received from the bus.
public struct DBusSignal: Sendable, Hashable {
    /// The sender's unique name, such as `:1.42`.
    public var sender: String
    public var path: String
    public var interface: String
    public var member: String
    public var arguments: [DBusValue]
}

/// A method call received by an exported object.
public struct DBusMethodCall: Sendable, Hashable {
    public var sender: String
    public var path: String
    /// The interface, which a caller may omit.
    public var interface: String?
    public var member: String
    public var arguments: [DBusValue]
}

/// Which signals a subscription receives; `nil` fields match anything.
///
/// The bus filters by every field. Locally the sender is compared only when it is a unique name
/// (`:1.x`); a well-known sender such as `org.bluez` is left to the bus.
public struct DBusMatchRule: Sendable, Hashable {
    public var sender: String?
    public var path: String?
    /// Matches the path and every path below it.
    public var pathNamespace: String?
    public var interface: String?
    public var member: String?
    /// The first argument, when it is a string (for PropertiesChanged: the interface name).
    public var argument0: String?

    public init(sender: String? = nil, path: String? = nil, pathNamespace: String? = nil, interface: String? = nil,
        member: String? = nil, argument0: String? = nil)
    {
        self.sender = sender
        self.path = path
        self.pathNamespace = pathNamespace
        self.interface = interface
        self.member = member
        self.argument0 = argument0
    }

    /// The rule as the bus daemon's `AddMatch` takes it.
    public var ruleText: String {
        var parts = ["type='signal'"]
        if let sender { parts.append("sender='\(sender)'") }
        if let path { parts.append("path='\(path)'") }
        if let pathNamespace, pathNamespace != "/" { parts.append("path_namespace='\(pathNamespace)'") }
        if let interface { parts.append("interface='\(interface)'") }
        if let member { parts.append("member='\(member)'") }
        if let argument0 { parts.append("arg0='\(argument0)'") }
        return parts.joined(separator: ",")
    }

    /// Whether a received signal matches (the local half of the filtering).
    public func matches(_ signal: DBusSignal) -> Bool {
        if let sender, sender.hasPrefix(":"), sender != signal.sender { return false }
        if let path, path != signal.path { return false }
        if let pathNamespace, pathNamespace != "/",
            signal.path != pathNamespace, !signal.path.hasPrefix(pathNamespace + "/")
        {
            return false
        }
        if let interface, interface != signal.interface { return false }
        if let member, member != signal.member { return false }
        if let argument0 {
            guard let first = signal.arguments.first, case .string(let text) = first, text == argument0 else {
                return false
            }
        }
        return true
    }

    /// `org.freedesktop.DBus.Properties.PropertiesChanged`, optionally for one interface.
    public static func propertiesChanged(sender: String? = nil, pathNamespace: String? = nil, interface: String? = nil)
        -> DBusMatchRule
    {
        DBusMatchRule(
            sender: sender, pathNamespace: pathNamespace, interface: DBusInterface.properties,
            member: "PropertiesChanged", argument0: interface)
    }

    /// `org.freedesktop.DBus.ObjectManager.InterfacesAdded`.
    public static func interfacesAdded(sender: String? = nil) -> DBusMatchRule {
        DBusMatchRule(sender: sender, interface: DBusInterface.objectManager, member: "InterfacesAdded")
    }

    /// `org.freedesktop.DBus.ObjectManager.InterfacesRemoved`.
    public static func interfacesRemoved(sender: String? = nil) -> DBusMatchRule {
        DBusMatchRule(sender: sender, interface: DBusInterface.objectManager, member: "InterfacesRemoved")
    }
}

/// Standard interface names.
public enum DBusInterface {
    public static let properties = "org.freedesktop.DBus.Properties"
    public static let objectManager = "org.freedesktop.DBus.ObjectManager"
    public static let introspectable = "org.freedesktop.DBus.Introspectable"
    public static let peer = "org.freedesktop.DBus.Peer"
}
