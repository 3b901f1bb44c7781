/// An SMP-level return code (`mcumgr_err_t`): the top-level `rc` of a response.
///
/// Open: unknown values keep their raw number. Application codes start at 256.
public struct SMPReturnCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let ok = SMPReturnCode(rawValue: 0)
    public static let unknown = SMPReturnCode(rawValue: 1)
    public static let noMemory = SMPReturnCode(rawValue: 2)
    public static let invalidArgument = SMPReturnCode(rawValue: 3)
    public static let timedOut = SMPReturnCode(rawValue: 4)
    public static let noEntry = SMPReturnCode(rawValue: 5)
    public static let badState = SMPReturnCode(rawValue: 6)
    public static let messageTooLarge = SMPReturnCode(rawValue: 7)
    public static let notSupported = SMPReturnCode(rawValue: 8)
    public static let corrupt = SMPReturnCode(rawValue: 9)
    public static let busy = SMPReturnCode(rawValue: 10)
    public static let accessDenied = SMPReturnCode(rawValue: 11)
    public static let versionTooOld = SMPReturnCode(rawValue: 12)
    public static let versionTooNew = SMPReturnCode(rawValue: 13)
    /// The first application-defined code.
    public static let perUser = SMPReturnCode(rawValue: 256)

    /// The Zephyr name and a one-line meaning, if the code is known.
    public var entry: SMPErrorCatalog.Entry? { SMPErrorCatalog.smpEntry(rawValue) }

    public var description: String {
        if let entry { return "\(entry.name) (\(rawValue))" }
        return "rc \(rawValue)"
    }
}
