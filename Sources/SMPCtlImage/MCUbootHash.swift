import Crypto

/// The hash algorithms MCUboot images use.
public enum MCUbootHashAlgorithm: String, Sendable, Hashable, CaseIterable {
    case sha256
    case sha384
    case sha512

    /// The TLV type that stores a hash of this algorithm.
    public var tlvType: MCUbootTLVType {
        switch self {
        case .sha256: .sha256
        case .sha384: .sha384
        case .sha512: .sha512
        }
    }

    /// The digest length in bytes.
    public var digestLength: Int {
        switch self {
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    /// Hashes `bytes`.
    public func digest(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        bytes.withUnsafeBytes { raw in
            switch self {
            case .sha256:
                var h = SHA256()
                h.update(bufferPointer: raw)
                return Array(h.finalize())
            case .sha384:
                var h = SHA384()
                h.update(bufferPointer: raw)
                return Array(h.finalize())
            case .sha512:
                var h = SHA512()
                h.update(bufferPointer: raw)
                return Array(h.finalize())
            }
        }
    }

    /// Hashes `bytes`.
    public func digest(_ bytes: [UInt8]) -> [UInt8] { digest(bytes[...]) }

    /// An incremental hash of this algorithm, for data read in pieces.
    public struct Hasher: Sendable {
        private enum State: Sendable {
            case sha256(SHA256)
            case sha384(SHA384)
            case sha512(SHA512)
        }
        private var state: State

        public init(_ algorithm: MCUbootHashAlgorithm) {
            switch algorithm {
            case .sha256: state = .sha256(SHA256())
            case .sha384: state = .sha384(SHA384())
            case .sha512: state = .sha512(SHA512())
            }
        }

        public mutating func update(_ bytes: [UInt8]) {
            switch state {
            case .sha256(var h):
                h.update(data: bytes)
                state = .sha256(h)
            case .sha384(var h):
                h.update(data: bytes)
                state = .sha384(h)
            case .sha512(var h):
                h.update(data: bytes)
                state = .sha512(h)
            }
        }

        public func finalize() -> [UInt8] {
            switch state {
            case .sha256(let h): Array(h.finalize())
            case .sha384(let h): Array(h.finalize())
            case .sha512(let h): Array(h.finalize())
            }
        }
    }
}

/// Builds unsigned MCUboot images (header, payload, optional protected TLVs and a hash TLV).
///
/// Used by the simulator for its factory image and by tests; real images come from imgtool.
public struct MCUbootImageBuilder: Sendable {
    public var version: MCUbootImageVersion
    public var payload: [UInt8]
    /// Header size including padding; at least 32.
    public var headerSize: Int
    public var loadAddress: UInt32
    public var flags: MCUbootImageFlags
    /// TLVs placed in the protected (hashed) area; none means no protected area.
    public var protectedTLVs: [(type: MCUbootTLVType, value: [UInt8])]
    /// The hash TLV to add; `nil` builds an image without a hash TLV.
    public var hashAlgorithm: MCUbootHashAlgorithm?
    /// Extra unprotected TLVs written after the hash TLV.
    public var extraTLVs: [(type: MCUbootTLVType, value: [UInt8])]

    public init(version: MCUbootImageVersion, payload: [UInt8], headerSize: Int = 0x200, loadAddress: UInt32 = 0,
        flags: MCUbootImageFlags = [], protectedTLVs: [(type: MCUbootTLVType, value: [UInt8])] = [],
        hashAlgorithm: MCUbootHashAlgorithm? = .sha256, extraTLVs: [(type: MCUbootTLVType, value: [UInt8])] = [])
    {
        self.version = version
        self.payload = payload
        self.headerSize = headerSize
        self.loadAddress = loadAddress
        self.flags = flags
        self.protectedTLVs = protectedTLVs
        self.hashAlgorithm = hashAlgorithm
        self.extraTLVs = extraTLVs
    }

    /// The image file bytes. Sizes that do not fit their header fields are clamped.
    public func build() -> [UInt8] {
        let headerSize = min(max(self.headerSize, MCUbootImage.headerLength), Int(UInt16.max))
        var protectedArea: [UInt8] = []
        if !protectedTLVs.isEmpty {
            var body: [UInt8] = []
            for tlv in protectedTLVs { Self.appendTLV(tlv.type, tlv.value, to: &body) }
            protectedArea = Self.le16(MCUbootImage.protectedTLVInfoMagic) + Self.le16(UInt16(clamping: body.count + 4))
                + body
        }
        var out: [UInt8] = []
        out += Self.le32(MCUbootImage.magic)
        out += Self.le32(loadAddress)
        out += Self.le16(UInt16(headerSize))
        out += Self.le16(UInt16(clamping: protectedArea.count))
        out += Self.le32(UInt32(clamping: payload.count))
        out += Self.le32(flags.rawValue)
        out.append(version.major)
        out.append(version.minor)
        out += Self.le16(version.revision)
        out += Self.le32(version.build)
        out += Self.le32(0)
        out += [UInt8](repeating: 0, count: headerSize - out.count)
        out += payload
        out += protectedArea
        var tlvBody: [UInt8] = []
        if let hashAlgorithm {
            Self.appendTLV(hashAlgorithm.tlvType, hashAlgorithm.digest(out), to: &tlvBody)
        }
        for tlv in extraTLVs { Self.appendTLV(tlv.type, tlv.value, to: &tlvBody) }
        out += Self.le16(MCUbootImage.tlvInfoMagic) + Self.le16(UInt16(clamping: tlvBody.count + 4)) + tlvBody
        return out
    }

    private static func appendTLV(_ type: MCUbootTLVType, _ value: [UInt8], to out: inout [UInt8]) {
        out += le16(type.rawValue)
        out += le16(UInt16(clamping: value.count))
        out += value.prefix(Int(UInt16.max))
    }

    private static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    private static func le32(_ v: UInt32) -> [UInt8] {
        [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)]
    }
}
