import SMPCtlCBOR
import SMPCtlProtocol

// Statistics (2), settings (3), shell (9) and enumeration (10) handlers of ``SimulatedDevice``.

extension SimulatedDevice {
    // MARK: Statistics group

    /// The statistics groups the simulated application registers (`STATS_INIT_AND_REG`), in
    /// registration order, with their fields in declaration order. `smp_svr_stats` with `ticks`
    /// is the one Zephyr's samples/subsys/mgmt/mcumgr/smp_svr registers.
    func statisticsGroups() -> [(name: String, fields: [(String, UInt64)])] {
        [
            ("smp_svr_stats", [("ticks", UInt64(clamping: packetCount))]),
            ("smp_transport", [
                ("rx_packets", UInt64(clamping: packetCount)), ("rx_bytes", UInt64(clamping: bytesReceived)),
                ("boots", UInt64(clamping: bootCount)),
            ]),
        ]
    }

    /// Zephyr's subsys/mgmt/mcumgr/grp/stat_mgmt/src/stat_mgmt.c (3.5 and later):
    /// - list answers `stat_list`, the names in registration order;
    /// - show takes `name`: missing, empty or at least CONFIG_MCUMGR_GRP_STAT_MAX_NAME_LEN (32)
    ///   long is `rc 3` (EINVAL); an unknown name is `smp_add_cmd_err(zse, ZEPHYR_MGMT_GRP_BASIC,
    ///   STAT_MGMT_ERR_INVALID_STAT_NAME)`: `err {group 63, rc 3}` (the group is Zephyr's, not 2),
    ///   and in SMP v1 stat_mgmt_translate_error_code's ENOENT (5);
    /// - a known name answers `name` and `fields`, a map of name to unsigned value.
    func handleStatistics(_ header: SMPHeader, _ map: CBORMap) -> Reply {
        let command = StatisticsManagement.Command(rawValue: header.command)
        switch (command, header.operation) {
        case (.list?, .read):
            return .success(["stat_list": .array(statisticsGroups().map { .text($0.name) })])
        case (.show?, .read):
            guard let name = map["name"]?.string, !name.isEmpty, name.utf8.count < 32 else {
                return .smp(SMPReturnCode.invalidArgument.rawValue)
            }
            guard let group = statisticsGroups().first(where: { $0.name == name }) else {
                return .groupNamed(.zephyrBasic, GroupErrorCode.code("STAT_MGMT_ERR_INVALID_STAT_NAME", in: .stat))
            }
            let fields = CBORMap(group.fields.map { CBORMap.Entry(key: .text($0.0), value: .unsigned($0.1)) })
            return .success(["name": .text(name), "fields": .map(fields)])
        default:
            return .smp(SMPReturnCode.notSupported.rawValue)
        }
    }

    // MARK: Settings group

    /// The values stored at first boot: one registered handler, root `app`.
    static let factorySettings: [String: [UInt8]] = [
        "app/name": Array("smpctl-sim".utf8), "app/interval": [0x0A, 0x00, 0x00, 0x00],
    ]

    /// The settings roots with a registered handler (`settings_register`).
    static let settingsRoots: Set<String> = ["app"]

    /// CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN and CONFIG_MCUMGR_GRP_SETTINGS_VALUE_LEN (defaults).
    static let settingsNameLength = 32
    static let settingsValueLength = 32

    /// Zephyr's subsys/mgmt/mcumgr/grp/settings_mgmt/src/settings_mgmt.c:
    /// - read/write/delete need `name` (missing or empty: `rc 3`); a name of NAME_LEN bytes or
    ///   more is SETTINGS_MGMT_ERR_KEY_TOO_LONG;
    /// - read: `max_size` above VALUE_LEN is cut to VALUE_LEN and the answer carries
    ///   `max_size: VALUE_LEN`; settings_runtime_get's -EINVAL (no handler for the root) is
    ///   ROOT_KEY_NOT_FOUND and -ENOENT (the handler has no such key) KEY_NOT_FOUND;
    /// - write (needs `val`) sets the runtime value through the root's handler;
    /// - delete removes the key from storage (settings_delete), not the runtime value;
    /// - commit runs settings_commit, load settings_load (storage into the handlers, then a
    ///   commit), save settings_save (the handlers' values into storage). All answer `{}`.
    func handleSettings(_ header: SMPHeader, _ map: CBORMap) -> Reply {
        let command = SettingsManagement.Command(rawValue: header.command)
        switch (command, header.operation) {
        case (.readWrite?, .read), (.readWrite?, .write), (.delete?, .write):
            guard let name = map["name"]?.string, !name.isEmpty else {
                return .smp(SMPReturnCode.invalidArgument.rawValue)
            }
            if name.utf8.count >= Self.settingsNameLength { return .group(SettingsError.keyTooLong) }
            let root = String(name.split(separator: "/", maxSplits: 1).first ?? "")
            switch (command, header.operation) {
            case (.readWrite?, .read):
                var maxSize = Self.settingsValueLength
                var limited = false
                if let requested = map["max_size"] {
                    guard let value = requested.uint64, value <= UInt64(UInt32.max) else {
                        return .smp(SMPReturnCode.invalidArgument.rawValue)
                    }
                    if value > UInt64(Self.settingsValueLength) { limited = true } else { maxSize = Int(value) }
                }
                guard Self.settingsRoots.contains(root) else { return .group(SettingsError.rootKeyNotFound) }
                guard let value = settingsRuntime[name] else { return .group(SettingsError.keyNotFound) }
                var answer = CBORMap([.init(key: "val", value: .bytes(Array(value.prefix(maxSize))))])
                if limited { answer["max_size"] = .unsigned(UInt64(Self.settingsValueLength)) }
                return .success(.map(answer))
            case (.readWrite?, .write):
                guard let value = map["val"]?.byteString else { return .smp(SMPReturnCode.invalidArgument.rawValue) }
                guard Self.settingsRoots.contains(root) else { return .group(SettingsError.rootKeyNotFound) }
                settingsRuntime[name] = value
                return .success(.map(CBORMap()))
            default:
                settingsStored[name] = nil
                return .success(.map(CBORMap()))
            }
        case (.commit?, .write):
            settingsCommitCount += 1
            return .success(.map(CBORMap()))
        case (.loadSave?, .read):
            for (name, value) in settingsStored { settingsRuntime[name] = value }
            settingsCommitCount += 1
            return .success(.map(CBORMap()))
        case (.loadSave?, .write):
            for (name, value) in settingsRuntime { settingsStored[name] = value }
            return .success(.map(CBORMap()))
        default:
            return .smp(SMPReturnCode.notSupported.rawValue)
        }
    }

    // MARK: Shell group

    /// CONFIG_SHELL_CMD_BUFF_SIZE (default).
    static let shellLineLength = 256

    /// Zephyr's subsys/mgmt/mcumgr/grp/shell_mgmt/src/shell_mgmt.c: `argv` must be an array
    /// (otherwise `rc 3`); its strings are joined with spaces, a line reaching
    /// CONFIG_SHELL_CMD_BUFF_SIZE is SHELL_MGMT_ERR_COMMAND_TOO_LONG and an empty array
    /// EMPTY_COMMAND; the line runs on the dummy shell backend and the answer is `o` (its output)
    /// and `ret` (the command's return code, success at the SMP level whatever it is). An
    /// unknown command prints "<name>: command not found" and returns -ENOEXEC (-8) as
    /// subsys/shell/shell.c does.
    func handleShell(_ header: SMPHeader, _ map: CBORMap) -> Reply {
        guard header.command == ShellManagement.Command.exec.rawValue, header.operation == .write else {
            return .smp(SMPReturnCode.notSupported.rawValue)
        }
        guard let argv = map["argv"]?.arrayValue else { return .smp(SMPReturnCode.invalidArgument.rawValue) }
        var words: [String] = []
        var length = 0
        for element in argv {
            guard let word = element.string else { break }  // zcbor_tstr_decode fails: the line ends
            if length + word.utf8.count >= Self.shellLineLength { return .group(ShellError.commandTooLong) }
            length += word.utf8.count + 1
            words.append(word)
        }
        guard !words.isEmpty else { return .group(ShellError.emptyCommand) }
        let (output, ret) = runShell(words.joined(separator: " "))
        return .success(["o": .text(output), "ret": .int(Int64(ret))])
    }

    /// The simulated shell commands.
    func runShell(_ line: String) -> (String, Int) {
        let words = line.split(separator: " ").map(String.init)
        guard let name = words.first else { return ("", 0) }
        switch (name, words.dropFirst().first) {
        case ("kernel", "version"?): return ("Zephyr version 4.1.0\n", 0)
        case ("kernel", "reboot"?): return ("", 0)
        case ("echo", _): return (words.dropFirst().joined(separator: " ") + "\n", 0)
        case ("false", _): return ("", 1)
        case ("device", "list"?): return ("devices:\n- flash-controller@4001e000 (READY)\n", 0)
        default: return ("\(name): command not found\n", -8)
        }
    }

    // MARK: Enumeration group

    /// The groups the simulated device registers, in the order mgmt_groups_foreach visits them:
    /// MCUMGR_HANDLER_DEFINE puts the registration hooks in an iterable section sorted by name
    /// (enum_mgmt, fs_mgmt, img_mgmt, os_mgmt, settings_mgmt, shell_mgmt, stat_mgmt,
    /// zephyr_basic_mgmt), each appends its
    /// group. Names are the `mg_group_name`s, handler counts the sizes of the handler arrays.
    static let registeredGroups: [(id: SMPGroupID, name: String, handlers: Int)] = [
        (.enumeration, "enum mgmt", 4), (.fs, "fs mgmt", 5), (.image, "img mgmt", 7), (.os, "os mgmt", 9),
        (.settings, "settings mgmt", 4), (.shell, "shell mgmt", 1), (.stat, "stat mgmt", 2),
        (.zephyrBasic, "zephyr basic mgmt", 1),
    ]

    /// CONFIG_MCUMGR_GRP_ENUM_DETAILS_BUFFER_TYPE_STACK_ENTRIES: the most IDs a details
    /// request may list.
    static let enumerationDetailsEntries = 16

    /// Zephyr's subsys/mgmt/mcumgr/grp/enum_mgmt/src/enum_mgmt.c: count answers `count`, list
    /// `groups` (IDs), single takes `index` (absent: 0; above 65535: `rc 3`) and answers `group`
    /// with `end: true` on the last one, or ENUM_MGMT_ERR_INDEX_TOO_LARGE past the end; details
    /// answers `groups`, a map per group with `group`, `name` and `handlers`, restricted to the
    /// IDs of an optional `groups` array.
    func handleEnumeration(_ header: SMPHeader, _ map: CBORMap) -> Reply {
        let groups = Self.registeredGroups
        let command = EnumerationManagement.Command(rawValue: header.command)
        switch (command, header.operation) {
        case (.count?, .read):
            return .success(["count": .unsigned(UInt64(groups.count))])
        case (.list?, .read):
            return .success(["groups": .array(groups.map { .unsigned(UInt64($0.id.rawValue)) })])
        case (.single?, .read):
            var index: UInt64 = 0
            if let value = map["index"] {
                guard let number = value.uint64, number <= UInt64(UInt32.max) else {
                    return .smp(SMPReturnCode.invalidArgument.rawValue)
                }
                index = number
            }
            guard index <= 65_535 else { return .smp(SMPReturnCode.invalidArgument.rawValue) }
            guard index < UInt64(groups.count) else { return .group(EnumError.indexTooLarge) }
            let position = Int(index)
            var answer = CBORMap([.init(key: "group", value: .unsigned(UInt64(groups[position].id.rawValue)))])
            if position == groups.count - 1 { answer["end"] = .bool(true) }
            return .success(.map(answer))
        case (.details?, .read):
            var allowed: Set<UInt16>?
            if let value = map["groups"] {
                guard let array = value.arrayValue else { return .smp(SMPReturnCode.invalidArgument.rawValue) }
                if array.count > Self.enumerationDetailsEntries { return .group(EnumError.tooManyGroupEntries) }
                if !array.isEmpty {
                    var ids = Set<UInt16>()
                    for element in array {
                        guard let id = element.uint64, id <= UInt64(UInt16.max) else {
                            return .smp(SMPReturnCode.invalidArgument.rawValue)
                        }
                        ids.insert(UInt16(id))
                    }
                    allowed = ids
                }
            }
            let entries: [CBORValue] = groups.filter { allowed?.contains($0.id.rawValue) ?? true }.map {
                ["group": .unsigned(UInt64($0.id.rawValue)), "name": .text($0.name),
                 "handlers": .unsigned(UInt64($0.handlers))]
            }
            return .success(["groups": .array(entries)])
        default:
            return .smp(SMPReturnCode.notSupported.rawValue)
        }
    }
}

/// Group codes of the statistics, settings, shell and enumeration groups, by their Zephyr
/// names from ``SMPErrorCatalog`` (a test checks that every name is there).
enum GroupErrorCode {
    static let names: [(String, SMPGroupID)] = [
        ("STAT_MGMT_ERR_INVALID_STAT_NAME", .stat), ("SETTINGS_MGMT_ERR_KEY_TOO_LONG", .settings),
        ("SETTINGS_MGMT_ERR_KEY_NOT_FOUND", .settings), ("SETTINGS_MGMT_ERR_ROOT_KEY_NOT_FOUND", .settings),
        ("SHELL_MGMT_ERR_COMMAND_TOO_LONG", .shell), ("SHELL_MGMT_ERR_EMPTY_COMMAND", .shell),
        ("ENUM_MGMT_ERR_TOO_MANY_GROUP_ENTRIES", .enumeration), ("ENUM_MGMT_ERR_INDEX_TOO_LARGE", .enumeration),
    ]
    static func code(_ name: String, in group: SMPGroupID) -> Int { SMPErrorCatalog.code(named: name, in: group) ?? 1 }
}

enum SettingsError {
    static let keyTooLong = GroupErrorCode.code("SETTINGS_MGMT_ERR_KEY_TOO_LONG", in: .settings)
    static let keyNotFound = GroupErrorCode.code("SETTINGS_MGMT_ERR_KEY_NOT_FOUND", in: .settings)
    static let rootKeyNotFound = GroupErrorCode.code("SETTINGS_MGMT_ERR_ROOT_KEY_NOT_FOUND", in: .settings)
}

enum ShellError {
    static let commandTooLong = GroupErrorCode.code("SHELL_MGMT_ERR_COMMAND_TOO_LONG", in: .shell)
    static let emptyCommand = GroupErrorCode.code("SHELL_MGMT_ERR_EMPTY_COMMAND", in: .shell)
}

enum EnumError {
    static let tooManyGroupEntries = GroupErrorCode.code("ENUM_MGMT_ERR_TOO_MANY_GROUP_ENTRIES", in: .enumeration)
    static let indexTooLarge = GroupErrorCode.code("ENUM_MGMT_ERR_INDEX_TOO_LARGE", in: .enumeration)
}
