import Foundation
import SMPCtlDiagnosis
import SMPCtlProtocol
import Testing

@Suite("knowledge base")
struct KnowledgeTests {
    let knowledge: Knowledge

    init() throws {
        knowledge = try Knowledge.load()
    }

    @Test("loads with a schema version and counts")
    func loads() {
        #expect(Knowledge.schemaVersion == 1)
        #expect(knowledge.codeCount >= 100)
        #expect(knowledge.causeCount >= 60)
        #expect(knowledge.logPatternCount >= 50)
    }

    @Test("every catalog code is in the knowledge base with the same name and meaning, and nothing else")
    func agreesWithCatalog() {
        var expected: [String: (String, String)] = [:]
        for (rc, entry) in SMPErrorCatalog.smpCodeList { expected["smp/\(rc)"] = (entry.name, entry.meaning) }
        for group in SMPErrorCatalog.groupsWithCodes {
            for (rc, entry) in SMPErrorCatalog.codes(of: group) { expected["\(group.rawValue)/\(rc)"] = (entry.name, entry.meaning) }
        }
        var found: [String: (String, String)] = [:]
        for code in knowledge.allCodes where !(code.group == nil && code.rc == 256) {
            found["\(code.group.map(String.init) ?? "smp")/\(code.rc)"] = (code.name, code.meaning)
        }
        #expect(Set(found.keys) == Set(expected.keys))
        for (key, value) in expected {
            #expect(found[key]?.0 == value.0, "name of \(key)")
            #expect(found[key]?.1 == value.1, "meaning of \(key)")
        }
        // The groups the issue names all have tables.
        for group: SMPGroupID in [.os, .image, .stat, .settings, .fs, .shell, .enumeration, .zephyrBasic] {
            #expect(!SMPErrorCatalog.codes(of: group).isEmpty)
            #expect(knowledge.explain(code: 1, group: group).isKnown)
        }
        for rc in 0...13 { #expect(knowledge.explain(code: rc).isKnown) }
        let perUser = knowledge.explain(code: 300)
        #expect(perUser.name == "MGMT_ERR_EPERUSER")
        #expect(perUser.meaning.contains("44"))
    }

    @Test("codes users hit have ranked causes with checks and sources")
    func hitCodesHaveCauses() {
        let smp = [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        let image = [3, 4, 8, 9, 10, 13, 22, 23, 24, 25, 27, 28, 30, 32, 33]
        for rc in smp { #expect(knowledge.hasCauses(code: rc, group: nil), "rc \(rc)") }
        for rc in image { #expect(knowledge.hasCauses(code: rc, group: .image), "image rc \(rc)") }
        let explanation = knowledge.explain(code: 10, group: .image, operation: .upload, smpVersion: 2)
        #expect(explanation.causes.map(\.weight) == explanation.causes.map(\.weight).sorted(by: >))
        #expect(!explanation.nextSteps.isEmpty)
        #expect(!explanation.sources.isEmpty)
        #expect(explanation.settings.contains { $0.name == "CONFIG_PM_EXTERNAL_FLASH_HAS_DRIVER" })
        #expect(explanation.sources.allSatisfy { $0.url.hasPrefix("https://") })
    }

    // MARK: The field failures of the issue, each with the right top cause for its operation.

    @Test("v1 rc 5 on upload: unsigned image, and the translated image codes")
    func enoentOnUpload() throws {
        let explanation = knowledge.explain(code: 5, operation: .upload, smpVersion: 1)
        #expect(explanation.name == "MGMT_ERR_ENOENT")
        #expect(explanation.causes.first?.id == "unsigned-image")
        #expect(explanation.causes.contains { $0.id == "legacy-slot-lookup" })
        #expect(explanation.possibleGroupCodes.map(\.rc) == [3, 4])
        // Over v2 the translation causes do not apply.
        let v2 = knowledge.explain(code: 5, operation: .upload, smpVersion: 2)
        #expect(!v2.causes.contains { $0.id == "unsigned-image" })
    }

    @Test("image error 8 on test: hash not found, the image is not readable in the secondary slot")
    func hashNotFound() {
        for operation in [OperationKind.test, .confirm] {
            let explanation = knowledge.explain(code: 8, group: .image, operation: operation, smpVersion: 2)
            #expect(explanation.name == "IMG_MGMT_ERR_HASH_NOT_FOUND")
            #expect(explanation.causes.first?.id == "image-not-valid-in-slot")
            #expect(explanation.causes.first?.text.contains("QSPI") == true)
        }
        let enotsup = knowledge.explain(code: 8)
        #expect(enotsup.name == "MGMT_ERR_ENOTSUP")
        #expect(enotsup.causes.first?.id == "group-not-enabled")
    }

    @Test("device errors: operation inferred from group and command")
    func deviceErrors() {
        let upload = SMPDeviceError(kind: .group(.image, 10), version: .v2, requestGroup: .image, command: 1)
        let explanation = knowledge.explain(deviceError: upload)
        #expect(explanation.operation == .upload)
        #expect(explanation.causes.first?.id == "external-flash-no-driver")
        #expect(explanation.causes.first?.text.contains("-19") == true)

        let state = SMPDeviceError(kind: .group(.image, 8), version: .v2, requestGroup: .image, command: 0)
        #expect(knowledge.explain(deviceError: state).operation == .test)
        #expect(knowledge.explain(deviceError: state).causes.first?.id == "image-not-valid-in-slot")

        let v1 = SMPDeviceError(kind: .smp(SMPReturnCode(rawValue: 5)), version: .v1, requestGroup: .image, command: 1, reason: "no TLVs")
        let v1Explanation = knowledge.explain(deviceError: v1)
        #expect(v1Explanation.smpVersion == 1)
        #expect(v1Explanation.causes.first?.id == "unsigned-image")
        #expect(v1Explanation.notes.first?.contains("no TLVs") == true)

        let reset = SMPDeviceError(kind: .smp(SMPReturnCode(rawValue: 10)), version: .v2, requestGroup: .os, command: 5)
        #expect(knowledge.explain(deviceError: reset).causes.first?.id == "reset-refused")
    }

    @Test("other codes rank causes for their operation")
    func operationAware() {
        #expect(knowledge.explain(code: 3, operation: .uploadFirstChunk).causes.first?.id == "first-chunk-too-small")
        #expect(knowledge.explain(code: 3, operation: .test).causes.first?.id == "bad-hash-length")
        #expect(knowledge.explain(code: 6, operation: .upload).causes.first?.id == "slot-pending")
        #expect(knowledge.explain(code: 6, operation: .test).causes.first?.id == "already-pending-v1")
        #expect(knowledge.explain(code: 1, operation: .upload, smpVersion: 1).causes.first?.id == "external-flash-no-driver")
        #expect(knowledge.explain(code: 30, group: .image, operation: .upload).causes.first?.id == "image-too-large")
        #expect(knowledge.explain(code: 9, group: .image, operation: .upload).causes.first?.id == "slot-pending")
        #expect(knowledge.explain(code: 23, group: .image, operation: .upload).causes.first?.id == "not-mcuboot-image")
        #expect(knowledge.explain(code: 27, group: .image, operation: .upload).causes.first?.id == "downgrade")
        #expect(knowledge.explain(code: 28, group: .image, operation: .test).causes.first?.id == "another-pending")
        #expect(knowledge.explain(code: 33, group: .image, operation: .test).causes.first?.id == "test-active")
        #expect(knowledge.explain(code: 24, group: .image, operation: .confirm).causes.first?.id == "bad-hash-field")
        #expect(knowledge.explain(code: 12, smpVersion: 1).causes.first?.id == "v1-disabled")
        #expect(!knowledge.explain(code: 99, group: .image).isKnown)
    }

    @Test("transport and workflow failures")
    func failures() {
        for kind in FailureKind.allCases {
            let explanation = knowledge.explain(failure: kind)
            #expect(explanation.isKnown)
            #expect(!explanation.causes.isEmpty)
        }
        #expect(knowledge.explain(failure: .timeoutFirstChunk).causes.first?.id == "slot-erase")
        #expect(knowledge.explain(failure: .timeoutFirstChunk).settings.contains { $0.name == "CONFIG_IMG_ERASE_PROGRESSIVELY" })
        #expect(knowledge.explain(failure: .mtu23).settings.contains { $0.name == "CONFIG_BT_L2CAP_TX_MTU" })
        #expect(knowledge.explain(failure: .authenticationRequired).causes.first?.id == "needs-pairing")
        #expect(knowledge.explain(failure: .reverted).causes.first?.id == "bad-signature")
        #expect(knowledge.explain(failure: .noReconnectAfterReset).causes.first?.id == "bootloader-stuck")
        #expect(knowledge.explain(failure: .lostNotifications).causes.first?.id == "not-subscribed")
    }

    @Test("log lines of the issue are recognized with the right top cause")
    func logLines() throws {
        let log = """
            I: Starting bootloader
            W: Failed reading sectors; BOOT_MAX_IMG_SECTORS=512 - too small?
            W: Cannot upgrade: not a compatible amount of sectors
            [00:00:01.204,040] <err> mcumgr_img_grp: Failed to open flash area (-19)
            [00:00:16.278,594] <err> mcumgr_img_grp: Image upload inspect failed: 5\r
            Error: Hash not Found (8)
            ld.bfd: flash_map.c.obj: undefined reference to `__device_dts_ord_132'
            E: Image in the secondary slot is not valid!
            E: Unable to find bootable image
            I: Swap type: revert
            just an ordinary line
            """
        let findings = knowledge.explain(log: log)
        let byLine = Dictionary(findings.map { ($0.line, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(findings.count == 9)
        #expect(byLine[1] == nil && byLine[11] == nil)
        #expect(byLine[2]?.patternID == "boot-max-img-sectors")
        #expect(byLine[2]?.explanation.causes.first?.id == "mcuboot-no-ext-driver")
        #expect(byLine[2]?.explanation.settings.contains { $0.name == "CONFIG_BOOT_MAX_IMG_SECTORS" } == true)
        #expect(byLine[3]?.patternID == "incompatible-sectors")
        #expect(byLine[3]?.explanation.causes.contains { $0.id == "slot-layout-mismatch" } == true)
        #expect(byLine[4]?.patternID == "flash-open-enodev")
        #expect(byLine[4]?.matchedText.hasSuffix("(-19)") == true)
        #expect(byLine[4]?.explanation.causes.first?.id == "external-flash-no-driver")
        #expect(byLine[5]?.patternID == "upload-inspect-failed")
        #expect(byLine[5]?.explanation.causes.first?.id == "unsigned-image")
        #expect(byLine[6]?.patternID == "hash-not-found")
        #expect(byLine[7]?.patternID == "device-dts-ord")
        #expect(byLine[7]?.explanation.causes.first?.id == "override-without-driver")
        #expect(byLine[7]?.explanation.causes.contains { $0.id == "qspi-implied-node-disabled" } == true)
        #expect(byLine[8]?.patternID == "secondary-not-valid")
        #expect(byLine[9]?.patternID == "no-bootable-image")
        #expect(byLine[10]?.patternID == "swap-type-revert")
    }

    @Test("huge or hostile logs are bounded")
    func boundedLogs() {
        let long = String(repeating: "x", count: 100_000) + "Unable to find bootable image"
        #expect(knowledge.explain(log: long).isEmpty)  // past the per-line limit
        let many = String(repeating: "noise\n", count: 50_000) + "E: Unable to find bootable image\n"
        #expect(knowledge.explain(log: many).first?.line == 50_001)
    }

    @Test("validation rejects bad files with a typed error")
    func validation() throws {
        func attempt(_ text: String) -> KnowledgeError? {
            do {
                _ = try Knowledge(json: Data(text.utf8))
                return nil
            } catch {
                return error
            }
        }
        #expect(attempt("{\"schema_version\": 2}") == .unsupportedSchema(2))
        if case .malformed = attempt("not json") {} else { Issue.record("expected malformed") }
        if case .malformed = attempt("{\"schema_version\": 1}") {} else { Issue.record("expected malformed") }
        let empty = """
            {"schema_version": 1, "operations": [], "sources": {}, "settings": {}, "codes": [], "failures": [], "log_patterns": []}
            """
        if case .invalid(let text) = attempt(empty) { #expect(text.contains("missing")) } else { Issue.record("expected invalid") }
        let dangling = """
            {"schema_version": 1, "operations": [], "sources": {}, "settings": {}, "failures": [], "log_patterns": [],
             "codes": [{"group": null, "rc": 1, "name": "X", "meaning": "y",
               "causes": [{"id": "a", "text": "t", "weight": 5, "check": "c", "sources": ["nowhere"]}]}]}
            """
        if case .invalid(let text) = attempt(dangling) { #expect(text.contains("nowhere")) } else { Issue.record("expected invalid") }
    }
}
