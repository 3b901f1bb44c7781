import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol

// File system (8) and Zephyr basic (63) handlers of ``SimulatedDevice``.

/// File group codes (`fs_mgmt_err_code_t`), by name from ``SMPErrorCatalog``.
enum FileError {
    static let names = [
        "UNKNOWN", "FILE_INVALID_NAME", "FILE_NOT_FOUND", "FILE_IS_DIRECTORY", "FILE_OFFSET_NOT_VALID",
        "FILE_OFFSET_LARGER_THAN_FILE", "CHECKSUM_HASH_NOT_FOUND", "MOUNT_POINT_NOT_FOUND", "FILE_EMPTY",
    ]
    static func code(_ name: String) -> Int { SMPErrorCatalog.code(named: "FS_MGMT_ERR_" + name, in: .fs) ?? 1 }

    static let notFound = code("FILE_NOT_FOUND")
    static let isDirectory = code("FILE_IS_DIRECTORY")
    static let offsetNotValid = code("FILE_OFFSET_NOT_VALID")
    static let offsetLargerThanFile = code("FILE_OFFSET_LARGER_THAN_FILE")
    static let hashNotFound = code("CHECKSUM_HASH_NOT_FOUND")
    static let mountPointNotFound = code("MOUNT_POINT_NOT_FOUND")
    static let empty = code("FILE_EMPTY")
}

/// The simulated file system's open-file state, as fs_mgmt.c keeps it in `fs_mgmt_ctxt`.
struct FileContext: Sendable {
    enum State: Sendable { case idle, upload, download }
    var state = State.idle
    var path = ""
    /// The expected offset of the next request.
    var offset = 0
    /// The total length from the first upload chunk (0 when unknown), or the file's length.
    var length = 0
}

extension SimulatedDevice {
    /// The one mount point of the simulated device (littlefs at `/lfs`, as in Zephyr's samples).
    static let mountPoint = "/lfs"

    /// The files the device holds at first boot.
    static let factoryFiles: [String: [UInt8]] = [
        "/lfs/boot_count": [0x01, 0x00, 0x00, 0x00],
        "/lfs/readme.txt": Array("smpctl simulated littlefs\n".utf8),
    ]

    /// MCUMGR_GRP_FS_DL_CHUNK_SIZE (fs_mgmt_config.h): the netbuf less CBOR_AND_OTHER_HDR, which
    /// is 44 bytes with CONFIG_MCUMGR_GRP_FS_MAX_OFFSET_LEN 3 (the default 64 KiB file size).
    var downloadChunkSize: Int { max(1, configuration.bufferSize - 44) }

    /// The file-system state fs_stat gives for a path: a file, a directory, nothing, or an
    /// invalid name (-EINVAL for a path outside any mount point's syntax).
    enum PathKind { case file([UInt8]), directory, missing, invalid }

    func pathKind(_ path: String) -> PathKind {
        guard path.hasPrefix("/") else { return .invalid }
        if let data = files[path] { return .file(data) }
        if path == Self.mountPoint || path == "/" { return .directory }
        let prefix = path.hasSuffix("/") ? path : path + "/"
        if files.keys.contains(where: { $0.hasPrefix(prefix) }) { return .directory }
        return .missing
    }

    /// fs_mgmt_filelen: the length of a file, or the group code for why there is none.
    func fileLength(_ path: String) -> Result<Int, FileLengthError> {
        switch pathKind(path) {
        case .file(let data): .success(data.count)
        case .directory: .failure(FileLengthError(code: FileError.isDirectory))
        case .missing: .failure(FileLengthError(code: FileError.notFound))
        case .invalid: .failure(FileLengthError(code: FileError.code("FILE_INVALID_NAME")))
        }
    }

    struct FileLengthError: Error { var code: Int }

    /// The name of a request: a text string of 1 to CONFIG_MCUMGR_GRP_FS_PATH_LEN (64) bytes,
    /// otherwise `nil` (Zephyr answers MGMT_ERR_EINVAL).
    func requestName(_ map: CBORMap) -> String? {
        guard let name = map["name"]?.string, !name.isEmpty,
            name.utf8.count <= FileManagement.defaultPathLength
        else { return nil }
        return name
    }

    /// Zephyr's subsys/mgmt/mcumgr/grp/fs_mgmt/src/fs_mgmt.c, in its order:
    /// - download (read 0): `off` and `name` required (else `rc 3`); a new path closes the open
    ///   one and stats the file (FILE_NOT_FOUND, FILE_IS_DIRECTORY); the answer is `off`, up to
    ///   MCUMGR_GRP_FS_DL_CHUNK_SIZE bytes of `data`, and `len` when `off` is 0; the file closes
    ///   once the offset reaches its length;
    /// - upload (write 0): `off`, `name` and `data`, and `len` when `off` is 0 (else `rc 3`); a
    ///   new upload opens the file for writing, which fails with MOUNT_POINT_NOT_FOUND outside
    ///   `/lfs`; `off` 0 truncates an existing file when data comes; a later chunk whose state
    ///   was lost takes the file's length as the expected offset; a chunk at another offset
    ///   answers FILE_OFFSET_NOT_VALID with `len`, the expected offset, and closes the file;
    ///   otherwise the data is appended and the answer is `off`, the new length;
    /// - status (read 1): `len` of the file;
    /// - hash (read 2): `type` (default crc32), `off`, `len` (0 is `rc 3`); an unknown type is
    ///   CHECKSUM_HASH_NOT_FOUND, an empty file FILE_EMPTY, `off` at or beyond the end
    ///   FILE_OFFSET_LARGER_THAN_FILE; the answer is `type`, `off` when not 0, `len` (the bytes
    ///   hashed) and `output` (bytes for sha256, a number for crc32);
    /// - supported hashes (read 3): `types`, each with `format` (1 bytes, 0 number) and `size`;
    /// - close (write 4): closes the open file.
    func handleFile(_ header: SMPHeader, _ map: CBORMap) -> Reply {
        let command = FileManagement.Command(rawValue: header.command)
        let invalid = Reply.smp(SMPReturnCode.invalidArgument.rawValue)
        switch (command, header.operation) {
        case (.file?, .read):
            guard let off = map["off"]?.uint64, let name = requestName(map) else { return invalid }
            if fileContext.state != .download || fileContext.path != name { fileContext = FileContext() }
            if fileContext.state == .idle {
                switch fileLength(name) {
                case .success(let length):
                    fileContext = FileContext(state: .download, path: name, offset: 0, length: length)
                case .failure(let error): return .group(error.code)
                }
            }
            // The file is read as it is now: it may have changed since the download began.
            let data = files[name] ?? []
            guard off <= UInt64(data.count) else {
                // fs_seek past the end fails on littlefs.
                fileContext = FileContext()
                return .group(FileError.code("FILE_SEEK_FAILED"))
            }
            let start = Int(off)
            let chunk = Array(data[start..<min(data.count, start + downloadChunkSize)])
            var answer = CBORMap([
                .init(key: "off", value: .unsigned(off)), .init(key: "data", value: .bytes(chunk)),
            ])
            if off == 0 { answer["len"] = .unsigned(UInt64(fileContext.length)) }
            fileContext.offset = start + chunk.count
            if fileContext.length > 0, fileContext.offset >= fileContext.length { fileContext = FileContext() }
            return .success(.map(answer))
        case (.file?, .write):
            guard let off = map["off"]?.uint64, let name = requestName(map), let data = map["data"]?.byteString
            else { return invalid }
            let declared = map["len"]?.uint64
            if off == 0 && declared == nil { return invalid }
            if fileContext.state != .upload || fileContext.path != name { fileContext = FileContext() }
            if fileContext.state == .idle {
                guard name.hasPrefix(Self.mountPoint + "/") else { return .group(FileError.mountPointNotFound) }
                if case .directory = pathKind(name) { return .group(FileError.code("UNKNOWN")) }
                if files[name] == nil { files[name] = [] }  // FS_O_CREATE
                fileContext = FileContext(state: .upload, path: name, offset: 0, length: 0)
            }
            if off == 0 {
                fileContext.length = Int(clamping: declared ?? 0)
            } else if fileContext.offset == 0 {
                fileContext.offset = files[name]?.count ?? 0
            }
            if off > 0 && off != UInt64(fileContext.offset) {
                let expected = fileContext.offset
                fileContext = FileContext()
                return .groupWithFields(FileError.offsetNotValid, CBORMap([.init(key: "len", value: .unsigned(UInt64(expected)))]))
            }
            if !data.isEmpty {
                if off == 0 {
                    files[name] = data
                } else {
                    files[name, default: []].append(contentsOf: data)
                }
                // As fs_mgmt.c does, also for a first chunk sent again during an upload: the
                // expected offset then runs ahead of the file, and the next chunk learns the
                // real length from the FILE_OFFSET_NOT_VALID answers that follow.
                fileContext.offset += data.count
            }
            let answer: CBORValue = ["off": .unsigned(UInt64(fileContext.offset))]
            if fileContext.length > 0, fileContext.offset >= fileContext.length { fileContext = FileContext() }
            return .success(answer)
        case (.status?, .read):
            guard let name = requestName(map) else { return invalid }
            switch fileLength(name) {
            case .success(let length): return .success(["len": .unsigned(UInt64(length))])
            case .failure(let error): return .group(error.code)
            }
        case (.hashChecksum?, .read), (.supportedHashChecksum?, .read):
            if configuration.fileHashTypes.isEmpty { return .smp(SMPReturnCode.notSupported.rawValue) }
            if command == .supportedHashChecksum {
                var types = CBORMap()
                for type in configuration.fileHashTypes {
                    let sha = type == "sha256"
                    types[type] = ["format": .unsigned(sha ? 1 : 0), "size": .unsigned(sha ? 32 : 4)]
                }
                return .success(["types": .map(types)])
            }
            guard let name = requestName(map) else { return invalid }
            var type = configuration.fileHashTypes.contains("crc32") ? "crc32" : "sha256"
            if let value = map["type"] {
                guard let text = value.string, text.utf8.count <= 8 else { return invalid }
                if !text.isEmpty { type = text }
            }
            var off: UInt64 = 0
            if let value = map["off"] {
                guard let number = value.uint64 else { return invalid }
                off = number
            }
            var limit = UInt64.max
            if let value = map["len"] {
                guard let number = value.uint64, number > 0 else { return invalid }
                limit = number
            }
            guard configuration.fileHashTypes.contains(type) else { return .group(FileError.hashNotFound) }
            let data: [UInt8]
            switch fileLength(name) {
            case .success: data = files[name] ?? []
            case .failure(let error): return .group(error.code)
            }
            guard UInt64(data.count) > off else {
                return .group(data.isEmpty ? FileError.empty : FileError.offsetLargerThanFile)
            }
            let start = Int(off)
            let end = UInt64(data.count - start) > limit ? start + Int(limit) : data.count
            let covered = data[start..<end]
            var answer = CBORMap([.init(key: "type", value: .text(type))])
            if off != 0 { answer["off"] = .unsigned(off) }
            answer["len"] = .unsigned(UInt64(covered.count))
            if type == "sha256" {
                answer["output"] = .bytes(MCUbootHashAlgorithm.sha256.digest(covered))
            } else {
                answer["output"] = .unsigned(UInt64(FileManagement.CRC32.checksum(covered)))
            }
            return .success(.map(answer))
        case (.openedFile?, .write):
            fileContext = FileContext()
            return .success(.map(CBORMap()))
        default:
            return .smp(SMPReturnCode.notSupported.rawValue)
        }
    }

    /// Zephyr's subsys/mgmt/mcumgr/grp/zephyr_basic/src/basic_mgmt.c: command 0 (write) erases
    /// `storage_partition` with flash_area_flatten and answers `{}`. The simulated storage
    /// partition holds the saved settings and the littlefs files, so both are gone afterwards
    /// (the running settings stay until the next boot loads the empty storage).
    func handleZephyrBasic(_ header: SMPHeader, _ map: CBORMap) -> Reply {
        guard header.command == ZephyrBasicManagement.Command.eraseStorage.rawValue, header.operation == .write else {
            return .smp(SMPReturnCode.notSupported.rawValue)
        }
        settingsStored = [:]
        files = [:]
        fileContext = FileContext()
        storageEraseCount += 1
        return .success(.map(CBORMap()))
    }
}
