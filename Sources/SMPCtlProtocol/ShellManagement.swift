public import SMPCtlCBOR

/// Messages of the shell management group (9).
public enum ShellManagement {
    /// Command IDs of the shell group.
    public enum Command: UInt8, Sendable {
        case exec = 0
    }

    /// Run a shell command line; the device joins `argv` with spaces.
    public struct ExecRequest: SMPRequest, Hashable {
        public typealias Response = ExecResponse
        public var arguments: [String]
        public init(_ arguments: [String]) { self.arguments = arguments }
        public var group: SMPGroupID { .shell }
        public var command: UInt8 { Command.exec.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.appendHead(major: 5, argument: 1)
            encoder.appendText("argv")
            encoder.appendHead(major: 4, argument: UInt64(arguments.count))
            for argument in arguments { encoder.appendText(argument) }
        }
    }

    public struct ExecResponse: SMPResponse, Hashable {
        /// What the command printed.
        public var output: String
        /// The command's return code (`ret`; `rc` on devices built with
        /// `CONFIG_MCUMGR_GRP_SHELL_LEGACY_RC_RETURN_CODE`, where a non-zero one is read as an
        /// SMP error before this decoder runs).
        public var returnCode: Int
        public init(output: String, returnCode: Int) {
            self.output = output
            self.returnCode = returnCode
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            output = try map.requiredText("o")
            if let ret = try map.optionalInt("ret") {
                returnCode = ret
            } else if let rc = try map.optionalInt("rc") {
                returnCode = rc
            } else {
                throw SMPDecodingError(.missingField, "`ret` is missing")
            }
        }
    }
}
