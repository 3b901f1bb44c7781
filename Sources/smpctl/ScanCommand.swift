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
            with -c ble:NAME or -c ble:ADDRESS. Devices that do not advertise the SMP service UUID need --all. \
            --timeout is how long to scan (10 s by default); --json prints one document at the end instead \
            of live lines.
            """)

    @Flag(help: "List every device, not only those advertising the SMP service.")
    var all = false

    /// `--timeout` and `--json` are the groups the root command decodes: an option of scan's own
    /// with either name never saw its value, because the root took it first (`scan --json
    /// --timeout 2` scanned for 10 s and printed lines).
    @OptionGroup var wait: TimeoutOption

    @Option(help: ArgumentHelp("The adapter to scan with, such as hci1.", valueName: "hciN"), completion: Completion.adapter)
    var adapter: String?

    @OptionGroup var output: OutputOptions

    static let defaultSeconds = 10.0

    var timeout: Double { wait.timeout ?? Self.defaultSeconds }
    var json: Bool { output.json }

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
            Output(json: json).fail(status: .failure, message: error.description, fields: ["error": "bluetooth"])
            throw CommandFailure(status: .failure)
        }
        if json {
            let list = devices.map { device -> JSONValue in
                .object([
                    "name": device.name.map(JSONValue.string) ?? .null, "address": .string(device.address),
                    "address_type": .string(device.addressType), "rssi": device.rssi.map { .int($0) } ?? .null,
                    "smp": .bool(device.hasSMPService), "connected": .bool(device.connected),
                ])
            }
            print(JSONValue.object(["ok": true, "scan_seconds": .double(timeout), "devices": .array(list)]).text)
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
