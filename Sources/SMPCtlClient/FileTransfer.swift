import Crypto
import Foundation
import SMPCtlCBOR
import SMPCtlFiles
import SMPCtlProtocol

/// What a file upload or download did.
public struct FileTransferResult: Sendable {
    /// The file's length.
    public var length: Int
    /// Where this transfer started: non-zero when it resumed one that an earlier run left.
    public var resumedFrom: Int
    /// Requests sent for data (retries included).
    public var chunks: Int
    /// The largest data length of one request or answer.
    public var chunkSize: Int
    /// Wall time in seconds.
    public var seconds: Double
    /// How the file on the device was compared with the local one.
    public var check: FileHashCheck
    /// Chunks allowed in flight (uploads).
    public var window: Int = 1
    /// Chunks the device refused at an offset it did not expect, naming the one it had (uploads).
    public var rewinds: Int = 0
}

/// The comparison of a device file's hash or checksum with the local file's.
public enum FileHashCheck: Sendable, Hashable {
    /// The device's `type` output equals the local one.
    case matched(type: String, hex: String)
    /// The device has no hash/checksum command (or neither sha256 nor crc32).
    case unsupported
    /// An empty file: Zephyr computes no hash of it (FS_MGMT_ERR_FILE_EMPTY).
    case empty

    public var type: String? {
        if case .matched(let type, _) = self { return type }
        return nil
    }
}

/// Options of a file transfer.
public struct FileTransferOptions: Sendable {
    /// Continue a transfer that an earlier run left, when the device's hash confirms the part
    /// already transferred; otherwise start again at 0.
    public var resume = true
    /// The whole transfer must finish within this time.
    public var deadline: Duration?
    /// Answers in a row that do not advance the transfer before it fails as stalled (downloads;
    /// uploads are bounded by the window's budget of bytes sent without progress).
    public var stallLimit = 8
    /// Upload chunks in flight; `nil` takes the device's buffer count less one, as image uploads do.
    public var window: Int?
    public init() {}
}

/// The local file's SHA-256 and CRC-32, computed while it is read or written.
struct LocalDigests {
    var sha = SHA256()
    var crc = FileManagement.CRC32()
    mutating func update(_ bytes: [UInt8]) {
        sha.update(data: bytes)
        crc.update(bytes)
    }
    /// The digests of the first `length` bytes of `file`, read in 64 KiB pieces.
    static func of(_ file: FirmwareFile, length: Int) throws(SMPClientError) -> LocalDigests {
        var digests = LocalDigests()
        let reader = try FirmwareReader(file: file)
        var position = 0
        while position < length {
            let piece = try reader.read(offset: position, count: min(65536, length - position))
            guard !piece.isEmpty else { break }
            digests.update(piece)
            position += piece.count
        }
        return digests
    }

    func output(for type: String) -> FileManagement.HashResponse.Output? {
        switch type {
        case "sha256": .bytes(Array(sha.finalize()))
        case "crc32": .number(UInt64(crc.value))
        default: nil
        }
    }
}

/// File uploads (group 8, command 0) as the chunked upload engine sends them.
///
/// Zephyr's subsys/mgmt/mcumgr/grp/fs_mgmt/src/fs_mgmt.c (fs_mgmt_file_upload) takes a chunk only
/// at the file's current length; a chunk at any other offset is answered with
/// FS_MGMT_ERR_FILE_OFFSET_NOT_VALID and `len`, the offset it expects, and the file is closed
/// (fs_mgmt_cleanup). The next chunk at that offset reopens the file, takes its length as the
/// expected offset and is written. So a window works: a chunk behind a lost one is refused with
/// the offset the device has, and the engine continues there, as it does with an image upload's
/// offset.
struct FileUploadChunks: ChunkedUploadKind {
    var name: String
    var length: Int

    func largestDataLength(bodyBudget: Int, offset: Int) -> Int {
        FileManagement.UploadRequest.largestDataLength(
            bodyBudget: bodyBudget, name: name, offset: offset, length: offset == 0 ? length : nil)
    }

    func minimumDataLength(offset: Int, remaining: Int) -> Int { 1 }

    func request(offset: Int, data: [UInt8]) -> FileManagement.UploadRequest {
        FileManagement.UploadRequest(name: name, offset: offset, data: data, length: offset == 0 ? length : nil)
    }

    func answer(_ packet: SMPPacket, length: Int) -> ChunkAnswer {
        let offset: Int
        let rewound: Bool
        switch SMPClient.fileUploadAnswer(packet) {
        case .offset(let value): (offset, rewound) = (value, false)
        case .mismatch(let deviceLength): (offset, rewound) = (deviceLength, true)
        case .device(let error): return .device(error)
        case .malformed(let error): return .lost(error)
        }
        guard offset <= length else {
            return .lost(SMPDecodingError(
                .unexpectedType, "the device reports offset \(offset) in \(name), beyond the file's \(length) bytes"))
        }
        return .offset(offset, match: nil, rewound: rewound)
    }

    func chunkTooSmall(offset: Int, packetLimit: Int, bufferSize: Int?) -> String {
        "the device's buffer (\(bufferSize ?? 0) bytes, \(packetLimit) per request on this link) cannot carry a file chunk with the \(name.utf8.count)-byte name \"\(name)\""
    }
}

extension SMPClient {
    /// Uploads a local file to `name` on the device's file system (group 8).
    ///
    /// Each chunk is sized so that its encoded request exactly fits the device's buffer and the
    /// path (the same computation as image uploads); the first carries `len`. Up to
    /// ``FileTransferOptions/window`` chunks are in flight (the image upload's engine and
    /// window): Zephyr refuses a chunk at another offset than the file's length with
    /// FILE_OFFSET_NOT_VALID and the length it has, and the upload continues there, so a lost or
    /// reordered chunk costs the chunks sent behind it, never the file's contents. With
    /// ``FileTransferOptions/resume``, a file the device already holds in part continues from
    /// its length when the device's hash of that part equals the local file's. The upload ends
    /// with the device's hash of the whole file compared with the local one.
    public func uploadFile(
        _ file: FirmwareFile, to name: String, options: FileTransferOptions = FileTransferOptions(),
        progress: (@Sendable (UploadProgress) -> Void)? = nil
    ) async throws(SMPClientError) -> FileTransferResult {
        if parameters == nil { try await readParameters() }
        try await learnLargestPacket()
        let clock = ContinuousClock()
        let start = clock.now
        func elapsed() -> Double { (clock.now - start).seconds }

        var offset = 0
        if options.resume, let existing = try await remoteLength(name), existing > 0, existing <= file.length {
            if try await confirmsPrefix(name: name, length: existing, local: LocalDigests.of(file, length: existing)) {
                offset = existing
                log("the device holds the first \(existing) bytes of \(name) already; continuing from there")
                if existing < file.length { notify(.resumed(offset: existing)) }
            }
        }
        let resumedFrom = offset
        var settings = ChunkedUploadSettings(window: max(1, options.window ?? defaultUploadWindow))
        settings.deadline = options.deadline
        settings.startOffset = offset
        // A link lost and reopened: a chunk at the offset the device confirmed is taken, or
        // answered with the length it has; starting again at 0 would truncate the file.
        settings.continuesAfterLinkLoss = true
        let outcome = try await runChunkedUpload(
            FileUploadChunks(name: name, length: file.length), file: file, settings: settings, progress: progress)
        if resumedFrom > 0 || outcome.rewinds > 0 {
            // A continued upload carries no `len`, and fs_mgmt.c forgets the `len` of the first
            // chunk when it refuses one at another offset, so it cannot tell that the file is
            // whole and keeps it open until its idle timer: close it now, before hashing it.
            do throws(SMPClientError) {
                _ = try await send(FileManagement.CloseRequest())
            } catch .device(let error) {
                log("closing \(name) on the device failed (\(error)); its idle timer closes it")
            }
        }
        let check = try await compareHash(name: name, length: file.length, local: LocalDigests.of(file, length: file.length))
        if check == .unsupported, let held = try await remoteLength(name), held != file.length {
            // Without a hash command the length is all that can be compared: a first chunk sent
            // again and delivered late truncates the file (fs_mgmt.c truncates at `off` 0).
            throw .verificationFailed(
                .dataMismatch, "the device's \(name) holds \(held) bytes, not the \(file.length) bytes uploaded (it has no hash command to compare more)")
        }
        return FileTransferResult(
            length: file.length, resumedFrom: resumedFrom, chunks: outcome.result.chunks,
            chunkSize: outcome.result.chunkSize, seconds: elapsed(), check: check, window: outcome.result.window,
            rewinds: outcome.rewinds)
    }

    /// Downloads `name` from the device's file system into `localPath`.
    ///
    /// The data goes to `localPath.part` and is renamed to `localPath` once the whole file is
    /// there and, when the device has a hash or checksum command, its hash equals the device's.
    /// With ``FileTransferOptions/resume``, a `.part` file left by an earlier run is continued
    /// when the device's hash of that part equals it. Zephyr's download is stateless per
    /// request (the device picks each answer's size), so a download can continue at any offset.
    public func downloadFile(
        _ name: String, to localPath: String, options: FileTransferOptions = FileTransferOptions(),
        progress: (@Sendable (UploadProgress) -> Void)? = nil
    ) async throws(SMPClientError) -> FileTransferResult {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = options.deadline.map { start + $0 }
        func elapsed() -> Double { (clock.now - start).seconds }
        let partPath = localPath + ".part"
        for path in [localPath, partPath] where FileManager.default.fileExists(atPath: path) {
            guard RegularFile.isRegular(path) else { throw .invalidInput("\(path) exists and is not a regular file") }
        }

        var digests = LocalDigests()
        var offset = 0
        var total: Int?
        if options.resume, FileManager.default.fileExists(atPath: partPath),
            let partial = try? RegularFile.read(partPath, limit: FirmwareFile.maximumLength), !partial.isEmpty,
            let length = try await remoteLength(name), partial.count <= length
        {
            var prefix = LocalDigests()
            prefix.update([UInt8](partial))
            if try await confirmsPrefix(name: name, length: partial.count, local: prefix) {
                digests = prefix
                offset = partial.count
                total = length
                log("continuing the download of \(name) at \(offset) bytes from \(partPath)")
                notify(.resumed(offset: offset))
            }
        }
        let resumedFrom = offset
        let handle: FileHandle
        do {
            if offset == 0 {
                guard FileManager.default.createFile(atPath: partPath, contents: nil) else {
                    throw SMPClientError.invalidInput("cannot create \(partPath)")
                }
            }
            guard let opened = FileHandle(forWritingAtPath: partPath) else {
                throw SMPClientError.invalidInput("cannot open \(partPath) for writing")
            }
            handle = opened
            try handle.truncate(atOffset: UInt64(offset))
            try handle.seek(toOffset: UInt64(offset))
        } catch let error as SMPClientError {
            throw error
        } catch {
            throw .invalidInput("cannot write \(partPath): \(error.localizedDescription)")
        }
        defer { try? handle.close() }

        var chunks = 0
        var largest = 0
        var withoutProgress = 0
        while total == nil || offset < (total ?? 0) {
            if Task.isCancelled { throw .cancelled }
            if let deadline, clock.now >= deadline { throw .deadlineExceeded(options.deadline ?? .zero) }
            chunks += 1
            let response = try await send(FileManagement.DownloadRequest(name: name, offset: offset))
            if total == nil {
                guard let length = response.length else {
                    throw .malformedResponse(SMPDecodingError(.missingField, "the answer for offset 0 has no `len`"))
                }
                guard length <= FirmwareFile.maximumLength else {
                    throw .deviceLimit("\(name) is \(length) bytes on the device, more than the \(FirmwareFile.maximumLength) bytes smpctl downloads")
                }
                total = length
            }
            let length = total ?? 0
            guard response.offset == offset, response.data.count <= length - offset else {
                discardedAnswers += 1
                withoutProgress += 1
                guard withoutProgress <= options.stallLimit else {
                    throw .stalled("the device answered offset \(response.offset) with \(response.data.count) bytes for offset \(offset) of a \(length)-byte file")
                }
                continue
            }
            if response.data.isEmpty {
                withoutProgress += 1
                guard withoutProgress <= options.stallLimit else {
                    throw .stalled("the device sent no data at offset \(offset) of the \(length)-byte \(name) for \(withoutProgress) answers in a row (did the file shrink?)")
                }
                continue
            }
            withoutProgress = 0
            do {
                try handle.write(contentsOf: response.data)
            } catch {
                throw .invalidInput("cannot write \(partPath): \(error.localizedDescription)")
            }
            digests.update(response.data)
            offset += response.data.count
            largest = max(largest, response.data.count)
            progress?(UploadProgress(offset: offset, total: length, startOffset: resumedFrom, elapsed: elapsed()))
        }
        do {
            try handle.synchronize()
        } catch {
            throw .invalidInput("cannot write \(partPath): \(error.localizedDescription)")
        }
        let check = try await compareHash(name: name, length: offset, local: digests)
        do {
            if FileManager.default.fileExists(atPath: localPath) { try FileManager.default.removeItem(atPath: localPath) }
            try FileManager.default.moveItem(atPath: partPath, toPath: localPath)
        } catch {
            throw .invalidInput("cannot rename \(partPath) to \(localPath): \(error.localizedDescription)")
        }
        return FileTransferResult(
            length: offset, resumedFrom: resumedFrom, chunks: chunks, chunkSize: largest, seconds: elapsed(), check: check)
    }

    /// The length of `name` on the device, or `nil` when it has no such file or no status command.
    func remoteLength(_ name: String) async throws(SMPClientError) -> Int? {
        do {
            return try await send(FileManagement.StatusRequest(name: name)).length
        } catch .device(let error) {
            log("no status of \(name) on the device (\(error))")
            return nil
        }
    }

    /// Compares the device's hash of the first `length` bytes of `name` with `local`: sha256 when
    /// the device has it, else crc32. Throws a verification failure when they differ.
    func compareHash(name: String, length: Int, local: LocalDigests) async throws(SMPClientError) -> FileHashCheck {
        switch try await hashComparison(name: name, length: length, local: local) {
        case .same(let check): return check
        case .different(let text): throw .verificationFailed(.dataMismatch, text)
        }
    }

    enum HashComparison {
        case same(FileHashCheck)
        case different(String)
    }

    /// Whether the device's first `length` bytes of `name` are the local ones, as far as the
    /// device's hash can tell; a part that cannot be confirmed is not taken for a resume.
    func confirmsPrefix(name: String, length: Int, local: LocalDigests) async throws(SMPClientError) -> Bool {
        if case .same(.matched) = try await hashComparison(name: name, length: length, local: local) { return true }
        return false
    }

    func hashComparison(name: String, length: Int, local: LocalDigests) async throws(SMPClientError) -> HashComparison {
        guard length > 0 else { return .same(.empty) }
        for type in ["sha256", "crc32"] {
            let answer: FileManagement.HashResponse
            do {
                answer = try await send(FileManagement.HashRequest(name: name, type: type, offset: 0, length: length))
            } catch .device(let error) {
                switch Self.hashRefusal(error) {
                case .typeMissing: continue
                case .commandMissing: return .same(.unsupported)
                case .other: throw .device(error)
                }
            }
            guard answer.length == length, let expected = local.output(for: type) else {
                return .different("the device's \(type) of \(name) covers \(answer.length) bytes, not \(length)")
            }
            guard answer.output == expected else {
                let localHex = FileManagement.HashResponse(type: type, length: length, output: expected).hex
                return .different("the device's \(type) of \(name) is \(answer.hex), the local file's is \(localHex)")
            }
            return .same(.matched(type: type, hex: answer.hex))
        }
        return .same(.unsupported)
    }

    enum HashRefusal { case typeMissing, commandMissing, other }

    /// Why a hash request was refused: the type is not built in (FS_MGMT_ERR_CHECKSUM_HASH_NOT_FOUND,
    /// in SMP v1 `rc 3`), the command is not (CONFIG_MCUMGR_GRP_FS_CHECKSUM_HASH off: `rc 8`), or
    /// something else.
    static func hashRefusal(_ error: SMPDeviceError) -> HashRefusal {
        switch error.kind {
        case .smp(.notSupported): return .commandMissing
        case .smp(.invalidArgument): return .typeMissing
        case .group(.fs, let rc) where rc == SMPErrorCatalog.code(named: "FS_MGMT_ERR_CHECKSUM_HASH_NOT_FOUND", in: .fs):
            return .typeMissing
        default: return .other
        }
    }

    enum FileUploadAnswer {
        case offset(Int)
        case mismatch(deviceLength: Int)
        case device(SMPDeviceError)
        case malformed(SMPDecodingError)
    }

    /// Reads an upload answer, keeping the `len` that Zephyr sends with FILE_OFFSET_NOT_VALID.
    static func fileUploadAnswer(_ packet: SMPPacket) -> FileUploadAnswer {
        let map: CBORMap
        do {
            map = try SMPResponseDecoder.map(from: packet.body)
        } catch {
            return .malformed(error)
        }
        let deviceError: SMPDeviceError?
        do {
            deviceError = try SMPResponseDecoder.deviceError(in: map, header: packet.header)
        } catch {
            return .malformed(error)
        }
        if let deviceError {
            // SMP v2: err {group 8, rc FILE_OFFSET_NOT_VALID} with `len`. SMP v1: the code is
            // translated to rc 1 (EUNKNOWN, fs_mgmt_translate_error_code) and `len` stays.
            let mismatch = SMPErrorCatalog.code(named: "FS_MGMT_ERR_FILE_OFFSET_NOT_VALID", in: .fs)
            let isMismatch: Bool
            switch deviceError.kind {
            case .group(.fs, let rc): isMismatch = rc == mismatch
            case .smp(let rc): isMismatch = packet.header.version == .v1 && rc == .unknown
            default: isMismatch = false
            }
            if isMismatch, let length = try? map.optionalUInt("len") {
                return .mismatch(deviceLength: length)
            }
            return .device(deviceError)
        }
        do {
            return .offset(try FileManagement.UploadResponse(decoding: map).offset)
        } catch {
            return .malformed(error)
        }
    }
}
