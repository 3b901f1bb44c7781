// `smpctl image inspect` and the checks before every upload: what a file is, whether it is a
// good MCUboot image, and when it is not, what to upload instead.

import Foundation
import SMPCtlFiles
import SMPCtlImage

public enum ImageInspector {
    /// The largest file read.
    public static let maximumFileSize = 64 * 1024 * 1024

    /// What to upload instead of a build artefact that is not the signed image.
    public static let signedImageAdvice =
        "Upload the signed image from the build folder: build/zephyr/zephyr.signed.bin "
        + "(with sysbuild: build/<application>/zephyr/zephyr.signed.bin; nRF Connect SDK also writes app_update.bin)"

    /// Reads at most ``maximumFileSize`` bytes of `path` and inspects them.
    public static func inspect(path: String, options: ImageInspectionOptions = ImageInspectionOptions())
        throws(ImageInspectorError) -> ImageInspection
    {
        let data: Data
        do {
            // Regular files only: a FIFO or a device would block or never end.
            data = try RegularFile.read(path, limit: maximumFileSize)
        } catch {
            if case .tooLarge = error.kind {
                throw ImageInspectorError(
                    reason: "\(path) is larger than \(maximumFileSize / (1024 * 1024)) MiB; that is not a firmware image")
            }
            throw ImageInspectorError(reason: error.description)
        }
        return inspect(bytes: [UInt8](data), name: path, options: options)
    }

    /// Inspects bytes already in memory.
    public static func inspect(bytes: [UInt8], name: String, options: ImageInspectionOptions = ImageInspectionOptions())
        -> ImageInspection
    {
        var result = ImageInspection(name: name, fileSize: bytes.count, kind: .unknown, trailer: options.trailer)
        if bytes.isEmpty {
            result.kind = .empty
            result.add(.invalid, "empty", "the file is empty", advice: signedImageAdvice)
            return result
        }
        if bytes.count >= 4, bytes[0] == 0x3D, bytes[1] == 0xB8, bytes[2] == 0xF3, bytes[3] == 0x96 {
            inspectImage(bytes, into: &result, options: options)
        } else if bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]) {
            inspectELF(bytes, into: &result)
        } else if ImageArchive.looksLikeZip(bytes) {
            inspectZip(bytes, into: &result)
        } else if let hex = IntelHex(bytes) {
            inspectHex(hex, into: &result)
        } else {
            inspectOther(bytes, into: &result)
        }
        return result
    }
}
