// The SMP header, packet and response decoders (SMPCtlProtocol).
//
// The input is taken as a packet. Invariants: a decoded header re-encodes to the input's first
// 8 bytes (bits 7–5 of byte 0 are reserved and dropped); a decoded packet re-encodes to the
// input; when the body carries a device error (`rc` or `err`), every typed response decoder
// reports that same device error and none reports success.

import FuzzSupport
import SMPCtlCBOR
import SMPCtlProtocol

/// Every typed response smpctl decodes.
private let responseTypes: [any SMPResponse.Type] = [
    SMPEmptyResponse.self, SMPRawResponse.self,
    OSManagement.EchoResponse.self, OSManagement.ParametersResponse.self, OSManagement.InfoResponse.self,
    OSManagement.BootloaderInfoResponse.self, OSManagement.TaskStatisticsResponse.self,
    OSManagement.DateTimeResponse.self,
    ImageManagement.StateResponse.self, ImageManagement.UploadResponse.self, ImageManagement.SlotInfoResponse.self,
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)

    let header: SMPHeader
    do {
        header = try SMPHeader(decoding: bytes)
    } catch {
        _ = error.description
        invariant(bytes.count < SMPHeader.size || bytes[0] & 0b100 != 0, "a header was refused: \(error)")
        return 0
    }
    invariant(header.bytes == [bytes[0] & 0x1F] + bytes[1..<SMPHeader.size], "the header does not re-encode")
    _ = header.group.description
    _ = header.version.description

    // The exact-length packet decoder, with the default and a small body bound.
    for bound in [SMPPacket.defaultMaxBodyLength, 64] {
        if let packet = try? SMPPacket(decoding: bytes, maxBodyLength: bound) {
            invariant(packet.body.count == Int(header.length), "body length differs from the header's")
            invariant(packet.body.count <= bound, "body over the bound")
            invariant(packet.bytes == header.bytes + bytes[SMPHeader.size...], "the packet does not re-encode")
        }
    }

    // Whatever follows the header, as a response body.
    let packet = SMPPacket(header: header, body: Array(bytes[SMPHeader.size...]))
    var deviceError: SMPDeviceError?
    if let map = try? SMPResponseDecoder.map(from: packet.body) {
        deviceError = try? SMPResponseDecoder.deviceError(in: map, header: header)
    }
    if let deviceError {
        _ = deviceError.description
        _ = deviceError.entry
        _ = deviceError.rawCode
    }
    for type in responseTypes {
        check(type, packet, deviceError)
    }
    return 0
}

private func check<Response: SMPResponse>(_ type: Response.Type, _ packet: SMPPacket, _ expected: SMPDeviceError?) {
    do {
        _ = try SMPResponseDecoder.decode(type, from: packet)
        invariant(expected == nil, "\(type) decoded as success a body with a device error")
    } catch {
        _ = error.description
        if let expected {
            invariant(error == .device(expected), "\(type) reported \(error), not the device error \(expected)")
        }
    }
}
