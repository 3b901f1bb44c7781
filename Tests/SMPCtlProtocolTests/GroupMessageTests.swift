import SMPCtlTestSupport
import SMPCtlCBOR
import SMPCtlProtocol
import Testing

/// Golden bytes of the statistics, settings, shell and enumeration messages: the header as in
/// shared/reference/smp-protocol.md (byte 0 = version << 3 | op, big-endian length and group)
/// and the CBOR bodies of the Zephyr group documentation, written out by hand.
@Suite("statistics, settings, shell and enumeration messages")
struct GroupMessageTests {
    func packet(_ request: some SMPRequest, sequence: UInt8) -> String {
        hexString(request.packet(sequence: sequence).bytes)
    }

    func decode<R: SMPResponse>(_ type: R.Type, _ hex: String, group: SMPGroupID, command: UInt8, read: Bool = true)
        throws(SMPResponseError) -> R
    {
        let body = [UInt8](hex: hex)
        let header = SMPHeader(
            operation: read ? .readResponse : .writeResponse, version: .v2, length: 0, group: group, sequence: 0,
            command: command)
        return try SMPResponseDecoder.decode(R.self, from: SMPPacket(header: header, body: body))
    }

    // MARK: Statistics (2)

    @Test("stat list and show requests")
    func statRequests() {
        #expect(packet(StatisticsManagement.ListRequest(), sequence: 1) == "0800000100020101a0")
        #expect(packet(StatisticsManagement.ShowRequest(name: "smp_svr_stats"), sequence: 0)
            == "08000014000200" + "00" + "a1646e616d656d736d705f7376725f7374617473")
    }

    @Test("stat responses in Zephyr's indefinite-length form")
    func statResponses() throws {
        let list = try decode(StatisticsManagement.ListResponse.self,
            "bf69737461745f6c697374" + "9f6d736d705f7376725f7374617473ff" + "ff",
            group: .stat, command: 1)
        #expect(list.groups == ["smp_svr_stats"])
        let show = try decode(StatisticsManagement.ShowResponse.self,
            "bf646e616d656d736d705f7376725f7374617473" + "666669656c6473" + "bf657469636b73182aff" + "ff",
            group: .stat, command: 0)
        #expect(show.name == "smp_svr_stats")
        #expect(show.fields == [.init(name: "ticks", value: 42)])
    }

    @Test("stat responses of the wrong shape are typed errors")
    func statRejections() {
        // `stat_list` holding an integer; `fields` mapping to a negative value.
        #expect(throws: SMPResponseError.self) {
            try decode(StatisticsManagement.ListResponse.self, "a169737461745f6c6973748101", group: .stat, command: 1)
        }
        #expect(throws: SMPResponseError.self) {
            try decode(StatisticsManagement.ShowResponse.self, "a2646e616d65617866666965" + "6c6473a1617820",
                group: .stat, command: 0)
        }
    }

    @Test("Zephyr's stat group reports an unknown name as err {group 63, rc 3}: a statistics code")
    func statErrorUnderBasicGroup() {
        let error = SMPDeviceError(kind: .group(.zephyrBasic, 3), version: .v2, requestGroup: .stat, command: 0)
        #expect(error.entry?.name == "STAT_MGMT_ERR_INVALID_STAT_NAME")
        let basic = SMPDeviceError(kind: .group(.zephyrBasic, 3), version: .v2, requestGroup: .zephyrBasic, command: 0)
        #expect(basic.entry?.name == "ZEPHYRBASIC_MGMT_ERR_FLASH_CONFIG_QUERY_FAIL")
        #expect(error.codeTableError.kind == .group(.stat, 3))
        #expect(basic.codeTableError == basic)
    }

    // MARK: Settings (3)

    @Test("settings requests")
    func settingsRequests() {
        #expect(packet(SettingsManagement.ReadRequest(name: "app/name"), sequence: 0)
            == "0800000f00030000" + "a1646e616d65686170702f6e616d65")
        #expect(packet(SettingsManagement.ReadRequest(name: "app/name", maxSize: 16), sequence: 0)
            == "0800001900030000" + "a2646e616d65686170702f6e616d65686d61785f73697a6510")
        #expect(packet(SettingsManagement.WriteRequest(name: "app/name", value: [0x68, 0x69]), sequence: 0)
            == "0a00001600030000" + "a2646e616d65686170702f6e616d656376616c426869")
        #expect(packet(SettingsManagement.DeleteRequest(name: "app/name"), sequence: 1)
            == "0a00000f00030101" + "a1646e616d65686170702f6e616d65")
        #expect(packet(SettingsManagement.ActionRequest(.commit), sequence: 2) == "0a00000100030202a0")
        #expect(packet(SettingsManagement.ActionRequest(.load), sequence: 3) == "0800000100030303a0")
        #expect(packet(SettingsManagement.ActionRequest(.save), sequence: 3) == "0a00000100030303a0")
    }

    @Test("settings read response")
    func settingsResponses() throws {
        let read = try decode(SettingsManagement.ReadResponse.self, "bf6376616c4a736d7063746c2d73696dff",
            group: .settings, command: 0)
        #expect(read.value == Array("smpctl-sim".utf8))
        #expect(read.maxSize == nil)
        let cut = try decode(SettingsManagement.ReadResponse.self, "bf6376616c4100686d61785f73697a651820ff",
            group: .settings, command: 0)
        #expect(cut.value == [0] && cut.maxSize == 32)
        // `val` as text is not a value.
        #expect(throws: SMPResponseError.self) {
            try decode(SettingsManagement.ReadResponse.self, "a16376616c6178", group: .settings, command: 0)
        }
        // A settings group error: err {group 3, rc 3} KEY_NOT_FOUND.
        do {
            _ = try decode(SettingsManagement.ReadResponse.self, "bf63657272bf6567726f7570036272630 3ffff"
                .replacingOccurrences(of: " ", with: ""), group: .settings, command: 0)
            Issue.record("an error answer decoded as success")
        } catch {
            guard case .device(let device) = error else { Issue.record("\(error)"); return }
            #expect(device.entry?.name == "SETTINGS_MGMT_ERR_KEY_NOT_FOUND")
        }
    }

    // MARK: Shell (9)

    @Test("shell exec request and response")
    func shell() throws {
        #expect(packet(ShellManagement.ExecRequest(["kernel", "version"]), sequence: 0)
            == "0a00001600090000" + "a1646172677682666b65726e656c6776657273696f6e")
        let ok = try decode(ShellManagement.ExecResponse.self,
            "bf616f755a65706879722076657273696f6e20342e312e300a6372657400ff", group: .shell, command: 0, read: false)
        #expect(ok == .init(output: "Zephyr version 4.1.0\n", returnCode: 0))
        let failed = try decode(ShellManagement.ExecResponse.self, "bf616f60637265742 7ff"
            .replacingOccurrences(of: " ", with: ""), group: .shell, command: 0, read: false)
        #expect(failed.returnCode == -8)
        // No `ret` (nor legacy `rc`): malformed.
        #expect(throws: SMPResponseError.self) {
            try decode(ShellManagement.ExecResponse.self, "a1616f60", group: .shell, command: 0, read: false)
        }
    }

    // MARK: Enumeration (10)

    @Test("enumeration requests")
    func enumerationRequests() {
        #expect(packet(EnumerationManagement.CountRequest(), sequence: 0) == "08000001000a0000a0")
        #expect(packet(EnumerationManagement.ListRequest(), sequence: 0) == "08000001000a0001a0")
        #expect(packet(EnumerationManagement.SingleRequest(index: 2), sequence: 0)
            == "08000008000a0002" + "a165696e64657802")
        #expect(packet(EnumerationManagement.DetailsRequest(groups: [.os, .image]), sequence: 0)
            == "0800000b000a0003" + "a16667726f757073820001")
        #expect(packet(EnumerationManagement.DetailsRequest(), sequence: 0) == "08000001000a0003a0")
    }

    @Test("enumeration responses")
    func enumerationResponses() throws {
        #expect(try decode(EnumerationManagement.CountResponse.self, "bf65636f756e7406ff", group: .enumeration,
            command: 0).count == 6)
        #expect(try decode(EnumerationManagement.ListResponse.self, "bf6667726f7570739f0a01000309 02ffff"
            .replacingOccurrences(of: " ", with: ""), group: .enumeration, command: 1).groups
            == [.enumeration, .image, .os, .settings, .shell, .stat])
        let single = try decode(EnumerationManagement.SingleResponse.self, "bf6567726f75700163656e64f5ff",
            group: .enumeration, command: 2)
        #expect(single == .init(groupID: .image, isLast: true))
        let details = try decode(EnumerationManagement.DetailsResponse.self,
            "bf6667726f7570739fbf6567726f757000646e616d65676f73206d676d746868616e646c65727309ffffff",
            group: .enumeration, command: 3)
        #expect(details.groups == [.init(groupID: .os, name: "os mgmt", handlers: 9)])
        // A group ID beyond 16 bits is malformed.
        #expect(throws: SMPResponseError.self) {
            try decode(EnumerationManagement.ListResponse.self, "a16667726f757073811a00010000", group: .enumeration,
                command: 1)
        }
    }
}
