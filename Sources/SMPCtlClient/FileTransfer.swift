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
    /// Answers in a row that do not advance the transfer before it fails as stalled.
    public var stallLimit = 8
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

extension SMPClient {
    /// Uploads a local file to `name` on the device's file system (group 8).
    ///
    /// Each chunk is sized so that its encoded request exactly fits the device's buffer and the
    /// path (the same computation as image uploads); the first carries `len`. One chunk is in
    /// flight at a time: Zephyr's fs_mgmt.c refuses any chunk that is not at the file's current
    /// length (FILE_OFFSET_NOT_VALID, with the length it has), and then closes the file, so a
    /// chunk sent behind a lost one would be refused too. That answer is followed: the upload
    /// continues at the device's length when it is within what was sent. With
    /// ``FileTransferOptions/resume``, a file the device already holds in part continues from
    /// its length when the device's hash of that part equals the local file's.
    public func uploadFile(
        _ file: FirmwareFile, to name: String, options: FileTransferOptions = FileTransferOptions(),
        progress: (@Sendable (UploadProgress) -> Void)? = nil
    ) async throws(SMPClientError) -> FileTransferResult {
        if parameters == nil { try await readParameters() }
        try await learnLargestPacket()
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = options.deadline.map { start + $0 }
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
        let packetLimit = await maximumRequestSize()
        let bodyBudget = packetLimit - SMPHeader.size
        let reader = try FirmwareReader(file: file)
        var chunks = 0
        var largest = 0
        var withoutProgress = 0
        var sentHighWater = offset
        progress?(UploadProgress(offset: offset, total: file.length, startOffset: resumedFrom, elapsed: elapsed()))
        while offset < file.length {
            if Task.isCancelled { throw .cancelled }
            if let deadline, clock.now >= deadline { throw .deadlineExceeded(options.deadline ?? .zero) }
            let length: Int? = offset == 0 ? file.length : nil
            let fits = FileManagement.UploadRequest.largestDataLength(
                bodyBudget: bodyBudget, name: name, offset: offset, length: length)
            let count = min(fits, file.length - offset)
            guard count > 0 else {
                throw .deviceLimit(
                    "the device's buffer (\(parameters?.bufferSize ?? 0) bytes, \(packetLimit) per request on this link) cannot carry a file chunk with the \(name.utf8.count)-byte name \"\(name)\"")
            }
            let request = FileManagement.UploadRequest(
                name: name, offset: offset, data: try reader.read(offset: offset, count: count), length: length)
            chunks += 1
            largest = max(largest, count)
            sentHighWater = max(sentHighWater, offset + count)
            let packet = try await exchange(request, policy: SMPRequestPolicy())
            let next: Int
            switch Self.fileUploadAnswer(packet) {
            case .offset(let reported): next = reported
            case .mismatch(let deviceLength):
                // Zephyr: "Offset mismatch, send file length, client needs to handle this". A
                // length within what was sent is ours: continue there. Anything else is not.
                guard deviceLength <= sentHighWater, deviceLength <= file.length else {
                    throw .stalled("the device reports \(deviceLength) bytes in \(name), beyond the \(sentHighWater) bytes sent")
                }
                log("the device's \(name) holds \(deviceLength) bytes, not \(offset); continuing there")
                next = deviceLength
            case .device(let error): throw .device(error)
            case .malformed(let error):
                discardedAnswers += 1
                withoutProgress += 1
                guard withoutProgress <= options.stallLimit else { throw .malformedResponse(error) }
                continue
            }
            guard next <= file.length, next <= sentHighWater else {
                throw .stalled("the device reports offset \(next) in \(name), beyond the \(sentHighWater) bytes sent")
            }
            if next > offset {
                withoutProgress = 0
            } else {
                withoutProgress += 1
                guard withoutProgress <= options.stallLimit else {
                    throw .stalled("the offset in \(name) stayed at or went back to \(next) for \(withoutProgress) answers in a row")
                }
            }
            offset = next
            progress?(UploadProgress(offset: offset, total: file.length, startOffset: resumedFrom, elapsed: elapsed()))
        }
        if resumedFrom > 0 {
            // A continued upload carries no `len`, so Zephyr cannot tell that the file is whole
            // and keeps it open until its idle timer: close it now.
            do throws(SMPClientError) {
                _ = try await send(FileManagement.CloseRequest())
            } catch .device(let error) {
                log("closing \(name) on the device failed (\(error)); its idle timer closes it")
            }
        }
        let check = try await compareHash(name: name, length: file.length, local: LocalDigests.of(file, length: file.length))
        return FileTransferResult(
            length: file.length, resumedFrom: resumedFrom, chunks: chunks, chunkSize: largest, seconds: elapsed(),
            check: check)
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
