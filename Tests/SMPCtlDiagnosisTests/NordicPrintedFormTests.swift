import Foundation
import SMPCtlDiagnosis
import SMPCtlProtocol
import Testing

/// The error forms the Nordic libraries print (nRF Connect Device Manager for Android, `no.nordicsemi.android.mcumgr`,
/// and iOS, `iOSMcuManagerLibrary`): their return-code enums and descriptions, read from the libraries' sources into
/// knowledge.json's `code_name_tables`, and their DFU states.
@Suite("Nordic libraries' printed errors and DFU states")
struct NordicPrintedFormTests {
    func subjects(_ text: String) throws -> [Explanation.Subject] {
        try Knowledge.load().explain(text: text).findings.map(\.explanation.subject)
    }

    @Test("the tables hold every case of the libraries' enums and descriptions")
    func tables() throws {
        let knowledge = try Knowledge.load()
        let sizes = knowledge.codeNameTableSizes
        // McuMgrErrorCode.java: OK(0) ... PROTOCOL_VERSION_TOO_NEW(13), PER_USER(256).
        #expect(sizes["ndm-android-mcumgr-error-code"] == 15)
        #expect(knowledge.codeNameTable("ndm-android-mcumgr-error-code")?.names["BAD_STATE"] == 6)
        #expect(knowledge.codeNameTable("ndm-android-mcumgr-error-code")?.names["PER_USER"] == 256)
        // ImageManager.ReturnCode: OK(0) ... ACTIVE_SLOT_NOT_KNOWN(34); iOS ImageManagerError the same 35 cases.
        #expect(sizes["ndm-android-image-return-code"] == 35)
        #expect(sizes["ndm-ios-image-manager-error"] == 35)
        #expect(knowledge.codeNameTable("ndm-ios-image-manager-error")?.names["fullSlots"] == 9)
        #expect(knowledge.codeNameTable("ndm-ios-mcumgr-return-code")?.names["unsupportedTooNew"] == 13)
        #expect(knowledge.codeNameTable("ndm-android-fs-return-code")?.group == 8)
        #expect(knowledge.codeNameTable("ndm-ios-basic-manager-error")?.group == 63)
        #expect(knowledge.codeNameTable("ndm-ios-mcumgr-return-code-description")?.names["Busy, try again later"] == 10)
        #expect(knowledge.codeNameTable("ndm-android-strings-img-error")?.names["Testing active slot denied"] == 33)
        #expect(sizes.count >= 30)
    }

    @Test("every enum name, printed with its number after McuMgrError, is its own code")
    func everyEnumName() throws {
        let knowledge = try Knowledge.load()
        let order = [
            "ndm-android-mcumgr-error-code", "ndm-ios-mcumgr-return-code", "ndm-android-default-return-code",
            "ndm-android-image-return-code", "ndm-android-stats-return-code", "ndm-android-settings-return-code",
            "ndm-android-fs-return-code", "ndm-android-shell-return-code", "ndm-android-basic-return-code",
            "ndm-ios-os-manager-error", "ndm-ios-image-manager-error", "ndm-ios-stats-manager-error",
            "ndm-ios-settings-manager-error", "ndm-ios-filesystem-manager-error", "ndm-ios-shell-manager-error",
            "ndm-ios-basic-manager-error",
        ]
        var checked = 0
        for id in order {
            let table = try #require(knowledge.codeNameTable(id), "\(id)")
            for (name, rc) in table.names where rc >= 2 {
                // The same name with the same number in an earlier table is read as that one.
                let owner = try #require(order.first { knowledge.codeNameTable($0)?.names[name] == rc })
                let group = knowledge.codeNameTable(owner)?.group
                let expected: Explanation.Subject = group.map { .group(SMPGroupID(rawValue: $0), rc) } ?? .smp(rc)
                // Log patterns may match the name too (HASH_NOT_FOUND); the other tools' messages must agree.
                let found = knowledge.explain(text: "McuMgrError \(rc) \(name)").findings.filter { $0.kind != .logLine }
                #expect(found.map(\.explanation.subject) == [expected], "\(id) \(name) \(rc)")
                #expect(found.first?.explanation.isKnown == true, "\(id) \(name)")
                checked += 1
            }
        }
        #expect(checked > 150)
    }

    @Test("every Android sample string \"Name (N)\" is its group's code")
    func everyAndroidString() throws {
        let knowledge = try Knowledge.load()
        for id in ["ndm-android-strings-img-error", "ndm-android-strings-fs-error", "ndm-android-strings-settings-error",
            "ndm-android-strings-os-error", "ndm-android-strings-stats-error", "ndm-android-strings-shell-error",
            "ndm-android-strings-zephyr-basic-error", "ndm-android-strings-error"]
        {
            let table = try #require(knowledge.codeNameTable(id))
            for (name, rc) in table.names where rc >= 2 {
                let found = knowledge.explain(text: "status: \(name) (\(rc))").findings.first
                let expected: Explanation.Subject = table.group.map { .group(SMPGroupID(rawValue: $0), rc) } ?? .smp(rc)
                // A name two arrays share is read as the first array's; only check the names that are unique.
                let shared = ["ndm-android-strings-img-error", "ndm-android-strings-fs-error", "ndm-android-strings-settings-error",
                    "ndm-android-strings-os-error", "ndm-android-strings-stats-error", "ndm-android-strings-shell-error",
                    "ndm-android-strings-zephyr-basic-error", "ndm-android-strings-error"]
                    .filter { $0 != id && knowledge.codeNameTable($0)?.names[name] != nil }
                guard shared.isEmpty else { continue }
                #expect(found?.explanation.subject == expected, "\(id) \(name)")
            }
        }
    }

    @Test("the McuMgrError-prefixed form: number and name in either order, or one of them")
    func prefixedForms() throws {
        #expect(try subjects("Mcu Mgr Error: NO_ENTRY (5)") == [.smp(5)])
        #expect(try subjects("Mcu Mgr Error: 6") == [.smp(6)])
        #expect(try subjects("McuMgrError 9 NO_FREE_SLOT") == [.group(.image, 9)])
        #expect(try subjects("McuMgrError NO_FREE_SLOT 9") == [.group(.image, 9)])
        #expect(try subjects("McuMgrError: BAD_STATE (rc: 6)") == [.smp(6)])
        #expect(try subjects("McuMgrErrorCode.ACCESS_DENIED") == [.smp(11)])
        #expect(try subjects("McuMgrReturnCode.unsupportedTooOld") == [.smp(12)])
        // smpctl's (Zephyr's) names work after the prefix too.
        #expect(try subjects("McuMgrError 30 IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE").contains(.group(.image, 30)))
        // One name in two groups: the number decides (FLASH_OPEN_FAILED is image 10 and basic 2).
        #expect(try subjects("McuMgrError 2 FLASH_OPEN_FAILED") == [.group(.zephyrBasic, 2)])
        #expect(try subjects("McuMgrError 10 FLASH_OPEN_FAILED") == [.group(.image, 10)])
        // The group form stays the group form, not rc 9 of the SMP table.
        #expect(try subjects("no.nordicsemi.android.mcumgr.exception.McuMgrErrorException: Mcu Mgr Error: 9 (group: 1)") == [.group(.image, 9)])
        // The name is read from the library's enum and said.
        let finding = try #require(try Knowledge.load().explain(text: "McuMgrError 9 NO_FREE_SLOT").findings.first)
        #expect(finding.explanation.notes.contains { $0.contains("Android ImageManager.ReturnCode NO_FREE_SLOT is image rc 9") })
        #expect(finding.explanation.sources.contains { $0.url.contains("managers/ImageManager.java") })
    }

    @Test("a name and a number that disagree are not taken for either code")
    func mismatches() throws {
        let knowledge = try Knowledge.load()
        for line in [
            "Mcu Mgr Error: NO_ENTRY (6)", "McuMgrError 30 NO_FREE_SLOT", "No free slot (30)", "Bad state (RC: 5)",
            "ImageManager.ReturnCode.NO_FREE_SLOT (30)", "ImageManagerError.fullSlots (30)",
        ] {
            let result = knowledge.explain(text: line)
            let finding = try #require(result.findings.first, "\(line)")
            #expect(result.findings.count == 1, "\(line): \(result.findings.map(\.explanation.label))")
            #expect(!finding.explanation.isKnown, "\(line)")
            #expect(finding.explanation.name.contains("disagree"), "\(line)")
            #expect(finding.explanation.causes.isEmpty)
            #expect(!result.allKnown)
        }
        // smpctl's own name after the prefix is checked against the number too.
        #expect(knowledge.explain(text: "McuMgrError 7 MGMT_ERR_EBADSTATE").findings.contains { $0.explanation.name.contains("disagree") })
        let mismatch = try #require(knowledge.explain(text: "No free slot (30)").findings.first)
        #expect(mismatch.explanation.meaning.contains("No free slot is 9"))
        #expect(mismatch.explanation.meaning.contains("IMG_MGMT_ERR_NO_FREE_SLOT") && mismatch.explanation.meaning.contains("IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE"))
        #expect(mismatch.explanation.notes.first?.contains("smpctl explain 9 --group 1") == true)
        // An unknown name after the prefix is unknown; with a number, the number is explained and the name noted.
        let unknown = try #require(knowledge.explain(text: "McuMgrError FROBNICATE").findings.first)
        #expect(!unknown.explanation.isKnown)
        let numbered = try #require(knowledge.explain(text: "McuMgrError FROBNICATE 6").findings.first)
        #expect(numbered.explanation.subject == .smp(6))
        #expect(numbered.explanation.notes.contains { $0.contains("FROBNICATE") })
        // Success printed as an error is its own finding, not rc 0.
        let ok = knowledge.explain(text: "Mcu Mgr Error: OK (0)").findings
        #expect(ok.map(\.patternID) == ["ndm-android-ok-error"])
    }

    @Test("a state name, or a line that failed in a state, says what the state does and maps it to smpctl dfu")
    func states() throws {
        let knowledge = try Knowledge.load()
        let cases: [(String, String)] = [
            ("VALIDATE", "ndm-state-validate"), ("UPLOAD", "ndm-state-upload"), ("TEST", "ndm-state-test"),
            ("RESET", "ndm-state-reset"), ("CONFIRM", "ndm-state-confirm"), ("requestMcuMgrParameters", "ndm-state-requestmcumgrparameters"),
            ("bootloaderInfo", "ndm-state-bootloaderinfo"), ("eraseAppSettings", "ndm-state-eraseappsettings"),
            (".upload", "ndm-state-upload"), ("FirmwareUpgradeState.resetIntoFirmwareLoader", "ndm-state-reset"),
            ("upgradeDidFail(inState: .test, with: Remote Error: Bad state (RC: 6))", "ndm-state-test"),
            ("onUpgradeFailed: failed in state CONFIRM", "ndm-state-confirm"),
            ("REQUESTING MCUMGR PARAMETERS...", "ndm-state-requestmcumgrparameters"),
        ]
        for (text, id) in cases {
            let finding = try #require(knowledge.explain(text: text).findings.first { $0.patternID == id }, "\(text)")
            #expect(finding.tool == "nrf-connect-device-manager")
            #expect(finding.explanation.meaning.contains("smpctl"), "\(id) says which smpctl step it is")
            #expect(!finding.explanation.causes.isEmpty && !finding.explanation.nextSteps.isEmpty)
        }
        // The failure in a state and the error it failed with are both explained.
        let both = knowledge.explain(text: "upgradeDidFail(inState: .test, with: Remote Error: Bad state (RC: 6))").findings
        let code = try #require(both.first { $0.explanation.subject == .smp(6) })
        // ... and the code is ranked for the state's step: a refused test, not a full slot on upload.
        #expect(code.explanation.operation == .test)
        #expect(code.explanation.causes.first?.id == "already-pending-v1")
        #expect(try #require(knowledge.explain(text: "Remote Error: Bad state (RC: 6)").findings.first).explanation.causes.first?.id == "slot-pending")
        // Words that are not alone on the line, or not about a failure, are not states.
        #expect(knowledge.explain(text: "we will test the upload tomorrow").findings.isEmpty)
        #expect(knowledge.explain(text: "TESTING the new board").findings.isEmpty)
    }
}
