public import Foundation
import SMPCtlFiles
public import SMPCtlProtocol

/// What the device or the client was doing when a failure happened. Causes are ranked for it.
public enum OperationKind: String, Sendable, Hashable, CaseIterable, Codable {
    case upload
    /// The first chunk of an upload (it carries the length and hash, and starts the slot erase).
    case uploadFirstChunk = "upload-first-chunk"
    case test
    case confirm
    case erase
    case list
    case reset
    case params
    case echo
    /// A file-system request (group 8): upload, download, status, hash.
    case file = "fs"
    /// The storage erase of Zephyr's basic group (63).
    case storage = "storage-erase"

    /// The operation a device error most likely answered, from its group and command.
    public init?(group: SMPGroupID, command: UInt8) {
        switch (group.rawValue, command) {
        case (8, _): self = .file
        case (63, 0): self = .storage
        case (1, 0): self = .test  // state write (test/confirm) fails far more often than state read
        case (1, 1): self = .upload
        case (1, 5): self = .erase
        case (1, 6): self = .list
        case (0, 0): self = .echo
        case (0, 5): self = .reset
        case (0, 6): self = .params
        default: return nil
        }
    }

    /// Whether this is an image-group operation.
    var isImageOperation: Bool {
        switch self {
        case .upload, .uploadFirstChunk, .test, .confirm, .erase, .list: true
        case .reset, .params, .echo, .file, .storage: false
        }
    }
}

/// Failures that are not a device error code: transport trouble and workflow checks.
public enum FailureKind: String, Sendable, Hashable, CaseIterable {
    case timeoutFirstChunk = "timeout-first-chunk"
    case timeout
    case mtu23 = "mtu-23"
    case lostNotifications = "lost-notifications"
    case authenticationRequired = "authentication-required"
    case disconnected
    case noReconnectAfterReset = "no-reconnect-after-reset"
    case reverted
    case uploadNotListed = "upload-not-listed"
    case notSignedFile = "not-signed-file"
    /// The Bluetooth device offers no SMP service or characteristic.
    case noSMPService = "no-smp-service"
    /// The Bluetooth device was not found, or the connection attempt was aborted.
    case deviceNotFound = "device-not-found"
    /// Something answered, but not with SMP frames.
    case notSMPAnswer = "not-smp-answer"
    /// BlueZ could not start a GATT write.
    case bleWriteFailed = "ble-write-failed"
    /// The device answers as MCUboot's serial recovery, which refuses test, confirm and erase.
    case serialRecovery = "serial-recovery"
}

/// Why the knowledge base could not be loaded.
public enum KnowledgeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The resource is not in the bundle.
    case missingResource
    /// The file could not be read, or is too large.
    case unreadable(String)
    /// The file is not valid JSON of the expected shape.
    case malformed(String)
    /// The file's schema version is not one this code reads.
    case unsupportedSchema(Int)
    /// The file decodes but breaks a rule (duplicate code, dangling reference, bad regex...).
    case invalid(String)

    public var description: String {
        switch self {
        case .missingResource: "the knowledge base resource is missing from the bundle"
        case .unreadable(let text): "cannot read the knowledge base: \(text)"
        case .malformed(let text): "the knowledge base is not valid: \(text)"
        case .unsupportedSchema(let version): "the knowledge base has schema version \(version); this smpctl reads version \(Knowledge.schemaVersion)"
        case .invalid(let text): "the knowledge base is inconsistent: \(text)"
        }
    }
}

/// A firmware setting involved in a failure: a Kconfig option, a devicetree node or property, or a
/// Partition Manager entry.
public struct FirmwareSetting: Sendable, Hashable, Codable {
    public var name: String
    /// `kconfig`, `devicetree` or `partition-manager`.
    public var kind: String
    /// Which image it belongs to (application, mcuboot, or both).
    public var image: String
    public var note: String
}

/// Where a fact comes from.
public struct KnowledgeSource: Sendable, Hashable, Codable {
    public var id: String
    public var title: String
    public var url: String
}

/// One likely cause of a failure.
public struct Cause: Sendable, Hashable {
    public var id: String
    public var text: String
    /// Higher is more likely (0–100).
    public var weight: Int
    /// What to check next to confirm or rule it out.
    public var check: String
    /// Names of the firmware settings involved.
    public var settings: [String]
    /// Ids of the sources.
    public var sources: [String]
    /// Operations it applies to; empty means every operation.
    public var operations: [OperationKind]
    /// SMP versions it applies to; empty means both.
    public var smpVersions: [Int]

    /// Whether the cause applies to this operation and version (`nil` means unknown: it applies).
    func applies(to operation: OperationKind?, smpVersion: Int?) -> Bool {
        if let smpVersion, !smpVersions.isEmpty, !smpVersions.contains(smpVersion) { return false }
        guard let operation, !operations.isEmpty else { return true }
        if operations.contains(operation) { return true }
        // An upload error with an unknown chunk may be a first-chunk one, and the other way round.
        if operation == .upload, operations.contains(.uploadFirstChunk) { return true }
        if operation == .uploadFirstChunk, operations.contains(.upload) { return true }
        return false
    }
}

/// The knowledge base: names, meanings and ranked causes of SMP codes, failures and log lines.
///
/// The data lives in `Knowledge/knowledge.json` in this module's bundle.
public struct Knowledge: Sendable {
    /// The schema version this code reads.
    public static let schemaVersion = 1
    /// The largest knowledge file accepted.
    static let maximumFileSize = 4 << 20

    struct CodeKey: Hashable {
        var group: UInt16?
        var rc: Int
    }

    struct CodeEntry: Sendable {
        var group: UInt16?
        var rc: Int
        var name: String
        var meaning: String
        var notes: [String]
        var causes: [Cause]
        var nextSteps: [String]
        var sources: [String]
        var v1TranslatesGroup: UInt16?
        var v1TranslatedCodes: [Int]
    }

    struct Topic: Sendable {
        var id: String
        var name: String
        var meaning: String
        var causes: [Cause]
        var nextSteps: [String]
        var sources: [String]
    }

    struct LogPattern: Sendable {
        var topic: Topic
        var pattern: String
    }

    /// What another tool's message stands for.
    enum ToolTarget: Sendable {
        /// A transport or workflow failure smpctl knows.
        case failure(FailureKind)
        /// A fixed code (`group` nil: an SMP rc).
        case code(group: UInt16?, rc: Int)
        /// A code read from the message: the rc (and the group) are capture groups of the pattern.
        case capturedCode(group: UInt16?, rcCapture: Int, groupCapture: Int?)
        /// A code named in the message (`IMG_MGMT_ERR_NO_FREE_SLOT`): the name is a capture group.
        case capturedName(capture: Int)
        /// A situation of its own.
        case topic(Topic)
        /// A code printed by name and/or number, as a library's enum or description table spells it: the name is looked
        /// up in the tables and must agree with the number when both are there.
        case printed(PrintedForm)
    }

    /// How a printed code is read from a tool message's captures.
    struct PrintedForm: Sendable {
        /// The tables the name is looked up in, in order (ids into ``Knowledge/codeNameTables``).
        var tables: [String]
        /// Capture groups that may hold the number; the first that matched is used.
        var numberCaptures: [Int]
        /// Capture groups that may hold the name; the first that matched is used.
        var nameCaptures: [Int]
        /// A capture that picks the table (`ImageManager` in `ImageManager.ReturnCode.NO_FREE_SLOT`), through ``tableKeys``.
        var tableCapture: Int?
        var tableKeys: [String: String]
    }

    /// One library's names for codes: an enum (`McuMgrErrorCode.BAD_STATE`) or the descriptions it prints.
    struct CodeNameTable: Sendable {
        var id: String
        var tool: String
        /// What the table is, for messages (`Android McuMgrErrorCode`).
        var title: String
        /// The group of its codes; `nil` for SMP-level codes.
        var group: UInt16?
        var names: [String: Int]
        var sources: [String]
    }

    /// A message another client prints (Go mcumgr, smpclient, smpmgr, nRF Connect Device Manager, BlueZ).
    struct ToolMessage: Sendable {
        var id: String
        var tool: String
        var pattern: String
        var target: ToolTarget
        var note: String?
        var firstCauses: [String]
        var smpVersion: Int?
        var sources: [String]
        /// The step a message names (a DFU state): codes on its line are ranked for it.
        var operation: OperationKind?
    }

    let codes: [CodeKey: CodeEntry]
    let codesByName: [String: (group: UInt16?, rc: Int)]
    let failures: [String: Topic]
    let logPatterns: [LogPattern]
    let toolMessages: [ToolMessage]
    let codeNameTables: [String: CodeNameTable]
    let settings: [String: FirmwareSetting]
    let sources: [String: KnowledgeSource]

    /// How many codes have a name and meaning.
    public var codeCount: Int { codes.count }
    /// How many ranked causes the base holds, over codes, failures and log patterns.
    public var causeCount: Int {
        codes.values.reduce(0) { $0 + $1.causes.count } + failures.values.reduce(0) { $0 + $1.causes.count }
            + logPatterns.reduce(0) { $0 + $1.topic.causes.count }
    }
    /// How many log-line patterns the base recognizes.
    public var logPatternCount: Int { logPatterns.count }
    /// How many messages of other tools the base recognizes, per tool.
    public var toolMessageCounts: [String: Int] {
        toolMessages.reduce(into: [:]) { $0[$1.tool, default: 0] += 1 }
    }
    /// How many code names (enum cases and printed descriptions) of other tools' libraries the base reads, per table id.
    public var codeNameTableSizes: [String: Int] { codeNameTables.mapValues(\.names.count) }
    /// The group (`nil`: SMP-level) and names of one of those tables, by id.
    public func codeNameTable(_ id: String) -> (group: UInt16?, names: [String: Int])? {
        codeNameTables[id].map { ($0.group, $0.names) }
    }
    /// The ids of the other tools' messages, with their tool, in file order.
    public var toolMessageIDs: [(id: String, tool: String)] { toolMessages.map { ($0.id, $0.tool) } }
    /// The code with this name as smpctl prints it (`IMG_MGMT_ERR_NO_FREE_SLOT`), case-insensitively.
    public func code(named name: String) -> (group: UInt16?, rc: Int)? {
        guard name.utf8.count <= 80 else { return nil }
        return codesByName[name.uppercased()]
    }
    /// Every code the base names: `group` is `nil` for SMP-level codes.
    public var allCodes: [(group: UInt16?, rc: Int, name: String, meaning: String)] {
        codes.values.sorted { ($0.group.map(Int.init) ?? -1, $0.rc) < ($1.group.map(Int.init) ?? -1, $1.rc) }
            .map { ($0.group, $0.rc, $0.name, $0.meaning) }
    }
    /// Whether the code has ranked causes (a code users hit).
    public func hasCauses(code: Int, group: SMPGroupID?) -> Bool {
        !(codes[CodeKey(group: group?.rawValue, rc: code)]?.causes.isEmpty ?? true)
    }

    private static let cached = Result<Knowledge, KnowledgeError> { () throws(KnowledgeError) -> Knowledge in
        try loadFromBundle()
    }

    /// Loads (once) and validates the knowledge base shipped with smpctl.
    public static func load() throws(KnowledgeError) -> Knowledge {
        try cached.get()
    }

    /// Where `scripts/install.sh` puts the knowledge base: `PREFIX/share/smpctl/knowledge.json` for
    /// `PREFIX/bin/smpctl`. Looked up first, so an installed binary never needs the build tree
    /// (SwiftPM's resource bundle sits beside the build's binary, or at the build's absolute path).
    static func installedKnowledgeFile() -> URL? {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidate = executable.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("share/smpctl/knowledge.json")
        return RegularFile.isRegular(candidate.path) ? candidate : nil
    }

    private static func loadFromBundle() throws(KnowledgeError) -> Knowledge {
        guard let url = installedKnowledgeFile()
            ?? Bundle.module.url(forResource: "knowledge", withExtension: "json", subdirectory: "Knowledge")
            ?? Bundle.module.url(forResource: "knowledge", withExtension: "json")
        else { throw .missingResource }
        let data: Data
        do {
            data = try RegularFile.read(url.path, limit: maximumFileSize)
        } catch {
            throw .unreadable(error.description)
        }
        return try Knowledge(json: data)
    }

    /// Decodes and validates a knowledge file.
    public init(json data: Data) throws(KnowledgeError) {
        guard data.count <= Self.maximumFileSize else { throw .unreadable("larger than \(Self.maximumFileSize) bytes") }
        let file: KnowledgeFile
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let header = try decoder.decode(SchemaHeader.self, from: data)
            guard header.schemaVersion == Self.schemaVersion else { throw KnowledgeError.unsupportedSchema(header.schemaVersion) }
            file = try decoder.decode(KnowledgeFile.self, from: data)
        } catch let error as KnowledgeError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
        var sources: [String: KnowledgeSource] = [:]
        for (id, source) in file.sources {
            guard source.url.hasPrefix("https://"), !source.title.isEmpty else { throw .invalid("source \(id) needs a title and an https URL") }
            sources[id] = KnowledgeSource(id: id, title: source.title, url: source.url)
        }
        var settings: [String: FirmwareSetting] = [:]
        for (name, setting) in file.settings {
            guard ["kconfig", "devicetree", "partition-manager"].contains(setting.kind) else {
                throw .invalid("setting \(name) has unknown kind \(setting.kind)")
            }
            settings[name] = FirmwareSetting(name: name, kind: setting.kind, image: setting.image, note: setting.note)
        }
        let validator = Validator(sources: sources, settings: settings)
        var codes: [CodeKey: CodeEntry] = [:]
        for raw in file.codes {
            let context = "code \(raw.group.map { "group \($0)" } ?? "smp") rc \(raw.rc)"
            guard raw.rc >= 0, !raw.name.isEmpty, !raw.meaning.isEmpty else { throw .invalid("\(context) needs a name and a meaning") }
            let key = CodeKey(group: raw.group, rc: raw.rc)
            guard codes[key] == nil else { throw .invalid("\(context) appears twice") }
            try validator.check(sources: raw.sources ?? [], in: context)
            codes[key] = CodeEntry(
                group: raw.group, rc: raw.rc, name: raw.name, meaning: raw.meaning, notes: raw.notes ?? [],
                causes: try validator.causes(raw.causes ?? [], in: context), nextSteps: raw.nextSteps ?? [],
                sources: raw.sources ?? [], v1TranslatesGroup: raw.v1TranslatesGroup, v1TranslatedCodes: raw.v1TranslatedCodes ?? [])
        }
        for entry in codes.values {
            if let group = entry.v1TranslatesGroup {
                for rc in entry.v1TranslatedCodes where codes[CodeKey(group: group, rc: rc)] == nil {
                    throw .invalid("smp rc \(entry.rc) translates group \(group) rc \(rc), which is not listed")
                }
            }
        }
        var failures: [String: Topic] = [:]
        for raw in file.failures {
            guard failures[raw.id] == nil else { throw .invalid("failure \(raw.id) appears twice") }
            failures[raw.id] = try validator.topic(raw, in: "failure \(raw.id)")
        }
        for kind in FailureKind.allCases where failures[kind.rawValue] == nil {
            throw .invalid("failure \(kind.rawValue) is missing")
        }
        var patterns: [LogPattern] = []
        var seen = Set<String>()
        for raw in file.logPatterns {
            guard seen.insert(raw.id).inserted else { throw .invalid("log pattern \(raw.id) appears twice") }
            do {
                _ = try NSRegularExpression(pattern: raw.pattern)
            } catch {
                throw .invalid("log pattern \(raw.id) is not a valid regular expression")
            }
            let topic = try validator.topic(
                RawTopic(id: raw.id, name: raw.name, meaning: raw.meaning, causes: raw.causes, nextSteps: raw.nextSteps, sources: raw.sources),
                in: "log pattern \(raw.id)")
            patterns.append(LogPattern(topic: topic, pattern: raw.pattern))
        }
        var tables: [String: CodeNameTable] = [:]
        var patternNames: [String: [String]] = [:]
        for raw in file.codeNameTables ?? [] {
            let context = "code name table \(raw.id)"
            guard tables[raw.id] == nil else { throw .invalid("\(context) appears twice") }
            guard !raw.names.isEmpty, !raw.tool.isEmpty, !(raw.sources ?? []).isEmpty else {
                throw .invalid("\(context) needs names, a tool and sources")
            }
            try validator.check(sources: raw.sources ?? [], in: context)
            for (name, rc) in raw.names {
                guard !name.isEmpty, name.utf8.count <= 120, rc >= 0, rc <= 65535 else { throw .invalid("\(context) has a bad entry \(name)") }
            }
            tables[raw.id] = CodeNameTable(
                id: raw.id, tool: raw.tool, title: raw.title, group: raw.group, names: raw.names, sources: raw.sources ?? [])
            let least = raw.minRcInPattern ?? 1
            patternNames[raw.id] = raw.names.filter { $0.value >= least }.map(\.key)
        }
        var toolMessages: [ToolMessage] = []
        for raw in file.toolMessages ?? [] {
            let context = "tool message \(raw.id)"
            guard seen.insert(raw.id).inserted else { throw .invalid("\(context) has the id of another pattern") }
            guard !raw.tool.isEmpty else { throw .invalid("\(context) names no tool") }
            var pattern = raw.pattern
            if let printed = raw.explains?.printed {
                for id in printed.tables + Array((printed.tableKeys ?? [:]).values) where tables[id] == nil {
                    throw .invalid("\(context) names unknown code name table \(id)")
                }
                if pattern.contains("{names}") {
                    // The names of the tables, longest first so that a longer name wins over its prefix.
                    var names = Set(printed.tables.flatMap { patternNames[$0] ?? [] })
                    if printed.compoundNamesOnly ?? false {
                        names = names.filter { name in name.contains("_") || name.dropFirst().contains(where: \.isUppercase) }
                    }
                    guard !names.isEmpty else { throw .invalid("\(context) has no names to match") }
                    let alternation = names.sorted { ($0.count, $0) > ($1.count, $1) }
                        .map { NSRegularExpression.escapedPattern(for: $0) }.joined(separator: "|")
                    pattern = pattern.replacingOccurrences(of: "{names}", with: alternation)
                }
            }
            let captures: Int
            do {
                captures = try NSRegularExpression(pattern: pattern).numberOfCaptureGroups
            } catch {
                throw .invalid("\(context) is not a valid regular expression")
            }
            guard !(raw.sources ?? []).isEmpty else { throw .invalid("\(context) cites no source") }
            try validator.check(sources: raw.sources ?? [], in: context)
            if let version = raw.smpVersion, version != 1 && version != 2 { throw .invalid("\(context) names SMP version \(version)") }
            var operation: OperationKind?
            if let name = raw.operation {
                guard let known = OperationKind(rawValue: name) else { throw .invalid("\(context) names unknown operation \(name)") }
                operation = known
            }
            let target: ToolTarget
            switch (raw.explains, raw.name) {
            case (let explains?, nil):
                if let printed = explains.printed {
                    let all = (printed.numberCaptures ?? []) + (printed.nameCaptures ?? []) + [printed.tableCapture].compactMap { $0 }
                    guard explains.rc == nil, explains.rcCapture == nil, !printed.tables.isEmpty, !all.isEmpty,
                        all.allSatisfy({ $0 >= 1 && $0 <= captures })
                    else { throw .invalid("\(context) has bad capture groups") }
                    target = .printed(PrintedForm(
                        tables: printed.tables, numberCaptures: printed.numberCaptures ?? [], nameCaptures: printed.nameCaptures ?? [],
                        tableCapture: printed.tableCapture, tableKeys: printed.tableKeys ?? [:]))
                } else if let name = explains.failure {
                    guard let failure = FailureKind(rawValue: name) else { throw .invalid("\(context) explains unknown failure \(name)") }
                    target = .failure(failure)
                } else if let capture = explains.rcCapture {
                    guard explains.rc == nil, capture >= 1, capture <= captures,
                        explains.groupCapture.map({ $0 >= 1 && $0 <= captures && $0 != capture }) ?? true
                    else { throw .invalid("\(context) has bad capture groups") }
                    target = .capturedCode(group: explains.group, rcCapture: capture, groupCapture: explains.groupCapture)
                } else if let capture = explains.nameCapture {
                    guard explains.rc == nil, explains.rcCapture == nil, capture >= 1, capture <= captures else {
                        throw .invalid("\(context) has bad capture groups")
                    }
                    target = .capturedName(capture: capture)
                } else if let rc = explains.rc {
                    guard codes[CodeKey(group: explains.group, rc: rc)] != nil else { throw .invalid("\(context) explains an unknown code") }
                    target = .code(group: explains.group, rc: rc)
                } else {
                    throw .invalid("\(context) explains nothing")
                }
            case (nil, let name?):
                target = .topic(try validator.topic(
                    RawTopic(id: raw.id, name: name, meaning: raw.meaning ?? "", causes: raw.causes ?? [], nextSteps: raw.nextSteps, sources: raw.sources),
                    in: context))
            default:
                throw .invalid("\(context) needs either explains or a name, a meaning and causes")
            }
            toolMessages.append(ToolMessage(
                id: raw.id, tool: raw.tool, pattern: pattern, target: target, note: raw.note, firstCauses: raw.firstCauses ?? [],
                smpVersion: raw.smpVersion, sources: raw.sources ?? [], operation: operation))
        }
        var byName: [String: (group: UInt16?, rc: Int)] = [:]
        for entry in codes.values { byName[entry.name.uppercased()] = (entry.group, entry.rc) }
        self.codes = codes
        self.codesByName = byName
        self.failures = failures
        self.logPatterns = patterns
        self.toolMessages = toolMessages
        self.codeNameTables = tables
        self.settings = settings
        self.sources = sources
    }

    /// Looks a source up by id.
    public func source(_ id: String) -> KnowledgeSource? { sources[id] }
    /// Looks a firmware setting up by name.
    public func setting(_ name: String) -> FirmwareSetting? { settings[name] }
}

// MARK: - File format

private struct SchemaHeader: Decodable {
    var schemaVersion: Int
}

private struct KnowledgeFile: Decodable {
    var schemaVersion: Int
    var operations: [String]
    var sources: [String: RawSource]
    var settings: [String: RawSetting]
    var codes: [RawCode]
    var failures: [RawTopic]
    var logPatterns: [RawLogPattern]
    var toolMessages: [RawToolMessage]?
    var codeNameTables: [RawCodeNameTable]?
}

private struct RawCodeNameTable: Decodable {
    var id: String
    var tool: String
    var title: String
    var group: UInt16?
    var names: [String: Int]
    var sources: [String]?
    var minRcInPattern: Int?
}

private struct RawPrintedForm: Decodable {
    var tables: [String]
    var numberCaptures: [Int]?
    var nameCaptures: [Int]?
    var tableCapture: Int?
    var tableKeys: [String: String]?
    var compoundNamesOnly: Bool?
}

private struct RawToolTarget: Decodable {
    var failure: String?
    var group: UInt16?
    var rc: Int?
    var rcCapture: Int?
    var groupCapture: Int?
    var nameCapture: Int?
    var printed: RawPrintedForm?
}

private struct RawToolMessage: Decodable {
    var id: String
    var tool: String
    var pattern: String
    var explains: RawToolTarget?
    var name: String?
    var meaning: String?
    var causes: [RawCause]?
    var nextSteps: [String]?
    var note: String?
    var firstCauses: [String]?
    var smpVersion: Int?
    var sources: [String]?
    var operation: String?
}

private struct RawSource: Decodable {
    var title: String
    var url: String
}

private struct RawSetting: Decodable {
    var kind: String
    var image: String
    var note: String
}

private struct RawCause: Decodable {
    var id: String
    var text: String
    var weight: Int
    var check: String
    var operations: [String]?
    var smpVersions: [Int]?
    var settings: [String]?
    var sources: [String]?
}

private struct RawCode: Decodable {
    var group: UInt16?
    var rc: Int
    var name: String
    var meaning: String
    var notes: [String]?
    var causes: [RawCause]?
    var nextSteps: [String]?
    var sources: [String]?
    var v1TranslatesGroup: UInt16?
    var v1TranslatedCodes: [Int]?
}

private struct RawTopic: Decodable {
    var id: String
    var name: String
    var meaning: String
    var causes: [RawCause]
    var nextSteps: [String]?
    var sources: [String]?
}

private struct RawLogPattern: Decodable {
    var id: String
    var pattern: String
    var name: String
    var meaning: String
    var causes: [RawCause]
    var nextSteps: [String]?
    var sources: [String]?
}

private struct Validator {
    var sources: [String: KnowledgeSource]
    var settings: [String: FirmwareSetting]

    func check(sources ids: [String], in context: String) throws(KnowledgeError) {
        for id in ids where sources[id] == nil { throw .invalid("\(context) cites unknown source \(id)") }
    }

    func causes(_ raw: [RawCause], in context: String) throws(KnowledgeError) -> [Cause] {
        var out: [Cause] = []
        var ids = Set<String>()
        for cause in raw {
            let where_ = "\(context) cause \(cause.id)"
            guard ids.insert(cause.id).inserted else { throw .invalid("\(where_) appears twice") }
            guard (0...100).contains(cause.weight) else { throw .invalid("\(where_) has weight outside 0...100") }
            guard !cause.text.isEmpty, !cause.check.isEmpty else { throw .invalid("\(where_) needs a text and a check") }
            var operations: [OperationKind] = []
            for name in cause.operations ?? [] {
                guard let operation = OperationKind(rawValue: name) else { throw .invalid("\(where_) names unknown operation \(name)") }
                operations.append(operation)
            }
            for version in cause.smpVersions ?? [] where version != 1 && version != 2 {
                throw .invalid("\(where_) names SMP version \(version)")
            }
            for name in cause.settings ?? [] where settings[name] == nil {
                throw .invalid("\(where_) names unknown setting \(name)")
            }
            try check(sources: cause.sources ?? [], in: where_)
            out.append(Cause(
                id: cause.id, text: cause.text, weight: cause.weight, check: cause.check, settings: cause.settings ?? [],
                sources: cause.sources ?? [], operations: operations, smpVersions: cause.smpVersions ?? []))
        }
        return out
    }

    func topic(_ raw: RawTopic, in context: String) throws(KnowledgeError) -> Knowledge.Topic {
        guard !raw.name.isEmpty, !raw.meaning.isEmpty, !raw.causes.isEmpty else {
            throw .invalid("\(context) needs a name, a meaning and causes")
        }
        try check(sources: raw.sources ?? [], in: context)
        return Knowledge.Topic(
            id: raw.id, name: raw.name, meaning: raw.meaning, causes: try causes(raw.causes, in: context),
            nextSteps: raw.nextSteps ?? [], sources: raw.sources ?? [])
    }
}
