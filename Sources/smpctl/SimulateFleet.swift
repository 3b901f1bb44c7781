import ArgumentParser
import Foundation
import SMPCtlClient
import SMPCtlConnection
import SMPCtlFiles
import SMPCtlFleet
import SMPCtlSimulator
import SMPCtlTransport

/// `smpctl simulate --udp HOST:PORT --devices N`: N independent devices and a manifest for them.
struct SimulatedFleetArguments: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Serve this many independent devices over UDP, on consecutive ports from --udp's port (port 0: a free port each), and print a fleet manifest for them on standard output.",
        valueName: "n"))
    var devices: Int?

    @Option(name: .customLong("fleet-image"), help: ArgumentHelp("The signed image the printed manifest gives every device (and that --current-every devices already run).", valueName: "file"), completion: Completion.signedImage)
    var fleetImage: String?

    @Option(name: .customLong("manifest"), help: ArgumentHelp("Also write the manifest to this file.", valueName: "path"))
    var manifestPath: String?

    @Option(name: .customLong("unreachable-every"), help: ArgumentHelp("Every k-th device does not answer (nothing listens on its port).", valueName: "k"))
    var unreachableEvery: Int?

    @Option(name: .customLong("current-every"), help: ArgumentHelp("Every k-th device already runs --fleet-image.", valueName: "k"))
    var currentEvery: Int?

    @Option(name: .customLong("reject-every"), help: ArgumentHelp("Every k-th device's bootloader refuses new images.", valueName: "k"))
    var rejectEvery: Int?

    @Option(name: .customLong("drop-every"), help: ArgumentHelp("Every k-th device's link drops in the middle of the upload (after --drop-after bytes) for --outage.", valueName: "k"))
    var dropEvery: Int?

    @Option(name: .customLong("slow-every"), help: ArgumentHelp("Every k-th device sits behind the --slow-link emulated link.", valueName: "k"))
    var slowEvery: Int?

    @Option(name: .customLong("drop-after"), help: ArgumentHelp("Request bytes before a --drop-every device's link drops.", valueName: "bytes"))
    var dropAfter: Int = 20_000

    @Option(help: ArgumentHelp("How long a dropped link stays down, in milliseconds.", valueName: "ms"))
    var outage: Int = 1500

    @Option(name: .customLong("slow-link"), help: ArgumentHelp("The emulated link of --slow-every devices (as --link).", valueName: "link"))
    var slowLink: String = "serial:115200"

    var usesFleetOptions: Bool {
        fleetImage != nil || manifestPath != nil || unreachableEvery != nil || currentEvery != nil || rejectEvery != nil
            || dropEvery != nil || slowEvery != nil
    }

    func validate() throws {
        if let devices, !(1...SimulatedFleetOptions.maximumCount).contains(devices) {
            throw ValidationError("--devices must be between 1 and \(SimulatedFleetOptions.maximumCount)")
        }
        for (name, value) in [("--unreachable-every", unreachableEvery), ("--current-every", currentEvery), ("--reject-every", rejectEvery),
            ("--drop-every", dropEvery), ("--slow-every", slowEvery)]
        {
            if let value, !(1...1_000_000).contains(value) { throw ValidationError("\(name) must be between 1 and 1000000") }
        }
        if currentEvery != nil, fleetImage == nil { throw ValidationError("--current-every needs --fleet-image") }
        guard (1...(64 << 20)).contains(dropAfter) else { throw ValidationError("--drop-after must be 1 byte to 64 MiB") }
        guard (1...600_000).contains(outage) else { throw ValidationError("--outage must be 1 to 600000 ms") }
        do {
            _ = try LinkModel(parsing: slowLink)
        } catch {
            throw ValidationError("--slow-link: \(error)")
        }
    }

    func serve(count: Int, udp: String, simulator: SimulatorOptions, exitAfter: Double?) async throws {
        guard let (host, port) = try? ConnectionSpec.parseUDPEndpoint(udp, allowingPortZero: true) else {
            throw ValidationError("--udp takes HOST:PORT, such as 127.0.0.1:1337")
        }
        var options = SimulatedFleetOptions(count: count)
        options.host = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        options.basePort = port
        options.unreachableEvery = unreachableEvery
        options.currentEvery = currentEvery
        options.rejectEvery = rejectEvery
        options.dropEvery = dropEvery
        options.slowEvery = slowEvery
        options.dropAfterBytes = dropAfter
        options.outage = .milliseconds(outage)
        options.slowLink = try LinkModel(parsing: slowLink)
        options.configuration = try simulator.configuration()
        var imagePath = "REPLACE-WITH-YOUR-IMAGE.signed.bin"
        var version = "1.1.0"
        if let fleetImage {
            let file: FirmwareFile
            let identity: FirmwareImageIdentity
            do {
                file = try FirmwareFile(path: fleetImage)
                identity = try FirmwareImageIdentity(file: file)
                options.currentImage = [UInt8](try RegularFile.read(fleetImage, limit: FirmwareFile.maximumLength))
            } catch {
                throw ValidationError("--fleet-image: \(error)")
            }
            imagePath = URL(fileURLWithPath: fleetImage).standardizedFileURL.path
            version = identity.version
        }
        let fleet: SimulatedFleet
        do {
            fleet = try SimulatedFleet(options)
        } catch {
            FileHandle.standardError.write(Data("smpctl: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
        let entries = fleet.devices.enumerated().map { index, device in
            FleetManifestWriter.Device(
                name: device.name, connection: fleet.connection(device),
                labels: [
                    ("site", "sim"), ("gateway", index % 2 == 0 ? "gw-a" : "gw-b"), ("board", "sim-board"),
                    ("ring", index < max(1, count / 10) ? "canary" : "main"), ("sim-fault", device.fault.rawValue),
                ])
        }
        let manifest = FleetManifestWriter.manifest(
            devices: entries, imagePath: imagePath, version: version,
            comment: [
                "\(count) simulated devices served by `smpctl simulate`; labels sim-fault says what each one does wrong.",
                fleetImage == nil ? "Give --fleet-image FILE, or replace the image file below with a signed image." : "The image is --fleet-image.",
            ],
            defaults: [("timeout", "5"), ("reconnect-timeout", "10"), ("deadline", "300"), ("attempts", "2")])
            + "# end of manifest\n"
        if let manifestPath {
            do {
                try Data(manifest.utf8).write(to: URL(fileURLWithPath: manifestPath), options: .atomic)
            } catch {
                fleet.stop()
                throw ValidationError("cannot write --manifest \(manifestPath): \(error.localizedDescription)")
            }
        }
        FileHandle.standardOutput.write(Data(manifest.utf8))
        FileHandle.standardError.write(Data("serving \(count) simulated devices on \(options.host)\n".utf8))
        if let exitAfter {
            try? await Task.sleep(for: .milliseconds(Int(exitAfter * 1000)))
        } else {
            await Interruption.waitForCancellation()
        }
        fleet.stop()
        // What each device received, for checks and curiosity.
        var lines = ""
        for device in fleet.devices {
            lines += "\(device.name) port \(device.port) \(device.fault.rawValue): \(device.server?.requestCount ?? 0) requests\n"
        }
        FileHandle.standardError.write(Data(lines.utf8))
    }
}
