import ArgumentParser
import Foundation
import SMPCtlBlueZ
import SMPCtlConnection
import SMPCtlLocking

/// `smpctl pair ble:NAME`: pairs and bonds through BlueZ with smpctl's own agent.
struct PairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pair",
        abstract: "Pair and bond with a Bluetooth LE device through BlueZ, with smpctl's own pairing agent.",
        discussion: """
            For firmware whose SMP characteristic needs an encrypted link \
            (CONFIG_MCUMGR_TRANSPORT_BT_PERM_RW_ENCRYPT or _AUTHEN). smpctl registers a BlueZ agent for the \
            pairing: on a terminal it can show a passkey or ask for the one the device displays (KeyboardDisplay, \
            with a time limit); otherwise it pairs with Just Works (NoInputNoOutput). The device is then marked \
            trusted, and the bond serves later connections without pairing again. Instead of pairing first, a \
            connection with pair=yes (-c ble:NAME?pair=yes) pairs when the device refuses an unencrypted access, \
            then tries once more.
            """)

    @Argument(help: ArgumentHelp(
        "The device: ble:NAME-OR-ADDRESS[?adapter=hciN], or a profile name (default: -c, then SMPCTL_CONNECTION).",
        valueName: "connection"))
    var device: String?

    @Option(name: .customLong("pair-timeout"),
        help: ArgumentHelp("How long pairing may take, a passkey entry included, in seconds.", valueName: "seconds"))
    var pairTimeout: Double = 60

    @Option(name: .customLong("discovery-timeout"),
        help: ArgumentHelp("How long to look for a device BlueZ does not know yet, in seconds.", valueName: "seconds"))
    var discoveryTimeout: Double = 30

    @Flag(name: .customLong("just-works"), help: "Pair without a passkey prompt (NoInputNoOutput), even on a terminal.")
    var justWorks = false

    /// `-c` and `--json` come from here (the response timeout and retries do not apply).
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard pairTimeout > 0, pairTimeout <= 600 else {
            throw ValidationError("--pair-timeout must be between 0 and 600 seconds")
        }
        guard discoveryTimeout > 0, discoveryTimeout <= 3600 else {
            throw ValidationError("--discovery-timeout must be between 0 and 3600 seconds")
        }
    }

    func run() async throws {
        let output = Output(json: global.json)
        let target: String
        let adapter: String?
        do {
            guard case .ble(let name, let chosen, _) = try resolveConnection(device ?? global.connection) else {
                throw ConnectionError("pair works on Bluetooth LE connections only: give ble:NAME-OR-ADDRESS")
            }
            target = name
            adapter = chosen
        } catch {
            output.fail(status: .usage, message: "\(error)", fields: ["error": "connection"])
            throw CommandFailure(status: .usage)
        }
        var configuration = BLETransport.Configuration(target: target, adapter: adapter)
        configuration.pairingTimeout = .milliseconds(Int(pairTimeout * 1000))
        configuration.discoveryTimeout = .milliseconds(Int(discoveryTimeout * 1000))
        configuration.agentResponder =
            justWorks ? JustWorksResponder() : TerminalAgentResponder.ifTerminal(pairingTimeout: configuration.pairingTimeout)
        let transport = BLETransport(configuration: configuration)
        let report: BlueZPairingReport
        do {
            report = try await transport.pair()
        } catch {
            output.fail(status: .transport, message: error.message, fields: [
                "error": .string(error.code.rawValue), "phase": error.phase.map { .string($0.rawValue) } ?? .null,
                "dbus_error": error.underlying.map { .string($0.name.rawValue) } ?? .null,
            ])
            throw CommandFailure(status: .transport)
        }
        if global.json {
            output.document(.object([
                "ok": .bool(true), "address": .string(report.address), "already_paired": .bool(report.alreadyPaired),
                "paired": .bool(report.paired), "bonded": .bool(report.bonded), "trusted": .bool(report.trusted),
                "agent_requests": .array(report.agentRequests.map(JSONValue.string)),
            ]))
        } else {
            let state = [report.bonded ? "bonded" : "not bonded", report.trusted ? "trusted" : "not trusted"]
            let verb = report.alreadyPaired ? "already paired with" : (report.paired ? "paired with" : "pairing ended with")
            output.line("\(verb) \(report.address) (\(state.joined(separator: ", ")))")
            if !report.bonded {
                output.line("the device stored no bond: the next connection pairs again (use ble:\(report.address)?pair=yes)")
            }
        }
    }
}

/// The agent's answers on the controlling terminal: passkeys are asked for and shown there, with
/// a time limit for every question. Used when standard input is a terminal.
struct TerminalAgentResponder: BlueZAgentResponder {
    /// How long one question waits for an answer: less than the pairing may take, so that a
    /// question nobody answers is refused before bluetoothd gives up on the pairing.
    let answerTimeout: Duration
    /// How many times bluetoothd has cancelled a request: a question open when it changes ends.
    private let cancellations = LockedValue<UInt64>(0)

    init(answerTimeout: Duration) {
        self.answerTimeout = answerTimeout
    }

    var capability: BlueZAgentCapability { .keyboardDisplay }

    /// A terminal responder when standard input is a terminal and /dev/tty opens; Just Works otherwise.
    /// `pairingTimeout` is how long the whole pairing may take.
    static func ifTerminal(pairingTimeout: Duration = .seconds(60)) -> any BlueZAgentResponder {
        guard isatty(STDIN_FILENO) == 1 else { return JustWorksResponder() }
        let fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return JustWorksResponder() }
        close(fd)
        return TerminalAgentResponder(answerTimeout: max(.seconds(5), pairingTimeout - .seconds(10)))
    }

    func passkey(device: String) async -> UInt32? {
        guard let answer = await ask("Enter the passkey \(device) shows (6 digits): ") else { return nil }
        let digits = answer.trimmingCharacters(in: .whitespaces)
        guard !digits.isEmpty, digits.utf8.count <= 6, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let number = UInt32(digits)
        else {
            Self.say("(not a passkey of up to 6 digits: the pairing request is refused)\n")
            return nil
        }
        return number
    }

    func confirm(passkey: UInt32?, device: String) async -> Bool {
        // An authorization without a passkey is for the pairing smpctl itself asked for.
        guard let passkey else { return true }
        let shown = String(passkey).leftPadded(to: 6)
        guard let answer = await ask("Does \(device) show the passkey \(shown)? [y/N] ") else { return false }
        return ["y", "yes"].contains(answer.trimmingCharacters(in: .whitespaces).lowercased())
    }

    func display(passkey: UInt32, device: String) async {
        Self.say("Type the passkey \(String(passkey).leftPadded(to: 6)) on \(device), then Enter if it has a key for it.\n")
    }

    func cancelled() async {
        cancellations.withLock { $0 &+= 1 }
        Self.say("\nbluetoothd cancelled the pairing request.\n")
    }

    private static func say(_ text: String) {
        let fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// Asks on /dev/tty and reads one line of at most 64 bytes within `answerTimeout`, on a thread
    /// of its own so that no task thread blocks; `nil` on timeout, when the terminal fails, or when
    /// bluetoothd cancels the request meanwhile (checked at least every 200 ms).
    private func ask(_ question: String) async -> String? {
        let timeout = answerTimeout
        let cancellations = self.cancellations
        let asked = cancellations.withLock { $0 }
        return await withCheckedContinuation { continuation in
            let thread = Thread {
                let answer = Self.readLine(question: question, timeout: timeout) {
                    cancellations.withLock { $0 } != asked
                }
                continuation.resume(returning: answer)
            }
            thread.start()
        }
    }

    private static func readLine(question: String, timeout: Duration, cancelled: () -> Bool) -> String? {
        let fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let prompt = Array(question.utf8)
        _ = prompt.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var line: [UInt8] = []
        while line.count < 64 {
            // The cancellation's own message says why the question ended.
            if cancelled() { return nil }
            let left = deadline - clock.now
            guard left > .zero else { break }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&poller, 1, min(milliseconds, 200))
            if ready < 0, errno == EINTR { continue }
            guard ready >= 0 else { return nil }
            if ready == 0 { continue }
            var byte: UInt8 = 0
            let count = read(fd, &byte, 1)
            if count < 0, errno == EINTR { continue }
            guard count == 1 else { break }
            if byte == 0x0a || byte == 0x0d { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        let timedOut = Array("\n(no answer; the pairing request is refused)\n".utf8)
        _ = timedOut.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        return nil
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
