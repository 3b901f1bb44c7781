import Foundation
import Testing

/// The man pages in `man/` must describe the same commands and options as `--help`.
@Suite("man pages match --help")
struct ManPageTests {
    static let manDirectory = CLI.packageRoot.appendingPathComponent("man")

    /// Every page, by the command path it documents (`smpctl.image.upload.1` → ["image", "upload"]).
    static func pages() throws -> [(path: [String], file: URL)] {
        try FileManager.default.contentsOfDirectory(at: manDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "1" }
            .map { url in
                (Array(url.deletingPathExtension().lastPathComponent.split(separator: ".").dropFirst().map(String.init)), url)
            }
            .filter { $0.path != ["help"] }
    }

    /// Long options and short flags named in a help text.
    static func options(in text: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: "(?<![\\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\\w-])")
        let range = NSRange(text.startIndex..., in: text)
        return Set(pattern.matches(in: text, range: range).compactMap { Range($0.range, in: text).map { String(text[$0]) } })
    }

    @Test("every subcommand has a page and every page names the options of --help")
    func pagesMatchHelp() async throws {
        let pages = try Self.pages()
        #expect(pages.count >= 20)
        for page in pages {
            let help = try await CLI.run(page.path + ["--help"])
            #expect(help.status == 0, "smpctl \(page.path.joined(separator: " ")) --help failed")
            let manual = try String(contentsOf: page.file, encoding: .utf8).replacingOccurrences(of: "\\", with: "")
            let helpOptions = Self.options(in: help.stdout).subtracting(["-h", "--help", "--version"])
            for option in helpOptions {
                let bare = option.drop { $0 == "-" }
                #expect(manual.contains(option) || manual.contains("Fl \(bare)") || manual.contains("Fl -\(bare)"),
                    "man/\(page.file.lastPathComponent) does not mention \(option)")
            }
            // Subcommands listed by --help have pages of their own.
            if let subcommands = help.stdout.components(separatedBy: "SUBCOMMANDS:").dropFirst().first {
                for line in subcommands.split(separator: "\n") {
                    guard let name = line.split(separator: " ").first.map(String.init), !name.isEmpty,
                        line.hasPrefix("  "), !line.hasPrefix("   "), name != "help", !name.hasPrefix("See")
                    else { continue }
                    #expect(pages.contains { $0.path == page.path + [name] }, "no man page for \(page.path + [name])")
                }
            }
        }
    }

    /// The page's own source of EXIT STATUS and EXAMPLES (scripts/finish-man.py adds them).
    static func extra(for page: URL) -> URL {
        manDirectory.appendingPathComponent("extra").appendingPathComponent(page.deletingPathExtension().lastPathComponent + ".txt")
    }

    /// The statuses smpctl documents (the main page's list, as ExitStatus has them).
    static let statuses: Set<Int> = [0, 1, 2, 3, 4, 5, 6, 7, 130, 143]

    /// Every page as `man` shows it: the EXIT STATUS and EXAMPLES of its source, not the generic `.Ex -std`.
    @Test("every page has its own EXIT STATUS and EXAMPLES, from man/extra, up to date")
    func sections() throws {
        let pages = try FileManager.default.contentsOfDirectory(at: Self.manDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "1" }
        #expect(pages.count >= 20)
        for page in pages {
            let name = page.lastPathComponent
            let manual = try String(contentsOf: page, encoding: .utf8)
            #expect(manual.contains(".Sh \"EXIT STATUS\"\n.Bl"), "\(name): no EXIT STATUS of its own")
            #expect(!manual.contains(".Ex -std"), "\(name): the generic exit status")
            #expect(manual.contains("\n.Sh EXAMPLES\n"), "\(name): no EXAMPLES")
            let source = try String(contentsOf: Self.extra(for: page), encoding: .utf8)
            var statuses: [Int] = []
            for line in source.split(separator: "\n") {
                if line.hasPrefix("exit ") {
                    let number = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
                    #expect(number.map(Self.statuses.contains) == true, "\(name): exit status \(line) is not one smpctl documents")
                    if let number { statuses.append(number) }
                } else if line.hasPrefix("$ ") {
                    // The page was generated from this source (run scripts/generate-man.sh after editing it).
                    let escaped = line.replacingOccurrences(of: "\\", with: "\\e")
                    #expect(manual.contains("\n" + escaped + "\n"), "\(name) lacks the example \(line); run scripts/generate-man.sh")
                }
            }
            for status in statuses { #expect(manual.contains(".It \(status)\n"), "\(name) lacks exit status \(status)") }
        }
    }

    /// The `smpctl` command lines of a page's examples, split at pipes and `&&`.
    static func exampleCommands(_ source: String) -> [[String]] {
        source.split(separator: "\n").filter { $0.hasPrefix("$ ") }.flatMap { line -> [[String]] in
            var segments: [[String]] = [[]]
            for word in line.dropFirst(2).split(separator: " ").map(String.init) {
                if ["|", "&&", ";", "&", ">", "2>", "<"].contains(word) || word.hasPrefix(">") || word.hasPrefix("2>") {
                    segments.append([])
                } else if let last = segments.indices.last {
                    segments[last].append(word)
                }
            }
            return segments.filter { $0.first == "smpctl" }.map { Array($0.dropFirst()) }
        }
    }

    @Test("the examples use commands and options that exist")
    func examplesRun() async throws {
        let pages = try Self.pages()
        var helps: [[String]: Set<String>] = [:]
        func options(of path: [String]) async throws -> Set<String> {
            if let known = helps[path] { return known }
            let help = try await CLI.run(path + ["--help"])
            let found = Self.options(in: help.stdout)
            helps[path] = found
            return found
        }
        var checked = 0
        for page in try FileManager.default.contentsOfDirectory(at: Self.manDirectory, includingPropertiesForKeys: nil)
        where page.pathExtension == "1" {
            let source = try String(contentsOf: Self.extra(for: page), encoding: .utf8)
            for words in Self.exampleCommands(source) {
                // The command: the longest page path found in the words, the earliest first.
                var command: [String] = []
                for start in words.indices {
                    for page in pages where page.path.count > command.count && words[start...].starts(with: page.path) {
                        command = page.path
                    }
                    if !command.isEmpty { break }
                }
                // ArgumentParser's own options are not listed by --help.
                let own = try await options(of: command)
                let root = command.isEmpty ? Set<String>() : try await options(of: [])
                let valid = own.union(root).union(["--generate-completion-script"])
                for word in words where word.hasPrefix("-") && word != "-" && word != "--" {
                    let option = String(word.prefix { $0 != "=" })
                    #expect(valid.contains(option), "\(page.lastPathComponent): smpctl \(command.joined(separator: " ")) has no option \(option) (example: \(words.joined(separator: " ")))")
                }
                checked += 1
            }
        }
        #expect(checked >= 49)
    }

    static let mandoc: String? = ["/usr/bin/mandoc", "/usr/local/bin/mandoc", "/bin/mandoc"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test("mandoc -T lint finds nothing on any page", .enabled(if: mandoc != nil, "mandoc is not installed (apt-get install mandoc); the lint check is skipped"))
    func lint() throws {
        let pages = try FileManager.default.contentsOfDirectory(at: Self.manDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "1" }.sorted { $0.path < $1.path }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(Self.mandoc))
        process.arguments = ["-T", "lint"] + pages.map(\.path)
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && text.isEmpty, "mandoc -T lint:\n\(text)")
    }

    @Test("the main page documents the exit statuses")
    func exitStatuses() throws {
        let manual = try String(contentsOf: Self.manDirectory.appendingPathComponent("smpctl.1"), encoding: .utf8)
        for phrase in ["0 success", "2 a usage error", "3 a connection or transport failure", "4 the device answered with an error code", "5 verification failed"] {
            #expect(manual.contains(phrase), "smpctl.1 lacks \"\(phrase)\"")
        }
    }
}
