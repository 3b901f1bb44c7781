/// Names and meanings of every SMP return code and every group error code, as Zephyr defines them.
///
/// Sources: Zephyr's `mgmt_defines.h` (`mcumgr_err_t`) and each group's header; see
/// `shared/reference/error-codes.md`. Codes not listed here keep their raw numbers.
public enum SMPErrorCatalog {
    /// One named code.
    public struct Entry: Sendable, Hashable {
        /// The Zephyr enum name, such as `MGMT_ERR_ENOENT` or `IMG_MGMT_ERR_HASH_NOT_FOUND`.
        public let name: String
        /// A short meaning.
        public let meaning: String
    }

    /// The entry for an SMP-level `rc`.
    public static func smpEntry(_ rc: Int) -> Entry? {
        if let known = smpCodes[rc] { return known }
        if rc >= 256 { return Entry(name: "MGMT_ERR_EPERUSER", meaning: "application-defined error \(rc - 256)") }
        return nil
    }

    /// The entry for a group error code (`err.rc` of an SMP v2 response).
    public static func groupEntry(group: SMPGroupID, rc: Int) -> Entry? {
        groupCodes[group.rawValue]?[rc]
    }

    /// Every group that has a code table.
    public static var groupsWithCodes: [SMPGroupID] { groupCodes.keys.sorted().map(SMPGroupID.init(rawValue:)) }

    /// All codes of one group, in numeric order.
    public static func codes(of group: SMPGroupID) -> [(rc: Int, entry: Entry)] {
        (groupCodes[group.rawValue] ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The number of a group's code from its Zephyr name (`IMG_MGMT_ERR_HASH_NOT_FOUND`), so that
    /// other modules use this table's numbers instead of keeping their own.
    public static func code(named name: String, in group: SMPGroupID) -> Int? {
        groupCodes[group.rawValue]?.first { $0.value.name == name }?.key
    }

    /// All SMP-level codes, in numeric order.
    public static var smpCodeList: [(rc: Int, entry: Entry)] {
        smpCodes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    private static func table(_ prefix: String, _ rows: [(Int, String, String)]) -> [Int: Entry] {
        var out: [Int: Entry] = [:]
        for (rc, name, meaning) in rows { out[rc] = Entry(name: prefix + name, meaning: meaning) }
        return out
    }

    static let smpCodes: [Int: Entry] = table("MGMT_ERR_", [
        (0, "EOK", "success"),
        (1, "EUNKNOWN", "unknown error"),
        (2, "ENOMEM", "out of memory"),
        (3, "EINVAL", "invalid argument: a field is missing, has the wrong type or an invalid value"),
        (4, "ETIMEOUT", "operation timed out"),
        (5, "ENOENT", "no such entry"),
        (6, "EBADSTATE", "the current state does not allow this command"),
        (7, "EMSGSIZE", "the response is too large for the device's buffer"),
        (8, "ENOTSUP", "command not supported"),
        (9, "ECORRUPT", "corrupt request"),
        (10, "EBUSY", "blocked by another command; try again"),
        (11, "EACCESSDENIED", "access denied"),
        (12, "UNSUPPORTED_TOO_OLD", "SMP protocol version too old for this device"),
        (13, "UNSUPPORTED_TOO_NEW", "SMP protocol version too new for this device"),
    ])

    static let groupCodes: [UInt16: [Int: Entry]] = [
        SMPGroupID.os.rawValue: table("OS_MGMT_ERR_", [
            (0, "OK", "success"),
            (1, "UNKNOWN", "unknown error"),
            (2, "INVALID_FORMAT", "invalid format string for the info command"),
            (3, "QUERY_YIELDS_NO_ANSWER", "bootloader-info query not recognised"),
            (4, "RTC_NOT_SET", "the real-time clock is not set"),
            (5, "RTC_COMMAND_FAILED", "the real-time clock command failed"),
            (6, "QUERY_RESPONSE_VALUE_NOT_VALID", "query recognised but it has no valid value"),
            (7, "HEAP_STATS_FETCH_FAILED", "heap statistics could not be read"),
        ]),
        SMPGroupID.image.rawValue: table("IMG_MGMT_ERR_", [
            (0, "OK", "success"),
            (1, "UNKNOWN", "unknown error"),
            (2, "FLASH_CONFIG_QUERY_FAIL", "flash area configuration query failed"),
            (3, "NO_IMAGE", "no image in the slot"),
            (4, "NO_TLVS", "the image has no TLV area"),
            (5, "INVALID_TLV", "invalid TLV type or length"),
            (6, "TLV_MULTIPLE_HASHES_FOUND", "more than one hash TLV"),
            (7, "TLV_INVALID_SIZE", "TLV size invalid"),
            (8, "HASH_NOT_FOUND", "hash not found"),
            (9, "NO_FREE_SLOT", "no free slot to upload into"),
            (10, "FLASH_OPEN_FAILED", "the flash area could not be opened"),
            (11, "FLASH_READ_FAILED", "flash read failed"),
            (12, "FLASH_WRITE_FAILED", "flash write failed"),
            (13, "FLASH_ERASE_FAILED", "flash erase failed"),
            (14, "INVALID_SLOT", "invalid slot number"),
            (15, "NO_FREE_MEMORY", "out of memory"),
            (16, "FLASH_CONTEXT_ALREADY_SET", "flash context already set"),
            (17, "FLASH_CONTEXT_NOT_SET", "flash context not set"),
            (18, "FLASH_AREA_DEVICE_NULL", "the flash area's device is missing"),
            (19, "INVALID_PAGE_OFFSET", "invalid page offset"),
            (20, "INVALID_OFFSET", "offset missing or invalid"),
            (21, "INVALID_LENGTH", "length missing or invalid"),
            (22, "INVALID_IMAGE_HEADER", "first chunk shorter than the image header"),
            (23, "INVALID_IMAGE_HEADER_MAGIC", "the image header magic is wrong"),
            (24, "INVALID_HASH", "hash missing or of the wrong length"),
            (25, "INVALID_FLASH_ADDRESS", "the image's load address does not match the slot"),
            (26, "VERSION_GET_FAILED", "the running version could not be read"),
            (27, "CURRENT_VERSION_IS_NEWER", "the running version is newer: downgrade refused"),
            (28, "IMAGE_ALREADY_PENDING", "an image is already pending"),
            (29, "INVALID_IMAGE_VECTOR_TABLE", "invalid image vector table"),
            (30, "INVALID_IMAGE_TOO_LARGE", "the image is too large for the slot"),
            (31, "INVALID_IMAGE_DATA_OVERRUN", "more data than the declared length"),
            (32, "IMAGE_CONFIRMATION_DENIED", "confirmation refused"),
            (33, "IMAGE_SETTING_TEST_TO_ACTIVE_DENIED", "cannot mark the active image for test"),
            (34, "ACTIVE_SLOT_NOT_KNOWN", "the active slot cannot be determined"),
        ]),
        SMPGroupID.stat.rawValue: table("STAT_MGMT_ERR_", [
            (0, "OK", "success"),
            (1, "UNKNOWN", "unknown error"),
            (2, "INVALID_GROUP", "no such statistics group"),
            (3, "INVALID_STAT_NAME", "no such statistic"),
            (4, "INVALID_STAT_SIZE", "invalid statistic size"),
            (5, "WALK_ABORTED", "listing aborted"),
        ]),
        SMPGroupID.settings.rawValue: table("SETTINGS_MGMT_ERR_", [
            (0, "OK", "success"),
            (1, "UNKNOWN", "unknown error"),
            (2, "KEY_TOO_LONG", "key too long"),
            (3, "KEY_NOT_FOUND", "key not found"),
            (4, "READ_NOT_SUPPORTED", "read not supported"),
            (5, "ROOT_KEY_NOT_FOUND", "root key not found"),
            (6, "WRITE_NOT_SUPPORTED", "write not supported"),
            (7, "DELETE_NOT_SUPPORTED", "delete not supported"),
            (8, "SAVE_NOT_SUPPORTED", "save not supported"),
        ]),
        SMPGroupID.fs.rawValue: table("FS_MGMT_ERR_", [
            (0, "OK", "success"),
            (1, "UNKNOWN", "unknown error"),
            (2, "FILE_INVALID_NAME", "invalid file name"),
            (3, "FILE_NOT_FOUND", "file not found"),
            (4, "FILE_IS_DIRECTORY", "the path is a directory"),
            (5, "FILE_OPEN_FAILED", "file open failed"),
            (6, "FILE_SEEK_FAILED", "file seek failed"),
            (7, "FILE_READ_FAILED", "file read failed"),
            (8, "FILE_TRUNCATE_FAILED", "file truncate failed"),
            (9, "FILE_DELETE_FAILED", "file delete failed"),
            (10, "FILE_WRITE_FAILED", "file write failed"),
            (11, "FILE_OFFSET_NOT_VALID", "offset does not match the file's length"),
            (12, "FILE_OFFSET_LARGER_THAN_FILE", "offset beyond the end of the file"),
            (13, "CHECKSUM_HASH_NOT_FOUND", "checksum or hash type not found"),
            (14, "MOUNT_POINT_NOT_FOUND", "mount point not found"),
            (15, "READ_ONLY_FILESYSTEM", "read-only file system"),
            (16, "FILE_EMPTY", "file is empty"),
        ]),
        SMPGroupID.shell.rawValue: table("SHELL_MGMT_ERR_", [
            (0, "OK", "success"),
            (1, "UNKNOWN", "unknown error"),
            (2, "COMMAND_TOO_LONG", "command line too long"),
            (3, "EMPTY_COMMAND", "empty command"),
        ]),
        SMPGroupID.enumeration.rawValue: table("ENUM_MGMT_ERR_", [
            (0, "OK", "success"),
            (1, "UNKNOWN", "unknown error"),
            (2, "TOO_MANY_GROUP_ENTRIES", "too many group entries"),
            (3, "INSUFFICIENT_HEAP_FOR_ENTRIES", "not enough heap for the entries"),
            (4, "INDEX_TOO_LARGE", "index too large"),
        ]),
        SMPGroupID.zephyrBasic.rawValue: table("ZEPHYRBASIC_MGMT_ERR_", [
            (0, "OK", "success"),
            (1, "UNKNOWN", "unknown error"),
            (2, "FLASH_OPEN_FAILED", "storage flash area could not be opened"),
            (3, "FLASH_CONFIG_QUERY_FAIL", "storage flash configuration query failed"),
            (4, "FLASH_ERASE_FAILED", "storage erase failed"),
        ]),
    ]
}
