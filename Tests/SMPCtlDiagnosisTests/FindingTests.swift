import Testing

@testable import SMPCtlDiagnosis

/// One finding type, one severity order, for `diagnose`, `doctor` and `image inspect`.
@Suite("findings: one type, one severity order")
struct FindingTests {
    @Test("severities run info < warning < error")
    func order() {
        #expect(Severity.info < .warning && Severity.warning < .error && !(Severity.error < .info))
        #expect(Severity.allCases.sorted() == [.info, .warning, .error])
        let findings = [Severity.warning, .error, .info].map { Finding(id: $0.rawValue, severity: $0, summary: "") }
        #expect(findings.worstSeverity == .error)
        #expect([Finding]().worstSeverity == nil)
    }

    @Test("the doctor lists errors first, then warnings, then notes, by id within each")
    func doctorOrder() {
        let findings = [("b", Severity.info), ("a", .warning), ("c", .error), ("a", .error), ("z", .warning)].map {
            Finding(id: $0.0, severity: $0.1, summary: "", location: Finding.Location(file: "f"))
        }
        let ordered = Doctor.ordered(findings)
        #expect(ordered.map(\.id) == ["a", "c", "a", "z", "b"])
        #expect(ordered.map(\.severity) == [.error, .error, .warning, .warning, .info])
    }

    @Test("the inspector's kinds map onto the one order; a failed check is an error but not a refusal of the file")
    func inspectorKinds() throws {
        #expect(ImageFindingKind.invalid.severity == .error && ImageFindingKind.failed.severity == .error)
        #expect(ImageFindingKind.warning.severity == .warning && ImageFindingKind.note.severity == .info)
        let tampered = try ImageFixtures.inspect("tampered.signed.bin")
        let mismatch = try #require(tampered.findings.first { $0.id == "hash-mismatch" })
        #expect(mismatch.severity == .error)
        #expect(tampered.kind(of: mismatch) == .failed)
        #expect(tampered.verdict == .checkFailed)
        let elf = try ImageFixtures.inspect("zephyr.elf")
        let refusal = try #require(elf.findings.first { $0.id == "elf" })
        #expect(elf.kind(of: refusal) == .invalid)
        #expect(elf.invalidFindingIDs == ["elf"])
        #expect(elf.verdict == .notAnImage)
    }

    @Test("a doctor location reads file:line (key)")
    func location() {
        #expect(Finding.Location(file: "a.conf", line: 3, key: "CONFIG_X").description == "a.conf:3 (CONFIG_X)")
        #expect(Finding.Location(file: "a.conf").description == "a.conf")
    }
}
