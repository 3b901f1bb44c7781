public import SMPCtlCBOR

/// Messages of the statistics management group (2).
public enum StatisticsManagement {
    /// Command IDs of the statistics group (`STAT_MGMT_ID_*`).
    public enum Command: UInt8, Sendable {
        case show = 0
        case list = 1
    }

    /// The most names or fields a response may carry; more is a malformed answer.
    public static let maximumEntries = 4096

    /// List the names of the registered statistics groups.
    public struct ListRequest: SMPRequest, Hashable {
        public typealias Response = ListResponse
        public init() {}
        public var group: SMPGroupID { .stat }
        public var command: UInt8 { Command.list.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    public struct ListResponse: SMPResponse, Hashable {
        public var groups: [String]
        public init(groups: [String]) { self.groups = groups }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            let array = try map.requiredArray("stat_list")
            guard array.count <= StatisticsManagement.maximumEntries else {
                throw SMPDecodingError(.unexpectedType, "`stat_list` has more than \(StatisticsManagement.maximumEntries) names")
            }
            var groups: [String] = []
            for element in array {
                guard let name = element.string else {
                    throw SMPDecodingError(.unexpectedType, "`stat_list` must hold text strings")
                }
                groups.append(name)
            }
            self.groups = groups
        }
    }

    /// Read every statistic of one group.
    public struct ShowRequest: SMPRequest, Hashable {
        public typealias Response = ShowResponse
        public var name: String
        public init(name: String) { self.name = name }
        public var group: SMPGroupID { .stat }
        public var command: UInt8 { Command.show.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.appendHead(major: 5, argument: 1)
            encoder.appendText("name")
            encoder.appendText(name)
        }
    }

    /// One statistic: its name and value, in the device's order.
    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: UInt64
        public init(name: String, value: UInt64) {
            self.name = name
            self.value = value
        }
    }

    public struct ShowResponse: SMPResponse, Hashable {
        public var name: String
        public var fields: [Field]
        public init(name: String, fields: [Field]) {
            self.name = name
            self.fields = fields
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            name = try map.requiredText("name")
            let fieldsMap = try map.requiredMap("fields")
            guard fieldsMap.count <= StatisticsManagement.maximumEntries else {
                throw SMPDecodingError(.unexpectedType, "`fields` has more than \(StatisticsManagement.maximumEntries) entries")
            }
            var fields: [Field] = []
            for entry in fieldsMap.entries {
                guard let key = entry.key.string, let value = entry.value.uint64 else {
                    throw SMPDecodingError(.unexpectedType, "`fields` must map names to unsigned integers")
                }
                fields.append(Field(name: key, value: value))
            }
            self.fields = fields
        }
    }
}
