// The BLE reassemblers: the client's SMPReassembler (SMPCtlProtocol) and the simulated device's
// SMPServerReassembly (SMPCtlTransport, Zephyr's smp_reassembly.c).
//
// The input is a program: a limit, then fragments (a length byte, then that many bytes).
// Invariants: no packet is longer than the limit or shorter than a header, and each is exactly
// 8 + the header's length; what is buffered stays below the limit; no byte is lost or invented
// (bytes fed since the last refusal = bytes of packets + bytes buffered).

import FuzzSupport
import SMPCtlProtocol
import SMPCtlTransport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(fuzzBytes(data, size))
    let limit = input.int(in: 0...600)
    let serverLimit: Int? = input.bool() ? input.int(in: 0...600) : nil
    let reassembles = input.bool()

    var client = SMPReassembler(maxPacketLength: limit)
    invariant(client.maxPacketLength >= SMPHeader.size, "limit below a header")
    var server = SMPServerReassembly(netbufSize: serverLimit, reassembles: reassembles)
    var fedSinceReset = 0
    var serverGathered = 0

    while !input.isEmpty {
        let control = input.byte()
        if control == 0xFF {
            client.reset()
            server.reset()
            fedSinceReset = 0
            serverGathered = 0
            invariant(client.bufferedCount == 0 && !server.inProgress, "reset left bytes behind")
            continue
        }
        let fragment = input.take(Int(control))

        // Client side.
        do {
            let packets = try client.append(fragment)
            fedSinceReset += fragment.count
            var delivered = 0
            for packet in packets {
                invariant(packet.count >= SMPHeader.size, "packet shorter than a header")
                invariant(packet.count <= client.maxPacketLength, "packet of \(packet.count) over the limit \(client.maxPacketLength)")
                let length = Int(packet[2]) << 8 | Int(packet[3])
                invariant(packet.count == SMPHeader.size + length, "packet length disagrees with its header")
                delivered += packet.count
            }
            fedSinceReset -= delivered
            invariant(client.bufferedCount == fedSinceReset, "reassembler lost or invented bytes")
            invariant(client.bufferedCount < client.maxPacketLength, "buffer reached the limit")
        } catch {
            invariant(error.code == .bodyTooLarge, "unexpected error \(error)")
            invariant(client.bufferedCount == 0, "bytes kept after a refusal")
            fedSinceReset = 0
        }

        // Server side.
        let bound = serverLimit ?? Int.max
        switch server.collect(fragment) {
        case .incomplete:
            serverGathered += fragment.count
            invariant(server.inProgress, "incomplete but nothing in progress")
            invariant(reassembles, "incomplete without reassembly")
            invariant(serverGathered <= bound, "gathered over the net_buf")
        case .packet(let packet):
            invariant(packet.count <= bound, "server packet over the net_buf")
            if reassembles {
                invariant(packet.count == serverGathered + fragment.count, "server packet is not the bytes gathered")
                let length = Int(packet[2]) << 8 | Int(packet[3])
                invariant(packet.count == SMPHeader.size + length, "server packet length disagrees with its header")
            } else {
                invariant(packet == fragment, "without reassembly a write is a packet")
            }
            serverGathered = 0
            invariant(!server.inProgress, "packet delivered, still in progress")
        case .refused(let discarded):
            invariant(discarded == serverGathered + fragment.count, "refusal discarded \(discarded), gathered \(serverGathered + fragment.count)")
            serverGathered = 0
            invariant(!server.inProgress, "refused, still in progress")
        }
    }
    return 0
}
