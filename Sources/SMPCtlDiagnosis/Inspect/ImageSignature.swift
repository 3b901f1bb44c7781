// Signature checks of MCUboot images with a public key, as MCUboot's bootutil does them.
//
// What imgtool 2.5.0 signs (imgtool/image.py `create`, keys/*.py), for non-pure signatures:
//   ECDSA P-256 / P-384 (TLV 0x22): `key.sign(payload)`: ECDSA with SHA-256 (P-384: SHA-384) over the
//     hashed region, i.e. a signature of the image hash; DER, possibly padded with zero bytes.
//   Ed25519 (TLV 0x24): `key.sign_digest(digest)`: Ed25519 over the image hash bytes themselves.
//   RSA-2048/3072 (TLV 0x20/0x23): `key.sign(payload)`: RSASSA-PSS, MGF1-SHA-256, salt 32, over the
//     hashed region (SHA-256).
// KEYHASH (TLV 0x01) is the image hash algorithm applied to `get_public_bytes()`: the DER
// SubjectPublicKeyInfo for ECDSA and Ed25519, the PKCS#1 RSAPublicKey DER for RSA.

import Crypto
import CryptoExtras
import Foundation
public import SMPCtlImage

/// Why a key file could not be used.
public struct ImageKeyError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A public key that can check MCUboot image signatures.
public struct ImageVerificationKey: Sendable {
    enum Material: Sendable {
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
        case rsa(_RSA.Signing.PublicKey)
    }

    let material: Material

    private static let ed25519SPKIPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]
    private static let ed25519PKCS8Prefix: [UInt8] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    /// Reads a PEM public key (as `imgtool getpub -e pem` writes it) or an imgtool private key,
    /// whose public half is used: ECDSA P-256/P-384, Ed25519 or RSA.
    public init(pem: String) throws(ImageKeyError) {
        guard let der = Self.pemBody(pem) else { throw ImageKeyError("not a PEM key (no -----BEGIN ...----- block)") }
        let text = pem
        if der.count == 44, Array(der.prefix(12)) == Self.ed25519SPKIPrefix,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: der.suffix(32))
        {
            material = .ed25519(key)
        } else if der.count == 48, Array(der.prefix(16)) == Self.ed25519PKCS8Prefix,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        {
            material = .ed25519(key.publicKey)
        } else if let key = try? P256.Signing.PublicKey(pemRepresentation: text) {
            material = .p256(key)
        } else if let key = try? P256.Signing.PrivateKey(pemRepresentation: text) {
            material = .p256(key.publicKey)
        } else if let key = try? P384.Signing.PublicKey(pemRepresentation: text) {
            material = .p384(key)
        } else if let key = try? P384.Signing.PrivateKey(pemRepresentation: text) {
            material = .p384(key.publicKey)
        } else if let key = try? _RSA.Signing.PublicKey(unsafePEMRepresentation: text) {
            material = .rsa(key)
        } else if let key = try? _RSA.Signing.PrivateKey(unsafePEMRepresentation: text) {
            material = .rsa(key.publicKey)
        } else {
            throw ImageKeyError("unsupported key: expected an ECDSA P-256/P-384, Ed25519 or RSA key in PEM form")
        }
    }

    /// The DER inside the first PEM block.
    static func pemBody(_ pem: String) -> [UInt8]? {
        var inside = false
        var base64 = ""
        for line in pem.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("-----BEGIN ") {
                inside = true
            } else if trimmed.hasPrefix("-----END ") {
                break
            } else if inside {
                base64 += trimmed
            }
        }
        guard inside, let data = Data(base64Encoded: base64) else { return nil }
        return [UInt8](data)
    }

    /// The key type, e.g. "ECDSA P-256".
    public var typeName: String {
        switch material {
        case .p256: "ECDSA P-256"
        case .p384: "ECDSA P-384"
        case .ed25519: "Ed25519"
        case .rsa(let key): "RSA-\(key.keySizeInBits)"
        }
    }

    /// The signature TLV this key's signatures use.
    public var signatureTLVType: MCUbootTLVType {
        switch material {
        case .p256, .p384: .ecdsaSignature
        case .ed25519: .ed25519
        case .rsa(let key): key.keySizeInBits >= 3072 ? .rsa3072PSS : .rsa2048PSS
        }
    }

    /// The bytes imgtool hashes into KEYHASH and stores in PUBKEY.
    public var mcubootPublicBytes: [UInt8] {
        switch material {
        case .p256(let key): Array(key.derRepresentation)
        case .p384(let key): Array(key.derRepresentation)
        case .ed25519(let key): Self.ed25519SPKIPrefix + Array(key.rawRepresentation)
        case .rsa(let key): Array(key.pkcs1DERRepresentation)
        }
    }

    /// Whether `signature` (a signature TLV value) signs `image` with this key.
    public func verify(signature: [UInt8], of image: MCUbootImage) -> Bool {
        // An image read from a source (`MCUbootImage(reading:)`) keeps no bytes in memory.
        guard let region = image.hashedRegionBytes() else { return false }
        switch material {
        case .p256(let key):
            guard let der = Self.trimmedDER(signature),
                let sig = try? P256.Signing.ECDSASignature(derRepresentation: der)
            else { return false }
            return key.isValidSignature(sig, for: SHA256.hash(data: Data(region)))
        case .p384(let key):
            guard let der = Self.trimmedDER(signature),
                let sig = try? P384.Signing.ECDSASignature(derRepresentation: der)
            else { return false }
            return key.isValidSignature(sig, for: SHA384.hash(data: Data(region)))
        case .ed25519(let key):
            return key.isValidSignature(signature, for: image.computeImageHash())
        case .rsa(let key):
            let sig = _RSA.Signing.RSASignature(rawRepresentation: signature)
            return key.isValidSignature(sig, for: SHA256.hash(data: Data(region)), padding: .PSS)
        }
    }

    /// A DER ECDSA signature without the zero padding imgtool may append.
    static func trimmedDER(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count >= 2, bytes[0] == 0x30 else { return nil }
        var length = Int(bytes[1])
        var headerLength = 2
        if length == 0x81 {
            guard bytes.count >= 3 else { return nil }
            length = Int(bytes[2])
            headerLength = 3
        } else if length > 0x81 {
            return nil
        }
        guard headerLength + length <= bytes.count else { return nil }
        return Array(bytes.prefix(headerLength + length))
    }
}

/// The outcome of checking a signature TLV with a key.
public struct ImageSignatureCheck: Sendable, Hashable {
    /// The signature TLV's name (`ECDSA_SIG`, `ED25519`, `RSA2048_PSS`, …).
    public var tlvName: String
    /// The key type used, e.g. "Ed25519"; `nil` when no key was given.
    public var keyType: String?
    /// `true` valid, `false` invalid, `nil` not checked.
    public var valid: Bool?
    /// A sentence about the result.
    public var detail: String
}

/// The outcome of comparing KEYHASH or PUBKEY with the key.
public struct ImageKeyCheck: Sendable, Hashable {
    /// `KEYHASH` or `PUBKEY`.
    public var tlvName: String
    public var matches: Bool
    /// The value the key gives (hash of the key, or the key bytes).
    public var expected: [UInt8]
    /// The value in the image.
    public var found: [UInt8]
}
