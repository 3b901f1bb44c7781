public import SMPCtlDiagnosis
public import SMPCtlProtocol

/// How far a firmware update goes.
public enum FirmwareUpdateMode: String, Sendable, CaseIterable {
    /// Upload, mark for test, reset, check the new image runs, then confirm it (the safe default).
    case testAndConfirm = "test-and-confirm"
    /// Upload, confirm permanently before the reset, reset, check it runs.
    case confirmOnly = "confirm-only"
    /// Upload, mark for test, reset, check it runs; leave it unconfirmed (it reverts on the next reset).
    case testOnly = "test-only"
    /// Upload only.
    case uploadOnly = "upload-only"
}

/// A step of a firmware update, reported as it happens.
public enum FirmwareUpdateEvent: Sendable {
    /// What the device said before the upload (already there, slot check); a refusal here was overridden with `force`.
    case preflight(UploadPreflight)
    case readParameters(OSManagement.ParametersResponse, supported: Bool)
    /// Settings that would make uploads faster, when the current ones are slow.
    case speedAdvice([Finding])
    case alreadyOnDevice(slot: Int, active: Bool, confirmed: Bool)
    case uploadStarted(length: Int, chunkBudget: Int)
    case uploadProgress(UploadProgress)
    case uploadFinished(UploadResult)
    case verifiedUpload(slot: Int)
    case markedForTest
    case markedPermanent
    case resetting
    case reconnected(afterSeconds: Double)
    case runningNewImage(confirmed: Bool)
    case confirmed
}

/// What a firmware update did, for the report at the end.
public struct FirmwareUpdateReport: Sendable {
    public var mode: FirmwareUpdateMode
    /// Whether the upload was skipped because the device already held the image.
    public var uploadSkipped = false
    public var upload: UploadResult?
    /// Whether the new image is running at the end (false for upload-only).
    public var running = false
    public var confirmed = false
    /// Seconds from the reset until the device answered again.
    public var reconnectSeconds: Double?
    /// The image slots at the end.
    public var finalState: [ImageManagement.SlotState] = []
}

/// Settings for a firmware update.
public struct FirmwareUpdateOptions: Sendable {
    public var mode: FirmwareUpdateMode = .testAndConfirm
    public var upload = UploadOptions()
    /// How long to wait for the device to come back after the reset.
    public var reconnectTimeout: Duration = .seconds(30)
    /// A pause after the reset before trying to reconnect.
    public var resetGrace: Duration = .milliseconds(200)

    public init(mode: FirmwareUpdateMode = .testAndConfirm, upload: UploadOptions = UploadOptions()) {
        self.mode = mode
        self.upload = upload
    }
}

extension SMPClient {
    /// Runs a firmware update: upload, test or confirm, reset, reconnect, verify, confirm.
    ///
    /// - Parameters:
    ///   - file: the signed image file.
    ///   - imageHash: the image's hash TLV (what the device lists), not the SHA-256 of the file.
    ///   - imageState: the image list, when the caller has just read it (``detectRecovery(parametersTimeout:)``
    ///     does), so that it is read once; otherwise it is read here.
    ///
    /// Before anything is sent, the preflight (``uploadPreflight(length:imageHash:image:state:slotInfoTimeout:)``)
    /// refuses an image larger than the device's slot, unless `options.upload.force`.
    public func update(
        _ file: FirmwareFile, imageHash: [UInt8], options: FirmwareUpdateOptions = FirmwareUpdateOptions(),
        imageState: ImageManagement.StateResponse? = nil,
        events: (@Sendable (FirmwareUpdateEvent) -> Void)? = nil
    ) async throws(SMPClientError) -> FirmwareUpdateReport {
        var report = FirmwareUpdateReport(mode: options.mode)
        let image = options.upload.image ?? 0
        let preflight = try await uploadPreflight(length: file.length, imageHash: imageHash, image: image, state: imageState)
        events?(.preflight(preflight))
        if let refusal = preflight.refusal, !options.upload.force { throw .refused(refusal) }
        let parameters = try await readParameters()
        events?(.readParameters(parameters, supported: parametersSupported))
        let advice = SpeedAdvisor.advise(
            parameters: parameters, supported: parametersSupported, link: await linkModel())
        if !advice.isEmpty { events?(.speedAdvice(advice)) }

        let before: ImageManagement.StateResponse
        if let state = preflight.state { before = state } else { before = try await readImageState() }
        if let slot = before.images.first(where: { $0.image == image && $0.hash == imageHash }) {
            events?(.alreadyOnDevice(slot: slot.slot, active: slot.active, confirmed: slot.confirmed))
            report.uploadSkipped = true
            if slot.active {
                // Already running: only the confirmation can be missing.
                report.running = true
                if !slot.confirmed, options.mode == .testAndConfirm || options.mode == .confirmOnly {
                    try await confirmRunning(imageHash: imageHash, image: image)
                    events?(.confirmed)
                }
                let final = try await readImageState()
                report.confirmed = final.images.contains { $0.image == image && $0.slot == slot.slot && $0.hash == imageHash && $0.confirmed }
                report.finalState = final.images
                return report
            }
        } else {
            try await learnLargestPacket()
            var uploadOptions = options.upload
            uploadOptions.expectedImageHash = imageHash
            report.upload = try await uploadReporting(file, options: uploadOptions, events: events)
        }

        // The device must list the image's hash before anything is marked or confirmed.
        let afterUpload = try await readImageState()
        guard let uploaded = afterUpload.images.first(where: { $0.image == image && $0.hash == imageHash }) else {
            throw .verificationFailed(.uploadNotListed,
                "after the upload the device does not list an image with hash \(hex(imageHash)); the slot does not hold a valid image (was the file signed, and does the slot size match?)")
        }
        events?(.verifiedUpload(slot: uploaded.slot))
        if options.mode == .uploadOnly {
            report.finalState = afterUpload.images
            return report
        }

        let permanent = options.mode == .confirmOnly
        if !uploaded.pending {
            _ = try await send(ImageManagement.StateWriteRequest(hash: imageHash, confirm: permanent))
        }
        events?(permanent ? .markedPermanent : .markedForTest)

        var afterReset: ImageManagement.StateResponse
        var resets = 0
        while true {
            events?(.resetting)
            try await requestReset()
            resets += 1
            let reconnectSeconds = try await waitForDevice(after: options)
            report.reconnectSeconds = reconnectSeconds
            events?(.reconnected(afterSeconds: reconnectSeconds))
            afterReset = try await readImageState()
            // Still pending in the secondary slot: the reset request was lost and the device did not reboot.
            let stillPending = afterReset.images.contains {
                $0.image == image && $0.hash == imageHash && !$0.active && $0.pending
            }
            guard stillPending, resets <= self.options.retries else { break }
            log("the device did not reset (the image is still pending); sending the reset again")
        }
        guard let running = afterReset.images.first(where: { $0.image == image && $0.slot == 0 && $0.hash == imageHash }), running.active
        else {
            report.finalState = afterReset.images
            throw .verificationFailed(.notRunningAfterReset,
                "the device came back without the new image running: the bootloader did not swap to it, or it swapped and reverted. Usually MCUboot rejected the image (signature made with another key, image too large for the slot, slot layout different between the application and MCUboot) or the new image crashed before it could be confirmed. Check MCUboot's console output at boot.")
        }
        report.running = true
        events?(.runningNewImage(confirmed: running.confirmed))

        if options.mode == .testAndConfirm, !running.confirmed {
            try await confirmRunning(imageHash: imageHash, image: image)
            events?(.confirmed)
        }
        let final = try await readImageState()
        report.finalState = final.images
        report.confirmed = final.images.contains { $0.image == image && $0.slot == 0 && $0.hash == imageHash && $0.confirmed }
        if options.mode == .testAndConfirm || options.mode == .confirmOnly, !report.confirmed {
            throw .verificationFailed(.notConfirmed, "the device does not show the new image as confirmed after confirming it")
        }
        return report
    }

    /// Asks the device to reset, without resending on timeout: a reset sent again after its answer
    /// was lost would reboot the device a second time, and a tested image would revert. A missing
    /// answer is not an error; the state read after reconnecting tells whether the device reset.
    /// Nor is a link that drops before the answer came: Zephyr answers and reboots
    /// `CONFIG_MCUMGR_GRP_OS_RESET_MS` later (os_mgmt.c), and over BLE the answer can be lost
    /// with the link.
    func requestReset() async throws(SMPClientError) {
        do {
            _ = try await send(OSManagement.ResetRequest(), policy: SMPRequestPolicy(retries: 0))
        } catch .timedOut {
            log("no answer to the reset request; assuming the device is resetting")
        } catch .transport(let error) where error.code == .disconnected {
            log("the link dropped before the answer to the reset request; assuming the device is resetting")
        }
    }

    /// Confirms the running image whose hash has been read back from the device.
    func confirmRunning(imageHash: [UInt8], image: Int) async throws(SMPClientError) {
        let response = try await send(ImageManagement.StateWriteRequest(hash: imageHash, confirm: true))
        try ImageStateCheck.validate(response)
        guard response.images.contains(where: { $0.image == image && $0.slot == 0 && $0.hash == imageHash && $0.confirmed }) else {
            throw .verificationFailed(.notConfirmed, "the device did not mark image \(hex(imageHash)) as confirmed")
        }
    }

    /// How long one reopen after a reset may take, out of what is left of the reconnect budget:
    /// half of it, but at least 5 s (or all of it when less is left). A transport's open can
    /// otherwise outlast the budget: a BLE `Connect` that bluetoothd never answers waits for the
    /// transport's own 30 s, and one seen in the BLE VM after a reset ("ACL packet for unknown
    /// connection handle") never came back, while the next `Connect` worked.
    static func reconnectAttemptBound(remaining: Duration) -> Duration {
        guard remaining > .zero else { return .zero }
        return max(remaining / 2, min(remaining, .seconds(5)))
    }

    /// Reopens the link after a reset and waits until the device answers an echo. Each reopen is
    /// bounded by ``reconnectAttemptBound(remaining:)``, so the wait ends within the budget (plus
    /// the probe's own timeout) even when an open never returns.
    public func waitForDevice(after options: FirmwareUpdateOptions) async throws(SMPClientError) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + options.reconnectTimeout
        do {
            try await Task.sleep(for: options.resetGrace)
        } catch {
            throw .cancelled
        }
        let probe = SMPRequestPolicy(timeout: min(self.options.timeout, .seconds(1)), retries: 0)
        var lastError: SMPClientError?
        while clock.now < deadline {
            if Task.isCancelled { throw .cancelled }
            do {
                try await reopen(within: Self.reconnectAttemptBound(remaining: deadline - clock.now))
                _ = try await send(OSManagement.EchoRequest("smpctl"), policy: probe)
                return (clock.now - start).seconds
            } catch {
                if case .cancelled = error { throw error }
                lastError = error
                do {
                    try await Task.sleep(for: .milliseconds(250))
                } catch {
                    throw .cancelled
                }
            }
        }
        throw .verificationFailed(.noAnswerAfterReset,
            "the device did not answer within \(options.reconnectTimeout) after the reset (last error: \(lastError.map { "\($0)" } ?? "none")). It may be stuck in the bootloader, or it came back on another port or address.")
    }
}

extension SMPClient {
    /// Reads the image list and checks that it does not contradict itself.
    public func readImageState() async throws(SMPClientError) -> ImageManagement.StateResponse {
        let state = try await send(ImageManagement.StateReadRequest())
        try ImageStateCheck.validate(state)
        return state
    }
}

/// Checks an image list for contradictions that no real device produces, so that verification
/// never rests on an entry that cannot be trusted.
public enum ImageStateCheck {
    /// Throws ``SMPClientError/verificationFailed(_:_:)`` with ``VerificationFailure/contradictoryImageList``
    /// when two entries name the same image and slot, a hash is not 32, 48 or 64 bytes, or the
    /// flags are impossible (more than one active slot for an image, or a primary slot marked
    /// pending without being active).
    public static func validate(_ state: ImageManagement.StateResponse) throws(SMPClientError) {
        var seen = Set<Int>()
        var activeImages = Set<Int>()
        for entry in state.images {
            let key = entry.image &* 64 &+ entry.slot
            guard seen.insert(key).inserted else {
                throw .verificationFailed(.contradictoryImageList,
                    "the device lists image \(entry.image) slot \(entry.slot) twice; its image list contradicts itself")
            }
            if let hash = entry.hash, ![32, 48, 64].contains(hash.count) {
                throw .verificationFailed(.contradictoryImageList,
                    "the device lists a \(hash.count)-byte hash for image \(entry.image) slot \(entry.slot); image hashes are 32, 48 or 64 bytes")
            }
            if entry.active {
                guard activeImages.insert(entry.image).inserted else {
                    throw .verificationFailed(.contradictoryImageList,
                        "the device lists two active slots for image \(entry.image)")
                }
            }
            if entry.permanent, !entry.pending, !entry.active, entry.slot != 0 {
                throw .verificationFailed(.contradictoryImageList,
                    "the device lists image \(entry.image) slot \(entry.slot) as permanent without pending")
            }
        }
    }
}

extension SMPClient {
    /// Uploads `file` as a workflow step: `uploadStarted`, every `uploadProgress` and `uploadFinished`
    /// go to `events`; the result is returned.
    func uploadReporting(
        _ file: FirmwareFile, options: UploadOptions, events: (@Sendable (FirmwareUpdateEvent) -> Void)?
    ) async throws(SMPClientError) -> UploadResult {
        events?(.uploadStarted(length: file.length, chunkBudget: await maximumRequestSize()))
        let result = try await upload(file, options: options) { progress in
            events?(.uploadProgress(progress))
        }
        events?(.uploadFinished(result))
        return result
    }
}
