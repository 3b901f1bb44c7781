// The device simulator's request handling (SMPCtlSimulator SimulatedDevice.handle): SMP layer
// checks, the OS and image groups, uploads into simulated flash, resets with MCUboot swaps.
//
// Input: two configuration bytes, then SMP request packets back to back; each packet (8 bytes
// and the body its header announces, or what is left) is one `handle` call on a fresh device.
// With bit 7 of the second byte the whole rest is one call (several requests in one frame).
// Invariants, checked on every answer: it is one whole SMP packet of the response operation with
// the request's group, command and sequence; its body is a CBOR map that smpctl's response
// decoder reads without error; a success answer to a request smpctl has a typed message for
// decodes as that message. No fault injection is configured, so none of this may fail.

import FuzzSupport
import SMPCtlCBOR
import SMPCtlProtocol
import SMPCtlSimulator

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(fuzzBytes(data, size))
    let first = input.byte()
    let second = input.byte()
    var configuration = SimulatorConfiguration()
    configuration.slotSize = 8 * 1024
    configuration.sectorSize = 1024
    configuration.zephyrVersion = first & 1 == 0 ? .v3_5 : .v3_6
    configuration.imageCount = first & 2 == 0 ? 1 : 2
    configuration.rejectV1 = first & 4 != 0
    configuration.validateOnCompletion = first & 8 != 0
    configuration.keepUploadStateAcrossReset = first & 16 != 0
    configuration.supportsSlotInfo = first & 32 == 0
    configuration.supportsParams = first & 32 == 0
    configuration.hostileOffset = [nil, .zero, .stuck, .backwards][Int(first >> 6)]
    configuration.enforceBufferSize = second & 1 == 0
    configuration.bufferSize = second & 2 == 0 ? 2048 : 256
    configuration.refuseResetUnlessForced = second & 4 != 0
    configuration.bootloaderRejectsImages = second & 8 != 0
    configuration.resetDuringUploadAtOffset = second & 16 != 0 ? 100 : nil
    configuration.busyCount = second & 32 != 0 ? 1 : 0
    configuration.secondarySlotSizeOverride = second & 64 != 0 ? 2048 : nil
    let oneCall = second & 128 != 0

    var packets: [[UInt8]] = []
    if oneCall {
        packets = [input.rest()]
    } else {
        while !input.isEmpty && packets.count < 64 {
            let header = input.take(SMPHeader.size)
            let length = header.count == SMPHeader.size ? Int(header[2]) << 8 | Int(header[3]) : 0
            packets.append(header + input.take(length))
        }
    }

    let device = SimulatedDevice(configuration: configuration)
    let requests = packets
    let outputs = runBlocking {
        var outputs: [SimulatorOutput] = []
        for packet in requests { outputs.append(await device.handle(packet)) }
        _ = await device.slotStates
        return outputs
    }
    for (packet, output) in zip(packets, outputs) {
        invariant(!output.disconnect, "disconnect without a configured disconnect")
        check(output.responses, for: packet, oneCall: oneCall)
    }
    return 0
}

private func check(_ responses: [[UInt8]], for request: [UInt8], oneCall: Bool) {
    // The well-formed requests in the packet, in order (the device stops at the first error).
    var headers: [SMPHeader] = []
    var position = 0
    while request.count - position >= SMPHeader.size,
        let header = try? SMPHeader(decoding: request[position..<(position + SMPHeader.size)])
    {
        headers.append(header)
        position += SMPHeader.size + Int(header.length)
        if !oneCall { break }
    }
    invariant(responses.count <= headers.count, "\(responses.count) answers to \(headers.count) requests")
    for (response, requestHeader) in zip(responses, headers) {
        let packet: SMPPacket
        do {
            packet = try SMPPacket(decoding: response)
        } catch {
            invariant(false, "an answer is not one whole SMP packet: \(error)")
            return
        }
        let header = packet.header
        invariant(header.operation == (requestHeader.operation == .read ? .readResponse : .writeResponse), "answer OP \(header.operation)")
        invariant(header.group == requestHeader.group && header.command == requestHeader.command, "answer group/command")
        invariant(header.sequence == requestHeader.sequence, "answer sequence")
        let map: CBORMap
        let deviceError: SMPDeviceError?
        do {
            map = try SMPResponseDecoder.map(from: packet.body)
            deviceError = try SMPResponseDecoder.deviceError(in: map, header: header)
        } catch {
            invariant(false, "the answer's body does not decode: \(error)")
            return
        }
        guard deviceError == nil, let type = typedResponse(requestHeader) else { continue }
        do {
            _ = try type.init(decoding: map)
        } catch {
            invariant(false, "a success answer does not decode as \(type): \(error)")
        }
    }
}

/// The typed response smpctl decodes for a request, when it has one.
private func typedResponse(_ header: SMPHeader) -> (any SMPResponse.Type)? {
    switch (header.group, header.command, header.operation) {
    case (.os, OSManagement.Command.echo.rawValue, _): OSManagement.EchoResponse.self
    case (.os, OSManagement.Command.mcumgrParameters.rawValue, .read): OSManagement.ParametersResponse.self
    case (.os, OSManagement.Command.info.rawValue, .read): OSManagement.InfoResponse.self
    case (.os, OSManagement.Command.bootloaderInfo.rawValue, .read): OSManagement.BootloaderInfoResponse.self
    case (.os, OSManagement.Command.taskStatistics.rawValue, .read): OSManagement.TaskStatisticsResponse.self
    case (.os, OSManagement.Command.dateTime.rawValue, .read): OSManagement.DateTimeResponse.self
    case (.image, ImageManagement.Command.state.rawValue, _): ImageManagement.StateResponse.self
    case (.image, ImageManagement.Command.upload.rawValue, .write): ImageManagement.UploadResponse.self
    case (.image, ImageManagement.Command.slotInfo.rawValue, .read): ImageManagement.SlotInfoResponse.self
    default: nil
    }
}
