import SMPCtlDiagnosis
import SMPCtlProtocol
import Testing

/// Which explanation fits a failed command, judged from facts about the failure (no client, no transport).
@Suite("explanations from failure facts")
struct FailureFactsTests {
    @Test("a lost first chunk, a lost request, and answers that could not be read")
    func timeouts() throws {
        let knowledge = try Knowledge.load()
        #expect(knowledge.explain(FailureFacts.timedOut(group: .image, command: 1, malformedAnswers: 0))?.subject == .failure(.timeoutFirstChunk))
        #expect(knowledge.explain(FailureFacts.timedOut(group: .os, command: 0, malformedAnswers: 0))?.subject == .failure(.timeout))
        #expect(knowledge.explain(FailureFacts.timedOut(group: .image, command: 1, malformedAnswers: 2)) == nil)
    }

    @Test("transport failures: authentication by its text, then the link's fate")
    func transport() throws {
        let knowledge = try Knowledge.load()
        #expect(knowledge.explain(FailureFacts.transport(reason: "Operation Not Permitted", link: .other))?.subject == .failure(.authenticationRequired))
        #expect(knowledge.explain(FailureFacts.transport(reason: "gone", link: .disconnected))?.subject == .failure(.disconnected))
        #expect(knowledge.explain(FailureFacts.transport(reason: "slow", link: .timedOut))?.subject == .failure(.timeout))
        #expect(knowledge.explain(FailureFacts.transport(reason: "EIO", link: .other)) == nil)
    }

    @Test("checks after the update, refused files, and the explain command that prints it in full")
    func checksAndInput() throws {
        let knowledge = try Knowledge.load()
        #expect(knowledge.explain(FailureFacts.verification(.notRunningAfterReset))?.subject == .failure(.reverted))
        #expect(knowledge.explain(FailureFacts.verification(.other)) == nil)
        let unsigned = try #require(knowledge.explain(FailureFacts.invalidInput("a.bin is not a signed MCUboot image: no magic")))
        #expect(unsigned.subject == .failure(.notSignedFile))
        #expect(unsigned.moreCommand.hasPrefix("smpctl explain \(FailureKind.notSignedFile.rawValue)"))
        #expect(knowledge.explain(FailureFacts.other) == nil)
    }
}
