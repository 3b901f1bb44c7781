public import SMPCtlCBOR

/// Messages of the enumeration management group (10): which groups a device supports.
public enum EnumerationManagement {
    /// Command IDs of the enumeration group (`ENUM_MGMT_ID_*`).
    public enum Command: UInt8, Sendable {
        case count = 0
        case list = 1
        case single = 2
        case details = 3
    }

    /// The most groups a response may list (group IDs are 16-bit).
    public static let maximumGroups = 65_536

    static func groupID(_ value: CBORValue, _ key: String) throws(SMPDecodingError) -> SMPGroupID {
        guard let raw = value.uint64, raw <= UInt64(UInt16.max) else {
            throw SMPDecodingError(.unexpectedType, "`\(key)` must be a group ID (0–65535)")
        }
        return SMPGroupID(rawValue: UInt16(raw))
    }

    /// How many groups the device supports.
    public struct CountRequest: SMPRequest, Hashable {
        public typealias Response = CountResponse
        public init() {}
        public var group: SMPGroupID { .enumeration }
        public var command: UInt8 { Command.count.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    public struct CountResponse: SMPResponse, Hashable {
        public var count: Int
        public init(count: Int) { self.count = count }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            count = try map.requiredUInt("count")
            guard count <= EnumerationManagement.maximumGroups else {
                throw SMPDecodingError(.unexpectedType, "`count` is larger than the number of group IDs")
            }
        }
    }

    /// The IDs of every supported group.
    public struct ListRequest: SMPRequest, Hashable {
        public typealias Response = ListResponse
        public init() {}
        public var group: SMPGroupID { .enumeration }
        public var command: UInt8 { Command.list.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    public struct ListResponse: SMPResponse, Hashable {
        public var groups: [SMPGroupID]
        public init(groups: [SMPGroupID]) { self.groups = groups }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            let array = try map.requiredArray("groups")
            guard array.count <= EnumerationManagement.maximumGroups else {
                throw SMPDecodingError(.unexpectedType, "`groups` lists more groups than there are IDs")
            }
            var groups: [SMPGroupID] = []
            for element in array { groups.append(try EnumerationManagement.groupID(element, "groups")) }
            self.groups = groups
        }
    }

    /// The group at one index of the device's list.
    public struct SingleRequest: SMPRequest, Hashable {
        public typealias Response = SingleResponse
        public var index: UInt32
        public init(index: UInt32) { self.index = index }
        public var group: SMPGroupID { .enumeration }
        public var command: UInt8 { Command.single.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.append(.map(CBORMap([.init(key: "index", value: .unsigned(UInt64(index)))])))
        }
    }

    public struct SingleResponse: SMPResponse, Hashable {
        public var groupID: SMPGroupID
        /// True for the last group of the list.
        public var isLast: Bool
        public init(groupID: SMPGroupID, isLast: Bool) {
            self.groupID = groupID
            self.isLast = isLast
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            guard let value = map["group"] else { throw SMPDecodingError(.missingField, "`group` is missing") }
            groupID = try EnumerationManagement.groupID(value, "group")
            isLast = try map.optionalBool("end") ?? false
        }
    }

    /// Details (name, handler count) of every group, or of the `groups` listed.
    public struct DetailsRequest: SMPRequest, Hashable {
        public typealias Response = DetailsResponse
        public var groups: [SMPGroupID]?
        public init(groups: [SMPGroupID]? = nil) { self.groups = groups }
        public var group: SMPGroupID { .enumeration }
        public var command: UInt8 { Command.details.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            var map = CBORMap()
            if let groups { map["groups"] = .array(groups.map { .unsigned(UInt64($0.rawValue)) }) }
            encoder.append(.map(map))
        }
    }

    public struct GroupDetails: Sendable, Hashable {
        public var groupID: SMPGroupID
        /// The name the device gives (`CONFIG_MCUMGR_GRP_ENUM_DETAILS_NAME`), such as `"os mgmt"`.
        public var name: String?
        /// The number of command handlers (`CONFIG_MCUMGR_GRP_ENUM_DETAILS_HANDLERS`).
        public var handlers: Int?
        public init(groupID: SMPGroupID, name: String? = nil, handlers: Int? = nil) {
            self.groupID = groupID
            self.name = name
            self.handlers = handlers
        }
    }

    public struct DetailsResponse: SMPResponse, Hashable {
        public var groups: [GroupDetails]
        public init(groups: [GroupDetails]) { self.groups = groups }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            let array = try map.requiredArray("groups")
            guard array.count <= EnumerationManagement.maximumGroups else {
                throw SMPDecodingError(.unexpectedType, "`groups` lists more groups than there are IDs")
            }
            var groups: [GroupDetails] = []
            for element in array {
                guard let entry = element.mapValue else {
                    throw SMPDecodingError(.unexpectedType, "each entry of `groups` must be a map")
                }
                guard let id = entry["group"] else { throw SMPDecodingError(.missingField, "`group` is missing") }
                groups.append(GroupDetails(
                    groupID: try EnumerationManagement.groupID(id, "group"), name: try entry.optionalText("name"),
                    handlers: try entry.optionalUInt("handlers")))
            }
            self.groups = groups
        }
    }
}
