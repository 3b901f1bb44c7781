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
