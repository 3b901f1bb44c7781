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
    /// "corrupt" and "message too large") accepts it. The candidates are the device's buffer
    /// size, then ``datagramFallbacks`` below it, sent together (as many as the device's buffers
    /// allow, largest first). Zephyr handles requests in the order they arrive, so once a smaller
    /// probe is answered a larger one sent before it that is still unanswered was lost; after a
    /// short grace for reordering, the largest answered size wins. The smallest candidate is
    /// accepted without a probe, so that a lossy link ends with small packets, not an error.
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
        // Each probe takes a receive buffer and then a response buffer on the device.
        let batch = max(1, (parameters?.bufferCount ?? 1) - 1)
        var learned = smallest
        var start = 0
        while start < probed.count {
            let sizes = Array(probed[start..<min(probed.count, start + batch)])
            if let size = try await probeTogether(sizes) {
                learned = size
                break
            }
            log("no answer to datagrams of \(sizes.map(String.init).joined(separator: ", ")) bytes; trying smaller ones")
            start += batch
        }
        learnedPacketLimit = learned
        log("the path carries \(learned)-byte datagrams")
        notify(.pathLimit(bytes: learned))
        return learned
    }

    /// Sends one echo probe per size, largest first, and returns the largest size whose probe
    /// arrived whole, or `nil` when none did within the timeout.
    func probeTogether(_ sizes: [Int]) async throws(SMPClientError) -> Int? {
        // A lost probe costs this wait; a probe judged lost too early costs speed for the whole
        // upload, so the wait is at least a second even on a fast link.
        let wait = min(options.timeout, max(roundTrip.timeout(queueAhead: sizes.count), .seconds(1)))
        var tickets: [(size: Int, ticket: SMPResponseTicket)] = []
        for size in sizes {
            guard let request = OSManagement.EchoRequest.padded(toPacketSize: size) else { continue }
            tickets.append((size, try await submit(request, policy: SMPRequestPolicy(timeout: wait))))
        }
        let sent = ContinuousClock.now
        let probes = tickets
        let best = await withTaskGroup(of: (size: Int, arrived: Bool)?.self) { group -> Int? in
            for probe in probes {
                group.addTask {
                    guard case .success(let packet) = await probe.ticket.client.result(of: probe.ticket.id) else {
                        return (probe.size, false)
                    }
                    return (probe.size, Self.arrivedWhole(packet))
                }
            }
            var answered: [Int: Bool] = [:]
            var graceStarted = false
            func decided() -> Int? {
                // The largest size not known to be lost, once it is known to have arrived.
                for probe in probes where answered[probe.size] != false {
                    return answered[probe.size] == true ? probe.size : nil
                }
                return nil
            }
            while let next = await group.next() {
                guard let result = next else { break }  // the grace period ended
                answered[result.size] = result.arrived
                if let size = decided() {
                    group.cancelAll()
                    return size
                }
                if result.arrived, !graceStarted {
                    graceStarted = true
                    // Larger probes were sent first; give a reordered answer a little longer.
                    let grace = min(wait, (ContinuousClock.now - sent) * 2 + .milliseconds(50))
                    group.addTask {
                        try? await Task.sleep(for: grace)
                        return nil
                    }
                }
                if answered.count == probes.count { break }
            }
            group.cancelAll()
            return probes.first { answered[$0.size] == true }?.size
        }
        for probe in tickets { abandon(probe.ticket) }
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
