public import SMPCtlProtocol

/// One image of a multi-image update (for example an nRF5340's application and network cores).
public struct PackageImage: Sendable {
    /// The image number it goes to (0: application core, 1: network core on nRF5340).
    public var image: Int
    public var file: FirmwareFile
    /// The image's hash TLV.
    public var hash: [UInt8]
    public var version: String
    /// The core it runs on, as the package names it (`manifest.json`'s `board`, such as
    /// "nrf5340dk/nrf5340/cpunet"), for messages; `nil` names it by its image number.
    public var core: String?

    public init(image: Int, file: FirmwareFile, hash: [UInt8], version: String, core: String? = nil) {
        self.image = image
        self.file = file
        self.hash = hash
        self.version = version
        self.core = core
    }

    /// How messages name it: "image 1 (CORE)" or "image 1 (the network core)" on a two-image device.
    var described: String {
        if let core, !core.isEmpty { return "image \(image) (\(core))" }
        switch image {
        case 0: return "image 0 (the application core)"
        case 1: return "image 1 (the network core on nRF5340)"
        default: return "image \(image)"
        }
    }
}

/// The largest upload an image number takes, from the device's slot info: `max_image_size` when
/// reported (MCUboot's own limit, trailer and swap room included), else the size of the slot the
/// upload goes to (`upload_image_id`, or slot 1).
public struct ImageSlotLimit: Sendable, Hashable {
    public var image: Int
    public var limit: Int
    /// "max_image_size" or "slot N size".
    public var source: String

    /// The limit for `image` in `info`, or `nil` when the device reports nothing for it.
    public static func of(image: Int, in info: ImageManagement.SlotInfoResponse) -> ImageSlotLimit? {
        guard let entry = info.images.first(where: { $0.image == image }) else { return nil }
        if let maxSize = entry.maxImageSize { return ImageSlotLimit(image: image, limit: maxSize, source: "max_image_size") }
        let target = entry.slots.first { $0.uploadImageID == image } ?? entry.slots.first { $0.slot == 1 }
        guard let target, let size = target.size else { return nil }
        return ImageSlotLimit(image: image, limit: size, source: "slot \(target.slot) size")
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
        try await checkSlotSizes(images.filter { item in
            !state.images.contains { $0.image == item.image && $0.hash == item.hash }
        })
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
            var uploadOptions = options.upload
            uploadOptions.image = item.image
            uploadOptions.expectedImageHash = item.hash
            _ = try await uploadReporting(item.file, options: uploadOptions, events: events)
            report.uploaded.append(item.image)
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

    /// Refuses, before anything is uploaded, a package image that does not fit its own image's
    /// slot on the device (image slot info, per image number: the network core of an nRF5340 has
    /// much smaller slots than the application core). A device without slot info (rc 8, no answer
    /// within 3 s, or an answer that does not decode) is not checked; images it reports nothing
    /// for are not either.
    func checkSlotSizes(_ images: [PackageImage]) async throws(SMPClientError) {
        guard !images.isEmpty else { return }
        let info: ImageManagement.SlotInfoResponse
        do {
            info = try await send(ImageManagement.SlotInfoRequest(), timeout: min(options.timeout, .seconds(3)))
        } catch {
            switch error {
            case .device, .timedOut, .malformedResponse:
                log("no slot info from the device (\(error)); the images' sizes are not checked against their slots")
                return
            default:
                throw error
            }
        }
        var refusals: [String] = []
        for item in images.sorted(by: { $0.image < $1.image }) {
            guard let slot = ImageSlotLimit.of(image: item.image, in: info) else {
                log("the device's slot info says nothing about image \(item.image); its size is not checked")
                continue
            }
            if item.file.length > slot.limit {
                refusals.append(
                    "\(item.described) is \(item.file.length) bytes but the device takes at most \(slot.limit) bytes for image \(item.image) (\(slot.source))")
            } else {
                log("\(item.described): \(item.file.length) bytes fit the device's \(slot.limit) bytes (\(slot.source))")
            }
        }
        guard refusals.isEmpty else {
            throw .verificationFailed(
                .imageTooLarge,
                refusals.joined(separator: "; ")
                    + "; nothing was uploaded: make the image smaller or enlarge that core's slots (partition layout), then rebuild MCUboot and the application")
        }
    }
}
