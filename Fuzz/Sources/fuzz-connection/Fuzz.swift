// The `--connection` strings and saved profiles (SMPCtlConnection: ConnectionSpec, ProfileStore).
//
// The first byte picks what is fuzzed: a connection string, a profile name, or a profiles file.
// Invariants: parsing never traps; a parsed spec keeps its bounds (UDP datagram limit 64–65507,
// baud 1–100,000,000, non-empty host/path/target); a profile name that validates is short and
// parses as a profile rather than as a URI; a profiles file that loads holds at most the bounded
// number of profiles.

import Foundation
import FuzzSupport
import SMPCtlConnection

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(fuzzBytes(data, size))
    let mode = input.byte() % 3
    let rest = Array(input.bytes[input.position...])
    let text = String(decoding: rest, as: UTF8.self)
    switch mode {
    case 0:
        guard let spec = try? ConnectionSpec.parse(text) else { return 0 }
        invariant(text.utf8.count <= ConnectionSpec.maximumLength, "a string over the limit parsed")
        switch spec {
        case .simulator(let options):
            invariant(options.count <= ConnectionSpec.maximumQueryItems, "\(options.count) query items")
        case .udp(let host, _, let limit):
            invariant(!host.isEmpty, "empty UDP host")
            if let limit { invariant((64...65_507).contains(limit), "datagram limit \(limit)") }
        case .serial(let path, let baud):
            invariant(!path.isEmpty, "empty serial path")
            invariant(baud > 0 && baud <= 100_000_000, "baud \(baud)")
        case .ble(let target, let adapter, _):
            invariant(!target.isEmpty, "empty BLE target")
            invariant(adapter.map { !$0.isEmpty } ?? true, "empty adapter")
        }
    case 1:
        guard (try? ProfileStore.validate(name: text)) != nil else { return 0 }
        invariant(text.utf8.count <= ProfileStore.maximumNameLength, "a long profile name validated")
        if let spec = try? ProfileStore.connection(named: text, uri: "udp:192.0.2.1") {
            invariant(spec == .udp(host: "192.0.2.1", port: ConnectionSpec.defaultUDPPort, datagramLimit: nil),
                "the profile's URI did not decide its connection")
        }
    default:
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-fuzz-profiles-\(getpid())")
        let store = ProfileStore(environment: ["XDG_CONFIG_HOME": folder.path])
        try? FileManager.default.createDirectory(
            at: store.url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: store.url.path, contents: Data(rest)) else { return 0 }
        if let profiles = try? store.load() {
            invariant(profiles.count <= ProfileStore.maximumProfiles, "\(profiles.count) profiles loaded")
        }
    }
    return 0
}
