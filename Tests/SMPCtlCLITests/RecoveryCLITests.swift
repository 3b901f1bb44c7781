import Foundation
import Testing

/// `smpctl dfu` against `smpctl simulate --recovery` (MCUboot serial recovery) over a pseudo-terminal.
@Suite("serial recovery end to end", .serialized)
struct RecoveryCLITests {
    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")
    let imageHash = "bbbb0742c8f06e0d32ad81f346c9aaf5ac370c48da21ecbdf7b29b38f276a620"

    /// Runs `dfu` of the example image to a device in serial recovery and checks the document every
    /// such run gives: recovery used, the image uploaded into slot 0 and running. Returns the JSON events.
    private func recoveryDFU(_ connection: String) async throws -> [[String: Any]] {
        let result = try await CLI.run(["-c", connection, "--json", "dfu", image])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let json = try result.json()
        #expect(json["ok"] as? Bool == true)
        #expect(json["recovery"] as? Bool == true)
        #expect(json["running"] as? Bool == true)
        #expect(json["upload_skipped"] as? Bool == false)
        let images = try #require(json["images"] as? [[String: Any]])
        let slot0 = try #require(images.first { $0["slot"] as? Int == 0 })
        #expect(slot0["hash"] as? String == imageHash)
        #expect(slot0["active"] as? Bool == true)
        #expect(slot0["version"] as? String == "1.1.0")
        return result.stderr.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test("dfu over a PTY to simulate --recovery: upload to the primary slot, reset, the application runs it")
    func dfuOverPTY() async throws {
        let (server, connection) = try CLI.startSimulator(["--pty", "--recovery"])
        defer { server.terminate() }
        #expect(connection.hasPrefix("serial:/dev/pts/"))
        let events = try await recoveryDFU(connection)
        #expect(events.contains { $0["event"] as? String == "recovery" })
        #expect(!events.contains { $0["event"] as? String == "marked" })
        #expect(!events.contains { $0["event"] as? String == "confirmed" })

        // The application now answers as Zephyr does: its image list has the running image active.
        let list = try await CLI.run(["-c", connection, "--json", "image", "list"])
        #expect(list.status == 0, "stderr: \(list.stderr)")
        let listed = try #require(try list.json()["images"] as? [[String: Any]])
        #expect(listed.contains { $0["hash"] as? String == imageHash && $0["active"] as? Bool == true })
    }

    @Test("dfu over a PTY to a device stuck in recovery because its primary image is bad: upload, reset, the application runs it",
        arguments: ["corrupt", "empty"])
    func dfuStuckInRecovery(primary: String) async throws {
        let (server, connection) = try CLI.startSimulator(["--pty", "--recovery", "--recovery-primary", primary])
        defer { server.terminate() }
        // Stuck: bs_list lists nothing, and a reset without a new image comes back to recovery.
        let before = try await CLI.run(["-c", connection, "--json", "image", "list"])
        #expect(before.status == 0, "stderr: \(before.stderr)")
        #expect((try before.json()["images"] as? [[String: Any]])?.isEmpty == true)
        let events = try await recoveryDFU(connection)
        let recovery = try #require(events.first { $0["event"] as? String == "recovery" })
        #expect((recovery["evidence"] as? [String])?.contains { $0.contains("image list is empty") } == true)
    }

    @Test("dfu in process against sim?recovery with MCUboot 1.8 (no params, no echo)")
    func dfuLegacyInProcess() async throws {
        let result = try await CLI.run(["-c", "sim?recovery&mcuboot-version=1.8", "--timeout", "1", "dfu", image])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("MCUboot serial recovery"))
        #expect(result.stdout.contains("device does not report buffer sizes"))
        #expect(result.stdout.contains("done: the application runs the new image"))
    }

    @Test("--mode test-only against recovery is refused with the reason; confirm-only is explained and proceeds")
    func modes() async throws {
        let refused = try await CLI.run(["-c", "sim?recovery", "dfu", "--mode", "test-only", image])
        #expect(refused.status == 2, "stdout: \(refused.stdout) stderr: \(refused.stderr)")
        #expect(refused.stderr.contains("writes the primary slot directly"))
        let confirmed = try await CLI.run(["-c", "sim?recovery", "dfu", "--mode", "confirm-only", image])
        #expect(confirmed.status == 0, "stderr: \(confirmed.stderr)")
        #expect(confirmed.stdout.contains("needs neither a test mark nor a confirmation"))
    }

    @Test("explain serial-recovery says what recovery refuses")
    func explain() async throws {
        let result = try await CLI.run(["explain", "serial-recovery"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("serial recovery"))
        #expect(result.stdout.contains("rc 8"))
        #expect(result.stdout.contains("len"))
        #expect(result.stdout.contains("erase"))
    }
}
