import SMPCtlTestSupport
import SMPCtlCBOR
import SMPCtlProtocol
@testable import SMPCtlSimulator
import Testing

/// The statistics, settings, shell and enumeration groups of the simulated device, as Zephyr's
/// stat_mgmt.c, settings_mgmt.c, shell_mgmt.c and enum_mgmt.c answer.
@Suite("simulated statistics, settings, shell and enumeration groups")
struct SimulatorGroupTests {
    @Test("every group code the handlers use is in the catalog")
    func codesAreCatalogued() {
        for (name, group) in GroupErrorCode.names {
            #expect(SMPErrorCatalog.code(named: name, in: group) != nil, "\(name) is not in the catalog")
        }
    }

    @Test("stat list and show; an unknown group is err {group 63, rc 3} in v2 and rc 5 in v1")
    func statistics() async throws {
        let device = SimulatedDevice()
        let list = try success(try await call(device, StatisticsManagement.ListRequest()))
        #expect(list.groups == ["smp_svr_stats", "smp_transport"])
        let show = try success(try await call(device, StatisticsManagement.ShowRequest(name: "smp_transport")))
        #expect(show.fields.map(\.name) == ["rx_packets", "rx_bytes", "boots"])
        #expect(show.fields.first?.value == 2)  // the list request and this one

        #expect(errorKind(try await call(device, StatisticsManagement.ShowRequest(name: "nope")))
            == .group(.zephyrBasic, 3))
        #expect(errorKind(try await call(device, StatisticsManagement.ShowRequest(name: "nope"), version: .v1))
            == .smp(SMPReturnCode(rawValue: 5)))
        #expect(errorKind(try await call(device, StatisticsManagement.ShowRequest(name: "")))
            == .smp(.invalidArgument))
        #expect(errorKind(try await call(device, StatisticsManagement.ShowRequest(name: String(repeating: "s", count: 32))))
            == .smp(.invalidArgument))
    }

    @Test("settings: runtime writes, save, delete, load, and the reset that loads storage")
    func settings() async throws {
        let device = SimulatedDevice()
        let read = SettingsManagement.ReadRequest(name: "app/name")
        #expect(try success(try await call(device, read)).value == Array("smpctl-sim".utf8))

        _ = try success(try await call(device, SettingsManagement.WriteRequest(name: "app/name", value: Array("new".utf8))))
        #expect(try success(try await call(device, read)).value == Array("new".utf8))
        // Not saved: a reset loads the stored value again.
        await device.powerCycle()
        #expect(try success(try await call(device, read)).value == Array("smpctl-sim".utf8))

        _ = try success(try await call(device, SettingsManagement.WriteRequest(name: "app/name", value: Array("kept".utf8))))
        _ = try success(try await call(device, SettingsManagement.ActionRequest(.save)))
        await device.powerCycle()
        #expect(try success(try await call(device, read)).value == Array("kept".utf8))

        // Delete removes the stored key; the running value stays until the next boot.
        _ = try success(try await call(device, SettingsManagement.DeleteRequest(name: "app/name")))
        #expect(try success(try await call(device, read)).value == Array("kept".utf8))
        await device.powerCycle()
        #expect(errorKind(try await call(device, read)) == .group(.settings, 3))

        // Load copies storage into the running values and commits; commit alone commits.
        _ = try success(try await call(device, SettingsManagement.WriteRequest(name: "app/interval", value: [1])))
        _ = try success(try await call(device, SettingsManagement.ActionRequest(.load)))
        #expect(try success(try await call(device, SettingsManagement.ReadRequest(name: "app/interval"))).value
            == [0x0A, 0, 0, 0])
        _ = try success(try await call(device, SettingsManagement.ActionRequest(.commit)))
        #expect(await device.settingsCommitCount == 2)
    }

    @Test("settings errors: unknown root, long key, max_size, v1 translation")
    func settingsErrors() async throws {
        let device = SimulatedDevice()
        #expect(errorKind(try await call(device, SettingsManagement.ReadRequest(name: "bt/id"))) == .group(.settings, 5))
        #expect(errorKind(try await call(device, SettingsManagement.WriteRequest(name: "bt/id", value: [1])))
            == .group(.settings, 5))
        let long = "app/" + String(repeating: "k", count: 28)
        #expect(errorKind(try await call(device, SettingsManagement.ReadRequest(name: long))) == .group(.settings, 2))
        #expect(errorKind(try await call(device, SettingsManagement.ReadRequest(name: long), version: .v1))
            == .smp(.invalidArgument))
        #expect(errorKind(try await call(device, SettingsManagement.ReadRequest(name: "app/none"), version: .v1))
            == .smp(SMPReturnCode(rawValue: 5)))
        #expect(errorKind(try await call(device, SettingsManagement.ReadRequest(name: ""))) == .smp(.invalidArgument))

        let cut = try success(try await call(device, SettingsManagement.ReadRequest(name: "app/name", maxSize: 4)))
        #expect(cut.value == Array("smpc".utf8) && cut.maxSize == nil)
        let limited = try success(try await call(device, SettingsManagement.ReadRequest(name: "app/name", maxSize: 100)))
        #expect(limited.value.count == 10 && limited.maxSize == 32)
    }

    @Test("shell exec: output and ret, unknown command, empty and too long lines")
    func shell() async throws {
        let device = SimulatedDevice()
        let version = try success(try await call(device, ShellManagement.ExecRequest(["kernel", "version"])))
        #expect(version == .init(output: "Zephyr version 4.1.0\n", returnCode: 0))
        let unknown = try success(try await call(device, ShellManagement.ExecRequest(["frobnicate", "now"])))
        #expect(unknown == .init(output: "frobnicate: command not found\n", returnCode: -8))
        #expect(errorKind(try await call(device, ShellManagement.ExecRequest([]))) == .group(.shell, 3))
        #expect(errorKind(try await call(device, ShellManagement.ExecRequest([]), version: .v1)) == .smp(.invalidArgument))
        let long = ShellManagement.ExecRequest([String(repeating: "x", count: 200), String(repeating: "y", count: 60)])
        #expect(errorKind(try await call(device, long)) == .group(.shell, 2))
        let noArgv = SMPRawRequest(group: .shell, command: 0, operation: .write, body: .map(CBORMap()))
        #expect(errorKind(try await call(device, noArgv)) == .smp(.invalidArgument))
    }

    @Test("enumeration: count, list, single with end, index too large, details with a filter")
    func enumeration() async throws {
        let device = SimulatedDevice()
        #expect(try success(try await call(device, EnumerationManagement.CountRequest())).count == 8)
        let list = try success(try await call(device, EnumerationManagement.ListRequest()))
        #expect(list.groups == [.enumeration, .fs, .image, .os, .settings, .shell, .stat, .zephyrBasic])
        #expect(try success(try await call(device, EnumerationManagement.SingleRequest(index: 0)))
            == .init(groupID: .enumeration, isLast: false))
        #expect(try success(try await call(device, EnumerationManagement.SingleRequest(index: 7)))
            == .init(groupID: .zephyrBasic, isLast: true))
        #expect(errorKind(try await call(device, EnumerationManagement.SingleRequest(index: 8))) == .group(.enumeration, 4))
        // enum_mgmt_translate_error_code has no case for INDEX_TOO_LARGE: EUNKNOWN in v1.
        #expect(errorKind(try await call(device, EnumerationManagement.SingleRequest(index: 8), version: .v1))
            == .smp(SMPReturnCode(rawValue: 1)))
        #expect(errorKind(try await call(device, EnumerationManagement.SingleRequest(index: 70_000)))
            == .smp(.invalidArgument))
        let all = try success(try await call(device, EnumerationManagement.DetailsRequest()))
        #expect(all.groups.count == 8)
        let some = try success(try await call(device, EnumerationManagement.DetailsRequest(groups: [.shell, .os])))
        #expect(some.groups == [.init(groupID: .os, name: "os mgmt", handlers: 9),
                                .init(groupID: .shell, name: "shell mgmt", handlers: 1)])
        let tooMany = EnumerationManagement.DetailsRequest(groups: (0..<17).map { SMPGroupID(rawValue: UInt16($0)) })
        #expect(errorKind(try await call(device, tooMany)) == .group(.enumeration, 2))
    }
}
