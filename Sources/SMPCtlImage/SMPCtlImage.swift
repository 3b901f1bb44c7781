// The MCUboot image format: header, TLVs and the image hash.
//
// Layout (see shared/reference/mcuboot-image.md):
//   [0, hdr_size)                      header (32 bytes) + padding
//   [hdr_size, hdr_size + img_size)    payload
//   [.., + protect_tlv_size)           protected TLV area (info 0x6908 + TLVs), optional
//   [.., + it_tlv_tot)                 unprotected TLV area (info 0x6907 + TLVs)
// All fields are little-endian. Every length and offset read from the input is checked
// against the input's size before use; parsing throws and never traps.

/// Why bytes could not be parsed as an MCUboot image.
public struct MCUbootImageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable code for each failure.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// Fewer than 32 bytes: no complete header.
        case tooShort
        /// The header magic is not `0x96f3b83d` (legacy `0x96f3b83c` and erased flash included).
        case badMagic
        /// `ih_hdr_size` is smaller than the 32-byte header.
        case badHeaderSize
        /// The file ends before the payload or a TLV area ends.
        case truncated
        /// A TLV area does not start with its info magic (0x6908 protected, 0x6907 unprotected).
        case badTLVMagic
        /// A TLV info header gives a total smaller than its own 4 bytes.
        case badTLVAreaSize
        /// The protected TLV area's total differs from `ih_protect_tlv_size`.
        case protectedSizeMismatch
        /// A TLV's header or value runs past the end of its area.
        case tlvOverrun
    }

    /// The failure.
    public var code: Code
    /// A human-readable explanation.
    public var reason: String
    /// The file offset where the problem was found, when there is one.
    public var offset: Int?

    public init(_ code: Code, _ reason: String, offset: Int? = nil) {
        self.code = code
        self.reason = reason
        self.offset = offset
    }

    public var description: String {
        if let offset { return "MCUboot image \(code.rawValue) at byte \(offset): \(reason)" }
        return "MCUboot image \(code.rawValue): \(reason)"
    }
}

/// Header flags (`ih_flags`).
public struct MCUbootImageFlags: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Position-independent code (not supported by MCUboot).
    public static let pic = MCUbootImageFlags(rawValue: 0x01)
    public static let encryptedAES128 = MCUbootImageFlags(rawValue: 0x04)
    public static let encryptedAES256 = MCUbootImageFlags(rawValue: 0x08)
    /// Not bootable on its own (for example the network-core part of a multi-image build).
    public static let nonBootable = MCUbootImageFlags(rawValue: 0x10)
    public static let ramLoad = MCUbootImageFlags(rawValue: 0x20)
    public static let romFixed = MCUbootImageFlags(rawValue: 0x100)
    public static let compressedLZMA1 = MCUbootImageFlags(rawValue: 0x200)
    public static let compressedLZMA2 = MCUbootImageFlags(rawValue: 0x400)
    public static let compressedARMThumbFilter = MCUbootImageFlags(rawValue: 0x800)

    static let named: [(MCUbootImageFlags, String)] = [
        (.pic, "PIC"), (.encryptedAES128, "ENCRYPTED_AES128"), (.encryptedAES256, "ENCRYPTED_AES256"),
        (.nonBootable, "NON_BOOTABLE"), (.ramLoad, "RAM_LOAD"), (.romFixed, "ROM_FIXED"),
        (.compressedLZMA1, "COMPRESSED_LZMA1"), (.compressedLZMA2, "COMPRESSED_LZMA2"),
        (.compressedARMThumbFilter, "COMPRESSED_ARM_THUMB_FLT"),
    ]

    /// The names of the set flags, unknown bits as hex.
    public var names: [String] {
        var out: [String] = []
        var known: UInt32 = 0
        for (flag, name) in Self.named {
            known |= flag.rawValue
            if contains(flag) { out.append(name) }
        }
        let unknown = rawValue & ~known
        if unknown != 0 { out.append("0x" + String(unknown, radix: 16)) }
        return out
    }

    public var description: String { names.isEmpty ? "none" : names.joined(separator: ", ") }
}

/// An image version (`ih_ver`).
public struct MCUbootImageVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: UInt8
    public var minor: UInt8
    public var revision: UInt16
    public var build: UInt32

    public init(major: UInt8, minor: UInt8, revision: UInt16, build: UInt32 = 0) {
        self.major = major
        self.minor = minor
        self.revision = revision
        self.build = build
    }

    /// Parses `major.minor.revision[.build]` or imgtool's `major.minor.revision+build`.
    public init?(string: String) {
        let parts = string.split(separator: "+", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        var numbers = parts[0].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 {
            guard numbers.count == 3 else { return nil }
            numbers.append(String(parts[1]))
        }
        guard (1...4).contains(numbers.count) else { return nil }
        while numbers.count < 4 { numbers.append("0") }
        guard let major = UInt8(numbers[0]), let minor = UInt8(numbers[1]), let revision = UInt16(numbers[2]),
            let build = UInt32(numbers[3])
        else { return nil }
        self.init(major: major, minor: minor, revision: revision, build: build)
    }

    /// As Zephyr reports it: `major.minor.revision`, plus `.build` only when build ≠ 0.
    public var description: String {
        let base = "\(major).\(minor).\(revision)"
        return build == 0 ? base : base + ".\(build)"
    }

    /// Orders by major, minor, revision, then build.
    public static func < (a: Self, b: Self) -> Bool {
        (a.major, a.minor, a.revision, a.build) < (b.major, b.minor, b.revision, b.build)
    }

    /// Compares major, minor and revision only (Zephyr's default upgrade check ignores the build).
    public func isNewer(than other: Self, includingBuild: Bool = false) -> Bool {
        if includingBuild { return other < self }
        return (other.major, other.minor, other.revision) < (major, minor, revision)
    }
}

/// A TLV type number with the names from MCUboot's `image.h`.
public struct MCUbootTLVType: RawRepresentable, Sendable, Hashable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt16) { rawValue = value }

    public static let keyHash: MCUbootTLVType = 0x01
    public static let publicKey: MCUbootTLVType = 0x02
    public static let sha256: MCUbootTLVType = 0x10
    public static let sha384: MCUbootTLVType = 0x11
    public static let sha512: MCUbootTLVType = 0x12
    public static let rsa2048PSS: MCUbootTLVType = 0x20
    public static let ecdsa224: MCUbootTLVType = 0x21
    public static let ecdsaSignature: MCUbootTLVType = 0x22
    public static let rsa3072PSS: MCUbootTLVType = 0x23
    public static let ed25519: MCUbootTLVType = 0x24
    public static let signaturePure: MCUbootTLVType = 0x25
    public static let encRSA2048: MCUbootTLVType = 0x30
    public static let encKeyWrap: MCUbootTLVType = 0x31
    public static let encEC256: MCUbootTLVType = 0x32
    public static let encX25519: MCUbootTLVType = 0x33
    public static let encX25519SHA512: MCUbootTLVType = 0x34
    public static let dependency: MCUbootTLVType = 0x40
    public static let securityCounter: MCUbootTLVType = 0x50
    public static let bootRecord: MCUbootTLVType = 0x60

    /// The MCUboot name (`SHA256`, `ECDSA_SIG`, …), or `nil` for an unknown type.
    public var name: String? {
        switch rawValue {
        case 0x01: "KEYHASH"
        case 0x02: "PUBKEY"
        case 0x10: "SHA256"
        case 0x11: "SHA384"
        case 0x12: "SHA512"
        case 0x20: "RSA2048_PSS"
        case 0x21: "ECDSA224"
        case 0x22: "ECDSA_SIG"
        case 0x23: "RSA3072_PSS"
        case 0x24: "ED25519"
        case 0x25: "SIG_PURE"
        case 0x30: "ENC_RSA2048"
        case 0x31: "ENC_KW"
        case 0x32: "ENC_EC256"
        case 0x33: "ENC_X25519"
        case 0x34: "ENC_X25519_SHA512"
        case 0x40: "DEPENDENCY"
        case 0x50: "SEC_CNT"
        case 0x60: "BOOT_RECORD"
        case 0x70: "DECOMP_SIZE"
        case 0x71: "DECOMP_SHA"
        case 0x72: "DECOMP_SIGNATURE"
        case 0x73: "COMP_DEC_SIZE"
        case 0x74: "UUID_VID"
        case 0x75: "UUID_CID"
        default: (rawValue & 0xFF) >= 0xA0 ? "VENDOR" : nil
        }
    }

    /// Whether the type is one of the image hash TLVs (SHA-256/384/512).
    public var isHash: Bool { rawValue == 0x10 || rawValue == 0x11 || rawValue == 0x12 }

    /// Whether the type carries a signature.
    public var isSignature: Bool { (0x20...0x24).contains(rawValue) }

    public var description: String {
        let hex = "0x" + String(rawValue, radix: 16)
        return name.map { "\($0) (\(hex))" } ?? hex
    }
}

/// Which TLV area a TLV was found in.
public enum MCUbootTLVArea: String, Sendable, Hashable {
    /// Covered by the image hash (`0x6908` area).
    case protected
    /// Not hashed (`0x6907` area).
    case unprotected
}

/// One TLV entry.
public struct MCUbootTLV: Sendable, Hashable {
    public var area: MCUbootTLVArea
    /// File offset of the TLV's 4-byte type/length header.
    public var offset: Int
    public var type: MCUbootTLVType
    /// Length of the value (the header excluded).
    public var length: Int
    public var value: [UInt8]

    public init(area: MCUbootTLVArea, offset: Int, type: MCUbootTLVType, value: [UInt8]) {
        self.area = area
        self.offset = offset
        self.type = type
        self.length = value.count
        self.value = value
    }
}

/// A parsed MCUboot image (a `*.signed.bin` file or a slot's contents).
///
/// Bytes after the unprotected TLV area (slot padding, a pre-written trailer) are allowed and
/// ignored.
/// Random access to an image's bytes: an array in memory, or a file read piece by piece.
public protocol MCUbootImageSource: Sendable {
    /// The number of bytes.
    var count: Int { get }
    /// The bytes in `range`, which lies within `0..<count`.
    func read(_ range: Range<Int>) throws(MCUbootImageError) -> [UInt8]
}

extension Array: MCUbootImageSource where Element == UInt8 {
    public func read(_ range: Range<Int>) throws(MCUbootImageError) -> [UInt8] { Array(self[range]) }
}

public struct MCUbootImage: Sendable {
    /// The header magic of current MCUboot images.
    public static let magic: UInt32 = 0x96f3_b83d
    /// The legacy (v1) header magic, not accepted.
    public static let legacyMagic: UInt32 = 0x96f3_b83c
    /// The size of the fixed header.
    public static let headerLength = 32
    /// Magic of the unprotected TLV info header.
    public static let tlvInfoMagic: UInt16 = 0x6907
    /// Magic of the protected TLV info header.
    public static let protectedTLVInfoMagic: UInt16 = 0x6908

    /// The bytes that were parsed, when the image was parsed from memory; empty when it was read from a source.
    public private(set) var bytes: [UInt8]
    /// Where the image's bytes come from.
    private let source: any MCUbootImageSource

    public let magic: UInt32
    public let loadAddress: UInt32
    /// Offset of the payload (header plus padding).
    public let headerSize: Int
    /// Size of the protected TLV area including its info header; 0 when absent.
    public let protectedTLVSize: Int
    /// Payload size, header excluded.
    public let imageSize: Int
    public let flags: MCUbootImageFlags
    public let version: MCUbootImageVersion
    /// Header bytes 28–31 (`_pad1`).
    public let headerPadding: UInt32

    /// File offset of the protected TLV info header, when there is a protected area.
    public let protectedTLVInfoOffset: Int?
    /// File offset of the unprotected TLV info header.
    public let tlvInfoOffset: Int
    /// `it_tlv_tot` of the unprotected area (its info header included).
    public let tlvAreaSize: Int
    /// TLVs of the protected area, in file order.
    public let protectedTLVs: [MCUbootTLV]
    /// TLVs of the unprotected area, in file order.
    public let unprotectedTLVs: [MCUbootTLV]

    /// Parses and bounds-checks an image.
    public init(parsing bytes: [UInt8]) throws(MCUbootImageError) {
        try self.init(reading: bytes)
        self.bytes = bytes
    }

    /// Parses an image from a source without holding its payload: only the header and the TLV
    /// areas are read; the hash is computed piece by piece.
    public init(reading source: some MCUbootImageSource) throws(MCUbootImageError) {
        guard source.count >= Self.headerLength else {
            throw MCUbootImageError(
                .tooShort, "an MCUboot header is \(Self.headerLength) bytes, got \(source.count)", offset: 0)
        }
        let bytes = try source.read(0..<Self.headerLength)
        guard bytes.count >= Self.headerLength else {
            throw MCUbootImageError(
                .tooShort, "an MCUboot header is \(Self.headerLength) bytes, got \(bytes.count)", offset: 0)
        }
        let magic = Self.le32(bytes, 0)
        guard magic == Self.magic else {
            let what: String
            switch magic {
            case Self.legacyMagic: what = "legacy v1 magic 0x96f3b83c"
            case 0xFFFF_FFFF: what = "erased flash (0xffffffff)"
            default: what = "0x" + String(magic, radix: 16)
            }
            throw MCUbootImageError(.badMagic, "expected magic 0x96f3b83d, found \(what)", offset: 0)
        }
        self.bytes = []
        self.source = source
        self.magic = magic
        loadAddress = Self.le32(bytes, 4)
        headerSize = Int(Self.le16(bytes, 8))
        protectedTLVSize = Int(Self.le16(bytes, 10))
        imageSize = Int(Self.le32(bytes, 12))
        flags = MCUbootImageFlags(rawValue: Self.le32(bytes, 16))
        version = MCUbootImageVersion(
            major: bytes[20], minor: bytes[21], revision: Self.le16(bytes, 22), build: Self.le32(bytes, 24))
        headerPadding = Self.le32(bytes, 28)

        guard headerSize >= Self.headerLength else {
            throw MCUbootImageError(.badHeaderSize, "ih_hdr_size \(headerSize) is smaller than the header", offset: 8)
        }
        // Int is 64-bit on every supported platform: 16-bit + 32-bit sums cannot overflow.
        let payloadEnd = headerSize + imageSize
        guard payloadEnd <= source.count else {
            throw MCUbootImageError(
                .truncated, "the payload ends at \(payloadEnd) but the file has \(source.count) bytes",
                offset: source.count)
        }

        var protectedTLVs: [MCUbootTLV] = []
        if protectedTLVSize > 0 {
            let (_, tlvs) = try Self.parseArea(
                source, at: payloadEnd, magic: Self.protectedTLVInfoMagic, area: .protected,
                expectedTotal: protectedTLVSize)
            protectedTLVs = tlvs
            protectedTLVInfoOffset = payloadEnd
        } else {
            protectedTLVInfoOffset = nil
        }
        tlvInfoOffset = payloadEnd + protectedTLVSize
        let (total, tlvs) = try Self.parseArea(source, at: tlvInfoOffset, magic: Self.tlvInfoMagic, area: .unprotected)
        tlvAreaSize = total
        self.protectedTLVs = protectedTLVs
        unprotectedTLVs = tlvs
    }

    /// Parses one TLV area starting with its info header at `start`.
    private static func parseArea(
        _ source: some MCUbootImageSource, at start: Int, magic expected: UInt16, area: MCUbootTLVArea,
        expectedTotal: Int? = nil
    ) throws(MCUbootImageError) -> (total: Int, tlvs: [MCUbootTLV]) {
        let name = area == .protected ? "protected TLV info" : "TLV info"
        guard start <= source.count - 4 else {
            throw MCUbootImageError(.truncated, "the file ends before the \(name) header at \(start)", offset: start)
        }
        let info = try source.read(start..<(start + 4))
        let magic = le16(info, 0)
        guard magic == expected else {
            throw MCUbootImageError(
                .badTLVMagic,
                "expected \(name) magic 0x\(String(expected, radix: 16)), found 0x\(String(magic, radix: 16))",
                offset: start)
        }
        let total = Int(le16(info, 2))
        guard total >= 4 else {
            throw MCUbootImageError(.badTLVAreaSize, "\(name) total \(total) is below 4", offset: start + 2)
        }
        if let expectedTotal, total != expectedTotal {
            throw MCUbootImageError(
                .protectedSizeMismatch, "protected TLV area total \(total) differs from ih_protect_tlv_size \(expectedTotal)",
                offset: start + 2)
        }
        let end = start + total
        guard end <= source.count else {
            throw MCUbootImageError(
                .truncated, "the \(area.rawValue) TLV area ends at \(end) but the file has \(source.count) bytes",
                offset: source.count)
        }
        // The area is at most 64 KiB (a 16-bit total), so it is read whole.
        let areaBytes = try source.read(start..<end)
        var tlvs: [MCUbootTLV] = []
        var position = 4
        while position < total {
            guard total - position >= 4 else {
                throw MCUbootImageError(
                    .tlvOverrun, "a TLV header at \(start + position) runs past the area end \(end)",
                    offset: start + position)
            }
            let type = le16(areaBytes, position)
            let length = Int(le16(areaBytes, position + 2))
            let valueStart = position + 4
            guard length <= total - valueStart else {
                throw MCUbootImageError(
                    .tlvOverrun, "TLV 0x\(String(type, radix: 16)) of \(length) bytes runs past the area end \(end)",
                    offset: start + position)
            }
            tlvs.append(MCUbootTLV(
                area: area, offset: start + position, type: MCUbootTLVType(rawValue: type),
                value: Array(areaBytes[valueStart..<(valueStart + length)])))
            position = valueStart + length
        }
        return (total, tlvs)
    }

    private static func le16(_ b: [UInt8], _ at: Int) -> UInt16 {
        UInt16(b[at]) | UInt16(b[at + 1]) << 8
    }

    private static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    // MARK: Derived values

    /// All TLVs, protected first, in file order.
    public var tlvs: [MCUbootTLV] { protectedTLVs + unprotectedTLVs }

    /// The version as Zephyr reports it (`1.2.3` or `1.2.3.4`).
    public var versionString: String { version.description }

    /// Bytes covered by the image hash: header, payload and the protected TLV area.
    public var hashedRegionLength: Int { headerSize + imageSize + protectedTLVSize }

    /// The offset just past the unprotected TLV area: the length of the image file proper.
    public var imageEndOffset: Int { tlvInfoOffset + tlvAreaSize }

    /// The first hash TLV (SHA-256, SHA-384 or SHA-512), unprotected area first.
    public var hashTLVEntry: MCUbootTLV? {
        unprotectedTLVs.first { $0.type.isHash } ?? protectedTLVs.first { $0.type.isHash }
    }

    /// The value of the image hash TLV (type 0x10, 0x11 or 0x12).
    public var hashTLV: [UInt8]? { hashTLVEntry?.value }

    /// The value of the SHA-256 TLV when it is 32 bytes: what Zephyr reports as the image `hash`.
    public var sha256TLV: [UInt8]? {
        unprotectedTLVs.first { $0.type == .sha256 && $0.length == 32 }?.value
    }

    /// How many SHA-256 TLVs the unprotected area has (Zephyr rejects more than one).
    public var sha256TLVCount: Int { unprotectedTLVs.filter { $0.type == .sha256 }.count }

    /// The hash algorithm matching the hash TLV; SHA-256 when the image has none.
    public var hashAlgorithm: MCUbootHashAlgorithm {
        switch hashTLVEntry?.type {
        case MCUbootTLVType.sha384?: .sha384
        case MCUbootTLVType.sha512?: .sha512
        default: .sha256
        }
    }

    /// Hashes the hashed region with ``hashAlgorithm``.
    ///
    /// The region is read from the image's source in 64 KiB pieces; an unreadable source gives an
    /// empty result, which matches no hash.
    public func computeImageHash() -> [UInt8] {
        if bytes.count >= hashedRegionLength { return hashAlgorithm.digest(bytes[0..<hashedRegionLength]) }
        var hasher = MCUbootHashAlgorithm.Hasher(hashAlgorithm)
        var position = 0
        while position < hashedRegionLength {
            let end = min(position + 65536, hashedRegionLength)
            guard let piece = try? source.read(position..<end), piece.count == end - position else { return [] }
            hasher.update(piece)
            position = end
        }
        return hasher.finalize()
    }

    /// The bytes of the hashed region (what signatures sign), from memory or read from the source;
    /// `nil` when the source cannot be read.
    public func hashedRegionBytes() -> [UInt8]? {
        if bytes.count >= hashedRegionLength { return Array(bytes[0..<hashedRegionLength]) }
        guard let region = try? source.read(0..<hashedRegionLength), region.count == hashedRegionLength else { return nil }
        return region
    }

    /// Whether the hash TLV equals the computed hash (false when there is no hash TLV).
    public var hashMatches: Bool {
        guard let stored = hashTLV else { return false }
        return stored == computeImageHash()
    }

    /// The first signature TLV.
    public var signatureTLV: MCUbootTLV? { tlvs.first { $0.type.isSignature } }

    /// The MCUboot name of the signature TLV type (`ECDSA_SIG`, `ED25519`, …), or `nil` when unsigned.
    public var signatureTypeName: String? { signatureTLV.map { $0.type.name ?? $0.type.description } }

    /// Whether the image is bootable (`IMAGE_F_NON_BOOTABLE` clear).
    public var isBootable: Bool { !flags.contains(.nonBootable) }

    /// SHA-256 of arbitrary bytes, such as a whole file for the upload `sha` field.
    public static func sha256<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        MCUbootHashAlgorithm.sha256.digest(Array(bytes))
    }
}
