public import SMPCtlProtocol

/// One image of a multi-image update (for example an nRF5340's application and network cores).
public struct PackageImage: Sendable {
    /// The image number it goes to (0: application core, 1: network core on nRF5340).
    public var image: Int
    public var file: FirmwareFile
    /// The image's hash TLV.
    public var hash: [UInt8]
    public var version: String

    public init(image: Int, file: FirmwareFile, hash: [UInt8], version: String) {
        self.image = image
        self.file = file
        self.hash = hash
        self.version = version
    }
}

/// What a multi-image update did.
public struct PackageUpdateReport: Sendable {
    /// The image numbers uploaded (others were on the device already).
    public var uploaded: [Int] = []
    /// The image numbers marked, in the order they were marked.
    public var marked: [Int] = []
    public var running = false
    public var confirmed = false
    public var finalState: [ImageManagement.SlotState] = []

    public init() {}
}

extension SMPClient {
    /// Updates several images with one reset: upload each to its image number, mark them in
    /// descending image order, reset, check that every image runs, confirm each.
    ///
    /// The network core (image 1) is marked before the application core (image 0): in nRF Connect
    /// SDK 2.6.0 to 3.4.0 (known issue NCSDK-34106) MCUboot skips the network core update when
    /// the application core's image was marked first.
    public func updateImages(
        _ images: [PackageImage], options: FirmwareUpdateOptions = FirmwareUpdateOptions(),
        events: (@Sendable (FirmwareUpdateEvent) -> Void)? = nil
    ) async throws(SMPClientError) -> PackageUpdateReport {
        var report = PackageUpdateReport()
        guard !images.isEmpty, images.count <= 8, Set(images.map(\.image)).count == images.count else {
            throw .invalidInput("a package needs 1 to 8 images with different image numbers")
        }
        let parameters = try await readParameters()
        events?(.readParameters(parameters, supported: parametersSupported))
        var state = try await readImageState()
        var pendingWork: [PackageImage] = []
        for item in images {
            if state.images.contains(where: { $0.image == item.image && $0.slot == 0 && $0.active && $0.hash == item.hash }) {
                events?(.alreadyOnDevice(slot: 0, active: true, confirmed: true))
                continue
            }
            pendingWork.append(item)
            if state.images.contains(where: { $0.image == item.image && $0.slot == 1 && $0.hash == item.hash }) {
                events?(.alreadyOnDevice(slot: 1, active: false, confirmed: false))
                continue
            }
            events?(.uploadStarted(length: item.file.length, chunkBudget: await maximumRequestSize()))
            var uploadOptions = options.upload
            uploadOptions.image = item.image
            uploadOptions.expectedImageHash = item.hash
            let result = try await upload(item.file, options: uploadOptions) { progress in
                events?(.uploadProgress(progress))
            }
            report.uploaded.append(item.image)
            events?(.uploadFinished(result))
        }
        state = try await readImageState()
        for item in pendingWork {
            guard state.images.contains(where: { $0.image == item.image && $0.slot == 1 && $0.hash == item.hash }) else {
                throw .verificationFailed(.uploadNotListed,
                    "after the upload the device does not list image \(item.image) with hash \(hex(item.hash)) in its secondary slot")
            }
            events?(.verifiedUpload(slot: 1))
        }
        report.finalState = state.images
        if options.mode == .uploadOnly || pendingWork.isEmpty {
            report.running = pendingWork.isEmpty
            return report
        }

        let permanent = options.mode == .confirmOnly
        for item in pendingWork.sorted(by: { $0.image > $1.image }) {
            _ = try await send(ImageManagement.StateWriteRequest(hash: item.hash, confirm: permanent))
            report.marked.append(item.image)
            events?(permanent ? .markedPermanent : .markedForTest)
        }
        events?(.resetting)
        try await requestReset()
        let seconds = try await waitForDevice(after: options)
        events?(.reconnected(afterSeconds: seconds))
        state = try await readImageState()
        report.finalState = state.images
        for item in pendingWork {
            guard state.images.contains(where: { $0.image == item.image && $0.slot == 0 && $0.active && $0.hash == item.hash })
            else {
                throw .verificationFailed(.notRunningAfterReset,
                    "after the reset image \(item.image) does not run the new image \(hex(item.hash)): MCUboot did not update it"
                        + (item.image == 1 ? " (on nRF5340 with nRF Connect SDK 2.6.0 to 3.4.0, NCSDK-34106: the network core is skipped when the application core was marked first)" : ""))
            }
        }
        report.running = true
        events?(.runningNewImage(confirmed: permanent))
        if options.mode == .testAndConfirm {
            for item in pendingWork { try await confirmRunning(imageHash: item.hash, image: item.image) }
            events?(.confirmed)
        }
        let final = try await readImageState()
        report.finalState = final.images
        report.confirmed = pendingWork.allSatisfy { item in
            final.images.contains { $0.image == item.image && $0.slot == 0 && $0.hash == item.hash && $0.confirmed }
        }
        return report
    }
}
