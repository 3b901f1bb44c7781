import Foundation
import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlProtocol

/// Checks run against the device before an upload (`image upload`, `dfu`).
enum UploadPreflight {
    /// What the device said before the upload.
    struct Result {
        /// The slot that already holds the image's hash, if any.
        var presentIn: ImageManagement.SlotState?
        /// Why the upload must not start (the image is larger than the slot), if so.
        var refusal: String?
    }

    /// Reads the image list and the slot info. Says when the device already holds the image, and
    /// refuses an image larger than the target slot. Devices without slot info (rc 8, or another
    /// error, or no answer) skip the size check.
    static func run(
        client: SMPClient, file: FirmwareFile, identity: FirmwareImageIdentity?, image: Int, timeout: Double,
        output: Output, announcePresence: Bool
    ) async throws(SMPClientError) -> Result {
        var result = Result()
        if let identity {
            let state = try await client.send(ImageManagement.StateReadRequest())
            if let slot = state.images.first(where: { $0.hash == identity.hash }) {
                result.presentIn = slot
                if announcePresence {
                    output.line("the device already holds this image (hash \(hexString(identity.hash).prefix(16))…) in image \(slot.image) slot \(slot.slot)\(slot.active ? ", running" : "")\(slot.confirmed ? ", confirmed" : ""); uploading it again")
                    output.event([
                        "event": "already_on_device", "image": .int(slot.image), "slot": .int(slot.slot),
                        "active": .bool(slot.active), "confirmed": .bool(slot.confirmed),
                    ])
                }
                // It is on the device, so it fits.
                return result
            }
        }
        let info: ImageManagement.SlotInfoResponse
        do {
            info = try await client.send(ImageManagement.SlotInfoRequest(), timeout: .milliseconds(Int(min(timeout, 3) * 1000)))
        } catch {
            switch error {
            case .device, .timedOut, .malformedResponse:
                output.event(["event": "slot_info_unavailable", "reason": .string(error.description)])
                return result
            default:
                throw error
            }
        }
        switch ImageSlotCheck.check(length: file.length, image: image, slotInfo: info) {
        case .tooLarge(let message):
            result.refusal = "image too large for the device: \(message)"
        case .fits(let limit, let source):
            output.event(["event": "slot_check", "length": .int(file.length), "limit": .int(limit), "source": .string(source)])
        case .unknown:
            break
        }
        return result
    }
}
