// `fleet plan`: reads every selected device's image list in parallel, writes nothing, and says
// what a run would do.

public import SMPCtlClient
public import SMPCtlProtocol

/// What a run would do to one device.
public struct FleetPlanEntry: Sendable {
    public var device: FleetDevice
    public var action: FleetAction
    public var reason: String
    public var images: [FleetImagePlan]
    /// The slots the device listed (empty when unreachable).
    public var slots: [ImageManagement.SlotState]
    /// The failure, for an unreachable device.
    public var error: SMPClientError?
    public var seconds: Double
}

public enum FleetPlanner {
    /// Reads the devices, at most `parallel` at once, each within its deadline (at most
    /// `readDeadline` seconds); returns the entries in the order given.
    public static func plan(
        _ manifest: FleetManifest, devices: [FleetDevice], parallel: Int, factory: @escaping FleetTransportFactory,
        readDeadline: Double = 60, progress: (@Sendable (FleetPlanEntry) -> Void)? = nil
    ) async -> [FleetPlanEntry] {
        let width = max(1, min(parallel, 1024))
        var results = [FleetPlanEntry?](repeating: nil, count: devices.count)
        await withTaskGroup(of: (Int, FleetPlanEntry).self) { group in
            var next = 0
            var running = 0
            while next < devices.count || running > 0 {
                while running < width, next < devices.count {
                    let index = next
                    let device = devices[index]
                    next += 1
                    running += 1
                    group.addTask {
                        (index, await entry(for: device, manifest: manifest, factory: factory, readDeadline: readDeadline))
                    }
                }
                guard let (index, entry) = await group.next() else { break }
                running -= 1
                results[index] = entry
                progress?(entry)
            }
        }
        return results.compactMap { $0 }
    }

    static func entry(
        for device: FleetDevice, manifest: FleetManifest, factory: @escaping FleetTransportFactory, readDeadline: Double
    ) async -> FleetPlanEntry {
        let clock = ContinuousClock()
        let start = clock.now
        func seconds() -> Double { FleetClock.seconds(clock.now - start) }
        guard let targets = manifest.images(for: device) else {
            return FleetPlanEntry(
                device: device, action: .noImage, reason: "no rule gives this device an image", images: [], slots: [],
                error: nil, seconds: 0)
        }
        let settings = manifest.settings(for: device)
        let options = FleetSession.clientOptions(settings, log: nil, notice: nil)
        let limit = min(readDeadline, settings.deadline)
        do {
            let state = try await FleetDeadline.run(seconds: limit) { () async throws(SMPClientError) -> ImageManagement.StateResponse in
                try await FleetSession.with(device, factory: factory, options: options) { client throws(SMPClientError) in
                    try await client.readImageState()
                }
            }
            let assessment = FleetAssessment.assess(slots: state.images, targets: targets, allowDowngrade: settings.allowDowngrade)
            return FleetPlanEntry(
                device: device, action: assessment.action, reason: assessment.reason, images: assessment.images,
                slots: state.images, error: nil, seconds: seconds())
        } catch {
            return FleetPlanEntry(
                device: device, action: .unreachable, reason: error.description, images: [], slots: [], error: error,
                seconds: seconds())
        }
    }
}

enum FleetClock {
    /// `Duration.seconds` (SMPCtlProtocol/DurationSeconds.swift), the package's one conversion.
    static func seconds(_ duration: Duration) -> Double { duration.seconds }
}

/// Runs work within a time limit: when the limit passes, the work is cancelled and
/// ``SMPClientError/deadlineExceeded(_:)`` is thrown. Cancelling the caller cancels the work and
/// throws ``SMPClientError/cancelled``.
enum FleetDeadline {
    static func run<T: Sendable>(
        seconds: Double, _ work: @escaping @Sendable () async throws(SMPClientError) -> T
    ) async throws(SMPClientError) -> T {
        let limit = Duration.milliseconds(Int64(max(0.001, min(seconds, 86_400 * 7)) * 1000))
        let result: Result<T, SMPClientError>? = await withTaskGroup(of: Result<T, SMPClientError>?.self) { group in
            group.addTask {
                do throws(SMPClientError) {
                    return .success(try await work())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                do {
                    try await Task.sleep(for: limit)
                } catch {
                    return nil
                }
                return .failure(.deadlineExceeded(limit))
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            // The deadline fired: the work ends with .cancelled, which the deadline replaces.
            if case .failure(.deadlineExceeded) = first {
                _ = await group.next()
                return first
            }
            if first == nil {
                // The sleep was cancelled: the caller was cancelled; wait for the work's answer.
                return await group.next() ?? nil
            }
            return first
        }
        if Task.isCancelled, case .failure(let error) = result, case .cancelled = error { throw .cancelled }
        switch result {
        case .success(let value): return value
        case .failure(let error): throw error
        case nil: throw .cancelled
        }
    }
}
