public import SMPCtlCBOR

/// Messages of the file management group (8).
///
/// Keys, limits and codes follow Zephyr's subsys/mgmt/mcumgr/grp/fs_mgmt/src/fs_mgmt.c and
/// include/zephyr/mgmt/mcumgr/grp/fs_mgmt/fs_mgmt.h:
/// - upload (write 0) takes `off`, `name`, `data` and, on the first chunk (`off` 0), `len`; it
///   answers `off`, the bytes the file now holds. A chunk at another offset than the file's
///   length answers `err {group 8, rc FILE_OFFSET_NOT_VALID}` with `len`, the file's length;
/// - download (read 0) takes `off` and `name` and answers `off`, `data` (the device picks the
///   size: MCUMGR_GRP_FS_DL_CHUNK_SIZE) and, for `off` 0, `len`;
/// - status (read 1) takes `name` and answers `len`;
/// - hash/checksum (read 2) takes `name` and optional `type`, `off` and `len`, and answers
///   `type`, `off` (when not 0), `len` and `output` (bytes for sha256, a number for crc32);
/// - supported hashes (read 3) answers `types`, a map of name to `{format, size}`;
/// - close (write 4) closes the file an upload or download left open.
/// Names are at most CONFIG_MCUMGR_GRP_FS_PATH_LEN (default 64) bytes.
public enum FileManagement {
    /// Command IDs of the file group (`FS_MGMT_ID_*`).
    public enum Command: UInt8, Sendable {
        case file = 0
        case status = 1
        case hashChecksum = 2
        case supportedHashChecksum = 3
        case openedFile = 4
    }

    /// CONFIG_MCUMGR_GRP_FS_PATH_LEN's default: the longest name, in bytes, a device accepts.
    public static let defaultPathLength = 64

    /// The largest file length accepted from a device's answer (a bound on downloads): 4 GiB,
    /// the most CONFIG_MCUMGR_GRP_FS_MAX_FILE_SIZE_4GB allows.
    public static let maximumFileLength = Int(UInt32.max)

    /// One upload chunk. The first chunk (`offset` 0) carries the whole file's `length`.
    public struct UploadRequest: SMPRequest, Hashable {
        public typealias Response = UploadResponse
        public var name: String
        public var offset: Int
        public var data: [UInt8]
        /// The total length; sent with the first chunk only.
        public var length: Int?

        public init(name: String, offset: Int, data: [UInt8], length: Int? = nil) {
            self.name = name
            self.offset = offset
            self.data = data
            self.length = length
        }

        public var group: SMPGroupID { .fs }
        public var command: UInt8 { Command.file.rawValue }
        public var operation: SMPOperation { .write }

        public func encodeBody(into encoder: inout CBOREncoder) {
            Self.encodeFields(name: name, offset: offset, length: length, into: &encoder) { $0.appendBytes(data) }
        }

        /// The map in the order `off, name, data, len` (Zephyr decodes the keys in any order).
        static func encodeFields(
            name: String, offset: Int, length: Int?, into encoder: inout CBOREncoder,
            appendData: (inout CBOREncoder) -> Void
        ) {
            encoder.appendHead(major: 5, argument: length == nil ? 3 : 4)
            encoder.appendText("off")
            encoder.appendHead(major: 0, argument: UInt64(max(0, offset)))
            encoder.appendText("name")
            encoder.appendText(name)
            encoder.appendText("data")
            appendData(&encoder)
            if let length {
                encoder.appendText("len")
                encoder.appendHead(major: 0, argument: UInt64(max(0, length)))
            }
        }

        /// The exact encoded body length of a chunk with `dataLength` data bytes.
        public static func bodyLength(name: String, offset: Int, length: Int?, dataLength: Int) -> Int {
            var encoder = CBOREncoder()
            encodeFields(name: name, offset: offset, length: length, into: &encoder) { $0.appendHead(major: 2, argument: 0) }
            return encoder.bytes.count - 1 + CBOREncoder.headLength(UInt64(max(0, dataLength))) + max(0, dataLength)
        }

        /// The most data bytes whose chunk body is at most `bodyBudget` bytes, or 0 if none fit.
        public static func largestDataLength(bodyBudget: Int, name: String, offset: Int, length: Int?) -> Int {
            let fixed = bodyLength(name: name, offset: offset, length: length, dataLength: 0) - 1
            var n = bodyBudget - fixed - 1
            guard n > 0 else { return 0 }
            while n > 0, n + CBOREncoder.headLength(UInt64(n)) + fixed > bodyBudget { n -= 1 }
            return n
        }
    }

    public struct UploadResponse: SMPResponse, Hashable {
        /// The bytes the device's file holds now: where the next chunk goes.
        public var offset: Int
        public init(offset: Int) { self.offset = offset }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            offset = try map.requiredUInt("off")
        }
    }

    /// One download request; the device chooses how many bytes it returns.
    public struct DownloadRequest: SMPRequest, Hashable {
        public typealias Response = DownloadResponse
        public var name: String
        public var offset: Int
        public init(name: String, offset: Int) {
            self.name = name
            self.offset = offset
        }
        public var group: SMPGroupID { .fs }
        public var command: UInt8 { Command.file.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.appendHead(major: 5, argument: 2)
            encoder.appendText("off")
            encoder.appendHead(major: 0, argument: UInt64(max(0, offset)))
            encoder.appendText("name")
            encoder.appendText(name)
        }
    }

    public struct DownloadResponse: SMPResponse, Hashable {
        /// The offset of `data` in the file (the one asked for).
        public var offset: Int
        public var data: [UInt8]
        /// The file's length; only the answer for offset 0 must carry it.
        public var length: Int?
        public init(offset: Int, data: [UInt8], length: Int? = nil) {
            self.offset = offset
            self.data = data
            self.length = length
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            offset = try map.requiredUInt("off")
            guard let data = try map.optionalBytes("data") else {
                throw SMPDecodingError(.missingField, "`data` is missing")
            }
            self.data = data
            length = try map.optionalUInt("len")
            if let length, length > FileManagement.maximumFileLength {
                throw SMPDecodingError(.unexpectedType, "`len` \(length) is beyond the 4 GiB a device file can hold")
            }
        }
    }

    /// The length of a file (`fs stat`).
    public struct StatusRequest: SMPRequest, Hashable {
        public typealias Response = StatusResponse
        public var name: String
        public init(name: String) { self.name = name }
        public var group: SMPGroupID { .fs }
        public var command: UInt8 { Command.status.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.appendHead(major: 5, argument: 1)
            encoder.appendText("name")
            encoder.appendText(name)
        }
    }

    public struct StatusResponse: SMPResponse, Hashable {
        public var length: Int
        public init(length: Int) { self.length = length }
        public init(decoding map: CBORMap) throws(SMPDecodingError) { length = try map.requiredUInt("len") }
    }

    /// A hash or checksum of a file, or of `length` bytes from `offset`.
    public struct HashRequest: SMPRequest, Hashable {
        public typealias Response = HashResponse
        public var name: String
        /// `sha256` or `crc32`; `nil` leaves the device's default (crc32 when it has it).
        public var type: String?
        public var offset: Int?
        public var length: Int?
        public init(name: String, type: String? = nil, offset: Int? = nil, length: Int? = nil) {
            self.name = name
            self.type = type
            self.offset = offset
            self.length = length
        }
        public var group: SMPGroupID { .fs }
        public var command: UInt8 { Command.hashChecksum.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            var count: UInt64 = 1
            if type != nil { count += 1 }
            if offset != nil { count += 1 }
            if length != nil { count += 1 }
            encoder.appendHead(major: 5, argument: count)
            encoder.appendText("name")
            encoder.appendText(name)
            if let type {
                encoder.appendText("type")
                encoder.appendText(type)
            }
            if let offset {
                encoder.appendText("off")
                encoder.appendHead(major: 0, argument: UInt64(max(0, offset)))
            }
            if let length {
                encoder.appendText("len")
                encoder.appendHead(major: 0, argument: UInt64(max(0, length)))
            }
        }
    }

    public struct HashResponse: SMPResponse, Hashable {
        /// How the device computed it.
        public enum Output: Sendable, Hashable {
            /// A byte string, as sha256 answers.
            case bytes([UInt8])
            /// A number, as crc32 answers.
            case number(UInt64)
        }
        public var type: String
        public var offset: Int
        /// The bytes the hash covers.
        public var length: Int
        public var output: Output
        public init(type: String, offset: Int = 0, length: Int, output: Output) {
            self.type = type
            self.offset = offset
            self.length = length
            self.output = output
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            type = try map.requiredText("type")
            offset = try map.optionalUInt("off") ?? 0
            length = try map.requiredUInt("len")
            switch map["output"] {
            case .bytes(let bytes)?:
                guard bytes.count <= 64 else {
                    throw SMPDecodingError(.unexpectedType, "`output` of \(bytes.count) bytes is longer than any hash")
                }
                output = .bytes(bytes)
            case .unsigned(let value)?: output = .number(value)
            case nil: throw SMPDecodingError(.missingField, "`output` is missing")
            default: throw SMPDecodingError(.unexpectedType, "`output` must be a byte string or an unsigned integer")
            }
        }

        /// The output as hexadecimal text: the bytes, or the number as 8 digits (crc32) or more.
        public var hex: String {
            switch output {
            case .bytes(let bytes): return hexDigits(bytes)
            case .number(let value):
                let digits = String(value, radix: 16)
                return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
            }
        }
    }

    /// The hash and checksum types the device supports.
    public struct SupportedHashesRequest: SMPRequest, Hashable {
        public typealias Response = SupportedHashesResponse
        public init() {}
        public var group: SMPGroupID { .fs }
        public var command: UInt8 { Command.supportedHashChecksum.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    public struct SupportedHashesResponse: SMPResponse, Hashable {
        public struct HashType: Sendable, Hashable {
            public var name: String
            /// 1 when the output is a byte string, 0 when it is a number.
            public var format: Int
            /// The output's size in bytes.
            public var size: Int
            public init(name: String, format: Int, size: Int) {
                self.name = name
                self.format = format
                self.size = size
            }
        }
        public var types: [HashType]
        public init(types: [HashType]) { self.types = types }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            let typesMap = try map.requiredMap("types")
            var types: [HashType] = []
            for entry in typesMap.entries {
                guard let name = entry.key.string, let fields = entry.value.mapValue else {
                    throw SMPDecodingError(.unexpectedType, "`types` must map names to maps")
                }
                types.append(HashType(
                    name: name, format: try fields.requiredUInt("format"), size: try fields.requiredUInt("size")))
            }
            self.types = types
        }
    }

    /// Close the file an upload or download left open.
    public struct CloseRequest: SMPRequest, Hashable {
        public typealias Response = SMPEmptyResponse
        public init() {}
        public var group: SMPGroupID { .fs }
        public var command: UInt8 { Command.openedFile.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    /// IEEE CRC-32 (reflected, polynomial 0xEDB88320, initial and final value 0xFFFFFFFF), as
    /// Zephyr's crc32_ieee computes the `crc32` checksum (fs_mgmt_hash_checksum_crc32.c).
    public struct CRC32: Sendable, Hashable {
        public private(set) var state: UInt32 = 0xFFFF_FFFF
        public init() {}
        static let table: [UInt32] = (0..<256).map { index in
            var value = UInt32(index)
            for _ in 0..<8 { value = value & 1 == 1 ? (value >> 1) ^ 0xEDB8_8320 : value >> 1 }
            return value
        }
        public mutating func update(_ bytes: some Sequence<UInt8>) {
            var crc = state
            for byte in bytes { crc = Self.table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
            state = crc
        }
        public var value: UInt32 { state ^ 0xFFFF_FFFF }
        public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
            var crc = CRC32()
            crc.update(bytes)
            return crc.value
        }
    }
}

func hexDigits(_ bytes: [UInt8]) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0xF)])
    }
    return text
}
