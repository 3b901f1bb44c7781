// The checks before an upload, applied by the workflows (`uploadImage`, `update`) so that every
// caller gets them: the file must be an image (ImageInspector says what it is otherwise), the device
// may already hold it, and it must fit the device's slot (ImageSlotCheck over slot info).

public import SMPCtlDiagnosis
public import SMPCtlProtocol

/// Why a workflow refused to upload, before anything was sent.
public struct UploadRefusal: Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// The file is not a signed MCUboot image: what it is, and the findings that say so.
        case notAnImage(kind: ImageFileKind, problems: [Finding])
        /// The image is larger than the device's slot (from slot info).
        case imageTooLarge
    }

    public var reason: Reason
    /// What is wrong, and what to do instead.
    public var message: String

    public init(reason: Reason, message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}

/// What the device said before an upload.
public struct UploadPreflight: Sendable {
    /// The image list read before the upload (`nil` when no hash was given and none was read).
    public var state: ImageManagement.StateResponse?
    /// The slot that already holds the image's hash, if any (then the slot info is not read: it fits).
    public var presentIn: ImageManagement.SlotState?
    /// The comparison with the device's slot info, when it was read.
    public var slotCheck: ImageSlotCheck.Outcome?
    /// Why the slot info could not be read (rc 8, another error, or no answer); the size check was skipped.
    public var slotInfoUnavailable: String?

    public init(state: ImageManagement.StateResponse? = nil) { self.state = state }

    /// Why the upload must not start, if so.
    public var refusal: UploadRefusal? {
        guard case .tooLarge(let message) = slotCheck else { return nil }
        return UploadRefusal(reason: .imageTooLarge, message: "image too large for the device: \(message)")
    }
}

/// An image file opened for upload: the file, its identity when it is a signed image, and what is
/// worth a warning.
public struct UploadImageFile: Sendable {
    public var file: FirmwareFile
    /// The image's identity (hash TLV, version); `nil` for a file forced through that is not an image.
    public var identity: FirmwareImageIdentity?
    /// Refusals that `force` overrode, in words.
    public var overridden: [String] = []
    /// The inspector's warnings about an image that may still work.
    public var warnings: [Finding] = []
}

extension UploadImageFile {
    /// Opens `path` for upload and refuses a file that is not a signed MCUboot image unless `force`,
    /// saying what the file is and what to upload instead.
    ///
    /// The common case, a signed image with a SHA-256 hash TLV, is checked by streaming the file
    /// (``FirmwareImageIdentity``), so memory does not grow with the image. Anything else goes through
    /// ``ImageInspector``, which reads the file whole. Files the inspector cannot read (missing, over
    /// 64 MiB) are reported by ``FirmwareFile``.
    public static func open(path: String, force: Bool = false) throws(SMPClientError) -> UploadImageFile {
        let firmware = try? FirmwareFile(path: path)
        let streamed = firmware.flatMap { try? FirmwareImageIdentity(file: $0) }
        if let firmware, let streamed, streamed.image.sha256TLV != nil, streamed.image.signatureTLV != nil {
            return UploadImageFile(file: firmware, identity: streamed)
        }
        var overridden: [String] = []
        var warnings: [Finding] = []
        if let inspection = try? ImageInspector.inspect(path: path) {
            if inspection.verdict != .good {
                guard force else {
                    throw .refused(UploadRefusal(
                        reason: .notAnImage(kind: inspection.kind, problems: inspection.problems), message: inspection.refusal))
                }
                overridden.append(inspection.refusal)
            } else {
                warnings = inspection.findings.filter { $0.severity == .warning }
            }
        }
        let file = try FirmwareFile(path: path)
        do throws(SMPClientError) {
            return UploadImageFile(
                file: file, identity: try FirmwareImageIdentity(file: file), overridden: overridden, warnings: warnings)
        } catch {
            guard force else { throw error }
            return UploadImageFile(file: file, identity: nil, overridden: overridden + [error.description], warnings: warnings)
        }
    }
}

extension SMPClient {
    /// The device-side checks before an upload: whether the device already holds the image (from
    /// `state`, or an image list read now), and, when it does not, whether the image fits the slot the
    /// device's slot info reports. Devices without slot info (rc 8, another error, or no answer) skip
    /// the size check.
    ///
    /// - Parameters:
    ///   - imageHash: the image's hash TLV; without it the image list is not read.
    ///   - state: an image list already read (by `detectRecovery`), so that it is read once.
    ///   - slotInfoTimeout: how long the slot info request may take (default: the client's timeout, at most 3 s).
    public func uploadPreflight(
        length: Int, imageHash: [UInt8]?, image: Int, state: ImageManagement.StateResponse? = nil,
        slotInfoTimeout: Duration? = nil
    ) async throws(SMPClientError) -> UploadPreflight {
        var result = UploadPreflight(state: state)
        if let imageHash {
            let list: ImageManagement.StateResponse
            if let state { list = state } else { list = try await readImageState() }
            result.state = list
            if let slot = list.images.first(where: { $0.hash == imageHash }) {
                // It is on the device, so it fits.
                result.presentIn = slot
                return result
            }
        }
        let info: ImageManagement.SlotInfoResponse
        do {
            info = try await send(ImageManagement.SlotInfoRequest(), timeout: slotInfoTimeout ?? min(options.timeout, .seconds(3)))
        } catch {
            switch error {
            case .device, .timedOut, .malformedResponse:
                result.slotInfoUnavailable = error.description
                return result
            default:
                throw error
            }
        }
        result.slotCheck = ImageSlotCheck.check(length: length, image: image, slotInfo: info)
        return result
    }
}

/// What `uploadImage` did.
public struct ImageUploadReport: Sendable {
    /// What the device said before the upload.
    public var preflight: UploadPreflight
    public var upload: UploadResult
    /// The image list after the upload, which lists the image.
    public var finalState: ImageManagement.StateResponse
}

extension SMPClient {
    /// Uploads an image to the secondary slot with the preflight checks: refuses an image larger than
    /// the slot before anything is sent (unless `options.force`), uploads (resuming a previous upload
    /// of the same file), and checks that the device then lists the image's hash.
    ///
    /// `events` gets ``FirmwareUpdateEvent/preflight(_:)`` before the upload and
    /// ``FirmwareUpdateEvent/uploadProgress(_:)`` during it.
    public func uploadImage(
        _ file: FirmwareFile, imageHash: [UInt8]?, options: UploadOptions = UploadOptions(),
        events: (@Sendable (FirmwareUpdateEvent) -> Void)? = nil
    ) async throws(SMPClientError) -> ImageUploadReport {
        let image = options.image ?? 0
        let preflight = try await uploadPreflight(length: file.length, imageHash: imageHash, image: image)
        events?(.preflight(preflight))
        if let refusal = preflight.refusal, !options.force { throw .refused(refusal) }
        var uploadOptions = options
        uploadOptions.expectedImageHash = imageHash
        let result = try await upload(file, options: uploadOptions) { progress in
            events?(.uploadProgress(progress))
        }
        let state = try await readImageState()
        if let imageHash, !state.images.contains(where: { $0.image == image && $0.hash == imageHash }) {
            throw .verificationFailed(.uploadNotListed,
                "the upload finished but the device does not list an image with hash \(hex(imageHash)) for image \(image)")
        }
        return ImageUploadReport(preflight: preflight, upload: result, finalState: state)
    }
}
