import SMPCtlTestSupport
import Foundation
import Testing
@testable import SMPCtlClient
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport

/// The upload invariant over seeded random fault schedules: the upload ends within a bound, with
/// the device holding the exact image in image 0 slot 1, or with a typed error, and never reports
/// success otherwise. A failing seed is printed so it can be replayed with SMPCTL_PROPERTY_SEED.
///
/// CI runs `SMPCTL_PROPERTY_CASES` schedules (default 24); `scripts/property.sh` runs thousands.
@Suite("Upload property: verified result or typed error, never a false success")
struct UploadPropertyTests {
    static var seeds: [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let seed = environment["SMPCTL_PROPERTY_SEED"].flatMap(UInt64.init) { return [seed] }
        let count = environment["SMPCTL_PROPERTY_CASES"].flatMap(Int.init) ?? 24
        return (0..<UInt64(max(1, count))).map { $0 &* 0x9E37_79B9 &+ 1 }
    }

    @Test("seeded fault schedules", arguments: seeds)
    func schedule(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        func unit() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
        let size = 2_000 + Int(random.next() % 40_000)
        let image = try TestImage.built(payloadSize: size, seed: seed)
        var configuration = SimulatorConfiguration()
        configuration.faultSeed = seed
        configuration.bufferSize = [256, 512, 1024, 2048][Int(random.next() % 4)]
        configuration.bufferCount = 1 + Int(random.next() % 4)
        configuration.dropResponses = unit() < 0.5 ? .random(probability: unit() * 0.15, seed: seed) : nil
        configuration.duplicateRate = unit() < 0.4 ? unit() * 0.2 : 0
        configuration.reorderRate = unit() < 0.4 ? unit() * 0.2 : 0
        configuration.corruptRate = unit() < 0.4 ? unit() * 0.1 : 0
        configuration.truncateRate = unit() < 0.3 ? unit() * 0.1 : 0
        if unit() < 0.15 { configuration.hostileOffset = HostileOffset.allCases[Int(random.next() % 4)] }
        if unit() < 0.15 { configuration.busyCount = Int(random.next() % 20) }
        let description = "seed \(seed): \(size) B, buf \(configuration.bufferSize)x\(configuration.bufferCount), drop \(String(describing: configuration.dropResponses)), dup \(configuration.duplicateRate), reorder \(configuration.reorderRate), corrupt \(configuration.corruptRate), truncate \(configuration.truncateRate), hostile \(String(describing: configuration.hostileOffset)), busy \(configuration.busyCount)"
        let device = SimulatedDevice(configuration: configuration)
        let server = SimulatorServer(device: device)
        var options = testClientOptions(timeout: .milliseconds(300), retries: 6)
        options.busyBudget = .seconds(1)
        let client = try await openClient(InProcessTransport(server: server), options: options)
        var uploadOptions = UploadOptions()
        uploadOptions.firstChunkTimeout = .milliseconds(500)
        uploadOptions.deadline = .seconds(60)
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: Result<UploadResult, SMPClientError>
        do {
            outcome = .success(try await client.upload(image.file, options: uploadOptions))
        } catch {
            outcome = .failure(error)
        }
        let elapsed = clock.now - start
        // Bound: the deadline plus one timeout ceiling.
        // A hang guard: the CLI suites running beside this one block the cooperative pool for a minute
        // or more on 2 cores; the bounds that matter are the typed error and the progress limits.
        #expect(elapsed < .seconds(400), "\(description) took \(elapsed)")
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
        await client.close()
    }
}
