// Fleet manifests (SMPCtlFleet FleetManifest.parse: YAML or JSON through Yams, then the checks).
//
// Invariants: parsing never traps; an error names the manifest and, when it gives a line, a line
// of the text; a manifest that parses keeps its bounds (devices, images, rules, labels), names
// each device once, and places each device on a line of the text.

import FuzzSupport
import SMPCtlFleet

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: fuzzBytes(data, size), as: UTF8.self)
    // Lines as the YAML reader counts them: a lone CR or a NEL ends a line too (a count of LF
    // alone put an error past the last line, found by this target, 4 December).
    let lineCount = yamlLineCount(text)
    do throws(ManifestError) {
        let manifest = try FleetManifest.parse(text: text, file: "fleet.yaml", baseDirectory: "/nonexistent-smpctl-fuzz")
        invariant(manifest.devices.count <= FleetManifest.maximumDevices, "\(manifest.devices.count) devices")
        invariant(manifest.images.count <= FleetManifest.maximumImages, "\(manifest.images.count) images")
        invariant(manifest.rules.count <= FleetManifest.maximumRules, "\(manifest.rules.count) rules")
        invariant(Set(manifest.devices.map(\.name)).count == manifest.devices.count, "a device named twice")
        for device in manifest.devices {
            invariant(device.labels.count <= FleetManifest.maximumLabels, "\(device.labels.count) labels")
            if let line = device.line { invariant(line >= 1 && line <= lineCount, "device on line \(line) of \(lineCount)") }
            _ = manifest.images(for: device)
            _ = manifest.settings(for: device)
        }
    } catch {
        invariant(error.file == "fleet.yaml", "an error about \(error.file)")
        if let line = error.line { invariant(line >= 1 && line <= lineCount + 1, "error on line \(line) of \(lineCount)") }
        invariant(!error.description.isEmpty, "an empty error")
    }
    return 0
}
