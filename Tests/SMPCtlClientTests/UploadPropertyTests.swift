import SMPCtlTestSupport
import Foundation
import Testing
@testable import SMPCtlClient
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport

/// The upload invariant over seeded random fault schedules: the upload ends within a bound
/// computed from the emulated link, with the device holding the exact image in image 0 slot 1,
/// or with a typed error, and never reports success otherwise. A failing seed is printed so it
/// can be replayed with SMPCTL_PROPERTY_SEED.
///
/// Each schedule picks the transport (in-process or UDP on loopback), the link (ideal, BLE from
/// MTU 23 to 498, serial from 9600 baud to 1 Mbaud), extra response delay of several round trips,
/// and the faults: loss, duplication, reordering, corruption, truncation, hostile offsets, busy.
///
/// CI runs `SMPCTL_PROPERTY_CASES` schedules (default 24) in a process of their own with
/// `SMPCTL_PROPERTY_STRICT_TIME=1`, where the time bound is checked exactly; beside the other
/// suites (which starve the cooperative pool on 2 cores) only a hang guard applies.
/// `scripts/property.sh` runs thousands.
@Suite("Upload property: verified result or typed error, never a false success")
struct UploadPropertyTests {
    static var seeds: [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let seed = environment["SMPCTL_PROPERTY_SEED"].flatMap(UInt64.init) { return [seed] }
        let count = environment["SMPCTL_PROPERTY_CASES"].flatMap(Int.init) ?? 24
        return (0..<UInt64(max(1, count))).map { $0 &* 0x9E37_79B9 &+ 1 }
    }

    static let strictTime = ProcessInfo.processInfo.environment["SMPCTL_PROPERTY_STRICT_TIME"] == "1"

    /// A random emulated link, or nil for an ideal one.
    static func link(_ random: inout SplitMix64) throws -> LinkModel? {
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        switch random.next() % 10 {
        case 0...3:
            return nil
        case 4...7:
            let text = "ble:mtu=\(pick([23, 65, 185, 247, 498])),interval=\(pick(["7.5ms", "15ms", "30ms", "50ms"])),ppe=\(pick([1, 2, 4, 6])),phy=\(pick(["1m", "2m"])),dle=\(pick([27, 251]))"
            return try LinkModel(parsing: text)
        default:
            return try LinkModel(parsing: "serial:\(pick([9600, 57_600, 115_200, 1_000_000]))")
        }
    }

    @Test("seeded fault schedules", arguments: seeds)
    func schedule(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        func unit() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
        let overUDP = random.next() % 10 < 4
        let link = try Self.link(&random)
        var configuration = SimulatorConfiguration()
        configuration.faultSeed = seed
        configuration.bufferSize = [256, 512, 1024, 2048][Int(random.next() % 4)]
        configuration.bufferCount = 1 + Int(random.next() % 4)
        // Keep the link's share of the time to a few seconds, so slow links get small images.
        var size = 2_000 + Int(random.next() % 40_000)
        if let link, let capacity = link.uploadCapacity(fileLength: size, requestSize: configuration.bufferSize) {
            size = max(2_000, min(size, Int(capacity * 4)))
        }
        let image = try TestImage.built(payloadSize: size, seed: seed)
        configuration.dropResponses = unit() < 0.5 ? .random(probability: unit() * 0.15, seed: seed) : nil
        configuration.duplicateRate = unit() < 0.4 ? unit() * 0.2 : 0
        configuration.reorderRate = unit() < 0.4 ? unit() * 0.2 : 0
        configuration.corruptRate = unit() < 0.4 ? unit() * 0.1 : 0
        configuration.truncateRate = unit() < 0.3 ? unit() * 0.1 : 0
        // Several round trips of extra latency on every answer.
        configuration.responseDelay = unit() < 0.25 ? .milliseconds(Int(random.next() % 120)) : .zero
        if unit() < 0.15 { configuration.hostileOffset = HostileOffset.allCases[Int(random.next() % 4)] }
        if unit() < 0.15 { configuration.busyCount = Int(random.next() % 20) }
        // Over UDP the simulator's datagram limit is its buffer, as a device built with a matching UDP MTU.
        configuration.udpMTU = max(configuration.udpMTU, configuration.bufferSize)

        // What one request and its answer take on this link, with the added delay.
        let roundTrip = (link.map { $0.transferSeconds(configuration.bufferSize) + $0.transferSeconds(24) } ?? 0)
            + configuration.responseDelay.seconds
        let linkSeconds = link.flatMap { model in
            model.uploadCapacity(fileLength: size, requestSize: configuration.bufferSize).map { Double(size) / $0 }
        } ?? 0
        let ceiling = Duration.milliseconds(300) + .seconds(4 * roundTrip)
        // The bound: the link's own time several times over, plus a budget for the faults.
        let deadline = Duration.seconds(60 + 4 * linkSeconds)

        let description = "seed \(seed): \(overUDP ? "udp" : "in-process"), link \(link.map(String.init(describing:)) ?? "ideal"), \(size) B, buf \(configuration.bufferSize)x\(configuration.bufferCount), delay \(configuration.responseDelay), drop \(String(describing: configuration.dropResponses)), dup \(configuration.duplicateRate), reorder \(configuration.reorderRate), corrupt \(configuration.corruptRate), truncate \(configuration.truncateRate), hostile \(String(describing: configuration.hostileOffset)), busy \(configuration.busyCount)"
        let device = SimulatedDevice(configuration: configuration)
        let server = SimulatorServer(device: device, link: link ?? .ideal)
        let transport: any SMPTransport
        var stopEndpoint: (@Sendable () -> Void)?
        if overUDP {
            let endpoint = try UDPServerEndpoint(host: "127.0.0.1", port: 0, server: server)
            transport = UDPTransport(address: try SocketAddress.resolve(host: "127.0.0.1", port: endpoint.boundPort))
            stopEndpoint = { endpoint.stop() }
        } else {
            transport = InProcessTransport(server: server, linkModel: link)
        }
        defer { stopEndpoint?() }
        var options = testClientOptions(timeout: ceiling, retries: 6)
        options.busyBudget = .seconds(1)
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: Result<UploadResult, SMPClientError>
        do {
            let client = try await openClient(transport, options: options)
            var uploadOptions = UploadOptions()
            uploadOptions.firstChunkTimeout = .milliseconds(500) + ceiling
            uploadOptions.deadline = deadline
            do {
                outcome = .success(try await client.upload(image.file, options: uploadOptions))
            } catch {
                outcome = .failure(error)
            }
            await client.close()
        } catch let error as SMPClientError {
            outcome = .failure(error)
        }
        let elapsed = clock.now - start
        if Self.strictTime {
            // The deadline, one more timeout ceiling for the request in flight when it passes, and
            // the time before the upload starts (params, the UDP path probe: a few timeouts).
            let bound = deadline + ceiling * 8 + .seconds(5)
            #expect(elapsed < bound, "\(description) took \(elapsed), over its bound \(bound)")
        } else {
            #expect(elapsed < .seconds(400), "\(description) took \(elapsed)")
        }
        switch outcome {
        case .success:
            let states = await device.slotStates
            let holds = states.contains { $0.image == 0 && $0.slot == 1 && $0.hash == image.hash }
            #expect(holds, "false success: \(description)")
        case .failure(let error):
            // A clean fault schedule must not fail.
            let clean = configuration.hostileOffset == nil && configuration.dropResponses == nil
                && configuration.corruptRate == 0 && configuration.truncateRate == 0
                && configuration.duplicateRate == 0 && configuration.reorderRate == 0 && configuration.busyCount == 0
            #expect(!clean, "\(description) failed: \(error)")
            if configuration.hostileOffset == nil, configuration.busyCount == 0 {
                // Loss, duplication, reordering and corruption below these rates are survivable.
                Issue.record("\(description) failed: \(error)")
            }
        }
    }
}
