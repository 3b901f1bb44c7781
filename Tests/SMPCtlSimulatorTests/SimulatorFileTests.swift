import SMPCtlTestSupport
import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol
@testable import SMPCtlSimulator
import Testing

/// The file (8) and Zephyr basic (63) groups and the reset's boot mode, as Zephyr's fs_mgmt.c,
/// basic_mgmt.c and os_mgmt.c answer.
@Suite("simulated file system, storage erase and reset boot mode")
struct SimulatorFileTests {
    @Test("every file group code the handlers use is in the catalog")
    func codesAreCatalogued() {
        for name in FileError.names {
            #expect(SMPErrorCatalog.code(named: "FS_MGMT_ERR_" + name, in: .fs) != nil, "\(name) is not in the catalog")
        }
    }

    @Test("upload: len on the first chunk, append at the file's length, offset mismatch answers its len")
    func upload() async throws {
        let device = SimulatedDevice()
        let name = "/lfs/u.bin"
        let first = try success(try await call(device, FileManagement.UploadRequest(name: name, offset: 0, data: [1, 2, 3], length: 6)))
        #expect(first.offset == 3)
        // A chunk at the wrong offset: err {group 8, rc 11} with `len` 3, and the file closes.
        let packet = try await exchange(device, FileManagement.UploadRequest(name: name, offset: 5, data: [9]).packet(sequence: 2))
        let map = try SMPResponseDecoder.map(from: packet.body)
        #expect(try SMPResponseDecoder.deviceError(in: map, header: packet.header)?.kind == .group(.fs, 11))
        #expect(try map.optionalUInt("len") == 3)
        // The next chunk at the length continues (the state was lost: the file's length counts).
        let next = try success(try await call(device, FileManagement.UploadRequest(name: name, offset: 3, data: [4, 5, 6])))
        #expect(next.offset == 6)
        #expect(await device.file(name) == [1, 2, 3, 4, 5, 6])
        // A new first chunk truncates.
        _ = try success(try await call(device, FileManagement.UploadRequest(name: name, offset: 0, data: [7], length: 1)))
        #expect(await device.file(name) == [7])
        // The same mismatch in SMP v1: fs_mgmt_translate_error_code gives EUNKNOWN.
        #expect(errorKind(try await call(device, FileManagement.UploadRequest(name: name, offset: 9, data: [1]), version: .v1))
            == .smp(SMPReturnCode(rawValue: 1)))
    }

    @Test("a window with a lost chunk: each chunk behind it is refused with the same len, then the lost one is taken")
    func windowBehindALostChunk() async throws {
        let device = SimulatedDevice()
        let name = "/lfs/w.bin"
        _ = try success(try await call(device, FileManagement.UploadRequest(name: name, offset: 0, data: [1, 2], length: 8)))
        // The chunk at 2 is lost; those at 4 and 6 arrive. fs_mgmt.c refuses both with len 2: the
        // first closes the file (fs_mgmt_cleanup), the second reopens it and takes its length.
        for (sequence, offset) in [(UInt8(2), 4), (3, 6)] {
            let packet = try await exchange(
                device, FileManagement.UploadRequest(name: name, offset: offset, data: [9, 9]).packet(sequence: sequence))
            let map = try SMPResponseDecoder.map(from: packet.body)
            #expect(try SMPResponseDecoder.deviceError(in: map, header: packet.header)?.kind == .group(.fs, 11))
            #expect(try map.optionalUInt("len") == 2)
        }
        #expect(await device.file(name) == [1, 2])
        for (offset, data) in [(2, [UInt8]([3, 4])), (4, [5, 6]), (6, [7, 8])] {
            #expect(try success(try await call(device, FileManagement.UploadRequest(name: name, offset: offset, data: data))).offset
                == offset + 2)
        }
        #expect(await device.file(name) == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test("a lost request is never handled: no answer, no state change, counted")
    func lostRequest() async throws {
        var configuration = SimulatorConfiguration()
        configuration.requestLossRate = 1
        let device = SimulatedDevice(configuration: configuration)
        let output = await device.handle(
            FileManagement.UploadRequest(name: "/lfs/x", offset: 0, data: [1], length: 1).packet(sequence: 1).bytes)
        #expect(output.responses.isEmpty)
        #expect(await device.file("/lfs/x") == nil)
        #expect(await device.lostRequestCount == 1)
        #expect(await device.requestLog.isEmpty)
    }

    @Test("upload and download refuse what Zephyr refuses, with its codes in v2 and v1")
    func refusals() async throws {
        let device = SimulatedDevice()
        let long = "/lfs/" + String(repeating: "n", count: 60)
        #expect(errorKind(try await call(device, FileManagement.UploadRequest(name: long, offset: 0, data: [1], length: 1)))
            == .smp(.invalidArgument))
        // The first chunk without len.
        #expect(errorKind(try await call(device, FileManagement.UploadRequest(name: "/lfs/x", offset: 0, data: [1])))
            == .smp(.invalidArgument))
        #expect(errorKind(try await call(device, FileManagement.UploadRequest(name: "/data/x", offset: 0, data: [1], length: 1)))
            == .group(.fs, 14))
        #expect(errorKind(try await call(device, FileManagement.UploadRequest(name: "/data/x", offset: 0, data: [1], length: 1), version: .v1))
            == .smp(SMPReturnCode(rawValue: 5)))
        #expect(errorKind(try await call(device, FileManagement.DownloadRequest(name: "/lfs/none", offset: 0)))
            == .group(.fs, 3))
        #expect(errorKind(try await call(device, FileManagement.DownloadRequest(name: "/lfs", offset: 0)))
            == .group(.fs, 4))
        #expect(errorKind(try await call(device, FileManagement.StatusRequest(name: "/lfs/none"), version: .v1))
            == .smp(SMPReturnCode(rawValue: 5)))
        #expect(errorKind(try await call(device, FileManagement.HashRequest(name: "/lfs/readme.txt", type: "md5")))
            == .group(.fs, 13))
        #expect(errorKind(try await call(device, FileManagement.HashRequest(name: "/lfs/readme.txt", offset: 1000)))
            == .group(.fs, 12))
        await device.setFile("/lfs/empty", [])
        #expect(errorKind(try await call(device, FileManagement.HashRequest(name: "/lfs/empty"))) == .group(.fs, 16))
        #expect(errorKind(try await call(device, FileManagement.HashRequest(name: "/lfs/readme.txt", length: 0)))
            == .smp(.invalidArgument))
    }

    @Test("download: chunks of buf_size − 44 bytes, len in the first answer only, a hash of any range")
    func download() async throws {
        var configuration = SimulatorConfiguration()
        configuration.bufferSize = 384
        let device = SimulatedDevice(configuration: configuration)
        let contents = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        await device.setFile("/lfs/d.bin", contents)
        var received: [UInt8] = []
        var offsets: [Int] = []
        while received.count < contents.count {
            let chunk = try success(try await call(device, FileManagement.DownloadRequest(name: "/lfs/d.bin", offset: received.count)))
            #expect(chunk.offset == received.count)
            #expect((chunk.length != nil) == (received.isEmpty))
            offsets.append(chunk.offset)
            received += chunk.data
        }
        #expect(received == contents)
        #expect(offsets == [0, 340, 680])  // MCUMGR_GRP_FS_DL_CHUNK_SIZE for a 384-byte netbuf
        let sha = try success(try await call(device, FileManagement.HashRequest(name: "/lfs/d.bin", type: "sha256")))
        #expect(sha.output == .bytes(MCUbootHashAlgorithm.sha256.digest(contents)))
        let crc = try success(try await call(device, FileManagement.HashRequest(name: "/lfs/d.bin", offset: 10, length: 100)))
        #expect(crc.type == "crc32" && crc.offset == 10 && crc.length == 100)
        #expect(crc.output == .number(UInt64(FileManagement.CRC32.checksum(contents[10..<110]))))
        let types = try success(try await call(device, FileManagement.SupportedHashesRequest()))
        #expect(types.types.map(\.name) == ["crc32", "sha256"])
        _ = try success(try await call(device, FileManagement.CloseRequest()))
    }

    @Test("a device without the hash command answers rc 8")
    func noHash() async throws {
        var configuration = SimulatorConfiguration()
        configuration.fileHashTypes = []
        let device = SimulatedDevice(configuration: configuration)
        #expect(errorKind(try await call(device, FileManagement.HashRequest(name: "/lfs/readme.txt"))) == .smp(.notSupported))
        #expect(errorKind(try await call(device, FileManagement.SupportedHashesRequest())) == .smp(.notSupported))
    }

    @Test("storage erase empties the stored settings and the files; v1 answers as basic_mgmt.c translates")
    func storageErase() async throws {
        let device = SimulatedDevice()
        #expect(await device.file("/lfs/readme.txt") != nil)
        _ = try success(try await call(device, ZephyrBasicManagement.EraseStorageRequest()))
        #expect(await device.filePaths.isEmpty)
        #expect(await device.storageEraseCount == 1)
        await device.powerCycle()
        #expect(errorKind(try await call(device, SettingsManagement.ReadRequest(name: "app/name"))) == .group(.settings, 3))
        #expect(SimulatedDevice.v1Code(group: .zephyrBasic, code: 4) == 0)
        #expect(SimulatedDevice.v1Code(group: .zephyrBasic, code: 2) == 5)
    }

    @Test("reset takes boot_mode; another type is rc 3")
    func resetBootMode() async throws {
        let device = SimulatedDevice()
        let output = await device.handle(OSManagement.ResetRequest(bootMode: 1).packet(sequence: 1).bytes)
        #expect(output.resetting)
        #expect(await device.lastResetBootMode == 1)
        let bad = SMPRawRequest(group: .os, command: 5, operation: .write, body: ["boot_mode": "one"])
        #expect(errorKind(try await call(device, bad)) == .smp(.invalidArgument))
    }
}
