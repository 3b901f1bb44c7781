import Foundation
import Testing

@Suite("smpctl diagnose", .serialized)
struct DiagnoseTests {
    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")
    let hash = "bbbb0742c8f06e0d32ad81f346c9aaf5ac370c48da21ecbdf7b29b38f276a620"

    func findings(_ result: CLIResult) throws -> [String: [String: Any]] {
        let list = try #require(try result.json()["findings"] as? [[String: Any]])
        var byID: [String: [String: Any]] = [:]
        for finding in list { if let id = finding["id"] as? String { byID[id] = finding } }
        return byID
    }

    @Test("a healthy device: no findings, exit 0")
    func healthy() async throws {
        let result = try await CLI.run(["-c", "sim", "diagnose"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("no problems found"))
        #expect(result.stdout.contains("bootloader: MCUboot"))
    }

    @Test("a pending slot blocks uploads: error, exit 5")
    func pendingSlot() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { server.terminate() }
        #expect(try await CLI.run(["-c", connection, "dfu", "--mode", "upload-only", image]).status == 0)
        #expect(try await CLI.run(["-c", connection, "image", "test", hash]).status == 0)
        let result = try await CLI.run(["-c", connection, "--json", "diagnose", image])
        #expect(result.status == 5)
        let found = try findings(result)
        #expect(found["pending-slot-blocks-upload"]?["severity"] as? String == "error")
        #expect((found["pending-slot-blocks-upload"]?["why"] as? String)?.contains("NO_FREE_SLOT") == true)
        #expect(found["already-uploaded"] != nil)
    }

    @Test("an unconfirmed running image will revert: warning")
    func unconfirmed() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { server.terminate() }
        #expect(try await CLI.run(["-c", connection, "dfu", "--mode", "test-only", image]).status == 0)
        let result = try await CLI.run(["-c", connection, "diagnose"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("warning: the running image 1.1.0 is not confirmed"))
        #expect(result.stdout.contains("revert-image-in-secondary"))
    }

    @Test("an image too large for the slot, and slots of different sizes")
    func tooLarge() async throws {
        let result = try await CLI.run(["-c", "sim?secondary-slot-size=16384", "--json", "diagnose", image])
        #expect(result.status == 5)
        let found = try findings(result)
        #expect(found["image-too-large"]?["severity"] as? String == "error")
        #expect(found["slot-size-mismatch"] != nil)
    }

    @Test("slow buffer settings name the Kconfig options")
    func slowConfiguration() async throws {
        let result = try await CLI.run(["-c", "sim?buf-size=256&buf-count=1", "diagnose"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE"))
        #expect(result.stdout.contains("CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT"))
        let legacy = try await CLI.run(["-c", "sim?no-params", "diagnose"])
        #expect(legacy.stdout.contains("CONFIG_MCUMGR_GRP_OS_MCUMGR_PARAMS"))
    }

    @Test("an unreachable device: error, transport status")
    func unreachable() async throws {
        let result = try await CLI.run(["-c", "udp:127.0.0.1:9", "--timeout", "0.2", "--retries", "0", "diagnose"])
        #expect(result.status == 5)
        #expect(result.stdout.contains("[no-answer]"))
    }
}

@Suite("smpctl dfu speed advice")
struct SpeedAdviceCLITests {
    @Test("dfu over a slow emulated BLE link names the settings and the modelled gain")
    func advice() async throws {
        let result = try await CLI.run([
            "-c", "sim?link=ble:mtu=65,interval=7.5ms,dle=27,phy=1m&buf-size=512&buf-count=2", "dfu",
            CLI.path("Examples/images/blinky-1.1.0.signed.bin"),
        ])
        #expect(result.status == 0)
        #expect(result.stdout.contains("CONFIG_BT_L2CAP_TX_MTU=498"))
        #expect(result.stdout.contains("CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE=2475"))
        #expect(result.stdout.contains("× faster"))
        let fast = try await CLI.run(["-c", "sim", "dfu", CLI.path("Examples/images/blinky-1.1.0.signed.bin")])
        #expect(!fast.stdout.contains("speed:"))
    }
}
