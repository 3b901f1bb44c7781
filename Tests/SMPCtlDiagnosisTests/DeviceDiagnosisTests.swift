import SMPCtlDiagnosis
import SMPCtlProtocol
import Testing

/// `diagnose`'s judgement of device facts: pure, from facts the client read.
@Suite("diagnose: findings from device facts")
struct DeviceDiagnosisTests {
    typealias Slot = ImageManagement.SlotState
    typealias Info = ImageManagement.SlotInfoResponse
    static let running = Slot(slot: 0, version: "1.0.0", hash: [1, 2, 3], confirmed: true, active: true)

    @Test("an unreachable device has one finding, no-answer, with the reason")
    func unreachable() {
        let findings = DeviceDiagnosis.findings(DeviceFacts(reachable: false, unreachableReason: "timed out"))
        #expect(findings.map(\.id) == ["no-answer"])
        #expect(findings.first?.severity == .error)
        #expect(findings.first?.summary == "the device does not answer SMP echo: timed out")
    }

    @Test("a healthy device with equal slots has no findings")
    func healthy() {
        let info = Info(images: [.init(image: 0, slots: [.init(slot: 0, size: 65536), .init(slot: 1, size: 65536)])])
        #expect(DeviceDiagnosis.findings(DeviceFacts(images: [Self.running], slotInfo: info), fileLength: 4096).isEmpty)
    }

    @Test("a pending slot is an error that names NO_FREE_SLOT; the image already there is noted")
    func pending() {
        let pending = Slot(slot: 1, version: "1.1.0", hash: [9, 9], pending: true)
        let findings = DeviceDiagnosis.findings(DeviceFacts(images: [Self.running, pending]), imageHash: [9, 9])
        #expect(findings.map(\.id) == ["pending-slot-blocks-upload", "already-uploaded"])
        #expect(findings.first?.severity == .error)
        #expect(findings.first?.why?.contains("NO_FREE_SLOT") == true)
        #expect(findings.worstSeverity == .error)
    }

    @Test("an image larger than max_image_size, slots of different sizes, an unopenable slot")
    func slots() {
        let info = Info(images: [.init(image: 0, slots: [.init(slot: 0, size: 65536), .init(slot: 1, size: 16384)])])
        let findings = DeviceDiagnosis.findings(DeviceFacts(images: [Self.running], slotInfo: info), fileLength: 20000)
        #expect(findings.map(\.id) == ["slot-size-mismatch", "image-too-large"])
        #expect(findings.last?.summary == "the image is 20000 bytes; the slot takes at most 16384")
        let broken = Info(images: [.init(image: 0, slots: [.init(slot: 0, size: 65536), .init(slot: 1, size: nil, rc: -19)])])
        let unopenable = DeviceDiagnosis.findings(DeviceFacts(images: [Self.running], slotInfo: broken))
        #expect(unopenable.map(\.id) == ["slot-unreadable"])
        #expect(unopenable.first?.summary.contains("rc -19") == true)
    }

    @Test("an unconfirmed running image, a mode without revert, and an unreadable image list are warned about")
    func warnings() {
        let unconfirmed = Slot(slot: 0, version: "1.1.0", hash: [1], active: true)
        let findings = DeviceDiagnosis.findings(DeviceFacts(bootloaderMode: 2, images: [unconfirmed]))
        #expect(findings.map(\.id) == ["no-revert", "unconfirmed-running-image"])
        #expect(findings.allSatisfy { $0.severity == .warning })
        let noList = DeviceDiagnosis.findings(DeviceFacts(imageListError: "NOT_SUPPORTED"))
        #expect(noList.map(\.id) == ["no-image-list"])
        #expect(DeviceDiagnosis.findings(DeviceFacts(images: [])).isEmpty)
    }
}
