import ArgumentParser
import Foundation
import SMPCtlBlueZ

/// `smpctl scan`: lists Bluetooth LE devices through BlueZ.
struct ScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "List Bluetooth LE devices that advertise the SMP service (through BlueZ).",
        discussion: """
            Lines appear live while scanning: name, address, address type and RSSI. Connect to a listed device \
            with -c ble:NAME or -c ble:ADDRESS. Devices that do not advertise the SMP service UUID need --all.
            """)

    @Flag(help: "List every device, not only those advertising the SMP service.")
    var all = false

    @Option(help: "How long to scan, in seconds.")
    var timeout: Double = 10

    @Option(help: "The adapter to scan with, such as hci1.")
    var adapter: String?

    @Flag(help: "Print a JSON list at the end instead of live lines.")
    var json = false

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
    }

    func run() async throws {
        let scanner = BlueZScanner(adapter: adapter, includeAll: all)
        let live = !json
        let devices: [BlueZDeviceInfo]
        do {
            devices = try await scanner.scan(for: .milliseconds(Int(timeout * 1000))) { device in
                guard live else { return }
                print(Self.line(device))
                fflush(nil)
            }
        } catch {
            FileHandle.standardError.write(Data("smpctl: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let list = devices.map { device -> JSONValue in
                .object([
                    "name": device.name.map(JSONValue.string) ?? .null, "address": .string(device.address),
                    "address_type": .string(device.addressType), "rssi": device.rssi.map { .int($0) } ?? .null,
                    "smp": .bool(device.hasSMPService), "connected": .bool(device.connected),
                ])
            }
            print(JSONValue.array(list).text)
        } else if devices.isEmpty {
            FileHandle.standardError.write(Data("no devices found\(all ? "" : " advertising the SMP service (try --all)")\n".utf8))
        }
    }

    static func line(_ device: BlueZDeviceInfo) -> String {
        let name = device.name ?? device.alias ?? "(no name)"
        let rssi = device.rssi.map { "\($0) dBm" } ?? "-"
        return "\(name.padding(toLength: max(name.count, 24), withPad: " ", startingAt: 0)) \(device.address) \(device.addressType.padding(toLength: 6, withPad: " ", startingAt: 0)) \(rssi)"
    }
}
