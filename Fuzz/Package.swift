// swift-tools-version:6.1
// libFuzzer targets for smpctl's parsers; see FUZZING.md. Build and run them with scripts/fuzz.sh.
//
// Each target is an executable with `LLVMFuzzerTestOneInput` and no `main` of its own: libFuzzer
// provides it when linked with `-sanitize=fuzzer`. Adding a target takes one line in `targets`
// below, a folder `Sources/fuzz-NAME/` with one Swift file, a seed folder `Corpus/NAME/`, and one
// line in scripts/fuzz.sh.
import PackageDescription

/// Fuzz target name (without `fuzz-`) and the smpctl library products it uses.
let targets: [(name: String, products: [String])] = [
    ("cbor", ["SMPCtlCBOR"]),
    ("smp", ["SMPCtlCBOR", "SMPCtlProtocol"]),
    ("serial", ["SMPCtlProtocol", "SMPCtlTransport"]),
    ("reassembler", ["SMPCtlProtocol", "SMPCtlTransport"]),
    ("image", ["SMPCtlImage", "SMPCtlDiagnosis"]),
    ("archive", ["SMPCtlDiagnosis"]),
    ("yaml", ["SMPCtlDiagnosis"]),
    ("devicetree", ["SMPCtlDiagnosis"]),
    ("kconfig", ["SMPCtlDiagnosis"]),
    ("simulator", ["SMPCtlCBOR", "SMPCtlProtocol", "SMPCtlSimulator"]),
    ("connection", ["SMPCtlConnection"]),
    ("manifest", ["SMPCtlFleet"]),
]

let settings: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "smpctl-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "smpctl", path: "..")],
    targets: [
        .target(name: "FuzzSupport", swiftSettings: settings),
    ] + targets.map { target in
        .executableTarget(
            name: "fuzz-" + target.name,
            dependencies: ["FuzzSupport"] + target.products.map { .product(name: $0, package: "smpctl") },
            swiftSettings: settings)
    }
)
