import Foundation
import SMPCtlLocking
import Testing

/// Runs the built `smpctl` binary and captures what it prints.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
    /// How long the process ran, from its start to its exit (not counting the wait for a slot).
    var seconds: Double = 0

    /// The stdout JSON document.
    func json() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try #require(object as? [String: Any], "stdout is not a JSON object: \(stdout)")
    }
}

enum CLI {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `smpctl` executable next to the test bundle.
    static var executable: URL {
        get throws {
            let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            var directory = me.deletingLastPathComponent()
            while directory.path != "/" {
                let candidate = directory.appendingPathComponent("smpctl")
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                    return candidate
                }
                directory = directory.deletingLastPathComponent()
            }
            let fallback = packageRoot.appendingPathComponent(".build/debug/smpctl")
            guard FileManager.default.fileExists(atPath: fallback.path) else {
                throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "build smpctl first (swift build)"])
            }
            return fallback
        }
    }

    static func path(_ relative: String) -> String { packageRoot.appendingPathComponent(relative).path }

    /// Runs smpctl with `arguments`, waiting at most `timeout` seconds; `input` is its standard input.
    ///
    /// The child is waited for on a thread of its own, not on one of the cooperative pool's: on two
    /// cores, tests that blocked pool threads while children ran starved the timing-sensitive
    /// suites running beside them (busy back-off budgets, BLE reconnects).
    static func run(
        _ arguments: [String], environment: [String: String] = [:], timeout: Double = 60, input: String? = nil
    ) async throws -> CLIResult {
        await ChildSlots.shared.acquire()
        defer { Task { await ChildSlots.shared.release() } }
        let (result, timedOut) = try await onOwnThread {
            try runBlocking(arguments, environment: environment, timeout: timeout, input: input)
        }
        if timedOut { Issue.record("smpctl \(arguments.joined(separator: " ")) timed out after \(timeout) s") }
        return result
    }

    /// Runs `body` on a new thread and waits for it without blocking the caller's thread.
    static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    continuation.resume(returning: try body())
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// The blocking part of ``run(_:environment:timeout:input:)``; says whether the child timed out.
    static func runBlocking(
        _ arguments: [String], environment: [String: String], timeout: Double, input: String?
    ) throws -> (CLIResult, timedOut: Bool) {
        let process = Process()
        process.executableURL = try executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SMPCTL_CONNECTION")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let inPipe = input.map { _ in Pipe() }
        process.standardInput = inPipe ?? FileHandle.nullDevice
        let started = Date()
        try process.run()
        if let inPipe, let input {
            // Written from another thread, so a child that reads slowly never blocks the test.
            let writer = inPipe.fileHandleForWriting
            Thread.detachNewThread {
                try? writer.write(contentsOf: Data(input.utf8))
                try? writer.close()
            }
        }
        let outData = Reader(out.fileHandleForReading)
        let errData = Reader(err.fileHandleForReading)
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            // SIGTERM cancels smpctl's task, which CPU-bound work may never look at: SIGKILL after 5 s.
            process.terminate()
            let killDeadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < killDeadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            timedOut = true
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(started)
        return (
            CLIResult(
                status: process.terminationStatus, stdout: outData.finish(), stderr: errData.finish(), seconds: seconds),
            timedOut
        )
    }

    /// Starts `smpctl simulate ...` and returns the process and the connection it prints. The
    /// test terminates it; `--exit-after 600` only ends one a crashed test left behind (the
    /// commands of a test may wait for a child slot, so a short bound could end it mid-test).
    static func startSimulator(_ arguments: [String]) throws -> (Process, String) {
        let process = Process()
        process.executableURL = try executable
        process.arguments = ["simulate"] + arguments + ["--exit-after", "600"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        let handle = out.fileHandleForReading
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0A]) { break }
            line.append(byte)
        }
        let connection = String(decoding: line, as: UTF8.self)
        guard !connection.isEmpty else {
            process.terminate()
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "simulator printed no connection"])
        }
        return (process, connection)
    }
}

/// Drains a pipe on a background thread so a chatty child never blocks.
final class Reader: Sendable {
    private let data = LockedValue(Data())
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            let all = handle.readDataToEndOfFile()
            data.withLock { $0 = all }
            done.signal()
        }
    }

    func finish() -> String {
        done.wait()
        return String(decoding: data.withLock { $0 }, as: UTF8.self)
    }
}

extension CLI {
    /// Runs smpctl with standard error on a pseudo-terminal `columns` wide (standard output on a
    /// pipe), and returns what each stream got.
    static func runOnTerminal(_ arguments: [String], columns: UInt16, timeout: Double = 120) async throws -> CLIResult {
        await ChildSlots.shared.acquire()
        defer { Task { await ChildSlots.shared.release() } }
        let (result, timedOut) = try await onOwnThread {
            try runOnTerminalBlocking(arguments, columns: columns, timeout: timeout)
        }
        if timedOut { Issue.record("smpctl \(arguments.joined(separator: " ")) timed out after \(timeout) s") }
        return result
    }

    /// The blocking part of ``runOnTerminal(_:columns:timeout:)``; says whether the child timed out.
    static func runOnTerminalBlocking(_ arguments: [String], columns: UInt16, timeout: Double) throws
        -> (CLIResult, timedOut: Bool)
    {
        var controller: Int32 = -1
        var terminal: Int32 = -1
        var size = winsize(ws_row: 24, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        guard openpty(&controller, &terminal, nil, nil, &size) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "openpty failed"])
        }
        let process = Process()
        process.executableURL = try executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SMPCTL_CONNECTION")
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(fileDescriptor: terminal, closeOnDealloc: true)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = Reader(out.fileHandleForReading)
        let screen = LockedValue(Data())
        let drained = DispatchSemaphore(value: 0)
        let controllerFD = controller
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                // read() fails with EIO once every copy of the terminal side is closed.
                let count = read(controllerFD, &buffer, buffer.count)
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                screen.withLock { $0.append(contentsOf: buffer[0..<count]) }
            }
            close(controllerFD)
            drained.signal()
        }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            timedOut = true
        }
        process.waitUntilExit()
        try? (process.standardError as? FileHandle)?.close()
        _ = drained.wait(timeout: .now() + 5)
        let text = String(decoding: screen.withLock { $0 }, as: UTF8.self)
        return (CLIResult(status: process.terminationStatus, stdout: outData.finish(), stderr: text), timedOut)
    }
}

/// At most as many smpctl children at once as there are cores (at least 2): the CLI tests no
/// longer hold pool threads while a child runs, and without a bound dozens of them would start
/// together and stretch every child's time.
actor ChildSlots {
    static let shared = ChildSlots(limit: max(2, ProcessInfo.processInfo.activeProcessorCount))

    private let limit: Int
    private var used = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func acquire() async {
        if used < limit {
            used += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            used -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
