import Dispatch
import Foundation
import SMPCtlLocking
import SMPCtlClient

/// SIGINT and SIGTERM handling: the first signal cancels the running command, which stops at its
/// next await, says how far an upload got, and exits 130 or 143. A second signal exits at once.
enum Interruption {
    private static let state = LockedValue<(signal: Int32?, progress: UploadProgress?)>((nil, nil))
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    /// Installs the handlers; `cancel` stops the command.
    static func install(_ cancel: @escaping @Sendable () -> Void) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let first = state.withLock { current -> Bool in
                    guard current.signal == nil else { return false }
                    current.signal = number
                    return true
                }
                if !first { Foundation.exit(128 + number) }
                cancel()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Returns once the current task is cancelled (by a signal, through ``install(_:)``).
    static func waitForCancellation() async {
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }

    /// Runs cleanup outside the current task, so it is not cut short when the command was cancelled
    /// (closing a link waits for its reader thread; a BLE peripheral unregisters over D-Bus).
    static func uncancelled(_ body: @escaping @Sendable () async -> Void) async {
        await Task { await body() }.value
    }

    /// Remembers the latest upload progress, for the message on interruption.
    static func record(_ progress: UploadProgress) {
        state.withLock { $0.progress = progress }
    }

    /// The latest upload progress recorded, if an upload started.
    static var lastProgress: UploadProgress? {
        state.withLock { $0.progress }
    }

    /// The exit status for the signal received (130 when none was, as for a cancelled task).
    static var status: ExitStatus {
        state.withLock { $0.signal } == SIGTERM ? .terminated : .interrupted
    }

    /// What to tell the user after an interruption.
    static var message: String {
        let (received, progress) = state.withLock { ($0.signal, $0.progress) }
        let name = received == SIGTERM ? "stopped by SIGTERM" : "interrupted"
        guard let progress, progress.offset < progress.total else { return name }
        return "\(name) after uploading \(formatBytes(progress.offset)) of \(formatBytes(progress.total)); run the same command again to resume from there"
    }
}
