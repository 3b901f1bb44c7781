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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        // Pure CBOR codec: no I/O, no Foundation.
        .target(name: "SMPCtlCBOR", swiftSettings: strictSwift),
        // Pure SMP codec: header, packets, typed messages, errors, serial framing, BLE reassembly.
        .target(name: "SMPCtlProtocol", dependencies: ["SMPCtlCBOR"], swiftSettings: strictSwift),
        .testTarget(
            name: "SMPCtlCBORTests",
            dependencies: ["SMPCtlCBOR"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "SMPCtlProtocolTests",
            dependencies: ["SMPCtlProtocol", "SMPCtlCBOR"],
            exclude: ["Fixtures"],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "smpctl",
            dependencies: [
                "SMPCtlProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),
    ]
)
