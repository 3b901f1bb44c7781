/// An error reported by the device in a response.
///
/// Keeps everything the device said: the SMP version of the response, the group and
/// command it answered, the raw code, and the v1 `rsn` text. Top-level `rc` (an SMP-level
/// code) and `err {group, rc}` (a group code) are different kinds: `rc: 8` is "not supported",
/// `err {group: 1, rc: 8}` is "hash not found".
public struct SMPDeviceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which table the code belongs to.
    public enum Kind: Sendable, Hashable {
        /// A top-level `rc` (`mcumgr_err_t`).
        case smp(SMPReturnCode)
        /// An SMP v2 `err` map: the group that raised it and its group code.
        case group(SMPGroupID, Int)
    }

    public var kind: Kind
    /// The version bits of the response header.
    public var version: SMPVersion
    /// The group of the request this answers.
    public var requestGroup: SMPGroupID
    /// The command of the request this answers.
    public var command: UInt8
    /// The v1 reason text (`rsn`), when the device sent one.
    public var reason: String?

    public init(kind: Kind, version: SMPVersion, requestGroup: SMPGroupID, command: UInt8, reason: String? = nil) {
        self.kind = kind
        self.version = version
        self.requestGroup = requestGroup
        self.command = command
        self.reason = reason
    }

    /// The raw code number, whichever table it belongs to.
    public var rawCode: Int {
        switch kind {
        case .smp(let rc): rc.rawValue
        case .group(_, let rc): rc
        }
    }

    /// The catalog entry for the code, if known.
    public var entry: SMPErrorCatalog.Entry? {
        switch kind {
        case .smp(let rc): SMPErrorCatalog.smpEntry(rc.rawValue)
        case .group(let group, let rc): SMPErrorCatalog.groupEntry(group: group == .zephyrBasic && requestGroup == .stat ? .stat : group, rc: rc)
        }
    }

    /// The error with its code in the table it belongs to.
    ///
    /// Zephyr's stat_mgmt.c (3.5 and later) reports its own STAT_MGMT_ERR codes with
    /// `smp_add_cmd_err(zse, ZEPHYR_MGMT_GRP_BASIC, ...)`: `err.group` is 63, but the code is the
    /// statistics group's (3 is INVALID_STAT_NAME, not the basic group's FLASH_CONFIG_QUERY_FAIL).
    public var codeTableError: SMPDeviceError {
        guard case .group(.zephyrBasic, let rc) = kind, requestGroup == .stat else { return self }
        var copy = self
        copy.kind = .group(.stat, rc)
        return copy
    }

    /// Whether this is the SMP-level "busy" code, which means "wait and resend".
    public var isBusy: Bool { kind == .smp(.busy) }

    public var description: String {
        var text: String
        switch kind {
        case .smp(let rc):
            text = "device error rc \(rc.rawValue)"
        case .group(let group, let rc):
            text = "device error \(group.name ?? "group \(group.rawValue)") group rc \(rc)"
        }
        if let entry { text += " \(entry.name): \(entry.meaning)" } else { text += " (unknown code)" }
        if let reason, !reason.isEmpty { text += " (device says: \"\(reason)\")" }
        return text
    }
}
