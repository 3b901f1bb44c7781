// What a device needs, from its image list alone: up to date, an update from X to Y, or blocked.
// Pure: the same list always gives the same answer, so `fleet plan` and `fleet run` agree.

import SMPCtlClient
public import SMPCtlConnection
public import SMPCtlProtocol
public import SMPCtlTransport

/// Builds the transport for a connection (the command line builds UDP, serial, BLE and the
/// in-process simulator; tests build what they need).
public typealias FleetTransportFactory = @Sendable (ConnectionSpec) throws -> any SMPTransport

/// `--select key=value`: devices whose label (or `name`) has this value.
public struct FleetSelector: Sendable, Hashable, CustomStringConvertible {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    /// Parses `key=value`.
    public init(parsing text: String) throws(FleetError) {
        guard text.utf8.count <= 512, let equals = text.firstIndex(of: "=") else {
            throw FleetError.usage("a selection is key=value, such as site=berlin or name=lab-001, not \"\(text.prefix(80))\"")
        }
        let key = String(text[..<equals])
        guard !key.isEmpty else { throw FleetError.usage("a selection needs a key before =: \"\(text)\"") }
        self.init(key: key, value: String(text[text.index(after: equals)...]))
    }

    public func matches(_ device: FleetDevice) -> Bool { device.label(key) == value }

    public var description: String { "\(key)=\(value)" }
}

extension FleetManifest {
    /// The devices every selector matches, in manifest order.
    public func select(_ selectors: [FleetSelector]) -> [FleetDevice] {
        devices.filter { device in selectors.allSatisfy { $0.matches(device) } }
    }
}

/// What should happen to one image of a device.
public struct FleetImagePlan: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable {
        case upToDate = "up-to-date"
        case update
        /// The target already runs, in a test boot: only the confirmation is missing.
        case confirm
        case blocked
    }

    /// The manifest's image name.
    public var name: String
    public var imageNumber: Int
    /// The version the active slot runs, if the device lists one.
    public var from: String?
    public var to: String
    public var action: Action
    public var reason: String
}

/// What a device needs, as a whole.
public enum FleetAction: String, Sendable, Codable, CaseIterable {
    case upToDate = "up-to-date"
    case update
    case unreachable
    case blocked
    /// No rule gives the device an image.
    case noImage = "no-image"
}

/// The assessment of one device.
public struct FleetAssessment: Sendable, Equatable {
    public var action: FleetAction
    public var reason: String
    public var images: [FleetImagePlan]

    /// The images that need work (update or confirm), in order.
    public var pending: [FleetImagePlan] { images.filter { $0.action == .update || $0.action == .confirm } }

    /// Decides from the image list what each target image needs.
    public static func assess(
        slots: [ImageManagement.SlotState], targets: [FleetImage], allowDowngrade: Bool
    ) -> FleetAssessment {
        var plans: [FleetImagePlan] = []
        for target in targets {
            plans.append(assess(slots: slots.filter { $0.image == target.imageNumber }, target: target, allowDowngrade: allowDowngrade))
        }
        if let blocked = plans.first(where: { $0.action == .blocked }) {
            return FleetAssessment(action: .blocked, reason: blocked.reason, images: plans)
        }
        let work = plans.filter { $0.action != .upToDate }
        if work.isEmpty {
            let summary = plans.map { "\($0.name) \($0.to)" }.joined(separator: ", ")
            return FleetAssessment(action: .upToDate, reason: "already runs \(summary)", images: plans)
        }
        let summary = work.map { plan in
            plan.action == .confirm ? "\(plan.name): confirm \(plan.to)" : "\(plan.name): \(plan.from ?? "nothing") -> \(plan.to)"
        }.joined(separator: ", ")
        return FleetAssessment(action: .update, reason: summary, images: plans)
    }

    static func assess(slots: [ImageManagement.SlotState], target: FleetImage, allowDowngrade: Bool) -> FleetImagePlan {
        let active = slots.first { $0.active }
        var plan = FleetImagePlan(
            name: target.name, imageNumber: target.imageNumber, from: active?.version, to: target.version,
            action: .update, reason: "")
        guard let active else {
            plan.action = .blocked
            plan.reason = slots.isEmpty
                ? "the device lists no image \(target.imageNumber)" : "the device lists no active slot for image \(target.imageNumber)"
            return plan
        }
        // A pending image in another slot is swapped in at the next reset, whatever is uploaded now.
        if let pending = slots.first(where: { !$0.active && $0.pending }), pending.hash != target.hash {
            plan.action = .blocked
            plan.reason = "slot \(pending.slot) holds version \(pending.version) marked pending: the next reset swaps it in; confirm the running image or erase slot \(pending.slot) first"
            return plan
        }
        if FleetVersion.equal(active.version, target.version) {
            if active.confirmed {
                plan.action = .upToDate
                plan.reason = "runs \(target.version)"
            } else if active.hash == target.hash {
                plan.action = .confirm
                plan.reason = "runs \(target.version) in a test boot; it will be confirmed"
            } else {
                plan.action = .blocked
                plan.reason = "runs another build of \(target.version), not confirmed (a test boot)"
            }
            return plan
        }
        if !active.confirmed {
            plan.action = .blocked
            plan.reason = "the running image \(active.version) is in a test boot (not confirmed); the next reset reverts it. Confirm or reset it first"
            return plan
        }
        if FleetVersion.newer(active.version, than: target.version), !allowDowngrade {
            plan.action = .blocked
            plan.reason = "runs \(active.version), newer than the target \(target.version) (allow-downgrade: true updates it anyway)"
            return plan
        }
        plan.reason = "\(active.version) -> \(target.version)"
        return plan
    }
}

/// Errors of the fleet layer that are not a manifest's or a device's.
public enum FleetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Bad arguments or input.
    case usage(String)
    /// The journal is held by another run.
    case journalLocked(String)
    /// The journal or a report cannot be read or written.
    case file(String)

    public var description: String {
        switch self {
        case .usage(let text), .journalLocked(let text), .file(let text): text
        }
    }
}

/// One open connection to a device for a fleet command: opened, used, and closed even when the
/// task was cancelled.
enum FleetSession {
    static func clientOptions(_ settings: FleetResolvedSettings, log: (@Sendable (String) -> Void)?,
        notice: (@Sendable (SMPClientNotice) -> Void)?) -> SMPClientOptions
    {
        var options = SMPClientOptions()
        options.timeout = .milliseconds(Int64(settings.timeout * 1000))
        options.retries = settings.retries
        options.log = log
        // A device's log keeps events, not frames: no hex is made for it.
        options.logsFrames = false
        options.notice = notice
        return options
    }

    static func with<T: Sendable>(
        _ device: FleetDevice, factory: FleetTransportFactory, options: SMPClientOptions,
        _ body: (SMPClient) async throws(SMPClientError) -> T
    ) async throws(SMPClientError) -> T {
        let transport: any SMPTransport
        do {
            transport = try factory(device.connection)
        } catch let error as SMPTransportError {
            throw .transport(error)
        } catch {
            throw .invalidInput("cannot set up the connection \(device.connectionText): \(error)")
        }
        let client = SMPClient(transport: transport, options: options)
        do {
            try await client.open()
            let result = try await body(client)
            await Task { await client.close() }.value
            return result
        } catch {
            await Task { await client.close() }.value
            throw error
        }
    }
}
