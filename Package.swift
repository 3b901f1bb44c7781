// swift-tools-version:6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "smpctl",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "smpctl", targets: ["smpctl"]),
        .library(name: "SMPCtlCBOR", targets: ["SMPCtlCBOR"]),
        .library(name: "SMPCtlProtocol", targets: ["SMPCtlProtocol"]),
        .library(name: "SMPCtlImage", targets: ["SMPCtlImage"]),
        .library(name: "SMPCtlTransport", targets: ["SMPCtlTransport"]),
        .library(name: "SMPCtlPOSIX", targets: ["SMPCtlPOSIX"]),
        .library(name: "SMPCtlClient", targets: ["SMPCtlClient"]),
        .library(name: "SMPCtlSimulator", targets: ["SMPCtlSimulator"]),
        .library(name: "SMPCtlDBus", targets: ["SMPCtlDBus"]),
        .library(name: "SMPCtlBlueZ", targets: ["SMPCtlBlueZ"]),
        .library(name: "SMPCtlDiagnosis", targets: ["SMPCtlDiagnosis"]),
        .library(name: "SMPCtlFiles", targets: ["SMPCtlFiles"]),
        .library(name: "SMPCtlConnection", targets: ["SMPCtlConnection"]),
        .library(name: "SMPCtlFleet", targets: ["SMPCtlFleet"]),
        .library(name: "SMPCtlLocking", targets: ["SMPCtlLocking"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        // Untrusted build files and DFU packages: a YAML parser and a ZIP reader that others keep.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        // Layer 0, a lock ThreadSanitizer can see (pthread mutex), shared by every layer that has threads.
        .target(name: "SMPCtlLocking", swiftSettings: strictSwift),
        // Layer 0, reading untrusted files: regular files only, opened without blocking, bounded.
        .target(name: "SMPCtlFiles", swiftSettings: strictSwift),
        // Layer 1, pure codecs with no I/O.
        .target(name: "SMPCtlCBOR", swiftSettings: strictSwift),
        .target(name: "SMPCtlProtocol", dependencies: ["SMPCtlCBOR"], swiftSettings: strictSwift),
        .target(
            name: "SMPCtlImage",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSwift
        ),
        // Layer 2, transports behind one protocol: the interface (and the in-process transport)
        // apart from the POSIX implementations (UDP, serial, server endpoints, one poll loop).
        .target(name: "SMPCtlTransport", dependencies: ["SMPCtlProtocol", "SMPCtlLocking"], swiftSettings: strictSwift),
        .target(name: "SMPCtlPOSIX", dependencies: ["SMPCtlTransport", "SMPCtlProtocol", "SMPCtlLocking"], swiftSettings: strictSwift),
        // libdbus-1, wrapped once; only SMPCtlDBus imports it.
        .systemLibrary(
            name: "CSMPCtlDBus", pkgConfig: "dbus-1", providers: [.apt(["libdbus-1-dev"]), .yum(["dbus-devel"])]),
        .target(name: "SMPCtlDBus", dependencies: ["CSMPCtlDBus", "SMPCtlLocking"], swiftSettings: strictSwift),
        .target(
            name: "SMPCtlBlueZ", dependencies: ["SMPCtlDBus", "SMPCtlTransport", "SMPCtlPOSIX", "SMPCtlProtocol", "SMPCtlLocking", "SMPCtlFiles"],
            swiftSettings: strictSwift),
        // Connection strings and saved profiles (parsing only; the CLI builds the transports).
        .target(name: "SMPCtlConnection", dependencies: ["SMPCtlFiles"], swiftSettings: strictSwift),
        // Layer 3, the client, management workflows, and the device simulator.
        .target(
            name: "SMPCtlClient",
            dependencies: ["SMPCtlCBOR", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlTransport", "SMPCtlFiles",
                           // The workflows ask Diagnosis's pure checks (findings, preflight); it never imports the client.
                           "SMPCtlDiagnosis", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSwift
        ),
        .target(
            name: "SMPCtlSimulator",
            dependencies: ["SMPCtlCBOR", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlTransport", "SMPCtlPOSIX", "SMPCtlLocking",
                           .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSwift
        ),
        // Diagnosis of failed updates: the knowledge base (data), image checks, build-folder doctor.
        .target(
            name: "SMPCtlDiagnosis",
            dependencies: [
                "SMPCtlProtocol", "SMPCtlImage", "SMPCtlFiles", "SMPCtlLocking", .product(name: "Crypto", package: "swift-crypto"),
                // RSA-PSS signature checks in `image inspect --key`.
                .product(name: "CryptoExtras", package: "swift-crypto"),
                // dfu_application.zip (stored and deflated entries, CRC-32).
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                // partitions.yml, pm_static.yml, domains.yaml.
                .product(name: "Yams", package: "Yams"),
            ],
            resources: [.copy("Knowledge")],
            swiftSettings: strictSwift
        ),
        // Layer 3b, fleet updates: manifests, scheduling, journal and reports over the client's dfu workflow.
        .target(
            name: "SMPCtlFleet",
            dependencies: [
                "SMPCtlClient", "SMPCtlConnection", "SMPCtlTransport", "SMPCtlProtocol", "SMPCtlImage",
                "SMPCtlDiagnosis", "SMPCtlFiles", "SMPCtlLocking", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSwift
        ),
        // Layer 4, the command line.
        .executableTarget(
            name: "smpctl",
            dependencies: [
                "SMPCtlProtocol", "SMPCtlImage", "SMPCtlTransport", "SMPCtlPOSIX", "SMPCtlClient", "SMPCtlSimulator",
                "SMPCtlBlueZ", "SMPCtlDBus", "SMPCtlDiagnosis", "SMPCtlConnection", "SMPCtlFiles", "SMPCtlFleet", "SMPCtlCBOR", "SMPCtlLocking",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),
        // An example of library use: a whole update against the simulator (built and run in CI).
        .executableTarget(
            name: "smpctl-library-example", dependencies: ["SMPCtlClient", "SMPCtlSimulator", "SMPCtlTransport"],
            path: "Examples/LibraryUpdate", swiftSettings: strictSwift),
        // Helpers shared by the test targets (a seeded generator, hex); not a product.
        .target(name: "SMPCtlTestSupport", path: "Tests/SMPCtlTestSupport", swiftSettings: strictSwift),
        // ZIP archives built in memory for the DFU-package tests (kept apart so that only the
        // test targets that need ZIPFoundation link it).
        .target(
            name: "SMPCtlZipFixtures", dependencies: [.product(name: "ZIPFoundation", package: "ZIPFoundation")],
            path: "Tests/SMPCtlZipFixtures", swiftSettings: strictSwift),
        .testTarget(name: "SMPCtlCBORTests", dependencies: ["SMPCtlCBOR"], swiftSettings: strictSwift),
        .testTarget(
            name: "SMPCtlProtocolTests", dependencies: ["SMPCtlTestSupport", "SMPCtlProtocol", "SMPCtlCBOR"], swiftSettings: strictSwift),
        .testTarget(name: "SMPCtlImageTests", dependencies: ["SMPCtlTestSupport", "SMPCtlImage"], swiftSettings: strictSwift),
        .testTarget(
            name: "SMPCtlSimulatorTests",
            dependencies: ["SMPCtlTestSupport", "SMPCtlSimulator", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlCBOR", "SMPCtlTransport", "SMPCtlPOSIX"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SMPCtlClientTests",
            dependencies: ["SMPCtlTestSupport", "SMPCtlClient", "SMPCtlSimulator", "SMPCtlTransport", "SMPCtlPOSIX", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlCBOR",
                           "SMPCtlDiagnosis", "SMPCtlLocking"],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "SMPCtlFilesTests", dependencies: ["SMPCtlFiles", "SMPCtlLocking"], swiftSettings: strictSwift),
        .testTarget(
            name: "SMPCtlConnectionTests", dependencies: ["SMPCtlConnection", "SMPCtlTransport"], swiftSettings: strictSwift),
        .testTarget(
            name: "SMPCtlFleetTests",
            dependencies: ["SMPCtlFleet", "SMPCtlSimulator", "SMPCtlClient", "SMPCtlConnection", "SMPCtlTransport", "SMPCtlPOSIX",
                           "SMPCtlProtocol", "SMPCtlImage", "SMPCtlLocking"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SMPCtlCLITests",
            dependencies: ["SMPCtlProtocol", "SMPCtlZipFixtures", "SMPCtlLocking"],
            swiftSettings: strictSwift),
        .testTarget(name: "SMPCtlDBusTests", dependencies: ["SMPCtlTestSupport", "SMPCtlDBus", "SMPCtlLocking"], swiftSettings: strictSwift),
        .testTarget(
            name: "SMPCtlBlueZTests",
            dependencies: ["SMPCtlTestSupport", "SMPCtlBlueZ", "SMPCtlDBus", "SMPCtlClient", "SMPCtlSimulator", "SMPCtlTransport", "SMPCtlPOSIX", "SMPCtlProtocol", "SMPCtlLocking"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SMPCtlDiagnosisTests",
            dependencies: [
                "SMPCtlDiagnosis", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlZipFixtures",
            ],
            swiftSettings: strictSwift
        ),
    ]
)
