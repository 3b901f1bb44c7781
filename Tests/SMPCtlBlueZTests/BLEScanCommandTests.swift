import Foundation
import Testing

/// `smpctl scan` and a profile's adapter, the binary against the fake bluetoothd.
@Suite("smpctl scan and profile adapters, the binary against a fake bluetoothd", .serialized, .timeLimit(.minutes(2)))
struct BLEScanCommandTests {
    @Test("scan --json --timeout N scans N seconds and prints one document; the options work before scan too")
    func scanJSONTimeout() async throws {
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run { setup in
                let environment = ["DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address]
                for arguments in [["scan", "--json", "--timeout", "1"], ["--json", "--timeout", "1", "scan"]] {
                    let start = ContinuousClock.now
                    let result = try await SMPCtlBinary.run(arguments, environment: environment)
                    let elapsed = ContinuousClock.now - start
                    #expect(result.status == 0, "\(arguments): \(result.stdout) \(result.stderr)")
                    // The default is 10 s: a scan that ignored --timeout 1 would take that long.
                    #expect(elapsed < .seconds(8), "\(arguments) took \(elapsed)")
                    let document = try #require(
                        try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
                    #expect(document["ok"] as? Bool == true)
                    #expect(document["scan_seconds"] as? Double == 1)
                    let devices = try #require(document["devices"] as? [[String: Any]])
                    #expect(devices.contains { $0["name"] as? String == "smp-sim" && $0["smp"] as? Bool == true }, "\(devices)")
                }
            }
        }
    }

    @Test("a profile's adapter is the one a ble: connection without ?adapter= uses")
    func profileAdapter() async throws {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-ble-profile-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: config) }
        try await withTemporaryRuntimeFolder {
            try await FakeBluetoothSetup.run { setup in
                let environment = ["DBUS_SYSTEM_BUS_ADDRESS": setup.bus.address, "XDG_CONFIG_HOME": config.path]
                for (name, adapter) in [("here", "hci0"), ("elsewhere", "hci7")] {
                    let add = try await SMPCtlBinary.run(
                        ["profile", "add", name, "ble:smp-sim", "--adapter", adapter, "--timeout", "5"], environment: environment)
                    #expect(add.status == 0, "\(add.stderr)")
                }
                let here = try await SMPCtlBinary.run(["-c", "here", "echo", "hello"], environment: environment)
                #expect(here.status == 0, "\(here.stderr)")
                #expect(here.stdout == "hello\n")
                let elsewhere = try await SMPCtlBinary.run(["-c", "elsewhere", "echo", "hello"], environment: environment)
                #expect(elsewhere.status != 0)
                #expect(elsewhere.stderr.contains("hci7"), "\(elsewhere.stderr)")
            }
        }
    }
}
