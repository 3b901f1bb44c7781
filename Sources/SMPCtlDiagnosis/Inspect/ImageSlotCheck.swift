// Does an image fit its slot? Offline from --slot-size, online from the device's slot info.

public import SMPCtlProtocol

/// An estimate of the MCUboot image trailer at the end of a slot (swap-move or swap-scratch).
///
/// From MCUboot's `boot_trailer_sz`: the swap status area (`BOOT_MAX_IMG_SECTORS` × 3 states ×
/// the write alignment), the 16-byte magic, and `image_ok`, `copy_done`, `swap_info` and swap size,
/// each padded to `BOOT_MAX_ALIGN`. Defaults: 128 sectors, 8-byte alignment → 3120 bytes.
/// Encrypted images add two key slots, not counted here. Swap-move also needs one spare sector,
/// which the device's `max_image_size` includes but this estimate does not.
public struct MCUbootTrailerEstimate: Sendable, Hashable {
    /// `CONFIG_BOOT_MAX_IMG_SECTORS` (MCUboot's `BOOT_MAX_IMG_SECTORS`).
    public var maxSectors: Int
    /// The flash write alignment used for the status entries and flags (`BOOT_MAX_ALIGN`).
    public var writeAlignment: Int

    public init(maxSectors: Int = 128, writeAlignment: Int = 8) {
        self.maxSectors = maxSectors
        self.writeAlignment = writeAlignment
    }

    /// The trailer size in bytes.
    public var size: Int {
        let align = max(writeAlignment, 1)
        let magic = max(16, align)
        return maxSectors * 3 * align + magic + 4 * align
    }

    /// How the size was worked out, for reports.
    public var explanation: String {
        "\(maxSectors) sectors × 3 × \(writeAlignment) B swap status + 16 B magic + 4 × \(writeAlignment) B flags = \(size) B (swap-move/scratch, BOOT_MAX_IMG_SECTORS=\(maxSectors))"
    }
}

/// Whether an image fits a slot of a given size.
public struct ImageSlotFit: Sendable, Hashable {
    public var slotSize: Int
    /// Bytes the image occupies (the file, or the image proper when padded).
    public var imageBytes: Int
    /// Bytes reserved for the trailer (0 when the file already carries it).
    public var trailerBytes: Int
    public var fits: Bool { imageBytes + trailerBytes <= slotSize }
    /// Spare bytes (negative when it does not fit).
    public var spare: Int { slotSize - imageBytes - trailerBytes }
}

/// The device-side slot check run before an upload.
public enum ImageSlotCheck {
    /// The outcome of comparing a file with the device's slot info.
    public enum Outcome: Sendable, Hashable {
        /// It fits; the limit used and where it came from.
        case fits(limit: Int, source: String)
        /// It does not fit: the message to print.
        case tooLarge(String)
        /// The slot info says nothing about that image.
        case unknown
    }

    /// Compares `length` (the upload size) with the device's slot info for `image`.
    ///
    /// Uses `max_image_size` when the device reports it (MCUboot's own limit, trailer included),
    /// else the size of the slot the upload goes to.
    public static func check(
        length: Int, image: Int, slotInfo: ImageManagement.SlotInfoResponse
    ) -> Outcome {
        guard let entry = slotInfo.images.first(where: { $0.image == image }) else { return .unknown }
        let target = entry.slots.first { $0.uploadImageID == image } ?? entry.slots.first { $0.slot == 1 }
        if let maxSize = entry.maxImageSize {
            if length > maxSize {
                let slot = target?.size.map { " (slot \(target?.slot ?? 1) is \($0) bytes; MCUboot keeps the rest for its trailer and swap)" } ?? ""
                return .tooLarge(
                    "the image is \(length) bytes but the device accepts at most \(maxSize) bytes for image \(image)\(slot); "
                        + "make the image smaller or enlarge the slots (partition layout), then rebuild MCUboot and the application")
            }
            return .fits(limit: maxSize, source: "max_image_size")
        }
        if let target, let size = target.size {
            if length > size {
                return .tooLarge(
                    "the image is \(length) bytes but slot \(target.slot) of image \(image) is \(size) bytes; "
                        + "make the image smaller or enlarge the slots (partition layout)")
            }
            return .fits(limit: size, source: "slot \(target.slot) size")
        }
        return .unknown
    }
}
