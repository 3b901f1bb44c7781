import ArgumentParser
import Dispatch
import Foundation
import SMPCtlBlueZ
import SMPCtlConnection
import SMPCtlDBus
import SMPCtlLocking

/// Shell completion of arguments (the scripts come from `smpctl --generate-completion-script SHELL`).
///
/// The shell runs `smpctl ---completion ...` on every Tab, so everything here is quick and bounded:
/// the profiles file is read (bounded, as every read of it), and BlueZ is asked at most for
/// ``bluetoothBudget``; whatever fails or is late completes nothing rather than blocking the shell.
enum Completion {
    /// The longest wait for BlueZ's device list.
    static let bluetoothBudget: Duration = .seconds(1)

    /// The connection forms offered before anything is typed.
    static let forms = ["sim", "udp:", "serial:", "ble:"]

    /// Files by kind, for ArgumentParser's `CompletionKind`.
    static let signedImage = CompletionKind.file(extensions: ["bin"])
    static let anyImageFile = CompletionKind.file(extensions: ["bin", "zip", "hex", "elf"])
    static let buildFolder = CompletionKind.directory
    static let manifest = CompletionKind.file(extensions: ["yaml", "yml", "json"])
    static let journal = CompletionKind.file(extensions: ["journal"])
    static let journalOrReport = CompletionKind.file(extensions: ["journal", "json"])
    static let publicKey = CompletionKind.file(extensions: ["pem"])

    /// `-c/--connection`: the forms, saved profiles, serial ports and, once `ble:` is typed, the
    /// devices BlueZ knows.
    static let connection = CompletionKind.custom { _, _, prefix in
        connections(
            prefix: prefix, environment: ProcessInfo.processInfo.environment,
            bluetooth: { bluetoothDevices(within: bluetoothBudget) })
    }

    /// `--adapter`: the Bluetooth controllers the kernel lists (`/sys/class/bluetooth/hciN`).
    static let adapter = CompletionKind.custom { _, _, prefix in
        adapters(in: "/sys/class/bluetooth").filter { $0.hasPrefix(prefix) }
    }

    /// The adapter names in `folder` (`hci0`, not the `hci0:1` entries of its connections), at most 64.
    static func adapters(in folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return Array(names.filter { $0.hasPrefix("hci") && $0.dropFirst(3).allSatisfy(\.isNumber) && $0.count > 3 }.sorted().prefix(64))
    }

    /// `profile remove NAME`: the saved profiles.
    static let profileName = CompletionKind.custom { _, _, prefix in
        profiles(environment: ProcessInfo.processInfo.environment).filter { $0.hasPrefix(prefix) }
    }

    /// The candidates for a connection being typed as `prefix`. `bluetooth` is called only when
    /// the word can still become a `ble:` connection.
    static func connections(prefix: String, environment: [String: String], bluetooth: () -> [String]) -> [String] {
        var words = forms + profiles(environment: environment)
        if prefix.hasPrefix("serial:") {
            words += serialPorts().map { "serial:" + $0 }
        }
        if !prefix.isEmpty, prefix.hasPrefix("ble:") || "ble:".hasPrefix(prefix) {
            words += bluetooth().map { "ble:" + $0 }
        }
        var seen = Set<String>()
        return words.filter { $0.hasPrefix(prefix) && seen.insert($0).inserted }
    }

    /// Saved profile names, sorted; none when the file is missing or unreadable (completion never
    /// reports errors: the command itself does, when it runs).
    static func profiles(environment: [String: String]) -> [String] {
        guard let profiles = try? ProfileStore(environment: environment).load() else { return [] }
        return profiles.keys.filter { (try? ProfileStore.validate(name: $0)) != nil }.sorted()
    }

    /// Serial ports that USB adapters and boards usually appear as.
    static func serialPorts() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? []
        return names.filter { $0.hasPrefix("ttyACM") || $0.hasPrefix("ttyUSB") || $0.hasPrefix("ttyAMA") }
            .sorted().map { "/dev/" + $0 }
    }

    /// The addresses, and names that are safe as one shell word, of the LE devices BlueZ knows
    /// (no scan is started); nothing when the bus or bluetoothd does not answer within `budget`.
    static func bluetoothDevices(within budget: Duration) -> [String] {
        let result = LockedValue<[String]>([])
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let words = await knownBluetoothDevices()
            result.withLock { $0 = words }
            done.signal()
        }
        let milliseconds = Int(budget.components.seconds) * 1000 + Int(budget.components.attoseconds / 1_000_000_000_000_000)
        guard done.wait(timeout: .now() + .milliseconds(milliseconds)) == .success else { return [] }
        return result.withLock { $0 }
    }

    private static func knownBluetoothDevices() async -> [String] {
        guard let bus = try? await BusConnection.connect(address: BusConnection.systemBusAddress()) else { return [] }
        guard let model = try? await BlueZObjectModel.load(bus: bus) else {
            await bus.close()
            return []
        }
        let devices = await model.devices
        await model.stop()
        await bus.close()
        var words: [String] = []
        for device in devices {
            words.append(device.address)
            if let name = device.name ?? device.alias, isShellWord(name) { words.append(name) }
        }
        return words
    }

    /// A name completed as is: printable ASCII without spaces, quotes or shell metacharacters.
    static func isShellWord(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x5F || byte == 0x2E
            }
    }
}
