public import SMPCtlProtocol

/// What the client found out about a device that may be in MCUboot's serial recovery.
///
/// MCUboot's recovery (boot/boot_serial/src/boot_serial.c) answers a subset of SMP: the image
/// list (bs_list), upload to the primary slot (bs_upload), reset, echo and mcumgr params where
/// built with them. Its image list never carries `splitStatus` and, unless built with
/// MCUBOOT_SERIAL_IMG_GRP_IMAGE_STATE, no flags: no slot is `active`, because no application
/// runs. A Zephyr application always lists the image it runs as active.
public struct RecoveryDetection: Sendable, Hashable {
    /// Whether the device answers as MCUboot's serial recovery.
    public var inRecovery: Bool
    /// Why, in words (empty when not in recovery).
    public var evidence: [String]
    /// The image list read while detecting.
    public var state: ImageManagement.StateResponse
    /// The recovery's mcumgr params, when it reported them (bs_mcumgr_params: `buf_count` 1).
    public var parameters: OSManagement.ParametersResponse?

    public init(inRecovery: Bool, evidence: [String], state: ImageManagement.StateResponse,
        parameters: OSManagement.ParametersResponse? = nil)
    {
        self.inRecovery = inRecovery
        self.evidence = evidence
        self.state = state
        self.parameters = parameters
    }
}

extension SMPClient {
    /// Reads the image list and says whether the device is in recovery: no slot is active and the
    /// list has no `splitStatus`. Then the params are read with a short bound.
    ///
    /// - `parametersTimeout`: how long the params request may go unanswered (MCUboot before 1.9
    ///   never answers it); one attempt, whatever ``SMPClientOptions/timeout`` says.
    public func detectRecovery(parametersTimeout: Duration = .seconds(2)) async throws(SMPClientError) -> RecoveryDetection {
        let state = try await readImageState()
        var evidence: [String] = []
        let noActive = !state.images.contains { $0.active }
        let noSplitStatus = state.splitStatus == nil
        if noSplitStatus && noActive {
            evidence.append(
                state.images.isEmpty
                    ? "the image list is empty and has no splitStatus"
                    : "no slot is active and the image list has no splitStatus")
        }
        // A Zephyr application always lists the image it runs as active (even with
        // CONFIG_MCUMGR_GRP_IMG_FRUGAL_LIST, which leaves out splitStatus and false flags), so both
        // signs together mean that no application answers. A recovery built with
        // MCUBOOT_SERIAL_IMG_GRP_IMAGE_STATE adds `bootable`, `confirmed`, `pending` and
        // `permanent` to its list but never `active` (bs_list in boot/boot_serial/src/boot_serial.c),
        // so it is still told apart.
        guard noSplitStatus && noActive else { return RecoveryDetection(inRecovery: false, evidence: [], state: state) }
        // bs_mcumgr_params reports one buffer (where built with it); its buf_size sizes the requests.
        // One attempt with its own bound (not the adaptive timeout, which a loaded serial line can
        // outgrow): losing the answer only costs the larger requests.
        let policy = SMPRequestPolicy(timeout: parametersTimeout, retries: 0)
        let parameters = try await readParameters(policy: policy, unansweredIsUnsupported: true)
        var reported: OSManagement.ParametersResponse?
        if parametersSupported {
            reported = parameters
            if parameters.bufferCount == 1 { evidence.append("mcumgr params report buf_count 1") }
        } else {
            evidence.append("mcumgr params are not reported")
        }
        return RecoveryDetection(inRecovery: true, evidence: evidence, state: state, parameters: reported)
    }

    /// A firmware update through MCUboot's serial recovery: upload to the primary slot (`len`
    /// in the first chunk, no erase first, one chunk in flight, requests sized from the recovery's
    /// params or the small default), check that the recovery lists the image, reset, wait for
    /// the application and check that it runs the new image.
    ///
    /// Recovery writes the primary slot directly, so nothing is marked for test or confirmed:
    /// boot_serial.c answers a state write with `rc 8` (bs_list_set without
    /// MCUBOOT_SERIAL_IMG_GRP_IMAGE_STATE), and the image boots as it is once it validates.
    ///
    /// - Parameters:
    ///   - version: the image's version, for a recovery built without image hashes in its list.
    public func updateInRecovery(
        _ file: FirmwareFile, imageHash: [UInt8], version: String?, detection: RecoveryDetection,
        options: FirmwareUpdateOptions = FirmwareUpdateOptions(),
        events: (@Sendable (FirmwareUpdateEvent) -> Void)? = nil
    ) async throws(SMPClientError) -> FirmwareUpdateReport {
        var report = FirmwareUpdateReport(mode: options.mode)
        let image = options.upload.image ?? 0
        if parameters == nil {
            _ = try await readParameters(
                policy: SMPRequestPolicy(timeout: .seconds(2), retries: 0),
                unansweredIsUnsupported: true)
        }
        if let parameters { events?(.readParameters(parameters, supported: parametersSupported)) }

        func holds(_ entry: ImageManagement.SlotState) -> Bool {
            guard entry.image == image, entry.slot == 0 else { return false }
            if let hash = entry.hash { return hash == imageHash }
            return version != nil && entry.version == version
        }

        if detection.state.images.contains(where: holds) {
            events?(.alreadyOnDevice(slot: 0, active: false, confirmed: false))
            report.uploadSkipped = true
        } else {
            var uploadOptions = options.upload
            // bs_upload handles one request at a time into one buffer (buf_count 1).
            uploadOptions.window = 1
            uploadOptions.expectedImageHash = nil
            report.upload = try await uploadReporting(file, options: uploadOptions, events: events)
        }

        // bs_list lists only images that bootutil_img_validate accepts (hash and signature).
        let afterUpload = try await readImageState()
        guard afterUpload.images.contains(where: holds) else {
            report.finalState = afterUpload.images
            throw .verificationFailed(.uploadNotListed,
                "after the upload MCUboot's serial recovery does not list the image in the primary slot of image \(image): "
                    + "it lists only images that validate, so MCUboot rejected this one (signed with another key, or for another slot layout)")
        }
        events?(.verifiedUpload(slot: 0))
        if options.mode == .uploadOnly {
            report.finalState = afterUpload.images
            return report
        }

        events?(.resetting)
        do {
            // bs_reset answers, then reboots 250 ms later; no answer is not an error.
            _ = try await send(OSManagement.ResetRequest(), policy: SMPRequestPolicy(retries: 0))
        } catch .timedOut {
            log("no answer to the reset request; assuming the device is resetting")
        } catch .transport(let error) where error.code == .disconnected {
            log("the link dropped before the answer to the reset request; assuming the device is resetting")
        }
        let seconds = try await waitForDevice(after: options)
        report.reconnectSeconds = seconds
        events?(.reconnected(afterSeconds: seconds))

        let final = try await readImageState()
        report.finalState = final.images
        if final.splitStatus == nil, !final.images.contains(where: { $0.active }) {
            throw .verificationFailed(.notRunningAfterReset,
                "after the reset the device answers as MCUboot's serial recovery again, so the new image did not start: "
                    + "MCUboot stays in recovery when no primary image validates (CONFIG_BOOT_SERIAL_NO_APPLICATION), when the recovery button or pin is still held, or when the boot mode asks for it")
        }
        guard let running = final.images.first(where: { $0.image == image && $0.slot == 0 && $0.active }),
            running.hash == imageHash
        else {
            throw .verificationFailed(.notRunningAfterReset,
                "after the reset the application runs another image than \(hex(imageHash)) in the primary slot of image \(image)")
        }
        if let version, running.version != version {
            throw .verificationFailed(.notRunningAfterReset,
                "after the reset the running image reports version \(running.version), not \(version)")
        }
        report.running = true
        report.confirmed = running.confirmed
        events?(.runningNewImage(confirmed: running.confirmed))
        return report
    }
}
