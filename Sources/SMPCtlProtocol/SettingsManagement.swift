public import SMPCtlCBOR

/// Messages of the settings management group (3).
public enum SettingsManagement {
    /// Command IDs of the settings group (`SETTINGS_MGMT_ID_*`).
    public enum Command: UInt8, Sendable {
        /// Read (OP read) or write (OP write) one value.
        case readWrite = 0
        case delete = 1
        case commit = 2
        /// Load (OP read) or save (OP write).
        case loadSave = 3
    }

    /// Read one setting. `maxSize` asks the device to return at most that many bytes.
    public struct ReadRequest: SMPRequest, Hashable {
        public typealias Response = ReadResponse
        public var name: String
        public var maxSize: UInt32?
        public init(name: String, maxSize: UInt32? = nil) {
            self.name = name
            self.maxSize = maxSize
        }
        public var group: SMPGroupID { .settings }
        public var command: UInt8 { Command.readWrite.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            var map = CBORMap([.init(key: "name", value: .text(name))])
            if let maxSize { map["max_size"] = .unsigned(UInt64(maxSize)) }
            encoder.append(.map(map))
        }
    }

    public struct ReadResponse: SMPResponse, Hashable {
        public var value: [UInt8]
        /// Present when the device cut the requested size to its own limit.
        public var maxSize: Int?
        public init(value: [UInt8], maxSize: Int? = nil) {
            self.value = value
            self.maxSize = maxSize
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            guard let value = try map.optionalBytes("val") else {
                throw SMPDecodingError(.missingField, "`val` is missing")
            }
            self.value = value
            maxSize = try map.optionalUInt("max_size")
        }
    }

    /// Write one setting (runtime only until saved).
    public struct WriteRequest: SMPRequest, Hashable {
        public typealias Response = SMPEmptyResponse
        public var name: String
        public var value: [UInt8]
        public init(name: String, value: [UInt8]) {
            self.name = name
            self.value = value
        }
        public var group: SMPGroupID { .settings }
        public var command: UInt8 { Command.readWrite.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.appendHead(major: 5, argument: 2)
            encoder.appendText("name")
            encoder.appendText(name)
            encoder.appendText("val")
            encoder.appendBytes(value)
        }
    }

    /// Delete one setting from persistent storage.
    public struct DeleteRequest: SMPRequest, Hashable {
        public typealias Response = SMPEmptyResponse
        public var name: String
        public init(name: String) { self.name = name }
        public var group: SMPGroupID { .settings }
        public var command: UInt8 { Command.delete.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.appendHead(major: 5, argument: 1)
            encoder.appendText("name")
            encoder.appendText(name)
        }
    }

    /// Commit, load or save: requests with an empty map.
    public struct ActionRequest: SMPRequest, Hashable {
        public typealias Response = SMPEmptyResponse
        public enum Action: String, Sendable, Hashable, CaseIterable {
            /// Apply the values set so far (`settings_commit`).
            case commit
            /// Load the saved values from storage (`settings_load`).
            case load
            /// Save the current values to storage (`settings_save`).
            case save
        }
        public var action: Action
        public init(_ action: Action) { self.action = action }
        public var group: SMPGroupID { .settings }
        public var command: UInt8 {
            action == .commit ? Command.commit.rawValue : Command.loadSave.rawValue
        }
        public var operation: SMPOperation { action == .load ? .read : .write }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }
}
