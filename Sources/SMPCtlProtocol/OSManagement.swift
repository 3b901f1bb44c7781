public import SMPCtlCBOR

/// Messages of the OS management group (0).
public enum OSManagement {
    /// Command IDs of the OS group.
    public enum Command: UInt8, Sendable {
        case echo = 0
        case consoleEchoControl = 1
        case taskStatistics = 2
        case memoryPoolStatistics = 3
        case dateTime = 4
        case reset = 5
        case mcumgrParameters = 6
        case info = 7
        case bootloaderInfo = 8
    }

    /// Echo: the device returns the text.
    public struct EchoRequest: SMPRequest, Hashable {
        public typealias Response = EchoResponse
        public var text: String
        public init(_ text: String) { self.text = text }
        public var group: SMPGroupID { .os }
        public var command: UInt8 { Command.echo.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.appendHead(major: 5, argument: 1)
            encoder.appendText("d")
            encoder.appendText(text)
        }
    }

    public struct EchoResponse: SMPResponse, Hashable {
        public var text: String
        public init(text: String) { self.text = text }
        public init(decoding map: CBORMap) throws(SMPDecodingError) { text = try map.requiredText("r") }
    }

    /// Reset the device. With `force`, the device resets even when an application hook refuses.
    public struct ResetRequest: SMPRequest, Hashable {
        public typealias Response = SMPEmptyResponse
        public var force: Bool
        /// 0 = normal boot, 1 = bootloader (serial recovery); needs Zephyr 4.2+.
        public var bootMode: UInt8?
        public init(force: Bool = false, bootMode: UInt8? = nil) {
            self.force = force
            self.bootMode = bootMode
        }
        public var group: SMPGroupID { .os }
        public var command: UInt8 { Command.reset.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) {
            var map = CBORMap()
            if force { map["force"] = .unsigned(1) }
            if let bootMode { map["boot_mode"] = .unsigned(UInt64(bootMode)) }
            encoder.append(.map(map))
        }
    }

    /// Read the SMP buffer parameters.
    public struct ParametersRequest: SMPRequest, Hashable {
        public typealias Response = ParametersResponse
        public init() {}
        public var group: SMPGroupID { .os }
        public var command: UInt8 { Command.mcumgrParameters.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    public struct ParametersResponse: SMPResponse, Hashable {
        /// The size of one SMP buffer, header included: the largest request the device accepts.
        public var bufferSize: Int
        /// How many such buffers the device has.
        public var bufferCount: Int
        public init(bufferSize: Int, bufferCount: Int) {
            self.bufferSize = bufferSize
            self.bufferCount = bufferCount
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            bufferSize = try map.requiredUInt("buf_size")
            bufferCount = try map.requiredUInt("buf_count")
        }
    }

    /// OS and application information (`uname`-like).
    public struct InfoRequest: SMPRequest, Hashable {
        public typealias Response = InfoResponse
        /// Letters `s n r v b m p i o a`; the device defaults to `s`.
        public var format: String?
        public init(format: String? = nil) { self.format = format }
        public var group: SMPGroupID { .os }
        public var command: UInt8 { Command.info.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            var map = CBORMap()
            if let format { map["format"] = .text(format) }
            encoder.append(.map(map))
        }
    }

    public struct InfoResponse: SMPResponse, Hashable {
        public var output: String
        public init(output: String) { self.output = output }
        public init(decoding map: CBORMap) throws(SMPDecodingError) { output = try map.requiredText("output") }
    }

    /// Bootloader information; `query: "mode"` asks for the MCUboot mode.
    public struct BootloaderInfoRequest: SMPRequest, Hashable {
        public typealias Response = BootloaderInfoResponse
        public var query: String?
        public init(query: String? = nil) { self.query = query }
        public var group: SMPGroupID { .os }
        public var command: UInt8 { Command.bootloaderInfo.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) {
            var map = CBORMap()
            if let query { map["query"] = .text(query) }
            encoder.append(.map(map))
        }
    }

    public struct BootloaderInfoResponse: SMPResponse, Hashable {
        /// The bootloader's name, such as `MCUboot`.
        public var bootloader: String?
        /// The MCUboot mode (see ``MCUbootMode``).
        public var mode: Int?
        public var noDowngrade: Bool?
        public init(bootloader: String? = nil, mode: Int? = nil, noDowngrade: Bool? = nil) {
            self.bootloader = bootloader
            self.mode = mode
            self.noDowngrade = noDowngrade
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            bootloader = try map.optionalText("bootloader")
            mode = try map.optionalInt("mode")
            noDowngrade = try map.optionalBool("no-downgrade")
        }
    }

    /// MCUboot's upgrade modes as reported by bootloader info.
    public static func mcubootModeName(_ mode: Int) -> String {
        switch mode {
        case 0: "single application"
        case 1: "swap using scratch"
        case 2: "overwrite only"
        case 3: "swap without scratch"
        case 4: "DirectXIP without revert"
        case 5: "DirectXIP with revert"
        case 6: "RAM loader"
        default: "unknown (\(mode))"
        }
    }

    /// Per-thread statistics.
    public struct TaskStatisticsRequest: SMPRequest, Hashable {
        public typealias Response = TaskStatisticsResponse
        public init() {}
        public var group: SMPGroupID { .os }
        public var command: UInt8 { Command.taskStatistics.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    public struct TaskStatistics: Sendable, Hashable {
        public var name: String
        public var priority: Int?
        public var threadID: Int?
        public var state: Int?
        /// Stack use and size, in 4-byte words on Zephyr.
        public var stackUse: Int?
        public var stackSize: Int?
        public var contextSwitches: Int?
        public var runtime: Int?
        public init(name: String, priority: Int? = nil, threadID: Int? = nil, state: Int? = nil, stackUse: Int? = nil,
            stackSize: Int? = nil, contextSwitches: Int? = nil, runtime: Int? = nil)
        {
            self.name = name
            self.priority = priority
            self.threadID = threadID
            self.state = state
            self.stackUse = stackUse
            self.stackSize = stackSize
            self.contextSwitches = contextSwitches
            self.runtime = runtime
        }
    }

    public struct TaskStatisticsResponse: SMPResponse, Hashable {
        public var tasks: [TaskStatistics]
        public init(tasks: [TaskStatistics]) { self.tasks = tasks }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            let tasksMap = try map.requiredMap("tasks")
            var tasks: [TaskStatistics] = []
            for entry in tasksMap.entries {
                guard let name = entry.key.string, let fields = entry.value.mapValue else {
                    throw SMPDecodingError(.unexpectedType, "`tasks` must map names to maps")
                }
                tasks.append(TaskStatistics(
                    name: name, priority: try fields.optionalInt("prio"), threadID: try fields.optionalInt("tid"),
                    state: try fields.optionalInt("state"), stackUse: try fields.optionalInt("stkuse"),
                    stackSize: try fields.optionalInt("stksiz"), contextSwitches: try fields.optionalInt("cswcnt"),
                    runtime: try fields.optionalInt("runtime")))
            }
            self.tasks = tasks
        }
    }

    /// Read the device's date and time.
    public struct DateTimeGetRequest: SMPRequest, Hashable {
        public typealias Response = DateTimeResponse
        public init() {}
        public var group: SMPGroupID { .os }
        public var command: UInt8 { Command.dateTime.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    public struct DateTimeResponse: SMPResponse, Hashable {
        /// `yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][ZZZZZ]`.
        public var dateTime: String
        public init(dateTime: String) { self.dateTime = dateTime }
        public init(decoding map: CBORMap) throws(SMPDecodingError) { dateTime = try map.requiredText("datetime") }
    }

    /// Set the device's date and time.
    public struct DateTimeSetRequest: SMPRequest, Hashable {
        public typealias Response = SMPEmptyResponse
        public var dateTime: String
        public init(dateTime: String) { self.dateTime = dateTime }
        public var group: SMPGroupID { .os }
        public var command: UInt8 { Command.dateTime.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.append(.map(CBORMap([.init(key: "datetime", value: .text(dateTime))])))
        }
    }
}

extension OSManagement.EchoRequest {
    /// An echo request whose packet, header included, is `size` bytes, or one byte less for
    /// the two sizes (36 and 269) that CBOR's length heads make impossible; `nil` below 12 bytes.
    public static func padded(toPacketSize size: Int) -> OSManagement.EchoRequest? {
        // Header, a one-entry map, the key "d", then a text string with a 1-, 2- or 3-byte head.
        // The first fit is found by arithmetic and only its text is made (path learning asks for
        // a few of these per device; building every candidate string was a hot spot of fleet runs).
        let fixed = SMPHeader.size + 1 + 2
        for target in [size, size - 1] {
            for head in [1, 2, 3] {
                let length = target - fixed - head
                guard length >= 0 else { continue }
                let needed = length < 24 ? 1 : length < 256 ? 2 : length < 65536 ? 3 : 5
                guard needed == head else { continue }
                return OSManagement.EchoRequest(String(decoding: [UInt8](repeating: UInt8(ascii: "x"), count: length), as: UTF8.self))
            }
        }
        return nil
    }
}
