internal import CSMPCtlDBus

/// D-Bus type codes, as in `dbus-protocol.h` (whose macros do not import into Swift).
enum DBusTypeCode {
    static let invalid: Int32 = 0
    static let byte = Int32(UInt8(ascii: "y"))
    static let bool = Int32(UInt8(ascii: "b"))
    static let int16 = Int32(UInt8(ascii: "n"))
    static let uint16 = Int32(UInt8(ascii: "q"))
    static let int32 = Int32(UInt8(ascii: "i"))
    static let uint32 = Int32(UInt8(ascii: "u"))
    static let int64 = Int32(UInt8(ascii: "x"))
    static let uint64 = Int32(UInt8(ascii: "t"))
    static let double = Int32(UInt8(ascii: "d"))
    static let string = Int32(UInt8(ascii: "s"))
    static let objectPath = Int32(UInt8(ascii: "o"))
    static let signature = Int32(UInt8(ascii: "g"))
    static let unixFD = Int32(UInt8(ascii: "h"))
    static let array = Int32(UInt8(ascii: "a"))
    static let variant = Int32(UInt8(ascii: "v"))
    static let structure = Int32(UInt8(ascii: "r"))
    static let dictEntry = Int32(UInt8(ascii: "e"))
}

/// The deepest container nesting accepted when marshalling (the D-Bus limit is 32 arrays plus 32 structs).
let maximumNestingDepth = 64
/// D-Bus's limit on the bytes of one array (DBUS_MAXIMUM_ARRAY_LENGTH, 2^26).
let maximumArrayLength = 1 << 26

/// Whether `path` is a valid object path.
func isValidObjectPath(_ path: String) -> Bool {
    dbus_validate_path(path, nil) != 0
}

/// Whether `signature` is a valid signature.
func isValidSignature(_ signature: String) -> Bool {
    dbus_signature_validate(signature, nil) != 0
}

// MARK: - Appending

/// Appends `values` to a message being built.
func appendArguments(_ values: [DBusValue], to message: OpaquePointer) throws(DBusError) {
    var iterator = DBusMessageIter()
    dbus_message_iter_init_append(message, &iterator)
    for value in values {
        try appendValue(value, to: &iterator, depth: 0)
    }
}

private func outOfMemory() -> DBusError { DBusError(.noMemory, "libdbus could not allocate memory for a message") }

private func appendBasic<T>(_ value: T, code: Int32, to iterator: UnsafeMutablePointer<DBusMessageIter>)
    throws(DBusError)
{
    var copy = value
    guard dbus_message_iter_append_basic(iterator, code, &copy) != 0 else { throw outOfMemory() }
}

private func appendString(_ text: String, code: Int32, to iterator: UnsafeMutablePointer<DBusMessageIter>)
    throws(DBusError)
{
    guard !text.utf8.contains(0) else {
        throw DBusError(.invalidArgs, "a D-Bus string cannot contain a NUL character")
    }
    let appended = text.withCString { pointer -> dbus_bool_t in
        var cString: UnsafePointer<CChar>? = pointer
        return dbus_message_iter_append_basic(iterator, code, &cString)
    }
    guard appended != 0 else { throw outOfMemory() }
}

private func appendContainer(
    _ code: Int32, signature: String?, to iterator: UnsafeMutablePointer<DBusMessageIter>,
    _ body: (UnsafeMutablePointer<DBusMessageIter>) throws(DBusError) -> Void
) throws(DBusError) {
    var sub = DBusMessageIter()
    let opened: dbus_bool_t
    if let signature {
        opened = dbus_message_iter_open_container(iterator, code, signature, &sub)
    } else {
        opened = dbus_message_iter_open_container(iterator, code, nil, &sub)
    }
    guard opened != 0 else { throw outOfMemory() }
    do {
        try body(&sub)
    } catch {
        dbus_message_iter_abandon_container(iterator, &sub)
        throw error
    }
    guard dbus_message_iter_close_container(iterator, &sub) != 0 else { throw outOfMemory() }
}

private func appendValue(_ value: DBusValue, to iterator: UnsafeMutablePointer<DBusMessageIter>, depth: Int)
    throws(DBusError)
{
    guard depth < maximumNestingDepth else { throw DBusError(.invalidArgs, "value nested too deeply") }
    switch value {
    case .byte(let v): try appendBasic(v, code: DBusTypeCode.byte, to: iterator)
    case .bool(let v): try appendBasic(dbus_bool_t(v ? 1 : 0), code: DBusTypeCode.bool, to: iterator)
    case .int16(let v): try appendBasic(v, code: DBusTypeCode.int16, to: iterator)
    case .uint16(let v): try appendBasic(v, code: DBusTypeCode.uint16, to: iterator)
    case .int32(let v): try appendBasic(v, code: DBusTypeCode.int32, to: iterator)
    case .uint32(let v): try appendBasic(v, code: DBusTypeCode.uint32, to: iterator)
    case .int64(let v): try appendBasic(v, code: DBusTypeCode.int64, to: iterator)
    case .uint64(let v): try appendBasic(v, code: DBusTypeCode.uint64, to: iterator)
    case .double(let v): try appendBasic(v, code: DBusTypeCode.double, to: iterator)
    case .unixFD(let fd):
        guard fd >= 0 else { throw DBusError(.invalidArgs, "invalid file descriptor \(fd)") }
        try appendBasic(fd, code: DBusTypeCode.unixFD, to: iterator)
    case .string(let text): try appendString(text, code: DBusTypeCode.string, to: iterator)
    case .objectPath(let path):
        guard isValidObjectPath(path) else { throw DBusError(.invalidArgs, "\"\(path)\" is not a valid object path") }
        try appendString(path, code: DBusTypeCode.objectPath, to: iterator)
    case .signature(let signature):
        guard isValidSignature(signature) else {
            throw DBusError(.invalidArgs, "\"\(signature)\" is not a valid signature")
        }
        try appendString(signature, code: DBusTypeCode.signature, to: iterator)
    case .array(let elementSignature, let items):
        guard dbus_signature_validate_single(elementSignature, nil) != 0 else {
            throw DBusError(.invalidArgs, "\"\(elementSignature)\" is not a single complete type")
        }
        try appendContainer(DBusTypeCode.array, signature: elementSignature, to: iterator) { sub throws(DBusError) in
            for item in items {
                guard item.signature == elementSignature else {
                    throw DBusError(
                        .invalidArgs, "an element of type \(item.signature) in an array of \(elementSignature)")
                }
                try appendValue(item, to: sub, depth: depth + 1)
            }
        }
    case .byteArray(let bytes):
        guard bytes.count <= maximumArrayLength else {
            throw DBusError(.invalidArgs, "a byte array of \(bytes.count) bytes is over D-Bus's \(maximumArrayLength)")
        }
        try appendContainer(DBusTypeCode.array, signature: "y", to: iterator) { sub throws(DBusError) in
            let appended = bytes.withUnsafeBufferPointer { buffer -> dbus_bool_t in
                // libdbus takes the address of a pointer to the elements; an empty array needs none.
                guard let base = buffer.baseAddress else { return 1 }
                var elements: UnsafePointer<UInt8>? = base
                return dbus_message_iter_append_fixed_array(sub, DBusTypeCode.byte, &elements, Int32(buffer.count))
            }
            guard appended != 0 else { throw outOfMemory() }
        }
    case .dictionary(let keySignature, let valueSignature, let entries):
        let entrySignature = "{" + keySignature + valueSignature + "}"
        guard isValidSignature("a" + entrySignature) else {
            throw DBusError(.invalidArgs, "\"a\(entrySignature)\" is not a valid dictionary signature")
        }
        try appendContainer(DBusTypeCode.array, signature: entrySignature, to: iterator) { sub throws(DBusError) in
            for entry in entries {
                guard entry.key.signature == keySignature, entry.value.signature == valueSignature else {
                    throw DBusError(.invalidArgs, "a dictionary entry does not have the type \(entrySignature)")
                }
                try appendContainer(DBusTypeCode.dictEntry, signature: nil, to: sub) { pair throws(DBusError) in
                    try appendValue(entry.key, to: pair, depth: depth + 2)
                    try appendValue(entry.value, to: pair, depth: depth + 2)
                }
            }
        }
    case .structure(let fields):
        guard !fields.isEmpty else { throw DBusError(.invalidArgs, "a D-Bus struct needs at least one field") }
        try appendContainer(DBusTypeCode.structure, signature: nil, to: iterator) { sub throws(DBusError) in
            for field in fields { try appendValue(field, to: sub, depth: depth + 1) }
        }
    case .variant(let inner):
        try appendContainer(DBusTypeCode.variant, signature: inner.signature, to: iterator) { sub throws(DBusError) in
            try appendValue(inner, to: sub, depth: depth + 1)
        }
    }
}

// MARK: - Reading

/// Reads every argument of a received message.
func readArguments(of message: OpaquePointer) throws(DBusError) -> [DBusValue] {
    var iterator = DBusMessageIter()
    guard dbus_message_iter_init(message, &iterator) != 0 else { return [] }
    return try readAll(&iterator, depth: 0)
}

private func readAll(_ iterator: UnsafeMutablePointer<DBusMessageIter>, depth: Int) throws(DBusError) -> [DBusValue] {
    var values: [DBusValue] = []
    while dbus_message_iter_get_arg_type(iterator) != DBusTypeCode.invalid {
        values.append(try readValue(iterator, depth: depth))
        dbus_message_iter_next(iterator)
    }
    return values
}

private func readBasic<T>(_ iterator: UnsafeMutablePointer<DBusMessageIter>, initial: T) -> T {
    var value = initial
    dbus_message_iter_get_basic(iterator, &value)
    return value
}

private func readString(_ iterator: UnsafeMutablePointer<DBusMessageIter>) -> String {
    var pointer: UnsafePointer<CChar>? = nil
    dbus_message_iter_get_basic(iterator, &pointer)
    guard let pointer else { return "" }
    return String(cString: pointer)
}

/// The signature of the value at `iterator`.
private func currentSignature(_ iterator: UnsafeMutablePointer<DBusMessageIter>) throws(DBusError) -> String {
    guard let raw = dbus_message_iter_get_signature(iterator) else { throw outOfMemory() }
    defer { dbus_free(raw) }
    return String(cString: raw)
}

private func readValue(_ iterator: UnsafeMutablePointer<DBusMessageIter>, depth: Int) throws(DBusError) -> DBusValue {
    guard depth < maximumNestingDepth else { throw DBusError(.invalidReply, "value nested too deeply") }
    let code = dbus_message_iter_get_arg_type(iterator)
    switch code {
    case DBusTypeCode.byte: return .byte(readBasic(iterator, initial: UInt8(0)))
    case DBusTypeCode.bool: return .bool(readBasic(iterator, initial: dbus_bool_t(0)) != 0)
    case DBusTypeCode.int16: return .int16(readBasic(iterator, initial: Int16(0)))
    case DBusTypeCode.uint16: return .uint16(readBasic(iterator, initial: UInt16(0)))
    case DBusTypeCode.int32: return .int32(readBasic(iterator, initial: Int32(0)))
    case DBusTypeCode.uint32: return .uint32(readBasic(iterator, initial: UInt32(0)))
    case DBusTypeCode.int64: return .int64(readBasic(iterator, initial: Int64(0)))
    case DBusTypeCode.uint64: return .uint64(readBasic(iterator, initial: UInt64(0)))
    case DBusTypeCode.double: return .double(readBasic(iterator, initial: Double(0)))
    case DBusTypeCode.unixFD: return .unixFD(readBasic(iterator, initial: Int32(-1)))
    case DBusTypeCode.string: return .string(readString(iterator))
    case DBusTypeCode.objectPath: return .objectPath(readString(iterator))
    case DBusTypeCode.signature: return .signature(readString(iterator))
    case DBusTypeCode.array:
        let signature = try currentSignature(iterator)
        var sub = DBusMessageIter()
        dbus_message_iter_recurse(iterator, &sub)
        if dbus_message_iter_get_element_type(iterator) == DBusTypeCode.dictEntry {
            // "a{kv}": the key is one basic type code; the value is the rest up to the closing brace.
            let inner = signature.utf8.dropFirst(2).dropLast()
            guard let keyByte = inner.first else { throw DBusError(.invalidReply, "malformed signature \(signature)") }
            let keySignature = String(decoding: [keyByte], as: UTF8.self)
            let valueSignature = String(decoding: inner.dropFirst(), as: UTF8.self)
            var entries: [DBusDictionaryEntry] = []
            while dbus_message_iter_get_arg_type(&sub) == DBusTypeCode.dictEntry {
                var pair = DBusMessageIter()
                dbus_message_iter_recurse(&sub, &pair)
                let key = try readValue(&pair, depth: depth + 2)
                dbus_message_iter_next(&pair)
                let value = try readValue(&pair, depth: depth + 2)
                entries.append(DBusDictionaryEntry(key: key, value: value))
                dbus_message_iter_next(&sub)
            }
            return .dictionary(keySignature: keySignature, valueSignature: valueSignature, entries)
        }
        if dbus_message_iter_get_element_type(iterator) == DBusTypeCode.byte {
            var elements: UnsafeMutableRawPointer?
            var count: Int32 = 0
            dbus_message_iter_get_fixed_array(&sub, &elements, &count)
            guard count > 0, let elements else { return .byteArray([]) }
            return .byteArray([UInt8](UnsafeRawBufferPointer(start: elements, count: Int(count))))
        }
        let items = try readAll(&sub, depth: depth + 1)
        return .array(elementSignature: String(signature.dropFirst()), items)
    case DBusTypeCode.structure:
        var sub = DBusMessageIter()
        dbus_message_iter_recurse(iterator, &sub)
        return .structure(try readAll(&sub, depth: depth + 1))
    case DBusTypeCode.variant:
        var sub = DBusMessageIter()
        dbus_message_iter_recurse(iterator, &sub)
        return .variant(try readValue(&sub, depth: depth + 1))
    default:
        throw DBusError(.invalidReply, "unsupported D-Bus type code \(code)")
    }
}
