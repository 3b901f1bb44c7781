import SMPCtlDiagnosis
import SMPCtlProtocol
import Testing

/// A device error's causes ranked by the state read from the device after the failure.
@Suite("advice from the device's state")
struct DeviceStateAdviceTests {
    typealias Slot = ImageManagement.SlotState
    static let newHash = [UInt8](repeating: 0xBB, count: 32)
    static let oldHash = [UInt8](repeating: 0xF2, count: 32)

    /// After `dfu --mode test-only` and the reset: the new image runs unconfirmed, slot 1 keeps the old one.
    static let testBoot = [
        Slot(slot: 0, version: "1.1.0", hash: newHash, active: true),
        Slot(slot: 1, version: "1.0.0", hash: oldHash, confirmed: true),
    ]
    /// After an upload and `image test`, before the reset.
    static let pending = [
        Slot(slot: 0, version: "1.0.0", hash: oldHash, confirmed: true, active: true),
        Slot(slot: 1, version: "1.1.0", hash: newHash, pending: true),
    ]
    static let confirmedOnly = [Slot(slot: 0, version: "1.0.0", hash: oldHash, confirmed: true, active: true)]

    @Test("NO_FREE_SLOT after a test boot: confirm the running image first, not reset or erase")
    func noFreeSlotAfterTestBoot() throws {
        let knowledge = try Knowledge.load()
        let plain = knowledge.explain(code: 9, group: .image, operation: .upload, smpVersion: 2)
        #expect(plain.causes.first?.id == "slot-pending")
        let ranked = knowledge.rank(plain, with: DeviceFacts(link: .udp, images: Self.testBoot))
        #expect(ranked.causes.first?.id == "state-unconfirmed-test-boot")
        #expect(ranked.causes.first?.text.contains("1.1.0") == true)
        #expect(ranked.nextSteps.first?.hasPrefix("Confirm the running image first") == true)
        #expect(!ranked.causes.contains { $0.id == "slot-pending" })
        #expect(!ranked.nextSteps.joined().contains("or erase the slot"))
        #expect(ranked.notes.first?.contains("slot 0 1.1.0 (active)") == true)
        // The settings of the dropped cause go with it.
        #expect(!ranked.settings.contains { $0.name == "CONFIG_MCUMGR_GRP_IMG_ALLOW_ERASE_PENDING" })

        // SMP v1: the same refusal is EBADSTATE on the upload.
        let v1 = knowledge.rank(knowledge.explain(code: 6, operation: .upload, smpVersion: 1), with: DeviceFacts(images: Self.testBoot))
        #expect(v1.causes.first?.id == "state-unconfirmed-test-boot")
        #expect(v1.causes.contains { $0.id == "downgrade-refused-v1" })
    }

    @Test("NO_FREE_SLOT with a pending slot: reset to boot it")
    func noFreeSlotPending() throws {
        let knowledge = try Knowledge.load()
        let ranked = knowledge.rank(knowledge.explain(code: 9, group: .image, operation: .upload), with: DeviceFacts(images: Self.pending))
        #expect(ranked.causes.first?.id == "state-secondary-pending")
        #expect(ranked.causes.first?.text.contains("marked for test") == true)
        #expect(!ranked.causes.contains { $0.id == "state-unconfirmed-test-boot" })
        #expect(ranked.nextSteps.first?.contains("smpctl reset") == true)
    }

    @Test("NO_FREE_SLOT while the state shows a free slot: the slot-pending cause is ruled out")
    func noFreeSlotFreeNow() throws {
        let knowledge = try Knowledge.load()
        let ranked = knowledge.rank(knowledge.explain(code: 9, group: .image, operation: .upload), with: DeviceFacts(images: Self.confirmedOnly))
        #expect(!ranked.causes.contains { $0.id == "slot-pending" })
        #expect(ranked.causes.first?.id == "state-slot-free-now")
        #expect(ranked.notes.contains { $0.contains("no pending slot") })
    }

    @Test("HASH_NOT_FOUND on -c sim: the in-process simulator starts empty for each command")
    func hashNotFoundOnSim() throws {
        let knowledge = try Knowledge.load()
        let plain = knowledge.explain(code: 8, group: .image, operation: .test, smpVersion: 2)
        #expect(plain.causes.first?.id == "image-not-valid-in-slot")
        let ranked = knowledge.rank(plain, with: DeviceFacts(link: .inProcessSimulator, images: Self.confirmedOnly, hashSent: Self.newHash))
        #expect(ranked.causes.first?.id == "state-sim-starts-empty")
        #expect(ranked.causes.first?.text.contains("starts empty for each command") == true)
        #expect(!ranked.causes.contains { $0.id == "image-not-valid-in-slot" })
        #expect(!ranked.causes.map(\.text).joined().contains("QSPI"))
        #expect(ranked.nextSteps.first?.contains("smpctl simulate") == true)
    }

    @Test("HASH_NOT_FOUND on a device: an empty slot 1 rules out a wrong hash; another image rules out the flash")
    func hashNotFoundOnDevice() throws {
        let knowledge = try Knowledge.load()
        let plain = knowledge.explain(code: 8, group: .image, operation: .test)
        let empty = knowledge.rank(plain, with: DeviceFacts(link: .ble, images: Self.confirmedOnly, hashSent: Self.newHash))
        #expect(empty.causes.first?.id == "state-secondary-empty")
        #expect(!empty.causes.contains { $0.id == "wrong-hash" })
        #expect(empty.causes.contains { $0.id == "image-not-valid-in-slot" })
        let other = [Self.confirmedOnly[0], Slot(slot: 1, version: "0.9.0", hash: [UInt8](repeating: 1, count: 32))]
        let mismatch = knowledge.rank(plain, with: DeviceFacts(link: .ble, images: other, hashSent: Self.newHash))
        #expect(mismatch.causes.first?.id == "state-other-image")
        #expect(!mismatch.causes.contains { $0.id == "image-not-valid-in-slot" })
        #expect(mismatch.causes.contains { $0.id == "wrong-hash" })
    }

    @Test("FLASH_OPEN_FAILED with a slot the slot info cannot open: the driver is missing in the application")
    func flashOpenFailed() throws {
        let knowledge = try Knowledge.load()
        let plain = knowledge.explain(code: 10, group: .image, operation: .upload)
        let broken = ImageManagement.SlotInfoResponse(images: [.init(image: 0, slots: [.init(slot: 0, size: 0x76000), .init(slot: 1, size: nil, rc: -19)])])
        let ranked = knowledge.rank(plain, with: DeviceFacts(images: Self.confirmedOnly, slotInfo: broken))
        #expect(ranked.causes.first?.id == "state-slot-unopenable")
        #expect(ranked.causes.first?.text.contains("slot 1 of image 0 (rc -19)") == true)
        #expect(ranked.causes.dropFirst().first?.id == plain.causes.first?.id)
        let fine = ImageManagement.SlotInfoResponse(images: [.init(image: 0, slots: [.init(slot: 0, size: 0x76000), .init(slot: 1, size: 0x76000)])])
        let intermittent = knowledge.rank(plain, with: DeviceFacts(slotInfo: fine))
        #expect(intermittent.causes == plain.causes)
        #expect(intermittent.notes.contains { $0.contains("opens every slot") })
    }

    @Test("what the state cannot judge is left alone")
    func untouched() throws {
        let knowledge = try Knowledge.load()
        let plain = knowledge.explain(code: 11, group: .image, operation: .upload)
        // No image list: nothing to rank with, only the causes of the knowledge base.
        #expect(knowledge.rank(plain, with: DeviceFacts()).causes == plain.causes)
        let other = knowledge.rank(plain, with: DeviceFacts(images: Self.testBoot))
        #expect(other.causes == plain.causes)
        #expect(other.notes.first?.hasPrefix("Device state after the failure") == true)
        let unknown = knowledge.explain(code: 99)
        #expect(knowledge.rank(unknown, with: DeviceFacts(images: Self.testBoot)) == unknown)
        // Too large: the device's limit is quoted.
        let info = ImageManagement.SlotInfoResponse(images: [.init(image: 0, slots: [.init(slot: 0, size: 0x67000), .init(slot: 1, size: 0x67000)], maxImageSize: 421_000)])
        let large = knowledge.rank(knowledge.explain(code: 30, group: .image, operation: .upload), with: DeviceFacts(slotInfo: info))
        #expect(large.notes.contains { $0.contains("421000 bytes") })
    }
}
