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
        // The pthread-based lock every threaded layer shares (so that ThreadSanitizer sees it).
        "SMPCtlLocking": system,
        // Opening files that came from a user: regular files only, without blocking.
        "SMPCtlFiles": system,
        // Connection strings and saved profiles: parsing only, no transport.
        "SMPCtlConnection": system.union(["SMPCtlFiles"]),
        "SMPCtlProtocol": ["SMPCtlCBOR"],
        "SMPCtlImage": ["Crypto"],
        "SMPCtlTransport": system.union(["SMPCtlProtocol", "SMPCtlLocking"]),
        // The POSIX implementations: sockets, terminals, the poll loop. Only transports and the CLI use them.
        "SMPCtlPOSIX": system.union(["SMPCtlTransport", "SMPCtlProtocol", "SMPCtlLocking"]),
        "CSMPCtlDBus": [],
        "SMPCtlDBus": system.union(["CSMPCtlDBus", "SMPCtlLocking"]),
        "SMPCtlBlueZ": system.union(["SMPCtlDBus", "SMPCtlTransport", "SMPCtlPOSIX", "SMPCtlProtocol", "SMPCtlLocking", "SMPCtlFiles"]),
        // The client gathers; Diagnosis (below it) judges what it gathers.
        "SMPCtlClient": system.union([
            "SMPCtlCBOR", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlTransport", "SMPCtlFiles", "SMPCtlDiagnosis", "Crypto",
        ]),
        // The simulated device, and (SimulatedFleet) many of them served on UDP endpoints.
        "SMPCtlSimulator": system.union(["SMPCtlCBOR", "SMPCtlProtocol", "SMPCtlImage", "SMPCtlTransport", "SMPCtlPOSIX", "Crypto", "SMPCtlLocking"]),
        // Fleets run the client's workflows; the CLI hands them a transport factory.
        "SMPCtlFleet": system.union([
            "SMPCtlClient", "SMPCtlConnection", "SMPCtlTransport", "SMPCtlProtocol", "SMPCtlImage",
            "SMPCtlDiagnosis", "SMPCtlFiles", "Crypto", "Yams", "SMPCtlLocking",
        ]),
        // Diagnosis judges facts; it never touches a transport or the client.
        "SMPCtlDiagnosis": system.union([
            "SMPCtlProtocol", "SMPCtlImage", "SMPCtlFiles", "Crypto", "CryptoExtras", "Yams", "ZIPFoundation",
            "SMPCtlLocking",
        ]),
    ]

    /// The edges the architecture forbids, whatever the table above says: a change to the table that
    /// adds one of these fails here too.
    static let forbidden: [String: Set<String>] = [
        // The codec imports nothing above it.
        "SMPCtlCBOR": ["SMPCtlProtocol", "SMPCtlTransport", "SMPCtlClient", "SMPCtlDiagnosis", "Foundation"],
        // The client links no socket code, no D-Bus, no CLI.
        "SMPCtlClient": ["SMPCtlPOSIX", "SMPCtlBlueZ", "SMPCtlDBus", "SMPCtlSimulator", "SMPCtlFleet", "ArgumentParser"],
        // Diagnosis judges facts: no transport, and not the client that gathers them.
        "SMPCtlDiagnosis": ["SMPCtlTransport", "SMPCtlPOSIX", "SMPCtlBlueZ", "SMPCtlDBus", "SMPCtlClient", "SMPCtlSimulator", "SMPCtlFleet"],
    ]

    /// The modules a source file imports (`import X`, `public import X`, `@testable import X`, ...).
    static func imports(of text: String) -> Set<String> {
        var modules: Set<String> = []
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard let index = words.firstIndex(of: "import"), index + 1 < words.count else { continue }
            let before = words[..<index]
            guard before.allSatisfy({
                ["public", "internal", "package", "private", "fileprivate", "@testable", "@_exported"].contains($0)
                    || $0.hasPrefix("@_spi(")
            })
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

    @Test("the forbidden edges are neither allowed nor declared, and nothing depends on the executable")
    func forbiddenEdges() throws {
        let manifest = try String(contentsOf: CLI.packageRoot.appendingPathComponent("Package.swift"), encoding: .utf8)
        let declared = Self.declaredDependencies(manifest: manifest)
        for (target, edges) in Self.forbidden.sorted(by: { $0.key < $1.key }) {
            let allowed = try #require(Self.allowed[target])
            #expect(allowed.isDisjoint(with: edges), "\(target) is allowed \(allowed.intersection(edges).sorted())")
            let dependencies = try #require(declared[target]?.dependencies, "\(target) is not in Package.swift")
            #expect(dependencies.isDisjoint(with: edges), "\(target) declares \(dependencies.intersection(edges).sorted())")
        }
        for (target, entry) in declared where target != "smpctl" {
            #expect(!entry.dependencies.contains("smpctl"), "\(target) depends on the executable")
        }
    }

    @Test("findings are made in Diagnosis: the client's only ones are the speed advice, which needs the link model")
    func clientDoesNotJudge() throws {
        let folder = CLI.packageRoot.appendingPathComponent("Sources/SMPCtlClient")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }
        #expect(files.count > 5)
        for file in files.sorted() where file != "SpeedAdvisor.swift" {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            #expect(!text.contains("Finding("), "SMPCtlClient/\(file) makes findings; judge the facts in SMPCtlDiagnosis")
        }
    }

    /// Each target's declared dependencies (targets and products), read from Package.swift's text:
    /// for every `.target(`, `.executableTarget(`, `.testTarget(` or `.systemLibrary(`, its
    /// `name:` and the names in its `dependencies: [...]` (a product's package name excluded).
    static func declaredDependencies(manifest: String) -> [String: (path: String?, dependencies: Set<String>)] {
        var result: [String: (path: String?, dependencies: Set<String>)] = [:]
        let kinds = [".target(", ".executableTarget(", ".testTarget(", ".systemLibrary("]
        var rest = Substring(manifest)
        while let start = kinds.compactMap({ rest.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
            // The declaration runs to its closing parenthesis.
            var depth = 1
            var index = start.upperBound
            while index < rest.endIndex, depth > 0 {
                if rest[index] == "(" { depth += 1 } else if rest[index] == ")" { depth -= 1 }
                index = rest.index(after: index)
            }
            let declaration = rest[start.upperBound..<index]
            rest = rest[index...]
            guard let name = quoted(after: "name:", in: declaration) else { continue }
            var dependencies: Set<String> = []
            if let list = declaration.range(of: "dependencies: [") {
                var depth = 1
                var end = list.upperBound
                while end < declaration.endIndex, depth > 0 {
                    if declaration[end] == "[" { depth += 1 } else if declaration[end] == "]" { depth -= 1 }
                    end = declaration.index(after: end)
                }
                let items = declaration[list.upperBound..<end]
                var scan = items[...]
                while let open = scan.firstIndex(of: "\"") {
                    let afterOpen = scan.index(after: open)
                    guard let close = scan[afterOpen...].firstIndex(of: "\"") else { break }
                    let value = String(scan[afterOpen..<close])
                    let before = scan[..<open].suffix(9)
                    if !before.hasSuffix("package: ") { dependencies.insert(value) }
                    scan = scan[scan.index(after: close)...]
                }
            }
            result[name] = (quoted(after: "path:", in: declaration), dependencies)
        }
        return result
    }

    static func quoted(after label: String, in text: Substring) -> String? {
        guard let labelRange = text.range(of: label + " \""),
            let close = text[labelRange.upperBound...].firstIndex(of: "\"")
        else { return nil }
        return String(text[labelRange.upperBound..<close])
    }

    @Test("every module a target imports is declared in Package.swift, not reached through another target")
    func importsAreDeclared() throws {
        let root = CLI.packageRoot
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let declared = Self.declaredDependencies(manifest: manifest)
        #expect(declared["SMPCtlClient"]?.dependencies.contains("Crypto") == true)
        #expect(declared["smpctl"]?.dependencies.contains("ArgumentParser") == true)
        #expect(declared["smpctl"]?.dependencies.contains("swift-argument-parser") == false)
        let toolchain = Self.system.union(["Testing", "XCTest", "FoundationXML", "FoundationNetworking", "FoundationEssentials"])
        var checked = 0
        for (target, entry) in declared.sorted(by: { $0.key < $1.key }) {
            let folder = root.appendingPathComponent(
                entry.path ?? (target.hasSuffix("Tests") ? "Tests/" : "Sources/") + target)
            guard let files = FileManager.default.enumerator(atPath: folder.path) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                let undeclared = Self.imports(of: text).subtracting(toolchain).subtracting(entry.dependencies)
                    .subtracting([target])
                #expect(undeclared.isEmpty, "\(target)/\(file) imports \(undeclared.sorted()), which Package.swift does not declare for \(target)")
                checked += 1
            }
        }
        #expect(checked > 100)
    }

    @Test("no source or test uses Synchronization.Mutex, whose contended path ThreadSanitizer cannot see (LockedValue instead)")
    func noSynchronizationMutex() throws {
        let root = CLI.packageRoot
        var offenders: [String] = []
        var checked = 0
        for folder in ["Sources", "Tests", "Examples", "Fuzz/Sources"] {
            guard let files = FileManager.default.enumerator(atPath: root.appendingPathComponent(folder).path) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") && !file.hasPrefix(".build") {
                let text = try String(contentsOf: root.appendingPathComponent(folder + "/" + file), encoding: .utf8)
                checked += 1
                // `Mutex<` or `Mutex(` as a word: the type, not the word in a comment.
                let pattern = ["Mutex", "<"].joined()
                let call = ["Mutex", "("].joined()
                for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                    for token in [pattern, call] {
                        if let range = line.range(of: token),
                            range.lowerBound == line.startIndex || !(line[line.index(before: range.lowerBound)].isLetter)
                        {
                            offenders.append("\(folder)/\(file): \(line.trimmingCharacters(in: .whitespaces))")
                        }
                    }
                }
            }
        }
        #expect(checked > 100)
        #expect(offenders.isEmpty, "use LockedValue (SMPCtlLocking): \(offenders)")
    }

    @Test("the import reader sees every form")
    func importForms() {
        // Lines of an array literal, not of a string block, so that this file does not itself
        // appear to import them.
        let text = [
            "import Foundation",
            "public import SMPCtlProtocol",
            "  internal import Glibc",
            "@testable import SMPCtlClient",
            "@_spi(Fuzzing) @testable import SMPCtlDiagnosis",
            "import struct SMPCtlCBOR.CBORValue",
            "// import NotThis",
            "let importantValue = 1",
        ].joined(separator: "\n")
        #expect(Self.imports(of: text) == ["Foundation", "SMPCtlProtocol", "Glibc", "SMPCtlClient", "SMPCtlDiagnosis", "SMPCtlCBOR"])
    }
}
