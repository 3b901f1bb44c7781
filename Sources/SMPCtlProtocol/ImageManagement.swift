public import SMPCtlCBOR

/// Messages of the image management group (1).
public enum ImageManagement {
    /// Command IDs of the image group.
    public enum Command: UInt8, Sendable {
        case state = 0
        case upload = 1
        case file = 2
        case coreList = 3
        case coreLoad = 4
        case erase = 5
        case slotInfo = 6
    }

    /// Read the state of every image slot.
    public struct StateReadRequest: SMPRequest, Hashable {
        public typealias Response = StateResponse
        public init() {}
        public var group: SMPGroupID { .image }
        public var command: UInt8 { Command.state.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    /// Mark an image for test (one boot, then revert unless confirmed) or confirm it permanently.
    ///
    /// `confirm: true` with no hash confirms the running image.
    public struct StateWriteRequest: SMPRequest, Hashable {
        public typealias Response = StateResponse
        public var hash: [UInt8]?
        public var confirm: Bool
        public init(hash: [UInt8]?, confirm: Bool) {
            self.hash = hash
            self.confirm = confirm
        }
        public var group: SMPGroupID { .image }
        public var command: UInt8 { Command.state.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) {
            encoder.appendHead(major: 5, argument: hash == nil ? 1 : 2)
            if let hash {
                encoder.appendText("hash")
                encoder.appendBytes(hash)
            }
            encoder.appendText("confirm")
            encoder.append(.bool(confirm))
        }
    }

    /// The state of one image slot.
    public struct SlotState: Sendable, Hashable {
        /// The image number (0 unless the device has several updatable images).
        public var image: Int
        /// 0 = primary, 1 = secondary, within the image.
        public var slot: Int
        public var version: String
        /// The image hash: the SHA-256 TLV inside the image, not the SHA-256 of the file.
        public var hash: [UInt8]?
        public var bootable: Bool
        public var pending: Bool
        public var confirmed: Bool
        public var active: Bool
        public var permanent: Bool

        public init(image: Int = 0, slot: Int, version: String, hash: [UInt8]?, bootable: Bool = true,
            pending: Bool = false, confirmed: Bool = false, active: Bool = false, permanent: Bool = false)
        {
            self.image = image
            self.slot = slot
            self.version = version
            self.hash = hash
            self.bootable = bootable
            self.pending = pending
            self.confirmed = confirmed
            self.active = active
            self.permanent = permanent
        }

        /// Decodes one entry of `images`; absent flags are false (frugal list mode).
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            image = try map.optionalUInt("image") ?? 0
            slot = try map.requiredUInt("slot")
            version = try map.requiredText("version")
            hash = try map.optionalBytes("hash")
            bootable = try map.optionalBool("bootable") ?? false
            pending = try map.optionalBool("pending") ?? false
            confirmed = try map.optionalBool("confirmed") ?? false
            active = try map.optionalBool("active") ?? false
            permanent = try map.optionalBool("permanent") ?? false
        }

        /// The entry as a device encodes it.
        public var cbor: CBORValue {
            var map = CBORMap()
            map["image"] = .unsigned(UInt64(image))
            map["slot"] = .unsigned(UInt64(slot))
            map["version"] = .text(version)
            if let hash { map["hash"] = .bytes(hash) }
            map["bootable"] = .bool(bootable)
            map["pending"] = .bool(pending)
            map["confirmed"] = .bool(confirmed)
            map["active"] = .bool(active)
            map["permanent"] = .bool(permanent)
            return .map(map)
        }
    }

    /// The answer to state read and state write.
    public struct StateResponse: SMPResponse, Hashable {
        public var images: [SlotState]
        public var splitStatus: Int?
        public init(images: [SlotState], splitStatus: Int? = nil) {
            self.images = images
            self.splitStatus = splitStatus
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            var images: [SlotState] = []
            for element in try map.requiredArray("images") {
                guard let entry = element.mapValue else {
                    throw SMPDecodingError(.unexpectedType, "`images` entries must be maps")
                }
                images.append(try SlotState(decoding: entry))
            }
            self.images = images
            splitStatus = try map.optionalInt("splitStatus")
        }
    }

    /// One upload chunk. The first chunk (`offset` 0) also carries the total length, the SHA-256 of
    /// the whole file, the image number and the upgrade flag.
    public struct UploadRequest: SMPRequest, Hashable {
        public typealias Response = UploadResponse

        /// Fields only the first chunk carries.
        public struct FirstChunkFields: Sendable, Hashable {
            /// Total file length.
            public var length: Int
            /// SHA-256 of the whole file: the upload's session id for resume.
            public var sha: [UInt8]?
            /// The target image number; omitted when `nil`.
            public var image: Int?
            /// Refuse unless the new version is newer than the running one.
            public var upgrade: Bool
            public init(length: Int, sha: [UInt8]?, image: Int? = nil, upgrade: Bool = false) {
                self.length = length
                self.sha = sha
                self.image = image
                self.upgrade = upgrade
            }
        }

        public var offset: Int
        public var data: [UInt8]
        /// Present on the first chunk only.
        public var first: FirstChunkFields?

        public init(offset: Int, data: [UInt8], first: FirstChunkFields? = nil) {
            self.offset = offset
            self.data = data
            self.first = first
        }

        public var group: SMPGroupID { .image }
        public var command: UInt8 { Command.upload.rawValue }
        public var operation: SMPOperation { .write }

        public func encodeBody(into encoder: inout CBOREncoder) {
            Self.encodeFields(offset: offset, first: first, into: &encoder) { $0.appendBytes(data) }
        }

        /// The data, its head and the other fields (the first chunk's `sha` is the largest).
        public var encodedBodySizeHint: Int { data.count + 96 }

        /// Writes the map with `data` written by `appendData`, in the order `len, off, sha, data, image, upgrade`.
        static func encodeFields(
            offset: Int, first: FirstChunkFields?, into encoder: inout CBOREncoder,
            appendData: (inout CBOREncoder) -> Void
        ) {
            var count: UInt64 = 2
            if let first {
                count += 1
                if first.sha != nil { count += 1 }
                if first.image != nil { count += 1 }
                if first.upgrade { count += 1 }
            }
            encoder.appendHead(major: 5, argument: count)
            if let first {
                encoder.appendText("len")
                encoder.appendHead(major: 0, argument: UInt64(first.length))
            }
            encoder.appendText("off")
            encoder.appendHead(major: 0, argument: UInt64(offset))
            if let sha = first?.sha {
                encoder.appendText("sha")
                encoder.appendBytes(sha)
            }
            encoder.appendText("data")
            appendData(&encoder)
            if let image = first?.image {
                encoder.appendText("image")
                encoder.appendHead(major: 0, argument: UInt64(image))
            }
            if first?.upgrade == true {
                encoder.appendText("upgrade")
                encoder.append(.bool(true))
            }
        }

        /// The exact encoded body length of a chunk with `dataLength` data bytes.
        public static func bodyLength(offset: Int, dataLength: Int, first: FirstChunkFields?) -> Int {
            var encoder = CBOREncoder()
            encodeFields(offset: offset, first: first, into: &encoder) { $0.appendHead(major: 2, argument: 0) }
            return encoder.bytes.count - 1 + CBOREncoder.headLength(UInt64(dataLength)) + dataLength
        }

        /// The most data bytes whose chunk body is at most `bodyBudget` bytes, or 0 if none fit.
        public static func largestDataLength(bodyBudget: Int, offset: Int, first: FirstChunkFields?) -> Int {
            let fixed = bodyLength(offset: offset, dataLength: 0, first: first) - 1
            var n = bodyBudget - fixed - 1
            guard n > 0 else { return 0 }
            while n > 0, n + CBOREncoder.headLength(UInt64(n)) + fixed > bodyBudget { n -= 1 }
            return n
        }
    }

    public struct UploadResponse: SMPResponse, Hashable {
        /// The offset the device expects next (bytes it has stored).
        public var offset: Int?
        /// On the last chunk, whether the stored data matches the `sha` sent first.
        public var match: Bool?
        /// A legacy `rc: 0` some devices include.
        public var rc: Int?
        public init(offset: Int?, match: Bool? = nil, rc: Int? = nil) {
            self.offset = offset
            self.match = match
            self.rc = rc
        }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            offset = try map.optionalUInt("off")
            match = try map.optionalBool("match")
            rc = try map.optionalInt("rc")
            if offset == nil {
                throw SMPDecodingError(.missingField, "`off` is missing from a successful upload response")
            }
        }
    }

    /// Erase a slot (default: the inactive one).
    public struct EraseRequest: SMPRequest, Hashable {
        public typealias Response = SMPEmptyResponse
        public var slot: Int?
        public init(slot: Int? = nil) { self.slot = slot }
        public var group: SMPGroupID { .image }
        public var command: UInt8 { Command.erase.rawValue }
        public var operation: SMPOperation { .write }
        public func encodeBody(into encoder: inout CBOREncoder) {
            var map = CBORMap()
            if let slot { map["slot"] = .unsigned(UInt64(slot)) }
            encoder.append(.map(map))
        }
    }

    /// Read the size of every slot.
    public struct SlotInfoRequest: SMPRequest, Hashable {
        public typealias Response = SlotInfoResponse
        public init() {}
        public var group: SMPGroupID { .image }
        public var command: UInt8 { Command.slotInfo.rawValue }
        public var operation: SMPOperation { .read }
        public func encodeBody(into encoder: inout CBOREncoder) { encoder.append(.map(CBORMap())) }
    }

    public struct SlotInfoResponse: SMPResponse, Hashable {
        public struct Slot: Sendable, Hashable {
            public var slot: Int
            /// The slot size in bytes; `nil` when the device could not open the slot.
            public var size: Int?
            /// The `image` value to upload into this slot.
            public var uploadImageID: Int?
            /// The error the device hit opening the slot.
            public var rc: Int?
            public init(slot: Int, size: Int?, uploadImageID: Int? = nil, rc: Int? = nil) {
                self.slot = slot
                self.size = size
                self.uploadImageID = uploadImageID
                self.rc = rc
            }
        }
        public struct Image: Sendable, Hashable {
            public var image: Int
            public var slots: [Slot]
            public var maxImageSize: Int?
            public init(image: Int, slots: [Slot], maxImageSize: Int? = nil) {
                self.image = image
                self.slots = slots
                self.maxImageSize = maxImageSize
            }
        }
        public var images: [Image]
        public init(images: [Image]) { self.images = images }
        public init(decoding map: CBORMap) throws(SMPDecodingError) {
            var images: [Image] = []
            for element in try map.requiredArray("images") {
                guard let imageMap = element.mapValue else {
                    throw SMPDecodingError(.unexpectedType, "`images` entries must be maps")
                }
                var slots: [Slot] = []
                for slotElement in try imageMap.requiredArray("slots") {
                    guard let slotMap = slotElement.mapValue else {
                        throw SMPDecodingError(.unexpectedType, "`slots` entries must be maps")
                    }
                    slots.append(Slot(
                        slot: try slotMap.requiredUInt("slot"), size: try slotMap.optionalUInt("size"),
                        uploadImageID: try slotMap.optionalUInt("upload_image_id"), rc: try slotMap.optionalInt("rc")))
                }
                images.append(Image(
                    image: try imageMap.requiredUInt("image"), slots: slots,
                    maxImageSize: try imageMap.optionalUInt("max_image_size")))
            }
            self.images = images
        }
    }
}
