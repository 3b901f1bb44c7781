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
    func pagesMatchHelp() throws {
        let pages = try Self.pages()
        #expect(pages.count >= 20)
        for page in pages {
            let help = try CLI.run(page.path + ["--help"])
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

    @Test("the main page documents the exit statuses")
    func exitStatuses() throws {
        let manual = try String(contentsOf: Self.manDirectory.appendingPathComponent("smpctl.1"), encoding: .utf8)
        for phrase in ["0 success", "2 a usage error", "3 a connection or transport failure", "4 the device answered with an error code", "5 verification failed"] {
            #expect(manual.contains(phrase), "smpctl.1 lacks \"\(phrase)\"")
        }
    }
}
