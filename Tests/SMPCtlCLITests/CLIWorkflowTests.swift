import Foundation
import Testing

@Suite("smpctl end to end", .serialized)
struct CLIWorkflowTests {
    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")
    let imageHash = "bbbb0742c8f06e0d32ad81f346c9aaf5ac370c48da21ecbdf7b29b38f276a620"

    func checkConfirmed(_ result: CLIResult) throws {
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let json = try result.json()
        #expect(json["ok"] as? Bool == true)
        #expect(json["confirmed"] as? Bool == true)
        #expect(json["running"] as? Bool == true)
        #expect(json["image_hash"] as? String == imageHash)
        let images = try #require(json["images"] as? [[String: Any]])
        let slot0 = try #require(images.first { $0["slot"] as? Int == 0 })
        #expect(slot0["hash"] as? String == imageHash)
        #expect(slot0["active"] as? Bool == true)
        #expect(slot0["confirmed"] as? Bool == true)
        #expect(slot0["version"] as? String == "1.1.0")
    }

    @Test("dfu over the in-process simulator")
    func dfuInProcess() async throws {
        try await checkConfirmed(CLI.run(["-c", "sim", "--json", "dfu", image]))
    }

    @Test("dfu over UDP to smpctl simulate")
    func dfuUDP() async throws {
        // A device whose UDP MTU (CONFIG_MCUMGR_TRANSPORT_UDP_MTU) takes 2048-byte datagrams.
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0", "--udp-mtu", "2048"])
        defer { server.terminate() }
        #expect(connection.hasPrefix("udp:127.0.0.1:"))
        try await checkConfirmed(CLI.run(["-c", connection, "--json", "dfu", image]))
        let list = try await CLI.run(["-c", connection, "--json", "image", "list"])
        let images = try #require(try list.json()["images"] as? [[String: Any]])
        #expect(images.contains { $0["hash"] as? String == imageHash && $0["active"] as? Bool == true })
    }

    @Test("dfu over a pseudo-terminal to smpctl simulate")
    func dfuPTY() async throws {
        let (server, connection) = try CLI.startSimulator(["--pty"])
        defer { server.terminate() }
        #expect(connection.hasPrefix("serial:/dev/pts/"))
        try await checkConfirmed(CLI.run(["-c", connection, "--json", "dfu", image]))
    }

    @Test("dfu resumes after an injected disconnect")
    func dfuResume() async throws {
        let result = try await CLI.run(["-c", "sim?disconnect-after=20000", "--json", "dfu", image])
        try checkConfirmed(result)
        let resumed = try #require(try result.json()["resumed_from"] as? Int)
        #expect(resumed > 0 && resumed < 49_770, "resumed at \(resumed)")
        // JSON Lines progress events go to standard error, one object per line.
        let events = result.stderr.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(events.contains { $0["event"] as? String == "upload_finished" })
        #expect(events.contains { $0["event"] as? String == "confirmed" })
    }

    @Test("dfu over UDP with lost responses still completes")
    func dfuLossy() async throws {
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0", "--drop", "3,9,20"])
        defer { server.terminate() }
        try await checkConfirmed(CLI.run(["-c", connection, "--timeout", "0.5", "--json", "dfu", "--first-timeout", "1", image]))
    }

    @Test("a second dfu of the same image skips the upload")
    func dfuSkipsPresentImage() async throws {
        // A device whose UDP MTU (CONFIG_MCUMGR_TRANSPORT_UDP_MTU) takes 2048-byte datagrams.
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0", "--udp-mtu", "2048"])
        defer { server.terminate() }
        _ = try await CLI.run(["-c", connection, "dfu", image])
        let again = try await CLI.run(["-c", connection, "dfu", image])
        #expect(again.status == 0)
        #expect(again.stdout.contains("already holds this image"))
    }

    @Test("the connection can come from SMPCTL_CONNECTION and from a saved profile")
    func connectionSources() async throws {
        let env = try await CLI.run(["echo", "hello"], environment: ["SMPCTL_CONNECTION": "sim"])
        #expect(env.status == 0)
        #expect(env.stdout == "hello\n")
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: config) }
        let xdg = ["XDG_CONFIG_HOME": config.path]
        #expect(try await CLI.run(["profile", "add", "bench", "sim?buf-size=512"], environment: xdg).status == 0)
        let list = try await CLI.run(["profile", "list", "--json"], environment: xdg)
        #expect(list.stdout.contains("\"bench\":\"sim?buf-size=512\""))
        let params = try await CLI.run(["-c", "bench", "--json", "params"], environment: xdg)
        #expect(try params.json()["buf_size"] as? Int == 512)
        #expect(try await CLI.run(["profile", "add", "bad", "nonsense"], environment: xdg).status == 2)
    }
}

@Suite("smpctl exit statuses")
struct CLIExitStatusTests {
    let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")

    @Test("no connection: usage error listing the accepted forms")
    func noConnection() async throws {
        let result = try await CLI.run(["image", "list"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("udp:HOST[:PORT]"))
        #expect(result.stderr.contains("serial:PATH"))
        #expect(result.stderr.contains("SMPCTL_CONNECTION"))
    }

    @Test("bad arguments: usage error")
    func badArguments() async throws {
        #expect(try await CLI.run(["-c", "sim", "image", "list", "--no-such-flag"]).status == 2)
        #expect(try await CLI.run(["-c", "warp:drive", "image", "list"]).status == 2)
        #expect(try await CLI.run(["-c", "sim", "image", "test", "zz"]).status == 2)
    }

    @Test("a file that is not a signed image is refused before connecting")
    func notAnImage() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("zephyr-\(UUID().uuidString).bin")
        try Data(repeating: 0x20, count: 4096).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await CLI.run(["-c", "sim", "dfu", file.path])
        #expect(result.status == 2)
        #expect(result.stderr.contains("not a signed MCUboot image"))
    }

    @Test("device error: exit 4 with the device's group and code in JSON")
    func deviceError() async throws {
        // no-slot-info: with slot info, smpctl refuses the image before uploading (ImageInspectTests).
        let result = try await CLI.run(["-c", "sim?secondary-slot-size=4096&no-slot-info", "--json", "dfu", image])
        #expect(result.status == 4)
        let json = try result.json()
        #expect(json["ok"] as? Bool == false)
        let device = try #require(json["device_error"] as? [String: Any])
        #expect(device["kind"] as? String == "group")
        #expect(device["group"] as? Int == 1)
        #expect(device["rc"] as? Int == 30)
        #expect(device["name"] as? String == "IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE")
    }

    @Test("top-level rc and group rc stay distinct")
    func smpLevelError() async throws {
        let result = try await CLI.run(["-c", "sim?fail=os:echo:rc=8", "--json", "echo", "x"])
        #expect(result.status == 4)
        let device = try #require(try result.json()["device_error"] as? [String: Any])
        #expect(device["kind"] as? String == "smp")
        #expect(device["name"] as? String == "MGMT_ERR_ENOTSUP")
    }

    @Test("bootloader refuses the image: verification failure, exit 5")
    func verificationFailure() async throws {
        let result = try await CLI.run(["-c", "sim?reject-images", "dfu", image])
        #expect(result.status == 5)
        #expect(result.stderr.contains("did not swap"))
        let json = try await CLI.run(["-c", "sim?reject-images", "--json", "dfu", image]).json()
        #expect(json["error"] as? String == "verification")
        #expect(json["check"] as? String == "not-running-after-reset")
        #expect((json["explanation"] as? [String: Any]) != nil)
    }

    @Test("nobody answering: transport failure, exit 3")
    func transportFailure() async throws {
        let result = try await CLI.run(["-c", "udp:127.0.0.1:9", "--timeout", "0.2", "--retries", "1", "echo", "x"])
        #expect(result.status == 3)
        // Loopback answers "port unreachable" at once; smpctl says so instead of timing out.
        #expect(result.stderr.contains("port unreachable"))
        #expect(!result.stderr.contains("more: smpctl"))
    }
}

@Suite("UDP datagram limit")
struct UDPLimitTests {
    @Test("without ?mtu= the largest datagram is learned; ?mtu=N fixes it")
    func datagramLimit() async throws {
        // A device whose UDP MTU (CONFIG_MCUMGR_TRANSPORT_UDP_MTU) takes 2048-byte datagrams.
        let (server, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0", "--udp-mtu", "2048"])
        defer { server.terminate() }
        let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")
        let learned = try await CLI.run(["-c", connection, "--json", "image", "upload", image]).json()
        #expect(learned["chunk_size"] as? Int ?? 0 > 2000)
        let fixed = try await CLI.run(["-c", connection + "?mtu=1200", "--json", "image", "upload", image]).json()
        #expect(fixed["chunk_size"] as? Int ?? 0 <= 1200 - 8)
        // Zephyr's default UDP MTU, 1500: the 2048-byte probe is lost and the upload uses 1472-byte datagrams.
        let (smaller, smallerConnection) = try CLI.startSimulator(["--udp", "127.0.0.1:0"])
        defer { smaller.terminate() }
        let fallback = try await CLI.run(["-c", smallerConnection, "--json", "image", "upload", image])
        #expect(fallback.status == 0)
        let chunk = try fallback.json()["chunk_size"] as? Int ?? 0
        #expect(chunk > 1400 && chunk < 1472)
        #expect(try await CLI.run(["-c", connection + "?mtu=9", "echo", "x"]).status == 2)
    }
}

@Suite("Progress display")
struct ProgressDisplayTests {
    /// A device on a 115200-baud link whose sixth answer is lost: one retry during the upload.
    static let connection = "sim?drop=6&link=serial:115200"
    static let image = CLI.path("Examples/images/blinky-1.1.0.signed.bin")

    /// The redraws of a progress line: what sits between carriage returns, without the erase-line code.
    static func redraws(_ screen: String) -> [String] {
        screen.replacingOccurrences(of: "\u{1B}[K", with: "")
            .split(whereSeparator: { $0 == "\r" || $0 == "\n" }).map(String.init)
            .filter { $0.contains("%") }
    }

    @Test("on a 40-column terminal every redraw fits in one line and the retry shows without -v")
    func narrowTerminal() async throws {
        let result = try await CLI.runOnTerminal(["-c", Self.connection, "image", "upload", Self.image], columns: 40)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = Self.redraws(result.stderr)
        #expect(lines.count > 5)
        for line in lines { #expect(line.count <= 39, "\(line.count) columns: \(line)") }
        #expect(lines.contains { $0.contains("retry 1 of") })
        #expect(lines.last?.contains("100%") == true)
        // The summary counts the retry and gives the whole command's time, not only the upload's.
        #expect(result.stdout.contains("in all, 1 retry"), "\(result.stdout)")
    }

    @Test("a wide terminal gets the label, the bar, bytes, rate and the estimate")
    func wideTerminal() async throws {
        let result = try await CLI.runOnTerminal(["-c", "sim?link=serial:115200", "image", "upload", Self.image], columns: 120)
        #expect(result.status == 0)
        let lines = Self.redraws(result.stderr)
        #expect(lines.contains { $0.hasPrefix("upload [") && $0.contains("KiB/s") && $0.contains("ETA") })
        for line in lines { #expect(line.count <= 119) }
    }

    @Test("without a terminal a retry is a line of its own; with --json a notice event")
    func noTerminal() async throws {
        let plain = try await CLI.run(["-c", Self.connection, "image", "upload", Self.image])
        #expect(plain.status == 0)
        #expect(plain.stderr.contains("smpctl: no answer in time; retry 1 of"), "\(plain.stderr)")
        let json = try await CLI.run(["-c", Self.connection, "--json", "image", "upload", Self.image])
        #expect(json.status == 0)
        let notices = json.stderr.split(separator: "\n").compactMap { line -> [String: Any]? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return object["event"] as? String == "notice" ? object : nil
        }
        #expect(notices.contains { $0["kind"] as? String == "retry" && $0["attempt"] as? Int == 1 })
    }
}

@Suite("Everyday output")
struct EverydayOutputTests {
    @Test("a device error names its code once, then explains it")
    func headlineOnce() async throws {
        let result = try await CLI.run(["-c", "sim?fail=image:upload:rc=5", "image", "upload", CLI.path("Examples/images/blinky-1.1.0.signed.bin")])
        #expect(result.status == 4)
        #expect(result.stderr.components(separatedBy: "MGMT_ERR_ENOENT").count - 1 == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("smpctl: error: device error rc 5 MGMT_ERR_ENOENT"))
        #expect(result.stderr.contains("more: smpctl explain 5"))
    }

    @Test("a bare smpctl prints its usage and exits 2")
    func bareCommand() async throws {
        let result = try await CLI.run([])
        #expect(result.status == 2)
        #expect(result.stderr.contains("USAGE") || result.stderr.contains("Usage"))
        #expect(result.stdout.isEmpty)
    }

    @Test("echo --json reports the request's round trip: the device's delay, not the connect")
    func echoRoundTrip() async throws {
        let (simulator, connection) = try CLI.startSimulator(["--udp", "127.0.0.1:0", "--delay", "150"])
        defer { simulator.terminate() }
        let result = try await CLI.run(["-c", connection, "--json", "echo", "ping"])
        #expect(result.status == 0, "\(result.stderr)")
        let document = try result.json()
        let roundTrip = try #require(document["round_trip_seconds"] as? Double)
        // The simulator holds each answer 150 ms, so the echo cannot have taken less.
        #expect(roundTrip >= 0.15, "\(roundTrip)")
        #expect(roundTrip < result.seconds, "\(roundTrip) vs the whole process \(result.seconds)")
        #expect(document["echo"] as? String == "ping")
    }

    @Test("device text with escape sequences and carriage returns is shown escaped, not obeyed")
    func escapedDeviceText() async throws {
        let hostile = "hi\u{1B}[2J\u{1B}]0;owned\u{07}\rgone"
        let result = try await CLI.run(["-c", "sim", "echo", hostile])
        #expect(result.status == 0)
        #expect(!result.stdout.contains("\u{1B}"))
        #expect(!result.stdout.contains("\r"))
        #expect(result.stdout.contains("\\u{1B}[2J"), "\(result.stdout)")
        // JSON keeps the text exactly, escaped by the encoder.
        let json = try await CLI.run(["-c", "sim", "--json", "echo", hostile])
        #expect(!json.stdout.contains("\u{1B}"))
        let document = try json.json()
        #expect(document.values.contains { ($0 as? String) == hostile })
    }
}
