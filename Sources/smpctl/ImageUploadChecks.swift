import Foundation
import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlProtocol

/// Renders the workflows' upload checks (`UploadImageFile.open`, `SMPClient.uploadPreflight`): the
/// policy lives in SMPCtlClient, this says what it found.
enum UploadCheckView {
    /// What the file check overrode with --force, and the inspector's warnings.
    static func render(_ opened: UploadImageFile, output: Output) {
        for text in opened.overridden {
            Output.diagnostic("smpctl: warning: \(text); --force given, so uploading it all the same")
        }
        if !output.json {
            for finding in opened.warnings { Output.diagnostic("smpctl: warning: \(finding.summary)") }
        }
    }

    /// The device-side preflight: the image already on the device (`announcePresence`, for `image
    /// upload`; `dfu` says it with its own event), the slot check, and a refusal --force overrode.
    static func render(_ preflight: UploadPreflight, length: Int, output: Output, announcePresence: Bool) {
        if let slot = preflight.presentIn, announcePresence {
            output.line("the device already holds this image (hash \(hexString(slot.hash ?? []).prefix(16))…) in image \(slot.image) slot \(slot.slot)\(slot.active ? ", running" : "")\(slot.confirmed ? ", confirmed" : ""); uploading it again")
            output.event([
                "event": "already_on_device", "image": .int(slot.image), "slot": .int(slot.slot),
                "active": .bool(slot.active), "confirmed": .bool(slot.confirmed),
            ])
        }
        if let reason = preflight.slotInfoUnavailable {
            output.event(["event": "slot_info_unavailable", "reason": .string(reason)])
        }
        if case .fits(let limit, let source)? = preflight.slotCheck {
            output.event(["event": "slot_check", "length": .int(length), "limit": .int(limit), "source": .string(source)])
        }
        if let refusal = preflight.refusal {
            Output.diagnostic("smpctl: warning: \(refusal.message); --force given, so uploading it all the same")
        }
    }

    /// A refusal as the error it is reported with: the message, what --force does, and the fields.
    static func fail(_ refusal: UploadRefusal, status: ExitStatus, output: Output) {
        switch refusal.reason {
        case .notAnImage(let kind, let problems):
            output.fail(
                status: status, message: refusal.message + " (--force uploads it anyway)",
                fields: [
                    "error": "input", "kind": .string(kind.rawValue),
                    "findings": .array(problems.map { ["code": .string($0.id), "message": .string($0.summary), "advice": $0.fix.json] }),
                ])
        case .imageTooLarge:
            output.fail(
                status: status, message: refusal.message + "; nothing was uploaded (--force uploads it anyway)",
                fields: ["error": "image-too-large"])
        }
    }
}
