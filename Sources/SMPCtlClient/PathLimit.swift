import SMPCtlProtocol
import SMPCtlTransport

/// Learning the largest packet a datagram path delivers.
///
/// Over UDP the socket takes datagrams up to 65,507 bytes, but the path may not deliver them:
/// a larger-than-MTU datagram travels as IP fragments, which Zephyr drops unless it was built
/// with `CONFIG_NET_IPV4_FRAGMENT` / `CONFIG_NET_IPV6_FRAGMENT`, and Zephyr's UDP transport
/// reads each datagram into a `CONFIG_MCUMGR_TRANSPORT_UDP_MTU`-byte buffer with
/// `zsock_recvfrom`, so a longer one is cut and then rejected by the SMP layer's length check
/// (`MGMT_ERR_ECORRUPT`, subsys/mgmt/mcumgr/transport/src/smp_udp.c and smp.c). Either way a
/// too-large request gets no useful answer. The client therefore probes, once per session, with
/// echo requests of exactly the candidate size, largest first.
extension SMPClient {
    /// The sizes tried after the device's own buffer: an Ethernet-sized IPv4 datagram
    /// (1500 − 20 − 8), IPv6 (1500 − 40 − 8), the IPv6 minimum MTU (1280 − 40 − 8) and the IPv4
    /// minimum reassembly size (576 − 20 − 8).
    public static let datagramFallbacks = [1472, 1452, 1232, 548]

    /// Learns the largest packet the path carries, when the transport asks for it; otherwise
    /// does nothing. Returns the learned size, or `nil` when there was nothing to learn.
    ///
    /// Each candidate is an echo request of that many bytes (``OSManagement/EchoRequest/padded(toPacketSize:)``).
    /// An answer that shows the whole request arrived (success, or a device error other than
    /// "corrupt" and "message too large") accepts it. The device's buffer size is tried first,
    /// then ``datagramFallbacks`` below it, a few at a time, each batch followed by a small echo
    /// (the pacer). Zephyr handles requests in the order they arrive, so when the pacer is
    /// answered, a larger probe sent before it that is still unanswered was lost: the wait is one
    /// round trip on a fast link and as long as it takes on a slow one, never a guess. With one
    /// or two device buffers the probes go one at a time with a plain timeout. The smallest
    /// fallback is accepted without a probe, so that a lossy link ends with small packets.
    @discardableResult
    public func learnLargestPacket() async throws(SMPClientError) -> Int? {
        let framing = await transport.framing
        guard framing.learnsLargestPacket else { return nil }
        if let learnedPacketLimit { return learnedPacketLimit }
        if parameters == nil { try await readParameters() }
        let device = (parameters?.bufferSize ?? Self.defaultBufferSize) - framing.deviceBufferOverhead
        let largest = min(device, framing.maximumPacket)
        let candidates = [largest] + Self.datagramFallbacks.filter { $0 < largest }
        guard let smallest = candidates.last else { return nil }
        let probed = Array(candidates.dropLast())
        // Each request in flight holds a receive buffer, and the one being answered a response
        // buffer too: keep one free. The pacer needs a buffer of its own.
        let buffers = parameters?.bufferCount ?? 1
        let paced = buffers >= 3
        let perBatch = paced ? max(1, buffers - 2) : 1
        // The device's own size alone first: on most paths it simply fits.
        var batches: [[Int]] = probed.isEmpty ? [] : [[probed[0]]]
        var rest = Array(probed.dropFirst())
        while !rest.isEmpty {
            batches.append(Array(rest.prefix(perBatch)))
            rest = Array(rest.dropFirst(perBatch))
        }
        var learned = smallest
        for sizes in batches {
            if let size = try await probeTogether(sizes, paced: paced) {
                learned = size
                break
            }
            log("no answer to datagrams of \(sizes.map(String.init).joined(separator: ", ")) bytes; trying smaller ones")
        }
        learnedPacketLimit = learned
        log("the path carries \(learned)-byte datagrams")
        notify(.pathLimit(bytes: learned))
        return learned
    }

    /// Sends one echo probe per size, largest first, and, when `paced`, a small echo after them;
    /// returns the largest size whose probe arrived whole, or `nil` when none did.
    func probeTogether(_ sizes: [Int], paced: Bool) async throws(SMPClientError) -> Int? {
        // Paced, the pacer's answer ends the wait, so the timeout only covers a link that lost
        // everything: the ceiling for each request in flight. Unpaced, a lost probe costs this
        // wait and one judged lost too early costs speed, so it is at least a second.
        let count = sizes.count + (paced ? 1 : 0)
        let wait = paced
            ? options.timeout * count
            : min(options.timeout, max(roundTrip.timeout(queueAhead: sizes.count), .seconds(1)))
        var tickets: [(size: Int, ticket: SMPResponseTicket)] = []
        for size in sizes {
            guard let request = OSManagement.EchoRequest.padded(toPacketSize: size) else { continue }
            tickets.append((size, try await submit(request, policy: SMPRequestPolicy(timeout: wait))))
        }
        var pacer: SMPResponseTicket?
        if paced {
            pacer = try await submit(OSManagement.EchoRequest(""), policy: SMPRequestPolicy(timeout: wait))
        }
        let probes = tickets
        let pacerTicket = pacer
        let best = await withTaskGroup(of: (size: Int, arrived: Bool)?.self) { group -> Int? in
            for probe in probes {
                group.addTask {
                    guard case .success(let packet) = await probe.ticket.client.result(of: probe.ticket.id) else {
                        return (probe.size, false)
                    }
                    return (probe.size, Self.arrivedWhole(packet))
                }
            }
            if let pacerTicket {
                group.addTask {
                    _ = await pacerTicket.client.result(of: pacerTicket.id)
                    return (0, false)  // size 0: the pacer came back (or timed out)
                }
            }
            var answered: [Int: Bool] = [:]
            func decided() -> Int? {
                // The largest size not known to be lost, once it is known to have arrived. An
                // unanswered one is waited for: until the pacer's grace ends, or the timeout.
                for probe in probes where answered[probe.size] != false {
                    return answered[probe.size] == true ? probe.size : nil
                }
                return nil
            }
            while let next = await group.next() {
                guard let result = next else { break }  // the grace period ended
                if result.size == 0 {
                    // Answers to the probes sent before it are due: allow a little reordering.
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(50))
                        return nil
                    }
                } else {
                    answered[result.size] = result.arrived
                }
                if let size = decided() {
                    group.cancelAll()
                    return size
                }
                if answered.count == probes.count, !probes.contains(where: { answered[$0.size] == true }) { break }
            }
            group.cancelAll()
            return probes.first { answered[$0.size] == true }?.size
        }
        for probe in tickets { abandon(probe.ticket) }
        if let pacer { abandon(pacer) }
        return best
    }

    /// Whether an answer to a probe shows that the whole request arrived.
    static func arrivedWhole(_ packet: SMPPacket) -> Bool {
        guard let map = try? SMPResponseDecoder.map(from: packet.body) else { return true }
        guard let error = try? SMPResponseDecoder.deviceError(in: map, header: packet.header) else { return true }
        // A cut datagram fails the SMP layer's length check (ECORRUPT); a reply too large for
        // the device's buffer fails with EMSGSIZE. Any other answer means the request arrived whole.
        return error.kind != .smp(.corrupt) && error.kind != .smp(.messageTooLarge)
    }
}
