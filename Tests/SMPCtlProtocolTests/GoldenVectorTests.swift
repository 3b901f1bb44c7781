import SMPCtlTestSupport
import Foundation
import Testing
import SMPCtlCBOR
import SMPCtlProtocol

/// One vector of a fixture file, with its JSON fields pulled out.
struct GoldenVector {
    let file: String
    let name: String
    let packet: [UInt8]
    let headerBytes: [UInt8]
    let body: [UInt8]
    let fields: [String: Any]

    init(file: String, json: [String: Any]) throws {
        self.file = file
        name = try #require(json["name"] as? String)
        packet = [UInt8](hex: try #require(json["hex"] as? String))
        headerBytes = [UInt8](hex: try #require(json["header_hex"] as? String))
        body = [UInt8](hex: try #require(json["cbor_hex"] as? String))
        fields = try #require(json["header"] as? [String: Any])
    }

    func field(_ key: String) throws -> Int {
        let value = try #require(fields[key], "\(name) has no header field \(key)")
        if let int = value as? Int { return int }
        return try #require((value as? NSNumber)?.intValue, "\(name).\(key) is not a number")
    }

    static func load(_ file: String) throws -> [GoldenVector] {
        try Fixture.vectors(file).map { try GoldenVector(file: file, json: $0) }
    }
}

enum Golden {
    static let files = ["os-echo.json", "img-mgmt.json", "errors.json"]

    static let hash0 = [UInt8](hex: "615e1484fba5fe9f5e5a220cf0f5e6b12be5d37d8c75efcadcb6dae4897b134e")
    static let hash1 = [UInt8](hex: "3f3476eb44ddd881d84d9129dc67a8e0a0cdf66892a153381a17ded173031d05")
    static let fileSHA = [UInt8](hex: "d38a2812b4bc491c7c9fe045bc849f782285ac36634524b29fa0c1920f301a28")

    static func map(_ pairs: [(String, CBORValue)]) -> CBORValue {
        .map(CBORMap(pairs.map { CBORMap.Entry(key: .text($0.0), value: $0.1) }))
    }

    static func imageData() throws -> [UInt8] { [UInt8](try Fixture.data("test-image.bin")) }

    /// The decoded body of every vector, with map entries in wire order, and whether the
    /// body is in definite-length (canonical) form.
    static func expectedBodies() throws -> [String: (value: CBORValue, definite: Bool)] {
        let first128 = Array(try imageData().prefix(128))
        let zephyrSlots: CBORValue = .array([
            map([("slot", 0), ("version", "1.0.0"), ("hash", .bytes(hash0)), ("bootable", true),
                 ("pending", false), ("confirmed", true), ("active", true), ("permanent", false)]),
            map([("slot", 1), ("version", "1.2.3.4"), ("hash", .bytes(hash1)), ("bootable", true),
                 ("pending", false), ("confirmed", false), ("active", false), ("permanent", false)]),
        ])
        let definiteSlots: CBORValue = .array([
            map([("hash", .bytes(hash0)), ("slot", 0), ("active", true), ("pending", false), ("version", "1.0.0"),
                 ("bootable", true), ("confirmed", true), ("permanent", false)]),
            map([("hash", .bytes(hash1)), ("slot", 1), ("active", false), ("pending", false), ("version", "1.2.3.4"),
                 ("bootable", true), ("confirmed", false), ("permanent", false)]),
        ])
        return [
            "os-echo-request-v2": (map([("d", "hello")]), true),
            "os-echo-request-v1": (map([("d", "hello")]), true),
            "os-echo-response-v2": (map([("r", "hello")]), true),
            "os-echo-response-v2-zephyr-style": (map([("r", "hello")]), false),
            "img-state-read-request": (map([]), true),
            "img-state-read-response-zephyr-style": (map([("images", zephyrSlots), ("splitStatus", 0)]), false),
            "img-state-read-response-definite": (map([("images", definiteSlots), ("splitStatus", 0)]), true),
            "img-state-write-test-request": (map([("hash", .bytes(hash1)), ("confirm", false)]), true),
            "img-upload-first-chunk-request": (
                map([("len", 4770), ("off", 0), ("sha", .bytes(fileSHA)), ("data", .bytes(first128)), ("image", 0)]),
                true
            ),
            "img-upload-first-chunk-response-zephyr-style": (map([("off", 128)]), false),
            "img-upload-last-chunk-response-zephyr-style": (map([("off", 4770), ("match", true)]), false),
            "err-v2-img-hash-not-found-zephyr-style": (map([("err", map([("group", 1), ("rc", 8)]))]), false),
            "err-v2-img-hash-not-found-definite": (map([("err", map([("rc", 8), ("group", 1)]))]), true),
            "err-v1-translation-of-hash-not-found": (map([("rc", 1)]), false),
            "err-unknown-command-enotsup": (map([("rc", 8)]), false),
        ]
    }

    static func vector(_ name: String) throws -> GoldenVector {
        for file in files {
            if let found = try GoldenVector.load(file).first(where: { $0.name == name }) { return found }
        }
        throw CocoaError(.fileNoSuchFile)
    }

    static func packet(_ name: String) throws -> SMPPacket {
        try SMPPacket(decoding: try vector(name).packet)
    }
}

@Suite("Golden vectors")
struct GoldenVectorTests {
    // MARK: Every vector

    @Test("every vector has an expected body")
    func coverage() throws {
        let names = try Golden.files.flatMap { try GoldenVector.load($0).map(\.name) }
        #expect(names.count == 15)
        #expect(Set(names) == Set(try Golden.expectedBodies().keys))
    }

    @Test("header decodes to the documented fields and re-encodes", arguments: Golden.files)
    func headers(_ file: String) throws {
        for vector in try GoldenVector.load(file) {
            let header = try SMPHeader(decoding: vector.packet)
            let documented: [(String, Int)] = [
                ("op", Int(header.operation.rawValue)), ("version_bits", Int(header.version.rawValue)),
                ("reserved_bits", 0), ("flags", Int(header.flags)), ("length", Int(header.length)),
                ("group", Int(header.group.rawValue)), ("sequence", Int(header.sequence)),
                ("command_id", Int(header.command)),
            ]
            for (key, actual) in documented {
                let expected = try vector.field(key)
                #expect(actual == expected, "\(vector.name).\(key)")
            }
            let byte0 = [UInt8](hex: try #require(vector.fields["byte0_hex"] as? String))
            #expect(byte0 == [vector.packet[0]], "\(vector.name)")
            #expect(header.bytes == vector.headerBytes, "\(vector.name)")
            #expect(Array(vector.packet.prefix(8)) == vector.headerBytes, "\(vector.name)")
            // Decoding just the 8 header bytes gives the same header.
            #expect(try SMPHeader(decoding: vector.headerBytes) == header)
        }
    }

    @Test("packet decodes the whole hex and re-encodes it", arguments: Golden.files)
    func packets(_ file: String) throws {
        for vector in try GoldenVector.load(file) {
            let packet = try SMPPacket(decoding: vector.packet)
            #expect(packet.body == vector.body, "\(vector.name)")
            #expect(packet.bytes == vector.packet, "\(vector.name)")
            #expect(Int(packet.header.length) == vector.body.count, "\(vector.name)")
            // The body-length bound is inclusive.
            _ = try SMPPacket(decoding: vector.packet, maxBodyLength: vector.body.count)
            #expect(throws: SMPDecodingError.self) {
                try SMPPacket(decoding: vector.packet, maxBodyLength: vector.body.count - 1)
            }
        }
    }

    @Test("body decodes as CBOR; definite bodies re-encode byte for byte", arguments: Golden.files)
    func bodies(_ file: String) throws {
        let expected = try Golden.expectedBodies()
        for vector in try GoldenVector.load(file) {
            let (value, definite) = try #require(expected[vector.name])
            let decoded = try CBORDecoder().decode(vector.body)
            #expect(decoded == value, "\(vector.name)")
            // The SMP response decoder (tags skipped, depth 16) reads it as the same map.
            let smpMap = try SMPResponseDecoder.map(from: vector.body)
            #expect(smpMap == value.mapValue, "\(vector.name)")
            let reencoded = CBOREncoder.encode(decoded)
            if definite {
                #expect(reencoded == vector.body, "\(vector.name)")
            } else {
                #expect(reencoded != vector.body, "\(vector.name) is indefinite-length")
                #expect(try CBORDecoder().decode(reencoded) == decoded, "\(vector.name)")
            }
        }
    }

    // MARK: Typed requests

    @Test("echo requests v2 and v1")
    func echoRequests() throws {
        let request = OSManagement.EchoRequest("hello")
        let v2 = try Golden.vector("os-echo-request-v2").packet
        let v1 = try Golden.vector("os-echo-request-v1").packet
        #expect(request.packet(sequence: 42, version: .v2).bytes == v2)
        #expect(request.packet(sequence: 42, version: .v1).bytes == v1)
        #expect(request.packet(sequence: 42).bytes == v2)
    }

    @Test("image state read request")
    func stateReadRequest() throws {
        let packet = ImageManagement.StateReadRequest().packet(sequence: 1, version: .v2)
        let expected = try Golden.vector("img-state-read-request").packet
        #expect(packet.bytes == expected)
    }

    @Test("image state write (test) request")
    func stateWriteRequest() throws {
        let packet = ImageManagement.StateWriteRequest(hash: Golden.hash1, confirm: false).packet(sequence: 3, version: .v2)
        let expected = try Golden.vector("img-state-write-test-request").packet
        #expect(packet.bytes == expected)
        // Confirming the running image sends no hash.
        let confirm = ImageManagement.StateWriteRequest(hash: nil, confirm: true)
        #expect(confirm.bodyBytes == [UInt8](hex: "a167636f6e6669726df5"))
    }

    @Test("upload first chunk request")
    func uploadRequest() throws {
        let image = try Golden.imageData()
        #expect(image.count == 4770)
        let request = ImageManagement.UploadRequest(
            offset: 0, data: Array(image.prefix(128)),
            first: .init(length: image.count, sha: Golden.fileSHA, image: 0))
        let vector = try Golden.vector("img-upload-first-chunk-request")
        #expect(request.packet(sequence: 2, version: .v2).bytes == vector.packet)
        // The client's form: the body encoded once after room for the header, the header written over it.
        var packet = request.packetWithHeaderSpace
        #expect(packet.count == vector.packet.count)
        #expect(packet.prefix(SMPHeader.size).allSatisfy { $0 == 0 })
        let header = SMPHeader(
            operation: .write, version: .v2, length: UInt16(packet.count - SMPHeader.size), group: .image, sequence: 2,
            command: 1)
        #expect(header.write(over: &packet))
        #expect(packet == vector.packet)
        var tooShort: [UInt8] = [1, 2, 3]
        #expect(!header.write(over: &tooShort))
        #expect(tooShort == [1, 2, 3])
        #expect(ImageManagement.UploadRequest.bodyLength(offset: 0, dataLength: 128, first: request.first)
            == vector.body.count)
    }

    // MARK: Typed responses

    @Test("echo response, definite and Zephyr-style",
          arguments: ["os-echo-response-v2", "os-echo-response-v2-zephyr-style"])
    func echoResponse(_ name: String) throws {
        let response = try SMPResponseDecoder.decode(OSManagement.EchoResponse.self, from: try Golden.packet(name))
        #expect(response == OSManagement.EchoResponse(text: "hello"))
    }

    @Test("state response, definite and Zephyr-style",
          arguments: ["img-state-read-response-zephyr-style", "img-state-read-response-definite"])
    func stateResponse(_ name: String) throws {
        let response = try SMPResponseDecoder.decode(ImageManagement.StateResponse.self, from: try Golden.packet(name))
        #expect(response.splitStatus == 0)
        try #require(response.images.count == 2)
        let primary = response.images[0]
        #expect(primary.image == 0)
        #expect(primary.slot == 0)
        #expect(primary.version == "1.0.0")
        #expect(primary.hash == Golden.hash0)
        #expect(primary.bootable)
        #expect(!primary.pending)
        #expect(primary.confirmed)
        #expect(primary.active)
        #expect(!primary.permanent)
        let secondary = response.images[1]
        #expect(secondary.image == 0)
        #expect(secondary.slot == 1)
        #expect(secondary.version == "1.2.3.4")
        #expect(secondary.hash == Golden.hash1)
        #expect(secondary.bootable)
        #expect(!secondary.pending)
        #expect(!secondary.confirmed)
        #expect(!secondary.active)
        #expect(!secondary.permanent)
        #expect(response == ImageManagement.StateResponse(images: [
            .init(slot: 0, version: "1.0.0", hash: Golden.hash0, bootable: true, confirmed: true, active: true),
            .init(slot: 1, version: "1.2.3.4", hash: Golden.hash1, bootable: true),
        ], splitStatus: 0))
    }

    @Test("upload responses")
    func uploadResponses() throws {
        let first = try SMPResponseDecoder.decode(
            ImageManagement.UploadResponse.self, from: try Golden.packet("img-upload-first-chunk-response-zephyr-style"))
        #expect(first == ImageManagement.UploadResponse(offset: 128, match: nil, rc: nil))
        let last = try SMPResponseDecoder.decode(
            ImageManagement.UploadResponse.self, from: try Golden.packet("img-upload-last-chunk-response-zephyr-style"))
        #expect(last == ImageManagement.UploadResponse(offset: 4770, match: true, rc: nil))
    }

    // MARK: Error vectors

    private func deviceError(_ packet: SMPPacket) -> SMPDeviceError? {
        do {
            _ = try SMPResponseDecoder.decode(SMPRawResponse.self, from: packet)
            Issue.record("an error response decoded as success")
            return nil
        } catch {
            guard case .device(let device) = error else {
                Issue.record("expected a device error, got \(error)")
                return nil
            }
            return device
        }
    }

    @Test("v2 err {group 1, rc 8} is image HASH_NOT_FOUND",
          arguments: ["err-v2-img-hash-not-found-zephyr-style", "err-v2-img-hash-not-found-definite"])
    func v2GroupError(_ name: String) throws {
        let packet = try Golden.packet(name)
        let expected = SMPDeviceError(kind: .group(.image, 8), version: .v2, requestGroup: .image, command: 0)
        #expect(throws: SMPResponseError.device(expected)) {
            try SMPResponseDecoder.decode(ImageManagement.StateResponse.self, from: packet)
        }
        let error = try #require(deviceError(packet))
        #expect(error.rawCode == 8)
        #expect(error.entry?.name == "IMG_MGMT_ERR_HASH_NOT_FOUND")
        #expect(!error.isBusy)
        #expect(error.description.contains("HASH_NOT_FOUND"))
    }

    @Test("v1 translation is top-level rc 1 (EUNKNOWN)")
    func v1Translation() throws {
        let packet = try Golden.packet("err-v1-translation-of-hash-not-found")
        let expected = SMPDeviceError(kind: .smp(SMPReturnCode(rawValue: 1)), version: .v1, requestGroup: .image, command: 0)
        #expect(throws: SMPResponseError.device(expected)) {
            try SMPResponseDecoder.decode(ImageManagement.StateResponse.self, from: packet)
        }
        #expect(deviceError(packet)?.entry?.name == "MGMT_ERR_EUNKNOWN")
    }

    @Test("unknown command is top-level rc 8 (ENOTSUP), not HASH_NOT_FOUND")
    func unknownCommand() throws {
        let packet = try Golden.packet("err-unknown-command-enotsup")
        let error = try #require(deviceError(packet))
        #expect(error == SMPDeviceError(kind: .smp(.notSupported), version: .v2, requestGroup: 64, command: 5))
        #expect(error.entry?.name == "MGMT_ERR_ENOTSUP")
        let hashNotFound = try #require(deviceError(try Golden.packet("err-v2-img-hash-not-found-definite")))
        #expect(error.kind != hashNotFound.kind)
        #expect(error.rawCode == hashNotFound.rawCode)
        #expect(error.entry != hashNotFound.entry)
        #expect(SMPDeviceError.Kind.smp(.notSupported) != .group(.image, 8))
    }
}

// MARK: - Response decoding beyond the vectors

/// A v2 write-response packet with `body` for group/command.
func responsePacket(_ body: CBORValue, group: SMPGroupID = .os, command: UInt8 = 0, version: SMPVersion = .v2)
    -> SMPPacket
{
    SMPPacket(
        header: SMPHeader(operation: .writeResponse, version: version, length: 0, group: group, sequence: 9,
                          command: command),
        body: CBOREncoder.encode(body))
}

func responsePacket(bytes: [UInt8], group: SMPGroupID = .os) -> SMPPacket {
    SMPPacket(header: SMPHeader(operation: .readResponse, length: 0, group: group, sequence: 1, command: 0), body: bytes)
}

/// The result of decoding, flattened for comparisons.
enum Outcome<R: Equatable>: Equatable {
    case success(R)
    case device(SMPDeviceError)
    case malformed(SMPDecodingError.Code)
}

func outcome<R: SMPResponse & Equatable>(_ type: R.Type, _ packet: SMPPacket) -> Outcome<R> {
    do {
        return .success(try SMPResponseDecoder.decode(type, from: packet))
    } catch {
        switch error {
        case .device(let e): return .device(e)
        case .malformed(let e): return .malformed(e.code)
        }
    }
}

@Suite("Response decoding")
struct ResponseDecodingTests {
    @Test("extra keys, including a legacy rc: 0, are ignored")
    func extraKeys() {
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(["r": "hi", "rc": 0]))
            == .success(.init(text: "hi")))
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(["rc": 0, "r": "hi", "extra": [1, 2], 7: "x"]))
            == .success(.init(text: "hi")))
        #expect(outcome(ImageManagement.UploadResponse.self, responsePacket(["off": 512, "rc": 0], group: .image))
            == .success(.init(offset: 512, match: nil, rc: 0)))
        // Zephyr 3.5 style indefinite map with rc: 0.
        #expect(outcome(ImageManagement.UploadResponse.self,
                        responsePacket(bytes: [UInt8](hex: "bf636f666619020062726300ff"), group: .image))
            == .success(.init(offset: 512, match: nil, rc: 0)))
        // err with rc 0 is not an error.
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(["err": ["group": 0, "rc": 0], "r": "ok"]))
            == .success(.init(text: "ok")))
    }

    @Test("no rc/err and the wrong shape is malformed, never success")
    func malformedShapes() {
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket([:])) == .malformed(.missingField))
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(["r": 5])) == .malformed(.unexpectedType))
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(["d": "hello"])) == .malformed(.missingField))
        #expect(outcome(ImageManagement.UploadResponse.self, responsePacket([:])) == .malformed(.missingField))
        #expect(outcome(ImageManagement.UploadResponse.self, responsePacket(["off": -1])) == .malformed(.unexpectedType))
        #expect(outcome(ImageManagement.UploadResponse.self, responsePacket(["off": "0"])) == .malformed(.unexpectedType))
        #expect(outcome(ImageManagement.UploadResponse.self, responsePacket(["off": 1, "match": "yes"]))
            == .malformed(.unexpectedType))
        #expect(outcome(ImageManagement.StateResponse.self, responsePacket([:])) == .malformed(.missingField))
        #expect(outcome(ImageManagement.StateResponse.self, responsePacket(["images": [1]])) == .malformed(.unexpectedType))
        #expect(outcome(ImageManagement.StateResponse.self, responsePacket(["images": [["slot": 0]]]))
            == .malformed(.missingField))
        #expect(outcome(ImageManagement.StateResponse.self, responsePacket(["images": [["slot": 0, "version": 1]]]))
            == .malformed(.unexpectedType))
        #expect(outcome(OSManagement.ParametersResponse.self, responsePacket(["buf_size": 2048]))
            == .malformed(.missingField))
        #expect(outcome(ImageManagement.SlotInfoResponse.self, responsePacket(["images": [["image": 0]]]))
            == .malformed(.missingField))
        // Not a map, not CBOR, or nothing at all.
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(["r", "hello"])) == .malformed(.unexpectedType))
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(bytes: [])) == .malformed(.invalidCBOR))
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(bytes: [0xA1, 0x61, 0x72]))
            == .malformed(.invalidCBOR))
        #expect(outcome(OSManagement.EchoResponse.self, responsePacket(bytes: [0xA0, 0xA0])) == .malformed(.invalidCBOR))
    }

    @Test("rc or err of the wrong type is malformed")
    func wrongTypes() {
        let bodies: [CBORValue] = [
            ["rc": "8"], ["rc": .float(8)], ["rc": .bool(true)], ["rc": .null], ["rc": .negative(UInt64.max)],
            ["rc": .unsigned(UInt64.max)], ["rc": [8]],
            ["err": 8], ["err": ["group": 1]], ["err": ["rc": 8]], ["err": ["group": -1, "rc": 8]],
            ["err": ["group": 70_000, "rc": 8]], ["err": ["group": "image", "rc": 8]], ["err": ["group": 1, "rc": "8"]],
            ["r": "hello", "rc": "0"],
        ]
        for body in bodies {
            #expect(outcome(OSManagement.EchoResponse.self, responsePacket(body)) == .malformed(.unexpectedType),
                    "\(body)")
        }
    }

    @Test("unknown rc values keep their raw numbers", arguments: [77, 300, 256, 1000, -3])
    func unknownCodes(_ rc: Int) throws {
        let result = outcome(OSManagement.EchoResponse.self, responsePacket(["rc": .int(Int64(rc)), "r": "x"]))
        guard case .device(let error) = result else {
            Issue.record("rc \(rc) gave \(result)")
            return
        }
        #expect(error.kind == .smp(SMPReturnCode(rawValue: rc)))
        #expect(error.rawCode == rc)
        #expect(error.description.contains("\(rc)"))
        if rc >= 256 {
            #expect(error.entry?.name == "MGMT_ERR_EPERUSER")
            #expect(error.entry?.meaning.contains("\(rc - 256)") == true)
        } else {
            #expect(error.entry == nil)
        }
    }

    @Test("unknown group codes and groups keep their raw numbers")
    func unknownGroupCodes() {
        let result = outcome(SMPRawResponse.self, responsePacket(["err": ["group": 1, "rc": 99]], group: .image))
        #expect(result == .device(SMPDeviceError(kind: .group(.image, 99), version: .v2, requestGroup: .image, command: 0)))
        let custom = outcome(SMPRawResponse.self, responsePacket(["err": ["group": 200, "rc": 3]], group: 200))
        guard case .device(let error) = custom else {
            Issue.record("expected a device error")
            return
        }
        #expect(error.kind == .group(200, 3))
        #expect(error.entry == nil)
    }

    @Test("err wins over rc, and rsn is kept")
    func errWinsAndReason() {
        let result = outcome(SMPRawResponse.self,
                             responsePacket(["rc": 3, "err": ["group": 1, "rc": 9], "rsn": "no slot"], group: .image))
        #expect(result == .device(SMPDeviceError(kind: .group(.image, 9), version: .v2, requestGroup: .image,
                                                 command: 0, reason: "no slot")))
        let busy = outcome(SMPRawResponse.self, responsePacket(["rc": 10], version: .v1))
        guard case .device(let error) = busy else {
            Issue.record("expected a device error")
            return
        }
        #expect(error.isBusy)
        #expect(error.version == .v1)
    }

    @Test("other typed responses decode")
    func otherResponses() {
        #expect(outcome(OSManagement.ParametersResponse.self, responsePacket(["buf_size": 2475, "buf_count": 4]))
            == .success(.init(bufferSize: 2475, bufferCount: 4)))
        let slotInfo: CBORValue = ["images": [["image": 0, "slots": [["slot": 0, "size": 0x6_0000, "upload_image_id": 0],
                                                                     ["slot": 1, "size": 0x6_0000]],
                                               "max_image_size": 0x5_FE00]]]
        #expect(outcome(ImageManagement.SlotInfoResponse.self, responsePacket(slotInfo))
            == .success(.init(images: [.init(image: 0, slots: [.init(slot: 0, size: 0x6_0000, uploadImageID: 0),
                                                                .init(slot: 1, size: 0x6_0000)],
                                             maxImageSize: 0x5_FE00)])))
    }
}

// MARK: - Error catalog

@Suite("Error catalog")
struct ErrorCatalogTests {
    static let smp = ["EOK", "EUNKNOWN", "ENOMEM", "EINVAL", "ETIMEOUT", "ENOENT", "EBADSTATE", "EMSGSIZE", "ENOTSUP",
                      "ECORRUPT", "EBUSY", "EACCESSDENIED", "UNSUPPORTED_TOO_OLD", "UNSUPPORTED_TOO_NEW"]

    static let groups: [(SMPGroupID, String, [String])] = [
        (.os, "OS_MGMT_ERR_", ["OK", "UNKNOWN", "INVALID_FORMAT", "QUERY_YIELDS_NO_ANSWER", "RTC_NOT_SET",
                               "RTC_COMMAND_FAILED", "QUERY_RESPONSE_VALUE_NOT_VALID", "HEAP_STATS_FETCH_FAILED"]),
        (.image, "IMG_MGMT_ERR_", ["OK", "UNKNOWN", "FLASH_CONFIG_QUERY_FAIL", "NO_IMAGE", "NO_TLVS", "INVALID_TLV",
                                   "TLV_MULTIPLE_HASHES_FOUND", "TLV_INVALID_SIZE", "HASH_NOT_FOUND", "NO_FREE_SLOT",
                                   "FLASH_OPEN_FAILED", "FLASH_READ_FAILED", "FLASH_WRITE_FAILED", "FLASH_ERASE_FAILED",
                                   "INVALID_SLOT", "NO_FREE_MEMORY", "FLASH_CONTEXT_ALREADY_SET",
                                   "FLASH_CONTEXT_NOT_SET", "FLASH_AREA_DEVICE_NULL", "INVALID_PAGE_OFFSET",
                                   "INVALID_OFFSET", "INVALID_LENGTH", "INVALID_IMAGE_HEADER",
                                   "INVALID_IMAGE_HEADER_MAGIC", "INVALID_HASH", "INVALID_FLASH_ADDRESS",
                                   "VERSION_GET_FAILED", "CURRENT_VERSION_IS_NEWER", "IMAGE_ALREADY_PENDING",
                                   "INVALID_IMAGE_VECTOR_TABLE", "INVALID_IMAGE_TOO_LARGE",
                                   "INVALID_IMAGE_DATA_OVERRUN", "IMAGE_CONFIRMATION_DENIED",
                                   "IMAGE_SETTING_TEST_TO_ACTIVE_DENIED", "ACTIVE_SLOT_NOT_KNOWN"]),
        (.settings, "SETTINGS_MGMT_ERR_", ["OK", "UNKNOWN", "KEY_TOO_LONG", "KEY_NOT_FOUND", "READ_NOT_SUPPORTED",
                                           "ROOT_KEY_NOT_FOUND", "WRITE_NOT_SUPPORTED", "DELETE_NOT_SUPPORTED",
                                           "SAVE_NOT_SUPPORTED"]),
        (.fs, "FS_MGMT_ERR_", ["OK", "UNKNOWN", "FILE_INVALID_NAME", "FILE_NOT_FOUND", "FILE_IS_DIRECTORY",
                               "FILE_OPEN_FAILED", "FILE_SEEK_FAILED", "FILE_READ_FAILED", "FILE_TRUNCATE_FAILED",
                               "FILE_DELETE_FAILED", "FILE_WRITE_FAILED", "FILE_OFFSET_NOT_VALID",
                               "FILE_OFFSET_LARGER_THAN_FILE", "CHECKSUM_HASH_NOT_FOUND", "MOUNT_POINT_NOT_FOUND",
                               "READ_ONLY_FILESYSTEM", "FILE_EMPTY"]),
        (.shell, "SHELL_MGMT_ERR_", ["OK", "UNKNOWN", "COMMAND_TOO_LONG", "EMPTY_COMMAND"]),
        (.stat, "STAT_MGMT_ERR_", ["OK", "UNKNOWN", "INVALID_GROUP", "INVALID_STAT_NAME", "INVALID_STAT_SIZE",
                                   "WALK_ABORTED"]),
        (.enumeration, "ENUM_MGMT_ERR_", ["OK", "UNKNOWN", "TOO_MANY_GROUP_ENTRIES", "INSUFFICIENT_HEAP_FOR_ENTRIES",
                                          "INDEX_TOO_LARGE"]),
        (.zephyrBasic, "ZEPHYRBASIC_MGMT_ERR_", ["OK", "UNKNOWN", "FLASH_OPEN_FAILED", "FLASH_CONFIG_QUERY_FAIL",
                                                 "FLASH_ERASE_FAILED"]),
    ]

    @Test("SMP return codes 0-13 and per-user codes from 256")
    func smpCodes() {
        let list = SMPErrorCatalog.smpCodeList
        #expect(list.map(\.rc) == Array(0...13))
        #expect(list.map(\.entry.name) == Self.smp.map { "MGMT_ERR_" + $0 })
        for (rc, entry) in list {
            #expect(SMPReturnCode(rawValue: rc).entry == entry)
            #expect(!entry.meaning.isEmpty)
        }
        #expect(SMPErrorCatalog.smpEntry(14) == nil)
        #expect(SMPErrorCatalog.smpEntry(255) == nil)
        #expect(SMPErrorCatalog.smpEntry(-1) == nil)
        #expect(SMPErrorCatalog.smpEntry(256)?.name == "MGMT_ERR_EPERUSER")
        #expect(SMPErrorCatalog.smpEntry(300)?.name == "MGMT_ERR_EPERUSER")
        #expect(SMPReturnCode.perUser.entry?.name == "MGMT_ERR_EPERUSER")
        #expect(SMPReturnCode(rawValue: 77).description == "rc 77")
        #expect(SMPReturnCode.notSupported.description == "MGMT_ERR_ENOTSUP (8)")
        #expect(SMPReturnCode.busy.rawValue == 10)
        #expect(SMPReturnCode.versionTooNew.rawValue == 13)
    }

    @Test("every group table of error-codes.md")
    func groupCodes() {
        #expect(SMPErrorCatalog.groupsWithCodes == Self.groups.map(\.0).sorted())
        for (group, prefix, names) in Self.groups {
            let codes = SMPErrorCatalog.codes(of: group)
            #expect(codes.map(\.rc) == Array(0..<names.count), "\(group)")
            #expect(codes.map(\.entry.name) == names.map { prefix + $0 }, "\(group)")
            #expect(SMPErrorCatalog.groupEntry(group: group, rc: names.count) == nil)
            for (rc, name) in names.enumerated() {
                #expect(SMPErrorCatalog.groupEntry(group: group, rc: rc)?.name == prefix + name)
            }
        }
        #expect(SMPErrorCatalog.codes(of: .log).isEmpty)
        #expect(SMPErrorCatalog.groupEntry(group: 64, rc: 1) == nil)
    }
}
