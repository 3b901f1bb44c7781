// A complete firmware update through the smpctl libraries, against the embedded simulator.
//
//     swift run smpctl-library-example [IMAGE]
//
// It uses the same pieces as `smpctl dfu`: a transport (here the in-process link to a simulated
// Zephyr/MCUboot device; `UDPTransport`, `SerialTransport` or `BLETransport` for hardware), an
// `SMPClient`, and the `update` workflow (upload, test, reset, reconnect, verify, confirm).
import Foundation
import SMPCtlClient
import SMPCtlSimulator
import SMPCtlTransport

@main
struct LibraryUpdateExample {
    static func main() async {
        let path = CommandLine.arguments.dropFirst().first ?? "Examples/images/blinky-1.1.0.signed.bin"
        do {
            let file = try FirmwareFile(path: path)
            // The hash the device will list is the image's hash TLV, not the file's SHA-256.
            let identity = try FirmwareImageIdentity(file: file)
            let device = SimulatedDevice()
            let transport = InProcessTransport(server: SimulatorServer(device: device))
            let client = SMPClient(transport: transport)
            try await client.open()
            let report = try await client.update(file, imageHash: identity.hash) { event in
                if case .uploadFinished(let result) = event {
                    print("uploaded \(result.length) bytes in \(result.chunks) chunks")
                }
            }
            await client.close()
            let running = report.finalState.first { $0.active }
            print("running \(running?.version ?? "?"), confirmed: \(report.confirmed)")
            exit(report.confirmed && running?.version == identity.version ? 0 : 1)
        } catch {
            print("update failed: \(error)")
            exit(1)
        }
    }
}
