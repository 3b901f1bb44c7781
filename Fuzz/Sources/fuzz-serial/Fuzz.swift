// The console (serial) framing of SMPCtlProtocol: SMPSerialDecoder (line splitting, markers,
// base64, length prefix, CRC16) and SMPSerialFraming.encode.
//
// Decoding: a configuration byte, chunk sizes, then the stream. Invariants: memory stays within
// maxBufferedCount; no packet is over maxPacketLength; feeding the stream in chunks gives the same
// events as feeding it at once; every decoded packet framed again decodes to itself alone.
// Encoding: the rest of the input as a packet with a frame bound; the frames are at most the
// bound, their total is encodedLength, and they decode to the packet.

import FuzzSupport
import SMPCtlProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(fuzzBytes(data, size))
    let mode = input.byte()
    if mode & 0x80 != 0 {
        encode(&input, maxFrameLength: 7 + Int(mode & 0x7F) * 2)
    } else {
        decode(&input, mode: mode)
    }
    return 0
}

private func decode(_ input: inout FuzzInput, mode: UInt8) {
    let maxPacketLength = [16384, 2048, 64, 0][Int(mode & 3)]
    let maxLineLength = [1024, 127, 8, 300][Int(mode >> 2 & 3)]
    let chunk = Int(input.byte()) + 1
    let stream = input.rest()

    var chunked = SMPSerialDecoder(maxPacketLength: maxPacketLength, maxLineLength: maxLineLength)
    var chunkedEvents: [SMPSerialDecoder.Event] = []
    var start = 0
    while start < stream.count {
        let end = min(stream.count, start + chunk)
        chunkedEvents += chunked.feed(stream[start..<end])
        invariant(chunked.bufferedCount <= chunked.maxBufferedCount,
            "buffered \(chunked.bufferedCount), bound \(chunked.maxBufferedCount)")
        start = end
    }
    var whole = SMPSerialDecoder(maxPacketLength: maxPacketLength, maxLineLength: maxLineLength)
    let wholeEvents = whole.feed(stream)
    invariant(whole.bufferedCount == chunked.bufferedCount, "chunking changed what is buffered")
    invariant(wholeEvents == chunkedEvents, "chunking changed the events")

    for event in wholeEvents {
        switch event {
        case .packet(let packet):
            invariant(packet.count <= whole.maxPacketLength, "packet of \(packet.count) over \(whole.maxPacketLength)")
            let framed = SMPSerialFraming.encode(packet: packet)
            var fresh = SMPSerialDecoder(maxPacketLength: maxPacketLength, maxLineLength: 1024)
            invariant(fresh.feed(framed) == [.packet(packet)], "a decoded packet framed again does not decode")
        case .consoleText(let line):
            invariant(line.count <= whole.maxLineLength, "console line over the bound")
            invariant(!line.contains(SMPSerialFraming.lineFeed), "console line holds a newline")
        case .error(let error):
            _ = error.description
        }
    }
    whole.reset()
    invariant(whole.bufferedCount == 0, "reset left bytes")
}

private func encode(_ input: inout FuzzInput, maxFrameLength: Int) {
    let packet = input.rest()
    guard packet.count <= SMPSerialFraming.maxEncodablePacketLength else { return }
    let framed = SMPSerialFraming.encode(packet: packet, maxFrameLength: maxFrameLength)
    invariant(framed.count == SMPSerialFraming.encodedLength(packetLength: packet.count, maxFrameLength: maxFrameLength),
        "encodedLength disagrees with encode")
    var lineStart = 0
    for (index, byte) in framed.enumerated() where byte == SMPSerialFraming.lineFeed {
        let line = framed[lineStart...index]
        invariant(line.count <= maxFrameLength, "a frame of \(line.count) bytes, bound \(maxFrameLength)")
        let marker = Array(line.prefix(2))
        invariant(marker == (lineStart == 0 ? SMPSerialFraming.firstFrameMarker : SMPSerialFraming.continuationFrameMarker),
            "a frame without its marker")
        lineStart = index + 1
    }
    invariant(lineStart == framed.count, "the framing does not end with a newline")
    var decoder = SMPSerialDecoder(maxPacketLength: packet.count, maxLineLength: maxFrameLength)
    invariant(decoder.feed(framed) == [.packet(packet)], "framed packet does not decode to itself")
    invariant(decoder.bufferedCount == 0, "bytes left after a whole packet")
}
