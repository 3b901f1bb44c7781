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

/// The MCUboot release whose serial recovery (boot/boot_serial/src/boot_serial.c) the simulator
/// follows in recovery mode, where answers differ by release.
public enum SimulatedMCUbootVersion: String, Sendable, Hashable, CaseIterable {
    /// Before MCUboot 1.9.0 (commit c9dc2249, "Respond with rc code for all mcumgr commands"):
    /// boot_serial_input answered an image command other than state and upload (such as erase)
    /// with `{rc: 0}` and did nothing (bs_empty_rsp), answered a state write with the image list
    /// (bs_list ignored the operation), and gave no answer at all to an OS command other than
    /// reset (echo, mcumgr params) or to another group. The receive buffer was a fixed 512 bytes
    /// (BOOT_SERIAL_INPUT_MAX).
    case v1_8 = "1.8"
    /// MCUboot 1.9 and later (up to the main branch read): every unsupported command is answered
    /// `{rc: 8}` (bs_rc_rsp(MGMT_ERR_ENOTSUP)); echo with CONFIG_BOOT_MGMT_ECHO; mcumgr params
    /// with CONFIG_BOOT_MGMT_MCUMGR_PARAMS (after v2.4.0, commit 5fa70775).
    case v2 = "2"
}

/// How the simulated MCUboot serial recovery was built (its Kconfig options).
public struct SimulatedRecovery: Sendable, Hashable {
    /// The release whose answers are modelled.
    public var version: SimulatedMCUbootVersion = .v2
    /// MCUBOOT_SERIAL_MAX_RECEIVE_SIZE (CONFIG_BOOT_SERIAL_MAX_RECEIVE_SIZE, default 1024 in
    /// boot/zephyr/Kconfig.serial_recovery): in_buf and dec_buf are this size plus one, and
    /// dec_buf holds the frame's length, the packet and its CRC16 (boot_serial_in_dec), so a
    /// packet of at most this size − 3 is taken. 512 before 2.0.
    public var receiveSize: Int = 1024
    /// CONFIG_BOOT_MGMT_MCUMGR_PARAMS: bs_mcumgr_params answers `buf_size` =
    /// MCUBOOT_SERIAL_MAX_RECEIVE_SIZE and `buf_count` 1; without it, `rc 8`.
    public var reportsParameters: Bool = true
    /// CONFIG_BOOT_MGMT_ECHO: bs_echo answers `{r: d}`; without it, `rc 8`.
    public var echo: Bool = true
    /// CONFIG_BOOT_SERIAL_IMG_GRP_HASH (default y): bs_list includes each image's `hash`.
    public var listsHashes: Bool = true
    /// Answer OS bootloader info (command 8) with `bootloader: MCUboot` and, for the `mode`
    /// query, the mode. boot_serial.c as read (main branch, after v2.4.0) has no such handler and
    /// answers `rc 8`, which is the default; this models a port built with one.
    public var bootloaderInfo: Bool = false
    /// What image 0's primary slot holds when the device starts: the factory image, nothing, or
    /// a factory image whose payload no longer matches its SHA-256 TLV. With an empty or corrupt
    /// primary the device is stuck in recovery until a valid image is uploaded: MCUboot's
    /// boot/zephyr/main.c enters boot_serial_start when no image validates
    /// (CONFIG_BOOT_SERIAL_NO_APPLICATION), and boot_serial.c's bs_list leaves out a slot whose
    /// header has no IMAGE_MAGIC or that bootutil_img_validate refuses, so both list no image.
    public var primaryImage: SimulatedPrimaryImage = .valid

    public init() {}

    /// The largest SMP packet (header included) boot_serial_in_dec takes.
    public var packetLimit: Int { max(0, (version == .v1_8 ? 512 : min(max(receiveSize, 0), 65535)) - 3) }
}

/// The state of image 0's primary slot at the start of a simulated recovery
/// (``SimulatedRecovery/primaryImage``).
public enum SimulatedPrimaryImage: String, Sendable, Hashable, CaseIterable {
    /// The factory image: valid, so a reset without an upload boots it.
    case valid
    /// Erased (every byte 0xFF): no IMAGE_MAGIC.
    case empty
    /// The factory image with one payload byte changed: its header is intact and its hash TLV
    /// no longer matches, so bootutil_img_validate refuses it.
    case corrupt
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
    /// Start in MCUboot serial recovery (as when its GPIO is held at power-on): the device answers
    /// only what boot/boot_serial/src/boot_serial.c answers, uploads go to the primary slot, and
    /// a reset boots the primary image when it is valid. `nil`: no serial recovery. With it, a
    /// reset with `boot_mode` 1 (CONFIG_BOOT_SERIAL_BOOT_MODE) or no valid application
    /// (CONFIG_BOOT_SERIAL_NO_APPLICATION) also enters recovery.
    public var recovery: SimulatedRecovery? = nil
    /// With two images, model NCSDK-34106 (nRF Connect SDK 2.6.0 to 3.4.0): a boot skips the
    /// network core's pending update (image 1) when the application core's image (0) was marked
    /// before it; the network core keeps its old image.
    public var networkCoreOrderSkip: Bool = false
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
    /// Probability that a request packet is lost on its way to the device: never handled, never
    /// answered (a lost datagram or a frame the line garbled), so the device's state does not move.
    public var requestLossRate: Double = 0
    /// Probability that a response packet is sent twice.
    public var duplicateRate: Double = 0
    /// Probability that a response's CBOR body is corrupted so that it does not decode (its first
    /// byte gets the reserved additional information 28, and one more byte is flipped).
    public var corruptRate: Double = 0
    /// Probability that a response is cut short (header intact, body shorter than its length).
    public var truncateRate: Double = 0
    /// Size of every secondary slot, when it differs from ``slotSize`` (for "image too large").
    public var secondarySlotSizeOverride: Int? = nil
    /// Slot size per image number, where it differs from ``slotSize`` (an nRF5340's network core
    /// has smaller slots than its application core). ``secondarySlotSizeOverride`` still wins
    /// for secondary slots.
    public var slotSizeByImage: [Int: Int] = [:]
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
        return max(0, slotSizeByImage[slot / 2] ?? slotSize)
    }

    /// The number of absolute slots.
    public var slotCount: Int { 2 * min(max(imageCount, 1), 2) }

    /// The transport limits a Zephyr device with this configuration applies (see
    /// ``SMPServerFrameLimits``): net_buf of ``bufferSize``, UDP MTU, BLE reassembly.
    public var frameLimits: SMPServerFrameLimits {
        // In recovery the serial decoder takes MCUboot's packet limit plus the 4 framing bytes;
        // SimulatedDevice drops what the current mode does not take.
        let netbuf = max(0, bufferSize, recovery.map { $0.packetLimit + 4 } ?? 0)
        return SMPServerFrameLimits(
            netbufSize: enforceBufferSize ? netbuf : nil, udpMTU: enforceBufferSize ? max(0, udpMTU) : nil,
            udpOversize: udpOversize, bleReassembly: bleReassembly)
    }
}
