import Foundation
import Testing
@testable import SMPCtlBlueZ

/// The built `smpctl`, run against the fake bluetoothd through DBUS_SYSTEM_BUS_ADDRESS.
enum SMPCtlBinary {
    static var path: String? {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = me.deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("smpctl")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate.path
            }
            directory = directory.deletingLastPathComponent()
        }
        return nil
    }

    /// Runs smpctl with standard input from /dev/null (no terminal: Just Works), waiting without
    /// blocking a task thread, at most `timeout`.
    static func run(_ arguments: [String], environment: [String: String], timeout: Duration = .seconds(90))
        async throws -> (status: Int32, stdout: String, stderr: String)
    {
        let executable = try #require(path, "build smpctl first")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SMPCTL_CONNECTION")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let outURL = folder.appendingPathComponent("out")
        let errURL = folder.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            process.terminate()
            Issue.record("smpctl \(arguments.joined(separator: " ")) did not finish within \(timeout)")
            while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        }
        try out.close()
        try err.close()
        let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return (process.terminationStatus, stdout, stderr)
    }
}

@Suite("smpctl pair and pair=yes, the binary against a fake bluetoothd", .serialized, .timeLimit(.minutes(2)))
struct BLEPairCommandTests {
    @Test("smpctl pair ble:NAME pairs, bonds and trusts with Just Works when there is no terminal")
    func pairCommand() async throws {
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run { setup in
                let result = try await SMPCtlBinary.run(
                    ["pair", "ble:smp-sim", "--json", "--discovery-timeout", "30"],
                    environment: ["DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address])
                #expect(result.status == 0, "stdout: \(result.stdout) stderr: \(result.stderr)")
                let object = try #require(
                    try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
                #expect(object["paired"] as? Bool == true)
                #expect(object["bonded"] as? Bool == true)
                #expect(object["trusted"] as? Bool == true)
                #expect(object["address"] as? String == "00:AA:01:00:00:00")
                #expect(await setup.fake.paired)
                #expect(await setup.fake.agentUnregistered)
            }
        }
    }

    @Test("a failed pairing exits 3 with the phase and what to do")
    func pairCommandFails() async throws {
        var options = FakeBlueZOptions()
        options.pairingFailure = .bluezAuthenticationFailed
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run(options: options) { setup in
                let result = try await SMPCtlBinary.run(
                    ["pair", "ble:smp-sim"], environment: ["DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address])
                #expect(result.status == 3)
                #expect(result.stderr.contains("pairing with 00:AA:01:00:00:00 failed (pairing)"), "\(result.stderr)")
            }
        }
    }

    @Test("echo on a device that needs pairing: refused without pair=yes, answered with it")
    func echoWithPairOption() async throws {
        var options = FakeBlueZOptions()
        options.requiresPairing = true
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run(options: options) { setup in
                let refused = try await SMPCtlBinary.run(
                    ["echo", "hello", "--timeout", "5"],
                    environment: ["DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address, "SMPCTL_CONNECTION": "ble:smp-sim"])
                #expect(refused.status == 3)
                #expect(refused.stderr.contains("smpctl pair ble:00:AA:01:00:00:00"), "\(refused.stderr)")
                #expect(await setup.fake.pairCalls == 0)
                let answered = try await SMPCtlBinary.run(
                    ["echo", "hello", "--timeout", "5"],
                    environment: [
                        "DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address, "SMPCTL_CONNECTION": "ble:smp-sim?pair=yes",
                    ])
                #expect(answered.status == 0, "\(answered.stderr)")
                #expect(answered.stdout.contains("hello"))
                #expect(await setup.fake.pairCalls == 1)
            }
        }
    }
}

/// smpctl on a pseudo-terminal that is its controlling terminal (through util-linux `setsid
/// --ctty`), so that its agent prompts on /dev/tty; `answer` is typed once the prompt appears
/// (nothing is typed when it is nil).
enum TerminalRun {
    static func run(_ arguments: [String], environment: [String: String], prompt: String, answer: String?,
        timeout: Duration = .seconds(90)) async throws -> (status: Int32, screen: String)
    {
        let executable = try #require(SMPCtlBinary.path, "build smpctl first")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setsid") else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "no /usr/bin/setsid"])
        }
        var controller: Int32 = -1
        var terminal: Int32 = -1
        guard openpty(&controller, &terminal, nil, nil, nil) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "openpty failed"])
        }
        defer { close(controller) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        process.arguments = ["--ctty", "--wait", executable] + arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SMPCTL_CONNECTION")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let handle = FileHandle(fileDescriptor: terminal, closeOnDealloc: true)
        process.standardInput = handle
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try handle.close()
        _ = fcntl(controller, F_SETFL, fcntl(controller, F_GETFL) | O_NONBLOCK)
        var screen: [UInt8] = []
        var answered = false
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let count = read(controller, &buffer, buffer.count)
            if count > 0 { screen += buffer[0..<count] }
            if !answered, let answer, String(decoding: screen, as: UTF8.self).contains(prompt) {
                let bytes = Array((answer + "\n").utf8)
                _ = bytes.withUnsafeBytes { write(controller, $0.baseAddress, $0.count) }
                answered = true
            }
            if count <= 0 {
                if !process.isRunning { break }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        if process.isRunning {
            process.terminate()
            Issue.record("smpctl \(arguments.joined(separator: " ")) did not finish within \(timeout)")
            while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        }
        return (process.terminationStatus, String(decoding: screen, as: UTF8.self))
    }
}

@Suite("smpctl pair on a terminal: the passkey prompt", .serialized, .timeLimit(.minutes(2)))
struct BLEPairTerminalTests {
    @Test("the passkey typed at the prompt reaches bluetoothd, and the device is paired")
    func passkeyPrompt() async throws {
        var options = FakeBlueZOptions()
        options.pairing = .passkey(654_321)
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run(options: options) { setup in
                let result = try await TerminalRun.run(
                    ["pair", "ble:smp-sim"], environment: ["DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address],
                    prompt: "Enter the passkey 00:AA:01:00:00:00 shows", answer: "654321")
                #expect(result.status == 0, "\(result.screen)")
                #expect(result.screen.contains("paired with 00:AA:01:00:00:00 (bonded, trusted)"), "\(result.screen)")
                #expect(await setup.fake.receivedPasskey == 654_321)
                #expect(await setup.fake.agent == nil)
                #expect(await setup.fake.paired)
            }
        }
    }

    @Test("a passkey that is not six digits is refused, and pairing fails with a clear error")
    func badPasskey() async throws {
        var options = FakeBlueZOptions()
        options.pairing = .passkey(654_321)
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run(options: options) { setup in
                let result = try await TerminalRun.run(
                    ["pair", "ble:smp-sim"], environment: ["DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address],
                    prompt: "Enter the passkey", answer: "12x")
                #expect(result.status == 3, "screen: \(result.screen)")
                #expect(result.screen.contains("(pairing)"), "\(result.screen)")
                #expect(await setup.fake.paired == false)
                #expect(await setup.fake.receivedPasskey == nil)
            }
        }
    }

    @Test("bluetoothd cancels the passkey question nobody answers: Cancel is answered at once, the prompt ends, pairing fails")
    func cancelledPrompt() async throws {
        var options = FakeBlueZOptions()
        options.pairing = .passkey(654_321)
        options.cancelsPasskeyAfter = .milliseconds(700)
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run(options: options) { setup in
                let start = ContinuousClock.now
                let result = try await TerminalRun.run(
                    ["pair", "ble:smp-sim"], environment: ["DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address],
                    prompt: "Enter the passkey", answer: nil)
                #expect(result.status == 3, "screen: \(result.screen)")
                #expect(result.screen.contains("Enter the passkey 00:AA:01:00:00:00 shows"), "\(result.screen)")
                #expect(result.screen.contains("bluetoothd cancelled the pairing request"), "\(result.screen)")
                // Cancel did not wait behind the open question (the prompt waits up to 50 s)...
                let answeredIn = await setup.fake.cancelAnsweredIn
                #expect(answeredIn.map { $0 < .seconds(1) } == true, "Cancel answered in \(String(describing: answeredIn))")
                // ...and the question ended with a refusal instead of waiting for the terminal.
                #expect(await setup.fake.cancelledQuestionOutcome == "org.bluez.Error.Rejected")
                #expect(await setup.fake.paired == false)
                #expect(ContinuousClock.now - start < .seconds(30))
            }
        }
    }
}
