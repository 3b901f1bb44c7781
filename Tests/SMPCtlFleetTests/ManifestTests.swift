import Foundation
import SMPCtlConnection
import SMPCtlFleet
import Testing

@Suite("Fleet manifests")
struct ManifestTests {
    /// A folder with images/blinky.bin, so that relative paths can be checked.
    func folderWithImage() throws -> String {
        let folder = try FleetFixture.folder("manifest")
        try FileManager.default.createDirectory(atPath: folder + "/images", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: FleetFixture.image, toPath: folder + "/images/blinky.bin")
        return folder
    }

    let good = """
        version: 1
        defaults:
          timeout: 4
          window: 2
        images:
          app:
            file: images/blinky.bin
            version: 1.1.0
          net:
            file: images/blinky.bin
            version: "1.1.0"
            image: 1
        rules:
          - match: {board: nrf5340dk}
            images: [app, net]
          - match: {ring: [canary, main]}
            images: app
        devices:
          - name: lab-001
            connection: udp:192.0.2.10:1337
            labels: {site: berlin, gateway: gw-a, board: nrf5340dk, ring: canary}
          - name: lab-002
            connection: serial:/dev/ttyACM0?baud=1000000
            labels: {site: berlin, board: nrf52840dk, ring: main}
            timeout: 30
            window: 1
          - name: lab-003
            connection: ble:sensor-3?adapter=hci1
            labels: {site: paris, board: nrf52840dk}
            image: net
          - name: lab-004
            connection: udp:[::1]:1337
            labels: {board: other}
        """

    @Test("a manifest: relative paths, rules by label and board, per-device overrides")
    func goodManifest() throws {
        let folder = try folderWithImage()
        // Loaded from another working folder: paths are relative to the manifest.
        let manifest = try FleetFixture.manifest(good, in: folder)
        #expect(manifest.devices.map(\.name) == ["lab-001", "lab-002", "lab-003", "lab-004"])
        #expect(manifest.images.map(\.path) == [folder + "/images/blinky.bin", folder + "/images/blinky.bin"])
        #expect(FleetFixture.hex(manifest.images[0].hash) == FleetFixture.imageHash)
        #expect(manifest.images[1].imageNumber == 1)
        let devices = manifest.devices
        #expect(manifest.images(for: devices[0])?.map(\.name) == ["app", "net"])
        #expect(manifest.images(for: devices[1])?.map(\.name) == ["app"])
        #expect(manifest.images(for: devices[2])?.map(\.name) == ["net"])
        #expect(manifest.images(for: devices[3]) == nil)
        #expect(devices[0].connection == .udp(host: "192.0.2.10", port: 1337, datagramLimit: nil))
        #expect(devices[1].connection == .serial(path: "/dev/ttyACM0", baud: 1_000_000))
        #expect(devices[1].sharedLink == "serial:/dev/ttyACM0")
        #expect(devices[2].sharedLink == "ble:hci1")
        #expect(devices[0].sharedLink == nil)
        let first = manifest.settings(for: devices[0])
        let second = manifest.settings(for: devices[1])
        #expect(first.timeout == 4 && first.window == 2 && first.attempts == 2 && first.mode == .testAndConfirm)
        #expect(second.timeout == 30 && second.window == 1)
        #expect(manifest.select([FleetSelector(key: "site", value: "berlin")]).map(\.name) == ["lab-001", "lab-002"])
        #expect(manifest.select([try FleetSelector(parsing: "name=lab-003")]).map(\.name) == ["lab-003"])
        #expect(manifest.sha256.count == 64)
    }

    /// Replaces one line of the good manifest and returns the error.
    func error(replacing old: String, with new: String) throws -> ManifestError {
        let folder = try folderWithImage()
        #expect(good.contains(old))
        do {
            _ = try FleetFixture.manifest(good.replacingOccurrences(of: old, with: new), in: folder)
        } catch {
            #expect(error.file.hasSuffix("/fleet.yaml"))
            #expect(error.description.hasPrefix(error.file + ":"))
            return error
        }
        Issue.record("the manifest was accepted")
        throw CancellationError()
    }

    @Test("errors name the file, the line and the field")
    func located() throws {
        let connection = try error(replacing: "serial:/dev/ttyACM0?baud=1000000", with: "serial:/dev/ttyACM0?baud=fast")
        #expect(connection.line == 23 && connection.field == "devices[1].connection")
        #expect(connection.message.contains("baud"))

        let port = try error(replacing: "udp:192.0.2.10:1337", with: "udp:192.0.2.10:99999")
        #expect(port.line == 20 && port.field == "devices[0].connection")

        let typo = try error(replacing: "    window: 1", with: "    windw: 1")
        #expect(typo.line == 26 && typo.field == "devices[1].windw" && typo.message.contains("unknown key"))

        let version = try error(replacing: "version: 1.1.0", with: "version: 1.2.0")
        #expect(version.line == 8 && version.field == "images.app.version" && version.message.contains("1.1.0"))

        let file = try error(replacing: "file: images/blinky.bin\n    version: 1.1.0", with: "file: images/missing.bin\n    version: 1.1.0")
        #expect(file.line == 7 && file.field == "images.app.file")

        let duplicate = try error(replacing: "name: lab-002", with: "name: lab-001")
        #expect(duplicate.line == 22 && duplicate.field == "devices[1].name" && duplicate.message.contains("twice"))

        let badName = try error(replacing: "name: lab-003", with: "name: ../../etc/passwd")
        #expect(badName.line == 27 && badName.field == "devices[2].name")

        let unknownImage = try error(replacing: "image: net", with: "image: radio")
        #expect(unknownImage.line == 30 && unknownImage.field == "devices[2].image" && unknownImage.message.contains("radio"))

        let timeout = try error(replacing: "timeout: 30", with: "timeout: -1")
        #expect(timeout.line == 25 && timeout.field == "devices[1].timeout")

        let yaml = try error(replacing: "labels: {board: other}", with: "labels: {board: other")
        #expect(yaml.line != nil && yaml.message.contains("YAML"))

        let anchor = try error(replacing: "labels: {board: other}", with: "labels: &shared {board: other}")
        #expect(anchor.line == 33 && anchor.message.contains("anchors"))

        let duplicateKey = try error(replacing: "    window: 1", with: "    window: 1\n    window: 2")
        #expect(duplicateKey.line != nil && duplicateKey.message.contains("twice"))
    }

    @Test("sizes are bounded: rules, labels, file size, a missing version")
    func bounds() throws {
        let folder = try folderWithImage()
        var rules = "version: 1\nimages:\n  app: {file: images/blinky.bin, version: 1.1.0}\nrules:\n"
        for _ in 0...FleetManifest.maximumRules { rules += "  - {images: [app]}\n" }
        rules += "devices: []\n"
        #expect(throws: ManifestError.self) { try FleetFixture.manifest(rules, in: folder) }
        do {
            _ = try FleetFixture.manifest(rules, in: folder)
        } catch {
            #expect(error.field == "rules" && error.line == 5 && error.message.contains("at most 1000"))
        }
        var labels = "version: 1\nimages:\n  app: {file: images/blinky.bin, version: 1.1.0}\ndevices:\n  - name: a\n    connection: sim\n    labels:\n"
        for index in 0...FleetManifest.maximumLabels { labels += "      k\(index): v\n" }
        #expect(throws: ManifestError.self) { try FleetFixture.manifest(labels, in: folder) }

        let noVersion = "version: 1\nimages:\n  app: {file: images/blinky.bin}\ndevices: []\n"
        do {
            _ = try FleetFixture.manifest(noVersion, in: folder)
            Issue.record("a manifest without a target version was accepted")
        } catch {
            #expect(error.field == "images.app.version" && error.line == 3)
        }
        // Lines as the YAML reader counts them: a lone CR ends a line as LF does (the fuzz-manifest
        // target's own LF count put such an error past the last line, 4 December).
        for lineBreak in ["\n", "\r\n", "\r"] {
            let text = ["version: 1", "images:", "  app: {file: images/blinky.bin}", "devices: []", ""]
                .joined(separator: lineBreak)
            do {
                _ = try FleetFixture.manifest(text, in: folder)
                Issue.record("a manifest without a target version was accepted")
            } catch {
                #expect(error.field == "images.app.version" && error.line == 3, "\(lineBreak.debugDescription): \(error)")
            }
        }
        // A file over the size bound is refused before it is parsed.
        let big = folder + "/big.yaml"
        _ = FileManager.default.createFile(atPath: big, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        try handle.truncate(atOffset: UInt64(FleetManifest.maximumFileSize + 1))
        try handle.close()
        #expect(throws: ManifestError.self) { try FleetManifest.load(path: big, environment: [:]) }
        #expect(FleetManifest.maximumDevices == 100_000)
    }

    @Test("profiles stand for connections; an unknown name is an error at its line")
    func profiles() throws {
        let folder = try folderWithImage()
        let config = folder + "/config"
        try FileManager.default.createDirectory(atPath: config + "/smpctl", withIntermediateDirectories: true)
        try Data(#"{"profiles": {"bench": "udp:127.0.0.1:1337"}}"#.utf8).write(to: URL(fileURLWithPath: config + "/smpctl/profiles.json"))
        let text = "version: 1\nimages:\n  app: {file: images/blinky.bin, version: 1.1.0}\ndevices:\n  - name: a\n    connection: bench\n  - name: b\n    connection: nowhere\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/p.yaml"))
        do {
            _ = try FleetManifest.load(path: folder + "/p.yaml", environment: ["XDG_CONFIG_HOME": config])
            Issue.record("an unknown profile was accepted")
        } catch {
            #expect(error.line == 8 && error.field == "devices[1].connection" && error.message.contains("nowhere"))
        }
        let known = text.replacingOccurrences(of: "  - name: b\n    connection: nowhere\n", with: "")
        try Data(known.utf8).write(to: URL(fileURLWithPath: folder + "/q.yaml"))
        let one = try FleetManifest.load(path: folder + "/q.yaml", environment: ["XDG_CONFIG_HOME": config])
        #expect(one.devices.first?.connection == .udp(host: "127.0.0.1", port: 1337, datagramLimit: nil))
    }

    @Test("JSON manifests are read too")
    func json() throws {
        let folder = try folderWithImage()
        let text = #"{"version": 1, "images": {"app": {"file": "images/blinky.bin", "version": "1.1.0"}}, "rules": [{"match": {}, "images": ["app"]}], "devices": [{"name": "a", "connection": "udp:127.0.0.1:1", "labels": {"site": "x"}}]}"#
        let manifest = try FleetFixture.manifest(text, in: folder, name: "fleet.json")
        #expect(manifest.devices.first?.labels == ["site": "x"])
    }

    @Test("versions compare by their numbers")
    func versions() {
        #expect(FleetVersion.equal("1.1.0", "1.1.0.0"))
        #expect(FleetVersion.newer("2.0.0", than: "1.9.9"))
        #expect(!FleetVersion.newer("1.1.0", than: "1.1.0"))
        #expect(FleetVersion.newer("1.1.0.2", than: "1.1.0"))
        #expect(!FleetVersion.newer("x", than: "1.0"))
    }
}
