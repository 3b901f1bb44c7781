public import SMPCtlCBOR

/// A request the client can send. Each request type names the response type it gets back.
public protocol SMPRequest: Sendable {
    /// The response a device sends on success.
    associatedtype Response: SMPResponse
    /// The management group.
    var group: SMPGroupID { get }
    /// The command within the group.
    var command: UInt8 { get }
    /// Read or write.
    var operation: SMPOperation { get }
    /// The CBOR body: a map for groups 0–63 (an empty map when there are no fields).
    func encodeBody(into encoder: inout CBOREncoder)
    /// About how many bytes the body takes, so that it is encoded without growing its buffer.
    var encodedBodySizeHint: Int { get }
}

extension SMPRequest {
    public var encodedBodySizeHint: Int { 64 }

    /// The body encoded after ``SMPHeader/size`` zero bytes: the whole packet but for its
    /// header, which ``SMPHeader/write(over:)`` fills in for each send.
    public var packetWithHeaderSpace: [UInt8] {
        var encoder = CBOREncoder(leadingSpace: SMPHeader.size, reservingCapacity: encodedBodySizeHint)
        encodeBody(into: &encoder)
        return encoder.bytes
    }

    /// The encoded CBOR body.
    public var bodyBytes: [UInt8] {
        var encoder = CBOREncoder()
        encodeBody(into: &encoder)
        return encoder.bytes
    }

    /// The whole packet for this request.
    public func packet(sequence: UInt8, version: SMPVersion = .v2) -> SMPPacket {
        SMPPacket(
            header: SMPHeader(
                operation: operation, version: version, length: 0, group: group, sequence: sequence, command: command),
            body: bodyBytes)
    }
}

/// A successful response decoded from a CBOR map. Unknown keys are ignored.
public protocol SMPResponse: Sendable {
    init(decoding map: CBORMap) throws(SMPDecodingError)
}

/// Why a response could not be taken as success.
public enum SMPResponseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The device reported an error.
    case device(SMPDeviceError)
    /// The response is not a well-formed success of the expected type.
    case malformed(SMPDecodingError)

    public var description: String {
        switch self {
        case .device(let e): e.description
        case .malformed(let e): "malformed response: \(e.description)"
        }
    }
}

/// Decodes response bodies and separates device errors from success.
public enum SMPResponseDecoder {
    /// The decoder used for device responses: bounded depth, tags skipped.
    public static let cbor = CBORDecoder(maxDepth: 16, tagHandling: .skip)

    /// Decodes a body as a CBOR map.
    public static func map(from body: [UInt8]) throws(SMPDecodingError) -> CBORMap {
        let value: CBORValue
        do {
            value = try cbor.decode(body)
        } catch {
            throw SMPDecodingError(.invalidCBOR, error.description, cbor: error)
        }
        guard case .map(let map) = value else {
            throw SMPDecodingError(.unexpectedType, "the response body is not a CBOR map")
        }
        return map
    }

    /// The device error carried by a response map, if any.
    ///
    /// An `err` map wins over `rc`; a non-zero `rc` is an error; `rc: 0` or no `rc` is not.
    /// An `err` or `rc` of the wrong type is itself an error, never success.
    public static func deviceError(
        in map: CBORMap, header: SMPHeader
    ) throws(SMPDecodingError) -> SMPDeviceError? {
        let reason = map["rsn"]?.string
        if let err = map["err"] {
            guard let errMap = err.mapValue, let group = errMap["group"]?.uint64, group <= UInt64(UInt16.max),
                let rc = errMap["rc"]?.int
            else {
                throw SMPDecodingError(.unexpectedType, "`err` must be a map with unsigned `group` and integer `rc`")
            }
            if rc != 0 {
                return SMPDeviceError(
                    kind: .group(SMPGroupID(rawValue: UInt16(group)), rc), version: header.version,
                    requestGroup: header.group, command: header.command, reason: reason)
            }
        }
        if let rcValue = map["rc"] {
            guard let rc = rcValue.int else {
                throw SMPDecodingError(.unexpectedType, "`rc` must be an integer")
            }
            if rc != 0 {
                return SMPDeviceError(
                    kind: .smp(SMPReturnCode(rawValue: rc)), version: header.version, requestGroup: header.group,
                    command: header.command, reason: reason)
            }
        }
        return nil
    }

    /// Decodes a response packet's body as `Response`, or throws the device's error.
    public static func decode<Response: SMPResponse>(
        _ type: Response.Type, from packet: SMPPacket
    ) throws(SMPResponseError) -> Response {
        let map: CBORMap
        let deviceError: SMPDeviceError?
        do {
            map = try Self.map(from: packet.body)
            deviceError = try Self.deviceError(in: map, header: packet.header)
        } catch {
            throw .malformed(error)
        }
        if let deviceError { throw .device(deviceError) }
        do {
            return try Response(decoding: map)
        } catch {
            throw .malformed(error)
        }
    }
}

/// Field accessors that throw typed errors naming the field.
extension CBORMap {
    /// A required unsigned integer that fits in `Int`.
    public func requiredUInt(_ key: String) throws(SMPDecodingError) -> Int {
        guard let value = self[key] else { throw SMPDecodingError(.missingField, "`\(key)` is missing") }
        return try Self.uint(value, key)
    }

    /// An optional unsigned integer that fits in `Int`.
    public func optionalUInt(_ key: String) throws(SMPDecodingError) -> Int? {
        guard let value = self[key] else { return nil }
        return try Self.uint(value, key)
    }

    /// An optional signed integer.
    public func optionalInt(_ key: String) throws(SMPDecodingError) -> Int? {
        guard let value = self[key] else { return nil }
        guard let int = value.int else { throw SMPDecodingError(.unexpectedType, "`\(key)` must be an integer") }
        return int
    }

    /// A required text string.
    public func requiredText(_ key: String) throws(SMPDecodingError) -> String {
        guard let value = self[key] else { throw SMPDecodingError(.missingField, "`\(key)` is missing") }
        guard let text = value.string else { throw SMPDecodingError(.unexpectedType, "`\(key)` must be a text string") }
        return text
    }

    /// An optional text string.
    public func optionalText(_ key: String) throws(SMPDecodingError) -> String? {
        guard let value = self[key] else { return nil }
        guard let text = value.string else { throw SMPDecodingError(.unexpectedType, "`\(key)` must be a text string") }
        return text
    }

    /// An optional byte string.
    public func optionalBytes(_ key: String) throws(SMPDecodingError) -> [UInt8]? {
        guard let value = self[key] else { return nil }
        guard let bytes = value.byteString else {
            throw SMPDecodingError(.unexpectedType, "`\(key)` must be a byte string")
        }
        return bytes
    }

    /// An optional boolean. Zephyr sends booleans; integers 0/1 are accepted too.
    public func optionalBool(_ key: String) throws(SMPDecodingError) -> Bool? {
        guard let value = self[key] else { return nil }
        switch value {
        case .bool(let b): return b
        case .unsigned(0): return false
        case .unsigned(1): return true
        default: throw SMPDecodingError(.unexpectedType, "`\(key)` must be a boolean")
        }
    }

    /// A required map.
    public func requiredMap(_ key: String) throws(SMPDecodingError) -> CBORMap {
        guard let value = self[key] else { throw SMPDecodingError(.missingField, "`\(key)` is missing") }
        guard let map = value.mapValue else { throw SMPDecodingError(.unexpectedType, "`\(key)` must be a map") }
        return map
    }

    /// A required array.
    public func requiredArray(_ key: String) throws(SMPDecodingError) -> [CBORValue] {
        guard let value = self[key] else { throw SMPDecodingError(.missingField, "`\(key)` is missing") }
        guard let array = value.arrayValue else { throw SMPDecodingError(.unexpectedType, "`\(key)` must be an array") }
        return array
    }

    private static func uint(_ value: CBORValue, _ key: String) throws(SMPDecodingError) -> Int {
        guard let u = value.uint64, u <= UInt64(Int.max) else {
            throw SMPDecodingError(.unexpectedType, "`\(key)` must be an unsigned integer")
        }
        return Int(u)
    }
}

/// A response with no fields of interest (any map is accepted).
public struct SMPEmptyResponse: SMPResponse, Hashable {
    public init() {}
    public init(decoding map: CBORMap) throws(SMPDecodingError) {}
}

/// Any request, for groups and commands without a typed message.
public struct SMPRawRequest: SMPRequest, Hashable {
    public typealias Response = SMPRawResponse
    public var group: SMPGroupID
    public var command: UInt8
    public var operation: SMPOperation
    /// The body to send; for groups 0–63 this should be a map.
    public var body: CBORValue

    public init(group: SMPGroupID, command: UInt8, operation: SMPOperation, body: CBORValue = .map(CBORMap())) {
        self.group = group
        self.command = command
        self.operation = operation
        self.body = body
    }

    public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(body) }
}

/// A response kept as its CBOR map.
public struct SMPRawResponse: SMPResponse, Hashable {
    public var map: CBORMap
    public init(decoding map: CBORMap) throws(SMPDecodingError) { self.map = map }
}
