import Foundation
import Testing

/// The layers of ARCHITECTURE.md, enforced: every module a target's sources import must be one
/// its layer allows. A new target must be added here (and to ARCHITECTURE.md) before it builds in CI.
@Suite("Layer boundaries")
struct LayerBoundaryTests {
    static let system: Set<String> = ["Foundation", "Glibc", "Musl", "Darwin", "Synchronization", "Dispatch"]

    /// What each target may import, besides itself.
    static let allowed: [String: Set<String>] = [
        "SMPCtlCBOR": [],
        // Opening files that came from a user: regular files only, without blocking.
        "SMPCtlFiles": system,
        // Connection strings and saved profiles: parsing only, no transport.
        "SMPCtlConnection": system.union(["SMPCtlFiles"]),
        "SMPCtlProtocol": ["SMPCtlCBOR"],
        "SMPCtlImage": ["Crypto"],
        "SMPCtlTransport": system.union(["SMPCtlProtocol"]),
        // The POSIX implementations: sockets, terminals, the poll loop. Only transports and the CLI use them.
        "SMPCtlPOSIX": system.union(["SMPCtlTransport", "SMPCtlProtocol"]),
        "CSMPCtlDBus": [],
        "SMPCtlDBus": system.union(["CSMPCtlDBus"]),
        "SMPCtlBlueZ": system.union(["SMPCtlDBus", "SMPCtlTransport", "SMPCtlPOSIX", "SMPCtlProtocol"]),
        "SMPCtlClient": system.union(["SMPCtlCBOR", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlTransport", "SMPCtlFiles", "Crypto"]),
        // The simulated device, and (SimulatedFleet) many of them served on UDP endpoints.
        "SMPCtlSimulator": system.union(["SMPCtlCBOR", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlTransport", "SMPCtlPOSIX", "Crypto"]),
        // Fleets run the client's workflows; the CLI hands them a transport factory.
        "SMPCtlFleet": system.union([
            "SMPCtlClient", "SMPCtlConnection", "SMPCtlTransport", "SMPCtlProtocol", "SMPCtlImage",
            "SMPCtlDiagnosis", "SMPCtlFiles", "Crypto", "Yams",
        ]),
        // Diagnosis judges facts; it never touches a transport or the client.
        "SMPCtlDiagnosis": system.union([
            "SMPCtlProtocol", "SMPCtlImage", "SMPCtlFiles", "Crypto", "CryptoExtras", "Yams", "ZIPFoundation",
        ]),
    ]

    /// The modules a source file imports (`import X`, `public import X`, `@testable import X`, ...).
    static func imports(of text: String) -> Set<String> {
        var modules: Set<String> = []
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard let index = words.firstIndex(of: "import"), index + 1 < words.count else { continue }
            let before = words[..<index]
            guard before.allSatisfy({ ["public", "internal", "package", "private", "fileprivate", "@testable", "@_exported"].contains($0) })
            else { continue }
            // `import struct Foo.Bar` and `import Foo.Bar` name module Foo.
            var name = words[index + 1]
            if ["struct", "class", "enum", "protocol", "func", "var", "typealias"].contains(name), index + 2 < words.count {
                name = words[index + 2]
            }
            modules.insert(String(name.split(separator: ".").first ?? ""))
        }
        return modules
    }

    @Test("every library target imports only what its layer allows, and every target is in the table")
    func boundaries() throws {
        let sources = CLI.packageRoot.appendingPathComponent("Sources")
        let targets = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { !$0.hasPrefix(".") }
        #expect(!targets.isEmpty)
        for target in targets.sorted() where target != "smpctl" {
            guard let allowed = Self.allowed[target] else {
                Issue.record("target \(target) is not in the layer table (LayerBoundaryTests.allowed, ARCHITECTURE.md)")
                continue
            }
            let folder = sources.appendingPathComponent(target)
            guard let files = FileManager.default.enumerator(atPath: folder.path) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                let extra = Self.imports(of: text).subtracting(allowed).subtracting([target])
                #expect(extra.isEmpty, "\(target)/\(file) imports \(extra.sorted()), outside its layer")
            }
        }
    }

    @Test("the import reader sees every form")
    func importForms() {
        let text = """
            import Foundation
            public import SMPCtlProtocol
            internal import Glibc
            @testable import SMPCtlClient
            import struct SMPCtlCBOR.CBORValue
            // import NotThis
            let importantValue = 1
            """
        #expect(Self.imports(of: text) == ["Foundation", "SMPCtlProtocol", "Glibc", "SMPCtlClient", "SMPCtlCBOR"])
    }
}
