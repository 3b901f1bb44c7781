import Foundation
import Testing

/// `image test` says, from the device's live state, whether slot 1 holds the image meant, another one, or one
/// already pending; run against `smpctl simulate` over UDP, which keeps its state between commands.
@Suite("image test: the verdict on slot 1")
struct ImageTestVerdictTests {
    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")
    /// A second signed image, with another hash, that is never uploaded.
    let other = CLI.path("Tests/Fixtures/images/ecdsa-p256.signed.bin")

    @Test("the image meant, then another image with one already pending, then a refused test during a test boot")
    func verdicts() async throws {
        let (simulator, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { simulator.terminate() }
        #expect(try await CLI.run(["-c", connection, "image", "upload", image]).status == 0)

        // The image meant is in slot 1 and is now marked for test.
        let tested = try await CLI.run(["-c", connection, "--json", "image", "test", image])
        #expect(tested.status == 0, "\(tested.stderr)")
        let verdict = try #require(try tested.json()["test_verdict"] as? [String: Any])
        #expect(verdict["kind"] as? String == "marked-for-test")
        #expect(verdict["problem"] as? Bool == false)
        let text = try await CLI.run(["-c", connection, "image", "test", image])
        #expect(text.status == 0 && text.stdout.contains("Slot 1 holds the image you meant, 1.1.0"))

        // Another file: the device refuses its hash, and the advice says what slot 1 holds instead, already pending.
        let refused = try await CLI.run(["-c", connection, "image", "test", other])
        #expect(refused.status == 4, "\(refused.stderr)")
        #expect(refused.stderr.contains("After the test request: Slot 1 of image 0 holds another image, 1.1.0"), "\(refused.stderr)")
        #expect(refused.stderr.contains("already marked for test"))
        #expect(refused.stderr.contains("the next reset boots 1.1.0"))
        let refusedJSON = try await CLI.run(["-c", connection, "--json", "image", "test", other])
        let explanation = try #require(try refusedJSON.json()["explanation"] as? [String: Any])
        let causes = try #require(explanation["causes"] as? [[String: Any]])
        #expect(causes.first?["id"] as? String == "state-other-image-pending")

        // Reset: 1.1.0 runs as a test boot, slot 1 keeps the old image. Testing the old one is refused
        // (IMAGE_ALREADY_PENDING), and the advice says that the next reset reverts to it anyway.
        #expect(try await CLI.run(["-c", connection, "reset"]).status == 0)
        try await Task.sleep(for: .milliseconds(300))
        let during = try await CLI.run(["-c", connection, "image", "test", "--slot", "1"])
        #expect(during.status == 4, "\(during.stdout)")
        #expect(during.stderr.contains("is an unconfirmed test boot: the next reset reverts to"), "\(during.stderr)")
    }
}
