import SMPCtlDiagnosis
import SMPCtlProtocol
import Testing

/// After `image test`: what slot 1 holds against the image the user meant, from the image list.
@Suite("the verdict on slot 1 after image test")
struct TestVerdictTests {
    typealias Slot = ImageManagement.SlotState
    static let running = [UInt8](repeating: 0xA1, count: 32)
    static let meant = [UInt8](repeating: 0xBB, count: 32)
    static let other = [UInt8](repeating: 0xC3, count: 32)
    static let confirmedRunning = Slot(slot: 0, version: "1.0.0", hash: running, confirmed: true, active: true)

    func verdict(_ images: [Slot], image: Int = 0) -> TestedImageVerdict? {
        DeviceStateRanking.afterTest(DeviceFacts(image: image, images: images, hashSent: Self.meant))
    }

    @Test("the image meant, marked for test: no problem")
    func markedForTest() throws {
        let result = try #require(verdict([Self.confirmedRunning, Slot(slot: 1, version: "1.1.0", hash: Self.meant, pending: true)]))
        #expect(result.kind == .markedForTest)
        #expect(!result.isProblem && result.advice == nil)
        #expect(result.summary.contains("1.1.0 (bbbbbbbb…)") && result.summary.contains("boots it once"))
    }

    @Test("another image in slot 1, pending or not, or none")
    func otherImage() throws {
        let other = try #require(verdict([Self.confirmedRunning, Slot(slot: 1, version: "2.0.0", hash: Self.other)]))
        #expect(other.kind == .otherImage && other.isProblem)
        #expect(other.summary.contains("2.0.0 (c3c3c3c3…)") && other.summary.contains("not the one you meant (bbbbbbbb…)"))
        #expect(other.advice?.contains("smpctl image upload FILE") == true)

        let pending = try #require(verdict([Self.confirmedRunning, Slot(slot: 1, version: "2.0.0", hash: Self.other, pending: true)]))
        #expect(pending.kind == .otherImagePending)
        #expect(pending.summary.contains("already marked for test") && pending.summary.contains("the next reset boots 2.0.0"))
        let permanent = try #require(verdict([Self.confirmedRunning, Slot(slot: 1, version: "2.0.0", hash: Self.other, pending: true, permanent: true)]))
        #expect(permanent.summary.contains("already marked permanent"))

        let empty = try #require(verdict([Self.confirmedRunning]))
        #expect(empty.kind == .secondaryEmpty)
    }

    @Test("the image meant is running, or in slot 1 without a mark, or permanent already")
    func otherStates() throws {
        let active = try #require(DeviceStateRanking.afterTest(DeviceFacts(images: [Self.confirmedRunning], hashSent: Self.running)))
        #expect(active.kind == .runningImage && active.summary.contains("running"))
        let notPending = try #require(verdict([Self.confirmedRunning, Slot(slot: 1, version: "1.1.0", hash: Self.meant)]))
        #expect(notPending.kind == .notPending && notPending.summary.contains("next reset keeps 1.0.0"))
        // After a test boot: the old image in slot 1 is what the next reset reverts to.
        let testBoot = try #require(verdict([
            Slot(slot: 0, version: "1.1.0", hash: Self.other, active: true), Slot(slot: 1, version: "1.0.0", hash: Self.meant, confirmed: true),
        ]))
        #expect(testBoot.kind == .notPending && testBoot.summary.contains("reverts to 1.0.0"))
        #expect(testBoot.advice?.contains("IMAGE_ALREADY_PENDING") == true)
        let permanent = try #require(verdict([Self.confirmedRunning, Slot(slot: 1, version: "1.1.0", hash: Self.meant, pending: true, permanent: true)]))
        #expect(permanent.kind == .alreadyPermanent)
        // The network core: the hash is found in image 1 even when the command named image 0.
        let netcore = try #require(verdict([
            Self.confirmedRunning, Slot(image: 1, slot: 0, version: "0.9.0", hash: Self.running, confirmed: true, active: true),
            Slot(image: 1, slot: 1, version: "1.0.0", hash: Self.meant, pending: true),
        ]))
        #expect(netcore.kind == .markedForTest)
        // Nothing to judge without the list or the hash.
        #expect(DeviceStateRanking.afterTest(DeviceFacts(images: [Self.confirmedRunning])) == nil)
        #expect(DeviceStateRanking.afterTest(DeviceFacts(hashSent: Self.meant)) == nil)
    }

    @Test("a refused test is explained with the verdict, and another pending image ranks first")
    func refusedTest() throws {
        let knowledge = try Knowledge.load()
        let images = [Self.confirmedRunning, Slot(slot: 1, version: "2.0.0", hash: Self.other, pending: true)]
        let ranked = knowledge.rank(
            knowledge.explain(code: 8, group: .image, operation: .test, smpVersion: 2),
            with: DeviceFacts(link: .udp, images: images, hashSent: Self.meant))
        #expect(ranked.causes.first?.id == "state-other-image-pending")
        #expect(ranked.notes.first?.hasPrefix("After the test request: Slot 1 of image 0 holds another image, 2.0.0") == true)
        #expect(ranked.nextSteps.first?.contains("smpctl reset") == true)
        // Over SMP v1 the same refusal is EUNKNOWN (1).
        let v1 = knowledge.rank(
            knowledge.explain(code: 1, operation: .test, smpVersion: 1), with: DeviceFacts(images: images, hashSent: Self.meant))
        #expect(v1.causes.first?.id == "state-other-image-pending")
        // Not pending: the other image itself.
        let plain = knowledge.rank(
            knowledge.explain(code: 8, group: .image, operation: .test),
            with: DeviceFacts(images: [Self.confirmedRunning, Slot(slot: 1, version: "2.0.0", hash: Self.other)], hashSent: Self.meant))
        #expect(plain.causes.first?.id == "state-other-image")
    }
}
