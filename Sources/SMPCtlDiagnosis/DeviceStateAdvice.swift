// Ranking a device error's causes with what could be read from the device afterwards.
//
// Pure: the client gathers the facts (`SMPClient.readDeviceFacts`); this file only judges them.

public import SMPCtlProtocol

/// What was read from a device: whether it answers, its buffers, bootloader, image list and slot sizes.
/// The client gathers it (`SMPClient.readDeviceFacts`, read-only); Diagnosis judges it (``DeviceDiagnosis``,
/// ``DeviceStateRanking``). `nil` fields could not be read (the device lacks the command, or it did not
/// answer in time).
public struct DeviceFacts: Sendable, Hashable {
    /// How smpctl reached the device.
    public enum Link: String, Sendable, Hashable {
        /// `-c sim`: a simulator inside this smpctl process, created empty for each command.
        case inProcessSimulator = "in-process-simulator"
        /// `-c 'sim?state=FILE'`: the in-process simulator, loaded from FILE and saved to it, so it
        /// keeps what earlier commands did.
        case savedSimulator = "saved-simulator"
        case udp, serial, ble
    }

    public var link: Link?
    /// The image number the facts are about (the failing command's, or the one an update would target).
    public var image: Int
    /// Whether the device answered SMP echo; when it did not, nothing else was read.
    public var reachable: Bool
    /// Why echo failed, when the device is not reachable.
    public var unreachableReason: String?
    /// The SMP version the device answered in.
    public var smpVersion: SMPVersion?
    /// The buffers the device reports (`params`), or `nil` when it does not report them or they were not read.
    public var parameters: OSManagement.ParametersResponse?
    /// Whether the device has the params command: `false` when it refused it, `nil` when it was not read.
    public var parametersSupported: Bool?
    /// The bootloader's name from bootloader info, or `nil`.
    public var bootloader: String?
    /// The MCUboot mode from bootloader info, or `nil`.
    public var bootloaderMode: Int?
    /// The image list (`image list`), or `nil` when it could not be read.
    public var images: [ImageManagement.SlotState]?
    /// Why the image list could not be read, when it could not.
    public var imageListError: String?
    /// The slot sizes (`image slot-info`), or `nil`.
    public var slotInfo: ImageManagement.SlotInfoResponse?
    /// The hash the failing command sent (test, confirm), when known.
    public var hashSent: [UInt8]?

    /// The device's SMP buffer size, when it reports one.
    public var bufferSize: Int? { parameters?.bufferSize }

    public init(
        link: Link? = nil, image: Int = 0, reachable: Bool = true, unreachableReason: String? = nil,
        smpVersion: SMPVersion? = nil, parameters: OSManagement.ParametersResponse? = nil,
        parametersSupported: Bool? = nil, bootloader: String? = nil, bootloaderMode: Int? = nil,
        images: [ImageManagement.SlotState]? = nil, imageListError: String? = nil,
        slotInfo: ImageManagement.SlotInfoResponse? = nil, hashSent: [UInt8]? = nil
    ) {
        self.link = link
        self.image = image
        self.reachable = reachable
        self.unreachableReason = unreachableReason
        self.smpVersion = smpVersion
        self.parameters = parameters
        self.parametersSupported = parametersSupported
        self.bootloader = bootloader
        self.bootloaderMode = bootloaderMode
        self.images = images
        self.imageListError = imageListError
        self.slotInfo = slotInfo
        self.hashSent = hashSent
    }

    var primary: ImageManagement.SlotState? { images?.first { $0.image == image && $0.slot == 0 } }
    var secondary: ImageManagement.SlotState? { images?.first { $0.image == image && $0.slot == 1 } }
    /// The running image was booted for test and is not confirmed; the secondary slot keeps the previous image.
    var unconfirmedTestBoot: Bool {
        guard let primary, primary.active, !primary.confirmed else { return false }
        return secondary.map { !$0.pending } ?? true
    }
}

extension Knowledge {
    /// Explains a device error with the causes ranked by the device's state: causes the state confirms
    /// come first (with what was read), causes it rules out are dropped.
    public func explain(deviceError: SMPDeviceError, operation: OperationKind? = nil, facts: DeviceFacts) -> Explanation {
        rank(explain(deviceError: deviceError, operation: operation), with: facts)
    }

    /// Re-ranks an explanation by the device's state (see ``DeviceStateRanking``).
    public func rank(_ explanation: Explanation, with facts: DeviceFacts) -> Explanation {
        var out = DeviceStateRanking.apply(facts, to: explanation)
        guard out.causes != explanation.causes else { return out }
        // The settings of the causes that remain, in their order.
        var names: [String] = []
        for cause in out.causes { for name in cause.settings where !names.contains(name) { names.append(name) } }
        out.settings = names.compactMap { settings[$0] }
        return out
    }
}

/// The rules that rank an explanation's causes by the device's state.
public enum DeviceStateRanking {
    /// What the state says about an explanation: causes first, ids ruled out, and notes.
    struct Verdict {
        var stateCauses: [Cause] = []
        var ruledOut: Set<String> = []
        var notes: [String] = []
    }

    /// Re-ranks `explanation` with `facts`. An explanation the rules do not cover is returned with a note of
    /// what the device's image list shows.
    public static func apply(_ facts: DeviceFacts, to explanation: Explanation) -> Explanation {
        guard explanation.isKnown else { return explanation }
        var verdict = Verdict()
        if let summary = summary(facts) { verdict.notes.append("Device state after the failure: \(summary).") }
        switch problem(of: explanation) {
        case .noFreeSlot: noFreeSlot(facts, &verdict)
        case .hashNotFound: hashNotFound(facts, &verdict)
        case .tooLarge: tooLarge(facts, &verdict)
        case .flashOpenFailed: flashOpenFailed(facts, &verdict)
        case nil: break
        }
        // A refused `image test`: what slot 1 holds against the image meant (TestVerdict.swift).
        if explanation.operation == .test, let tested = afterTest(facts) {
            verdict.notes.insert("After the test request: \(tested.summary)\(tested.advice.map { " " + $0 } ?? "")", at: 0)
        }
        var out = explanation
        out.notes = verdict.notes + out.notes
        let kept = out.causes.filter { !verdict.ruledOut.contains($0.id) }
        out.causes = verdict.stateCauses + kept
        if !verdict.stateCauses.isEmpty || kept.count != explanation.causes.count {
            var steps: [String] = []
            for cause in out.causes where !steps.contains(cause.check) { steps.append(cause.check) }
            // Steps that came from the entry itself, not from a dropped cause, stay after the causes' checks.
            let dropped = Set(explanation.causes.filter { verdict.ruledOut.contains($0.id) }.map(\.check))
            for step in explanation.nextSteps where !steps.contains(step) && !dropped.contains(step) { steps.append(step) }
            out.nextSteps = steps
        }
        return out
    }

    enum Problem { case noFreeSlot, hashNotFound, tooLarge, flashOpenFailed }

    static func problem(of explanation: Explanation) -> Problem? {
        let operation = explanation.operation
        switch explanation.subject {
        case .group(let group, 9) where group == .image: return .noFreeSlot
        case .group(let group, 8) where group == .image: return .hashNotFound
        case .group(let group, 30) where group == .image: return .tooLarge
        case .group(let group, 10) where group == .image: return .flashOpenFailed
        // SMP v1: NO_FREE_SLOT arrives as EBADSTATE (6); an upload's or erase's EBADSTATE is it.
        case .smp(6) where operation == .upload || operation == .uploadFirstChunk || operation == .erase: return .noFreeSlot
        // SMP v1: a test's HASH_NOT_FOUND arrives as EUNKNOWN (1) (img_mgmt's v1 translation).
        case .smp(1) where operation == .test || operation == .confirm: return .hashNotFound
        default: return nil
        }
    }

    static func describe(_ slot: ImageManagement.SlotState) -> String {
        var flags: [String] = []
        if slot.active { flags.append("active") }
        if slot.confirmed { flags.append("confirmed") }
        if slot.pending { flags.append(slot.permanent ? "pending permanent" : "pending test") }
        return "slot \(slot.slot) \(slot.version.prefix(32))\(flags.isEmpty ? "" : " (\(flags.joined(separator: ", ")))")"
    }

    static func summary(_ facts: DeviceFacts) -> String? {
        var parts: [String] = []
        if let images = facts.images {
            let mine = images.filter { $0.image == facts.image }.sorted { $0.slot < $1.slot }
            parts.append(mine.isEmpty ? "no image listed for image \(facts.image)" : mine.prefix(4).map(describe).joined(separator: ", "))
        }
        if facts.link == .inProcessSimulator { parts.append("in-process simulator (-c sim)") }
        if facts.link == .savedSimulator { parts.append("in-process simulator kept in a state file (-c 'sim?state=FILE')") }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    static func stateCause(_ id: String, _ text: String, check: String, settings: [String] = []) -> Cause {
        Cause(id: id, text: text, weight: 100, check: check, settings: settings, sources: [], operations: [], smpVersions: [])
    }

    static func noFreeSlot(_ facts: DeviceFacts, _ verdict: inout Verdict) {
        guard facts.images != nil else { return }
        if let secondary = facts.secondary, secondary.pending {
            verdict.stateCauses.append(stateCause(
                "state-secondary-pending",
                "Slot 1 holds \(secondary.version.prefix(32)), marked \(secondary.permanent ? "permanent" : "for test") at the next reset; a pending slot is not overwritten.",
                check: "Reset the device to boot it (`smpctl reset`), or upload after that boot; erasing a pending slot needs CONFIG_MCUMGR_GRP_IMG_ALLOW_ERASE_PENDING.",
                settings: ["CONFIG_MCUMGR_GRP_IMG_ALLOW_ERASE_PENDING"]))
            verdict.ruledOut.insert("slot-pending")
        } else if facts.unconfirmedTestBoot, let primary = facts.primary {
            let previous = facts.secondary.map { " Slot 1 holds the previous image \($0.version.prefix(32)), kept for the revert." } ?? ""
            verdict.stateCauses.append(stateCause(
                "state-unconfirmed-test-boot",
                "The running image \(primary.version.prefix(32)) was booted for test and is not confirmed.\(previous) Until it is confirmed, slot 1 cannot be overwritten.",
                check: "Confirm the running image first (`smpctl image confirm`), then upload again; a reset instead reverts to the previous image."))
            // Not a pending slot and nothing to erase: the slot-pending advice (reset or erase) does not apply.
            verdict.ruledOut.formUnion(["slot-pending", "erase-active"])
        } else {
            // Nothing is pending and the running image is confirmed: the slot is free now.
            verdict.notes.append("The image list shows no pending slot and no unconfirmed test boot now: the slot may have been freed since (a reset or confirm by another program), so an upload may work again.")
            verdict.ruledOut.insert("slot-pending")
            verdict.stateCauses.append(stateCause(
                "state-slot-free-now", "The device's state changed after the refusal (another program reset, confirmed or erased), or its image list and upload handler disagree.",
                check: "Run `smpctl image list` and upload again; if it keeps failing, report the image list with the error."))
        }
    }

    static func hashNotFound(_ facts: DeviceFacts, _ verdict: inout Verdict) {
        guard let images = facts.images else { return }
        let mine = images.filter { $0.image == facts.image }
        let secondaryEmpty = !mine.contains { $0.slot == 1 }
        if facts.link == .inProcessSimulator {
            verdict.stateCauses.append(stateCause(
                "state-sim-starts-empty",
                "`-c sim` runs a simulator inside this smpctl process, and it starts empty for each command: an image uploaded by an earlier command is gone\(secondaryEmpty ? " (slot 1 is empty)" : "").",
                check: "Do the whole update in one command (`smpctl -c sim dfu FILE`), give every command `-c 'sim?state=FILE'` (the simulator is loaded from FILE and saved to it), or start `smpctl simulate --udp 127.0.0.1:0` and use the connection it prints for every command: it keeps its state."))
            // A simulator has no flash drivers or partition layouts to blame.
            verdict.ruledOut.formUnion(["image-not-valid-in-slot"])
            return
        }
        if let hash = facts.hashSent, mine.contains(where: { $0.hash == hash }) {
            verdict.notes.append("The image list does hold an image with this hash now; try the command again.")
            return
        }
        if secondaryEmpty {
            verdict.stateCauses.append(stateCause(
                "state-secondary-empty",
                "The device lists no image in slot 1: the upload did not land where the application reads, or the slot was erased since.",
                check: "Upload again and list the images right after; if slot 1 stays empty, the application reads another flash area than it writes (external flash driver, partition layout: `smpctl doctor BUILD_DIR`).",
                settings: ["CONFIG_SPI_NOR", "CONFIG_NORDIC_QSPI_NOR"]))
            // With nothing in slot 1 there is no other image whose hash could have been sent.
            verdict.ruledOut.insert("wrong-hash")
        } else if facts.hashSent != nil, let secondary = mine.first(where: { $0.slot == 1 }), secondary.pending {
            verdict.stateCauses.append(stateCause(
                "state-other-image-pending",
                "Slot 1 holds another image (\(secondary.version.prefix(32))) than the one whose hash was sent, already marked \(secondary.permanent ? "permanent" : "for test"): the next reset boots that one, and it is not overwritten before.",
                check: "Reset to boot the pending image (`smpctl reset`) if it is the one you want; otherwise reset (or erase it, with CONFIG_MCUMGR_GRP_IMG_ALLOW_ERASE_PENDING), upload your file again and test it.",
                settings: ["CONFIG_MCUMGR_GRP_IMG_ALLOW_ERASE_PENDING"]))
            verdict.ruledOut.insert("image-not-valid-in-slot")
        } else if facts.hashSent != nil, let secondary = mine.first(where: { $0.slot == 1 }) {
            verdict.stateCauses.append(stateCause(
                "state-other-image",
                "Slot 1 holds another image (\(secondary.version.prefix(32))) than the one whose hash was sent.",
                check: "Compare the hash in `smpctl image list` with the file's (`smpctl image inspect FILE`), and upload the file again if they differ."))
            verdict.ruledOut.insert("image-not-valid-in-slot")
        }
    }

    static func flashOpenFailed(_ facts: DeviceFacts, _ verdict: inout Verdict) {
        guard let entry = facts.slotInfo?.images.first(where: { $0.image == facts.image }) else { return }
        let unreadable = entry.slots.filter { $0.size == nil }
        if let slot = unreadable.first {
            verdict.stateCauses.append(stateCause(
                "state-slot-unopenable",
                "The device's slot info cannot open slot \(slot.slot) of image \(facts.image)\(slot.rc.map { " (rc \($0))" } ?? ""): the application has no working driver or partition for that flash area.",
                check: "Enable the flash driver of the slot's device in the application (CONFIG_NORDIC_QSPI_NOR or CONFIG_SPI_NOR, and its devicetree node status = \"okay\"), then check with `smpctl image slot-info`.",
                settings: ["CONFIG_NORDIC_QSPI_NOR", "CONFIG_SPI_NOR", "CONFIG_PM_EXTERNAL_FLASH_MCUBOOT_SECONDARY"]))
        } else if entry.slots.count >= 2 {
            verdict.notes.append("The device's slot info opens every slot of image \(facts.image) now; the failure may be intermittent (a flash driver that fails to initialise, or a busy external flash).")
        }
    }

    static func tooLarge(_ facts: DeviceFacts, _ verdict: inout Verdict) {
        guard let entry = facts.slotInfo?.images.first(where: { $0.image == facts.image }) else { return }
        if let limit = entry.maxImageSize ?? entry.slots.first(where: { $0.slot == 1 })?.size {
            verdict.notes.append("The device reports at most \(limit) bytes for an image in slot 1 (slot info).")
        }
    }
}
