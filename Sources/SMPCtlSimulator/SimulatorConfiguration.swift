public import SMPCtlProtocol
public import SMPCtlTransport

/// An error a ``FaultRule`` makes the simulator answer with.
public enum SimulatedError: Sendable, Hashable {
    /// A top-level SMP `rc` (`mcumgr_err_t`), the same for v1 and v2.
    case smp(Int)
    /// A group error code of the request's group: `err {group, rc}` in v2, translated `rc` in v1.
    case group(Int)
}

/// Answers matching requests with an error instead of handling them.
public struct FaultRule: Sendable, Hashable {
    public var group: SMPGroupID
    /// The command to match; `nil` matches every command of the group.
    public var command: UInt8?
    public var error: SimulatedError
    /// How many times the rule fires; `nil` means every time.
    public var count: Int?
    /// Only fire for upload requests whose `off` is at least this value.
    public var minimumUploadOffset: Int?

    public init(group: SMPGroupID, command: UInt8? = nil, error: SimulatedError, count: Int? = nil,
        minimumUploadOffset: Int? = nil)
    {
        self.group = group
        self.command = command
        self.error = error
        self.count = count
        self.minimumUploadOffset = minimumUploadOffset
    }
}

/// Which responses the simulated link loses. The device still executes the request.
public enum ResponseDropPolicy: Sendable, Hashable {
    /// Drop the responses to these requests (1-based count of packets handed to ``SimulatedDevice/handle(_:)``).
    case requests(Set<Int>)
    /// Drop each response with this probability, drawn from a generator seeded with `seed`.
    case random(probability: Double, seed: UInt64)
}

/// The Zephyr release whose mcumgr the simulator follows, where answers differ by release.
public enum SimulatedZephyrVersion: String, Sendable, Hashable, CaseIterable {
    /// Zephyr 3.5: erasing a slot that is already empty answers image group rc 1 (UNKNOWN).
    case v3_5 = "3.5"
    /// Zephyr 3.6 and later: erasing an empty slot succeeds.
    case v3_6 = "3.6"
}

/// What a hostile device answers to every upload chunk instead of the offset it reached.
public enum HostileOffset: String, Sendable, Hashable, CaseIterable {
    /// The first chunk is taken; every later answer repeats the offset it reached.
    case stuck
    /// The first chunk is taken; every later chunk is answered with its own `off` minus 1.
    case backwards
    /// Every chunk is answered with `off` 0 and nothing is written.
    case zero
    /// Every chunk is answered with `off` 1 and nothing is written.
    case one
}

/// How a ``SimulatedDevice`` is built and which faults it injects.
public struct SimulatorConfiguration: Sendable {
    /// Size of each image slot in bytes.
    public var slotSize: Int = 256 * 1024
    /// Erase granularity of each slot in bytes.
    public var sectorSize: Int = 4 * 1024
    /// Updatable images (1 or 2). Image N uses absolute slots 2N (primary) and 2N+1 (secondary).
    public var imageCount: Int = 1
    /// `buf_size` reported by mcumgr params: the largest request packet (header included) accepted.
    public var bufferSize: Int = 2048
    /// `buf_count` reported by mcumgr params.
    public var bufferCount: Int = 4
    /// A `buf_size` to report instead of ``bufferSize`` (a device that misreports its buffer);
    /// the device still takes requests up to ``bufferSize``.
    public var reportedBufferSize: Int?
    /// Whether OS command 6 (mcumgr params) is supported; otherwise it answers `rc 8`.
    public var supportsParams: Bool = true
    /// Drop (without answering) request packets larger than ``bufferSize``, as a Zephyr transport does.
    /// It also sets the transport limits endpoints apply (``frameLimits``).
    public var enforceBufferSize: Bool = true
    /// `CONFIG_MCUMGR_TRANSPORT_UDP_MTU`: the largest datagram the UDP endpoint takes, separate
    /// from ``bufferSize``. Zephyr's default is 1500 (subsys/mgmt/mcumgr/transport/Kconfig.udp;
    /// smp_udp.c receives into a buffer of this size).
    public var udpMTU: Int = 1500
    /// What the UDP endpoint does with a datagram over ``udpMTU``.
    public var udpOversize: UDPOversizeHandling = .drop
    /// `CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY`: whether the BLE peripheral gathers a request from
    /// several writes (up to ``bufferSize``) or takes each write as a whole packet.
    public var bleReassembly: Bool = true
    /// The Zephyr release to follow where answers differ (erasing an empty slot).
    public var zephyrVersion: SimulatedZephyrVersion = .v3_5
    /// Answer SMP v1 requests with `rc 12` (a Zephyr build without the original protocol).
    public var rejectV1: Bool = false
    /// Whether image command 6 (slot info) is supported; otherwise it answers `rc 8`.
    public var supportsSlotInfo: Bool = true
    /// Refuse OS reset with `rc 10` (busy) unless the request carries `force`.
    public var refuseResetUnlessForced: Bool = false
    /// The hash and checksum types of the file group (CONFIG_MCUMGR_GRP_FS_CHECKSUM_IEEE_CRC32,
    /// CONFIG_MCUMGR_GRP_FS_HASH_SHA256); empty: no hash command (CONFIG_MCUMGR_GRP_FS_CHECKSUM_HASH
    /// off, answered `rc 8`).
    public var fileHashTypes: [String] = ["crc32", "sha256"]
    /// Version of the factory image in each primary slot (active and confirmed).
    public var initialVersion: String = "1.0.0"
    /// Replace the generated factory image of image 0 with these bytes.
    public var initialImage: [UInt8]? = nil
    /// After the last upload chunk, check the slot like `img_mgmt_read_info` (magic, TLV area,
    /// SHA-256 TLV) and answer the final chunk with the image group error (3 NO_IMAGE,
    /// 4 NO_TLVS, 8 HASH_NOT_FOUND) when it fails. Zephyr itself completes the upload and
    /// only fails later (state read omits the slot, state write answers 8), which is the default.
    public var validateOnCompletion: Bool = false

    // MARK: Fault injection

    /// MCUboot refuses every new image at boot, as when it was signed with another key: the
    /// pending image is erased instead of swapped in, and the old image keeps running.
    public var bootloaderRejectsImages: Bool = false

    /// Rules checked before a request is handled; the first match answers instead.
    public var forcedErrors: [FaultRule] = []
    /// Responses to lose.
    public var dropResponses: ResponseDropPolicy? = nil
    /// Delay before each response is returned.
    public var responseDelay: Duration = .zero
    /// Answer this many upload requests with `rc 10` (busy) before handling uploads again;
    /// `Int.max` answers busy forever.
    public var busyCount: Int = 0
    /// Answer upload chunks with an offset that does not follow the data (a livelock test).
    public var hostileOffset: HostileOffset? = nil

    /// Seed of the random link faults below; each fault draws from its own generator, so
    /// turning one on does not change the schedule of another.
    public var faultSeed: UInt64 = 1
    /// Probability that a request packet is held back and handled after the next one (or
    /// dropped with the link if none follows), as a link with several paths reorders them.
    public var reorderRate: Double = 0
    /// Probability that a response packet is sent twice.
    public var duplicateRate: Double = 0
    /// Probability that a response's CBOR body is corrupted so that it does not decode (its first
    /// byte gets the reserved additional information 28, and one more byte is flipped).
    public var corruptRate: Double = 0
    /// Probability that a response is cut short (header intact, body shorter than its length).
    public var truncateRate: Double = 0
    /// Size of every secondary slot, when it differs from ``slotSize`` (for "image too large").
    public var secondarySlotSizeOverride: Int? = nil
    /// The device resets itself while writing an upload chunk that reaches this file offset:
    /// bytes before the offset are in flash, no response is sent, and the output says `resetting`.
    /// Fires once.
    public var resetDuringUploadAtOffset: Int? = nil
    /// Keep the upload state (offset, length, sha) across resets. Zephyr keeps it in RAM, so the
    /// default `false` loses it: after a reset the next first chunk starts over from offset 0.
    public var keepUploadStateAcrossReset: Bool = false
    /// Ask the transport to disconnect once this many request bytes have been received in
    /// total (the response to that request is still sent). Fires once.
    public var disconnectAfterBytes: Int? = nil

    public init() {}

    /// The size of an absolute slot.
    public func size(ofSlot slot: Int) -> Int {
        if slot % 2 == 1, let override = secondarySlotSizeOverride { return max(0, override) }
        return max(0, slotSize)
    }

    /// The number of absolute slots.
    public var slotCount: Int { 2 * min(max(imageCount, 1), 2) }

    /// The transport limits a Zephyr device with this configuration applies (see
    /// ``SMPServerFrameLimits``): net_buf of ``bufferSize``, UDP MTU, BLE reassembly.
    public var frameLimits: SMPServerFrameLimits {
        SMPServerFrameLimits(
            netbufSize: enforceBufferSize ? max(0, bufferSize) : nil, udpMTU: enforceBufferSize ? max(0, udpMTU) : nil,
            udpOversize: udpOversize, bleReassembly: bleReassembly)
    }
}
