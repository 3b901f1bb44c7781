import SMPCtlTestSupport
import Foundation
import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import Testing

enum SimFixture {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func testImage() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent("test-image.bin")))
    }

    static let imageHash = [UInt8](hex: "3f3476eb44ddd881d84d9129dc67a8e0a0cdf66892a153381a17ded173031d05")
    static let fileSHA = [UInt8](hex: "d38a2812b4bc491c7c9fe045bc849f782285ac36634524b29fa0c1920f301a28")
}

/// Sends one request packet and decodes the single response packet.
func exchange(_ device: SimulatedDevice, _ packet: SMPPacket) async throws -> SMPPacket {
    let output = await device.handle(packet.bytes)
    #expect(output.responses.count == 1)
    let bytes = try #require(output.responses.first)
    return try SMPPacket(decoding: bytes)
}

/// Sends a typed request and decodes its response or device error.
func call<R: SMPRequest>(
    _ device: SimulatedDevice, _ request: R, version: SMPVersion = .v2, sequence: UInt8 = 1
) async throws -> Result<R.Response, SMPResponseError> {
    let response = try await exchange(device, request.packet(sequence: sequence, version: version))
    #expect(response.header.sequence == sequence)
    #expect(response.header.version == version)
    #expect(response.header.group == request.group)
    #expect(response.header.command == request.command)
    #expect(response.header.operation == request.operation.response)
    return Result { () throws(SMPResponseError) in try SMPResponseDecoder.decode(R.Response.self, from: response) }
}

/// The device error kind of a failed result.
func errorKind<T>(_ result: Result<T, SMPResponseError>) -> SMPDeviceError.Kind? {
    if case .failure(.device(let error)) = result { return error.kind }
    return nil
}

/// A successful result's value, recording an issue otherwise.
func success<T>(_ result: Result<T, SMPResponseError>, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    switch result {
    case .success(let value): return value
    case .failure(let error):
        Issue.record("expected success, got \(error)", sourceLocation: sourceLocation)
        throw error
    }
}

/// Uploads `file` following the device's `off`, `chunk` data bytes at a time.
@discardableResult
func upload(
    _ device: SimulatedDevice, _ file: [UInt8], chunk: Int = 1024, image: Int? = nil, version: SMPVersion = .v2,
    stopAt: Int? = nil
) async throws -> ImageManagement.UploadResponse {
    var offset = 0
    var last = ImageManagement.UploadResponse(offset: 0)
    var rounds = 0
    while offset < file.count, rounds < 10_000 {
        rounds += 1
        if let stopAt, offset >= stopAt { break }
        let end = min(offset + chunk, file.count)
        let first = offset == 0
            ? ImageManagement.UploadRequest.FirstChunkFields(
                length: file.count, sha: MCUbootImage.sha256(file), image: image)
            : nil
        let request = ImageManagement.UploadRequest(offset: offset, data: Array(file[offset..<end]), first: first)
        last = try success(try await call(device, request, version: version, sequence: UInt8(truncatingIfNeeded: rounds)))
        offset = try #require(last.offset)
    }
    return last
}

/// A raw upload request with exactly the given fields.
func rawUpload(_ fields: [(String, CBORValue)]) -> SMPRawRequest {
    SMPRawRequest(
        group: .image, command: ImageManagement.Command.upload.rawValue, operation: .write,
        body: .map(CBORMap(fields.map { CBORMap.Entry(key: .text($0.0), value: $0.1) })))
}

/// State as (slot, version, pending, confirmed, active, permanent) for compact assertions.
func summary(_ states: [ImageManagement.SlotState]) -> [String] {
    states.map { s in
        var flags: [String] = []
        if s.pending { flags.append("pending") }
        if s.confirmed { flags.append("confirmed") }
        if s.active { flags.append("active") }
        if s.permanent { flags.append("permanent") }
        return "\(s.slot):\(s.version):\(flags.joined(separator: ","))"
    }
}
