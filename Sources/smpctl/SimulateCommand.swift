import ArgumentParser
import Foundation
import SMPCtlConnection
import SMPCtlBlueZ
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport

/// Simulator settings, from `smpctl simulate` flags or the query of a `sim?...` connection.
struct SimulatorOptions: ParsableArguments {
    @Option(name: .customLong("slot-size"), help: ArgumentHelp("Size of each image slot in bytes.", valueName: "bytes"))
    var slotSize: Int = 256 * 1024

    @Option(name: .customLong("sector-size"), help: ArgumentHelp("Flash erase sector size in bytes.", valueName: "bytes"))
    var sectorSize: Int = 4096

    @Option(name: .customLong("secondary-slot-size"), help: ArgumentHelp("Make secondary slots this size (a slot too small for the image).", valueName: "bytes"))
    var secondarySlotSize: Int?

    @Option(help: ArgumentHelp("Number of updatable images (1 or 2).", valueName: "n"))
    var images: Int = 1

    @Option(name: .customLong("image-slot-size"), help: ArgumentHelp("Give image N's slots another size than --slot-size, as IMAGE:BYTES (1:262144 for an nRF5340 network core); may be repeated.", valueName: "image:bytes"))
    var imageSlotSizes: [String] = []

    @Option(name: .customLong("buf-size"), help: ArgumentHelp("SMP buffer size reported by mcumgr params.", valueName: "bytes"))
    var bufferSize: Int = 2048

    @Option(name: .customLong("buf-count"), help: ArgumentHelp("SMP buffer count reported by mcumgr params.", valueName: "n"))
    var bufferCount: Int = 4

    @Option(name: .customLong("report-buf-size"), help: ArgumentHelp("Report this buf_size in mcumgr params instead of --buf-size, as a device that misreports its buffer (requests up to --buf-size are still taken).", valueName: "bytes"))
    var reportedBufferSize: Int?

    @Flag(name: .customLong("no-params"), help: "Answer mcumgr params with rc 8 (not supported).")
    var noParams = false

    @Flag(name: .customLong("no-slot-info"), help: "Answer slot info with rc 8 (not supported).")
    var noSlotInfo = false

    @Flag(name: .customLong("reject-v1"), help: "Answer SMP v1 requests with rc 12 (version too old).")
    var rejectV1 = false

    @Flag(name: .customLong("reject-images"), help: "Make the bootloader refuse every new image at boot (as with a signature from another key).")
    var rejectImages = false

    @Flag(name: .customLong("refuse-reset"), help: "Answer reset with rc 10 (busy) unless it is forced.")
    var refuseReset = false

    @Option(name: .customLong("fs-hashes"), help: ArgumentHelp("The file group's hash and checksum types, comma-separated (crc32, sha256), or none for no hash command.", valueName: "types"))
    var fsHashes: String = "crc32,sha256"

    @Option(name: .customLong("running-version"), help: ArgumentHelp("Version of the factory image that runs at start.", valueName: "version"))
    var runningVersion: String = "1.0.0"

    @Option(
        name: .customLong("fail"),
        help: ArgumentHelp(
            "Answer a command with an error: GROUP:COMMAND:rc=N or GROUP:COMMAND:err=N, optionally ,count=N and ,from=OFFSET (uploads).",
            discussion: "GROUP and COMMAND are numbers or names (os, image; echo, reset, params, state, upload, erase, slot-info). May be repeated.",
            valueName: "rule"))
    var fail: [String] = []

    @Option(name: .customLong("drop"), help: ArgumentHelp("Drop the responses to these requests (1-based, comma-separated).", valueName: "n,..."))
    var drop: String?

    @Option(name: .customLong("drop-rate"), help: ArgumentHelp("Drop each response with this probability (0 to 1).", valueName: "p"))
    var dropRate: Double?

    @Option(name: .customLong("delay"), help: ArgumentHelp("Delay every response by this many milliseconds.", valueName: "ms"))
    var delay: Int = 0

    @Option(name: .customLong("busy"), help: ArgumentHelp("Answer this many upload requests with rc 10 (busy); forever never stops.", valueName: "n|forever"))
    var busy: String = "0"

    @Option(name: .customLong("udp-mtu"), help: ArgumentHelp("Largest UDP datagram taken (CONFIG_MCUMGR_TRANSPORT_UDP_MTU); longer ones get no answer.", valueName: "bytes"))
    var udpMTU: Int = 1500

    @Flag(name: .customLong("udp-truncate"), help: "Cut a datagram over --udp-mtu to its first bytes (Zephyr then answers rc 9) instead of losing it.")
    var udpTruncate = false

    @Flag(name: .customLong("no-reassembly"), help: "BLE: take every write as a whole request (no CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY).")
    var noReassembly = false

    @Option(name: .customLong("zephyr-version"), help: ArgumentHelp("Answer as this Zephyr release where they differ: 3.5 (erasing an empty slot answers rc 1) or 3.6.", valueName: "version"))
    var zephyrVersion: String = "3.5"

    @Option(name: .customLong("hostile-offset"), help: ArgumentHelp("Answer upload chunks with an offset that does not follow the data: stuck, backwards, zero or one.", valueName: "mode"))
    var hostileOffset: String?

    @Option(name: .customLong("fault-seed"), help: ArgumentHelp("Seed of the random faults (--drop-rate, --reorder-rate, --request-loss-rate, --duplicate-rate, --corrupt-rate, --truncate-rate, --ble-reorder-rate).", valueName: "n"))
    var faultSeed: UInt64 = 1

    @Option(name: .customLong("reorder-rate"), help: ArgumentHelp("Hold each request back with this probability and handle it after the next one.", valueName: "p"))
    var reorderRate: Double = 0

    @Option(name: .customLong("request-loss-rate"), help: ArgumentHelp("Lose each request before the device sees it with this probability (no answer, nothing done).", valueName: "p"))
    var requestLossRate: Double = 0

    @Option(name: .customLong("duplicate-rate"), help: ArgumentHelp("Send each response twice with this probability.", valueName: "p"))
    var duplicateRate: Double = 0

    @Option(name: .customLong("corrupt-rate"), help: ArgumentHelp("Corrupt each response's CBOR body with this probability.", valueName: "p"))
    var corruptRate: Double = 0

    @Option(name: .customLong("truncate-rate"), help: ArgumentHelp("Cut each response short with this probability.", valueName: "p"))
    var truncateRate: Double = 0

    @Option(name: .customLong("ble-reorder-rate"), help: ArgumentHelp("BLE: deliver each write after the next one with this probability, as EATT bearers can.", valueName: "p"))
    var bleReorderRate: Double = 0

    @Option(name: .customLong("reset-at"), help: ArgumentHelp("Reset the device while an upload reaches this offset.", valueName: "offset"))
    var resetAt: Int?

    @Option(
        help: ArgumentHelp(
            "Emulate a link: ble:mtu=N,interval=Nms,ppe=N,phy=1m|2m|coded,dle=N,reassembly=yes|no, serial:BAUD or ideal, optionally followed by ;erase=Nms,write=Nms (flash time per sector and per KiB).",
            valueName: "link"))
    var link: String?

    @Option(name: .customLong("disconnect-after"), help: ArgumentHelp("Cut the link once this many request bytes have arrived.", valueName: "bytes"))
    var disconnectAfter: Int?

    @Flag(name: .customLong("ncs-34106"), help: "With --images 2, skip the network core's update (image 1) at boot when the application core's image was marked first, as MCUboot in nRF Connect SDK 2.6.0 to 3.4.0 does (NCSDK-34106).")
    var networkCoreOrderSkip = false

    @Flag(help: "Start in MCUboot serial recovery: answer only what boot_serial.c answers, upload to the primary slot, boot the primary image on reset when it is valid.")
    var recovery = false

    @Option(name: .customLong("mcuboot-version"), help: ArgumentHelp("With --recovery, answer as this MCUboot release: 2 (unsupported commands answer rc 8) or 1.8 (erase answers rc 0 and does nothing, echo and params get no answer, 512-byte buffer).", valueName: "version"))
    var mcubootVersion: String = "2"

    @Option(name: .customLong("recovery-buf-size"), help: ArgumentHelp("With --recovery, MCUBOOT_SERIAL_MAX_RECEIVE_SIZE (reported as buf_size by mcumgr params).", valueName: "bytes"))
    var recoveryBufferSize: Int = 1024

    @Flag(name: .customLong("recovery-no-params"), help: "With --recovery, answer mcumgr params with rc 8 (MCUboot built without CONFIG_BOOT_MGMT_MCUMGR_PARAMS).")
    var recoveryNoParams = false

    @Flag(name: .customLong("recovery-no-hash"), help: "With --recovery, list images without their hash (MCUboot built without CONFIG_BOOT_SERIAL_IMG_GRP_HASH).")
    var recoveryNoHash = false

    @Option(name: .customLong("recovery-primary"), help: ArgumentHelp("With --recovery, what image 0's primary slot holds at start: valid (the factory image), empty or corrupt (its hash no longer matches); with empty or corrupt the device stays in recovery until a valid image is uploaded.", valueName: "state"))
    var recoveryPrimary: String = "valid"

    @Flag(name: .customLong("recovery-bootloader-info"), help: "With --recovery, answer bootloader info with MCUboot and its mode (a port built with it; boot_serial.c answers rc 8).")
    var recoveryBootloaderInfo = false

    /// The emulated link.
    func linkModel() throws -> LinkModel {
        guard let link else { return .ideal }
        do {
            return try LinkModel(parsing: link)
        } catch {
            throw ValidationError("--link: \(error)")
        }
    }

    /// The simulator behind a server adapter with the emulated link.
    /// `statePath` (`sim?state=FILE`) is a saved state to start from, when the file exists.
    func server(log: (@Sendable (String) -> Void)? = nil, statePath: String? = nil) throws -> SimulatorServer {
        let link = try linkModel()
        var configuration = try configuration()
        // A BLE device without reassembly takes one write per request: its buffer is MTU − 3.
        if let limit = link.maximumRequestSize { configuration.bufferSize = min(configuration.bufferSize, limit) }
        var device = SimulatedDevice(configuration: configuration)
        if let statePath, let state = try SimulatorStateFile.load(statePath, configuration: configuration) {
            do {
                device = try SimulatedDevice(configuration: configuration, restoring: state)
            } catch {
                throw ConnectionError("sim?state: \(statePath) cannot be used: \(error.message)")
            }
        }
        return SimulatorServer(device: device, link: link, log: log)
    }

    func validate() throws {
        _ = try linkModel()
        guard slotSize > 0, slotSize <= 64 << 20 else { throw ValidationError("--slot-size must be 1 byte to 64 MiB") }
        guard sectorSize > 0, sectorSize <= slotSize else { throw ValidationError("--sector-size must be positive and at most the slot size") }
        guard images == 1 || images == 2 else { throw ValidationError("--images must be 1 or 2") }
        guard bufferSize >= 64, bufferSize <= 65535 else { throw ValidationError("--buf-size must be 64 to 65535") }
        guard bufferCount >= 1, bufferCount <= 64 else { throw ValidationError("--buf-count must be 1 to 64") }
        if let reportedBufferSize, !(0...65535).contains(reportedBufferSize) {
            throw ValidationError("--report-buf-size must be 0 to 65535")
        }
        if let dropRate, !(0...1).contains(dropRate) { throw ValidationError("--drop-rate must be between 0 and 1") }
        for (name, rate) in [
            ("--reorder-rate", reorderRate), ("--duplicate-rate", duplicateRate), ("--corrupt-rate", corruptRate),
            ("--truncate-rate", truncateRate), ("--ble-reorder-rate", bleReorderRate),
            ("--request-loss-rate", requestLossRate),
        ] where !(0...1).contains(rate) {
            throw ValidationError("\(name) must be between 0 and 1")
        }
        guard udpMTU >= SMPHeader.size, udpMTU <= 65507 else { throw ValidationError("--udp-mtu must be 8 to 65507") }
        _ = try busyCount()
        _ = try slotSizesByImage()
        _ = try zephyr()
        _ = try recoverySettings()
        _ = try hostile()
        for rule in fail { _ = try Self.parseRule(rule) }
        _ = try dropSet()
    }

    private func slotSizesByImage() throws -> [Int: Int] {
        var sizes: [Int: Int] = [:]
        for text in imageSlotSizes {
            let parts = text.split(separator: ":")
            guard parts.count == 2, let image = Int(parts[0]), (0...1).contains(image), let size = Int(parts[1]),
                size > 0, size <= 64 << 20
            else { throw ValidationError("--image-slot-size takes IMAGE:BYTES, with image 0 or 1 and 1 byte to 64 MiB") }
            sizes[image] = size
        }
        return sizes
    }

    private func busyCount() throws -> Int {
        if busy == "forever" { return Int.max }
        guard let count = Int(busy), count >= 0 else { throw ValidationError("--busy takes a count or forever") }
        return count
    }

    private func hashTypes() throws -> [String] {
        if fsHashes == "none" { return [] }
        let types = fsHashes.split(separator: ",").map(String.init)
        guard !types.isEmpty, types.allSatisfy({ $0 == "crc32" || $0 == "sha256" }) else {
            throw ValidationError("--fs-hashes takes crc32, sha256, both comma-separated, or none")
        }
        return types
    }

    private func zephyr() throws -> SimulatedZephyrVersion {
        guard let version = SimulatedZephyrVersion(rawValue: zephyrVersion) else {
            throw ValidationError("--zephyr-version takes 3.5 or 3.6")
        }
        return version
    }

    private func recoverySettings() throws -> SimulatedRecovery? {
        guard let version = SimulatedMCUbootVersion(rawValue: mcubootVersion) else {
            throw ValidationError("--mcuboot-version takes 2 or 1.8")
        }
        guard recoveryBufferSize >= 128, recoveryBufferSize <= 65535 else {
            throw ValidationError("--recovery-buf-size must be 128 to 65535 (boot/zephyr/Kconfig.serial_recovery)")
        }
        guard let primary = SimulatedPrimaryImage(rawValue: recoveryPrimary) else {
            throw ValidationError("--recovery-primary takes valid, empty or corrupt")
        }
        guard recovery else { return nil }
        var settings = SimulatedRecovery()
        settings.version = version
        settings.receiveSize = recoveryBufferSize
        settings.reportsParameters = !recoveryNoParams
        settings.listsHashes = !recoveryNoHash
        settings.bootloaderInfo = recoveryBootloaderInfo
        settings.primaryImage = primary
        return settings
    }

    private func hostile() throws -> HostileOffset? {
        guard let hostileOffset else { return nil }
        guard let mode = HostileOffset(rawValue: hostileOffset) else {
            throw ValidationError("--hostile-offset takes stuck, backwards, zero or one")
        }
        return mode
    }

    /// The EATT-style write reordering for the BLE peripheral, if any.
    var writeReordering: BLEPeripheral.WriteReordering? {
        bleReorderRate > 0 ? BLEPeripheral.WriteReordering(rate: bleReorderRate, seed: faultSeed) : nil
    }

    private func dropSet() throws -> Set<Int>? {
        guard let drop else { return nil }
        var numbers = Set<Int>()
        for part in drop.split(separator: ",") {
            guard let n = Int(part), n > 0 else { throw ValidationError("--drop takes request numbers such as 3,7") }
            numbers.insert(n)
        }
        return numbers
    }

    /// The simulator configuration these options describe.
    func configuration() throws -> SimulatorConfiguration {
        var configuration = SimulatorConfiguration()
        configuration.slotSize = slotSize
        configuration.sectorSize = sectorSize
        configuration.secondarySlotSizeOverride = secondarySlotSize
        configuration.imageCount = images
        configuration.slotSizeByImage = try slotSizesByImage()
        configuration.bufferSize = bufferSize
        configuration.bufferCount = bufferCount
        configuration.reportedBufferSize = reportedBufferSize
        configuration.supportsParams = !noParams
        configuration.supportsSlotInfo = !noSlotInfo
        configuration.rejectV1 = rejectV1
        configuration.refuseResetUnlessForced = refuseReset
        configuration.fileHashTypes = try hashTypes()
        configuration.bootloaderRejectsImages = rejectImages
        configuration.initialVersion = runningVersion
        configuration.forcedErrors = try fail.map(Self.parseRule)
        if let numbers = try dropSet() {
            configuration.dropResponses = .requests(numbers)
        } else if let dropRate {
            configuration.dropResponses = .random(probability: dropRate, seed: faultSeed)
        }
        configuration.responseDelay = .milliseconds(delay)
        configuration.busyCount = try busyCount()
        configuration.udpMTU = udpMTU
        configuration.udpOversize = udpTruncate ? .truncate : .drop
        configuration.bleReassembly = !noReassembly
        configuration.zephyrVersion = try zephyr()
        configuration.hostileOffset = try hostile()
        configuration.faultSeed = faultSeed
        configuration.reorderRate = reorderRate
        configuration.duplicateRate = duplicateRate
        configuration.requestLossRate = requestLossRate
        configuration.corruptRate = corruptRate
        configuration.truncateRate = truncateRate
        configuration.resetDuringUploadAtOffset = resetAt
        configuration.disconnectAfterBytes = disconnectAfter
        configuration.recovery = try recoverySettings()
        configuration.networkCoreOrderSkip = networkCoreOrderSkip
        return configuration
    }

    /// Builds the simulator from a `sim?key=value&...` query, using the same names as the flags,
    /// starting from the state saved in `statePath` when there is one.
    static func server(from query: [String: String], statePath: String? = nil) throws -> SimulatorServer {
        var arguments: [String] = []
        for key in query.keys.sorted() {
            let value = query[key] ?? ""
            if value.isEmpty || value == "true" {
                arguments.append("--\(key)")
            } else {
                for part in key == "fail" ? value.split(separator: ";").map(String.init) : [value] {
                    arguments.append("--\(key)")
                    arguments.append(part)
                }
            }
        }
        let options: SimulatorOptions
        do {
            options = try SimulatorOptions.parse(arguments)
        } catch {
            throw ConnectionError("invalid simulator option in the sim connection: \(SimulatorOptions.message(for: error))")
        }
        do {
            return try options.server(statePath: statePath)
        } catch let error as ConnectionError {
            throw error
        } catch {
            throw ConnectionError("invalid simulator option in the sim connection: \(SimulatorOptions.message(for: error))")
        }
    }

    static func parseRule(_ text: String) throws -> FaultRule {
        let usage = "a --fail rule looks like image:upload:err=30 or os:reset:rc=10[,count=N][,from=OFFSET]"
        let fields = text.split(separator: ",")
        guard let head = fields.first else { throw ValidationError(usage) }
        let parts = head.split(separator: ":")
        guard parts.count == 3, let group = SMPGroupID(nameOrNumber: String(parts[0])) else { throw ValidationError(usage) }
        guard let command = commandNumber(String(parts[1]), group: group) else {
            throw ValidationError("unknown command \(parts[1]) in --fail \(text)")
        }
        let code = parts[2].split(separator: "=")
        guard code.count == 2, let value = Int(code[1]) else { throw ValidationError(usage) }
        let error: SimulatedError
        switch code[0] {
        case "rc": error = .smp(value)
        case "err": error = .group(value)
        default: throw ValidationError(usage)
        }
        var rule = FaultRule(group: group, command: command, error: error)
        for field in fields.dropFirst() {
            let pair = field.split(separator: "=")
            guard pair.count == 2, let number = Int(pair[1]) else { throw ValidationError(usage) }
            switch pair[0] {
            case "count": rule.count = number
            case "from": rule.minimumUploadOffset = number
            default: throw ValidationError(usage)
            }
        }
        return rule
    }

    static func commandNumber(_ text: String, group: SMPGroupID) -> UInt8? {
        if let number = UInt8(text) { return number }
        let names: [String: UInt8]
        switch group {
        case .os:
            names = ["echo": 0, "taskstat": 2, "datetime": 4, "reset": 5, "params": 6, "info": 7, "bootloader-info": 8]
        case .image:
            names = ["state": 0, "upload": 1, "erase": 5, "slot-info": 6]
        default:
            names = [:]
        }
        return names[text]
    }
}

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the device simulator as an SMP server over UDP, a pseudo-terminal or BLE.",
        discussion: """
            The simulator behaves like a Zephyr device with MCUboot: two slots per image, MCUboot \
            test/confirm/revert semantics across resets, and the image checks Zephyr makes. The \
            fault options reproduce failures seen in the field. It runs until interrupted.
            """)

    @Option(help: ArgumentHelp("Serve SMP over UDP on HOST:PORT (port 0 picks a free one).", valueName: "host:port"))
    var udp: String?

    @Flag(help: "Serve SMP console framing on a new pseudo-terminal and print its path.")
    var pty = false

    @Flag(help: "Serve SMP as a BLE peripheral through BlueZ (GATT service and advertisement); prints ble:NAME.")
    var ble = false

    @Option(help: ArgumentHelp("The Bluetooth adapter for --ble (default: the first powered one).", valueName: "hciN"))
    var adapter: String?

    @Option(help: ArgumentHelp("The advertised name for --ble.", valueName: "name"))
    var name: String = "smpctl-sim"

    @Option(name: .customLong("ble-security"), help: ArgumentHelp(
        "The link --ble demands for SMP, as Zephyr's CONFIG_MCUMGR_TRANSPORT_BT_PERM_RW*: open, encrypt (pair first; Just Works will do) or authenticate (a passkey pairing).",
        valueName: "level"))
    var bleSecurity: BLESecurityArgument = .open

    @Option(name: .customLong("exit-after"), help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var exitAfter: Double?

    @OptionGroup var simulator: SimulatorOptions

    @OptionGroup var verbosity: VerboseOption

    @OptionGroup(title: "Fleet of simulated devices") var fleet: SimulatedFleetArguments

    func validate() throws {
        guard udp != nil || pty || ble else { throw ValidationError("choose --udp HOST:PORT, --pty or --ble") }
        if fleet.devices != nil, pty || ble { throw ValidationError("--devices serves UDP only; leave out --pty and --ble") }
        if bleSecurity != .open, !ble { throw ValidationError("--ble-security applies to --ble only") }
        if fleet.devices == nil, fleet.usesFleetOptions { throw ValidationError("the fleet fault options need --devices N") }
        if !ble, adapter != nil { throw ValidationError("--adapter needs --ble") }
        guard !name.isEmpty, name.utf8.count <= 29 else { throw ValidationError("--name must be 1 to 29 bytes") }
    }

    /// Prints a connection string clients can use, unbuffered so scripts see it at once.
    private func announce(_ connection: String) {
        FileHandle.standardOutput.write(Data((connection + "\n").utf8))
    }

    func run() async throws {
        if let count = fleet.devices, let udp {
            try await fleet.serve(count: count, udp: udp, simulator: simulator, exitAfter: exitAfter)
            return
        }
        // The BLE peripheral reassembles requests split across writes (as Zephyr does with
        // CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY), so it reports its whole buffer.
        // -v: each request, erase, reset and boot decision, as a line on standard error.
        var log: (@Sendable (String) -> Void)?
        if verbosity.verbose { log = { @Sendable line in Output.diagnostic("simulator: " + line) } }
        let server = try simulator.server(log: log)
        if server.link != .ideal {
            let requestSize = server.device.configuration.bufferSize
            var line = "link: \(server.link)"
            if let capacity = server.link.uploadCapacity(
                fileLength: 1 << 20, requestSize: requestSize, sectorSize: server.device.configuration.sectorSize)
            {
                line += String(format: "; upload capacity %.1f KiB/s with %d-byte requests", capacity / 1024, requestSize)
            }
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        var udpEndpoint: UDPServerEndpoint?
        var ptyEndpoint: PTYServerEndpoint?
        if let udp {
            // Port 0 binds any free port (the endpoint prints the one it got).
            guard let (host, port) = try? ConnectionSpec.parseUDPEndpoint(udp, allowingPortZero: true) else {
                throw ValidationError("--udp takes HOST:PORT, such as 127.0.0.1:1337")
            }
            let endpoint = try UDPServerEndpoint(host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port, server: server)
            udpEndpoint = endpoint
            announce("udp:\(host):\(endpoint.boundPort)")
        }
        if pty {
            let endpoint = try PTYServerEndpoint(server: server)
            ptyEndpoint = endpoint
            announce("serial:\(endpoint.path)")
        }
        var peripheral: BLEPeripheral?
        if ble {
            do {
                peripheral = try await BLEPeripheral.start(
                    server: server, adapter: adapter, name: name, writeReordering: simulator.writeReordering,
                    security: bleSecurity.security)
            } catch {
                udpEndpoint?.stop()
                await ptyEndpoint?.stop()
                FileHandle.standardError.write(Data("smpctl: \(error.description)\n".utf8))
                throw ExitCode(1)
            }
            announce("ble:\(name)")
        }
        if let exitAfter {
            try? await Task.sleep(for: .milliseconds(Int(exitAfter * 1000)))
        } else {
            // Ctrl-C or SIGTERM cancels the command (see Interruption); then unregister from BlueZ
            // and restore the adapter's name.
            await Interruption.waitForCancellation()
        }
        // The cleanup runs outside the cancelled task, so its D-Bus calls and waits still happen.
        await Interruption.uncancelled { [udpEndpoint, ptyEndpoint, peripheral] in
            udpEndpoint?.stop()
            await ptyEndpoint?.stop()
            if let peripheral {
                let stats = await peripheral.statistics
                FileHandle.standardError.write(Data((
                    "ble: \(stats.requests) requests, largest \(stats.largestRequest) bytes, up to "
                        + "\(stats.mostWritesPerRequest) writes per request, \(stats.refusedWrites) writes refused\n").utf8))
                await peripheral.stop()
            }
        }
    }
}

/// `--ble-security`: the CLI's names for ``BLEPeripheral/Security``.
enum BLESecurityArgument: String, ExpressibleByArgument, CaseIterable {
    case open, encrypt, authenticate

    var security: BLEPeripheral.Security {
        switch self {
        case .open: .open
        case .encrypt: .encrypt
        case .authenticate: .authenticate
        }
    }
}
