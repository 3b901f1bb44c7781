public import SMPCtlCBOR

/// Messages of Zephyr's basic management group (63), from Zephyr's
/// subsys/mgmt/mcumgr/grp/zephyr_basic/src/basic_mgmt.c:
/// command 0, write, erases the storage partition (`storage_partition` in the devicetree) and
/// answers `{}`, or `err {group 63, rc ZEPHYRBASIC_MGMT_ERR_*}` when the flash area cannot be
/// opened, queried or erased. In SMP v1 that file translates FLASH_OPEN_FAILED to `rc 5` but
/// FLASH_CONFIG_QUERY_FAIL and FLASH_ERASE_FAILED to `rc 0`: a v1 client cannot tell a failed
/// erase from a done one.
public enum ZephyrBasicManagement {
    public enum Command: UInt8, Sendable {
        case eraseStorage = 0
    }

    /// Erase the storage partition (settings, NVS, littlefs: everything it holds).
    public struct EraseStorageRequest: SMPRequest, Hashable {
        public typealias Response = SMPEmptyResponse
        public init() {}
        public var group: SMPGroupID { .zephyrBasic }
        public var command: UInt8 { Command.eraseStorage.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }
}
