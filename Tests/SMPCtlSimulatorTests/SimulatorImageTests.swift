import SMPCtlTestSupport
import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import Testing

@Suite struct SimulatorUpgradeFlowTests {
    @Test func uploadTestBootRevert() async throws {
        let device = SimulatedDevice()
        let file = try SimFixture.testImage()
        let before = try success(try await call(device, ImageManagement.StateReadRequest()))
        #expect(summary(before.images) == ["0:1.0.0:confirmed,active"])
        #expect(before.images.first?.hash?.count == 32)

        let final = try await upload(device, file, chunk: 700)
        #expect(final.offset == file.count)
        #expect(final.match == true)
        #expect(await device.uploadOffset == nil)
        #expect(Array(await device.flashContents(slot: 1).prefix(file.count)) == file)

        let state = try success(try await call(device, ImageManagement.StateReadRequest()))
        #expect(summary(state.images) == ["0:1.0.0:confirmed,active", "1:1.2.3.4:"])
        #expect(state.images.last?.hash == SimFixture.imageHash)
        #expect(state.splitStatus == 0)

        let tested = try success(try await call(device, ImageManagement.StateWriteRequest(hash: SimFixture.imageHash, confirm: false)))
        #expect(summary(tested.images) == ["0:1.0.0:confirmed,active", "1:1.2.3.4:pending"])

        await device.powerCycle()
        #expect(summary(await device.slotStates) == ["0:1.2.3.4:active", "1:1.0.0:confirmed"])
        // The revert target occupies the secondary slot: no upload, no erase.
        let blocked = try await call(device, ImageManagement.EraseRequest())
        #expect(errorKind(blocked) == .group(.image, 9))

        await device.powerCycle()
        #expect(summary(await device.slotStates) == ["0:1.0.0:confirmed,active", "1:1.2.3.4:"])
    }

    @Test func testBootConfirmStays() async throws {
        let device = SimulatedDevice()
        try await upload(device, try SimFixture.testImage())
        _ = try success(try await call(device, ImageManagement.StateWriteRequest(hash: SimFixture.imageHash, confirm: false)))
        let reset = await device.handle(OSManagement.ResetRequest().packet(sequence: 9).bytes)
        #expect(reset.resetting && reset.responses.count == 1)
        #expect(summary(await device.slotStates) == ["0:1.2.3.4:active", "1:1.0.0:confirmed"])
        let confirmed = try success(try await call(device, ImageManagement.StateWriteRequest(hash: nil, confirm: true)))
        #expect(summary(confirmed.images) == ["0:1.2.3.4:confirmed,active", "1:1.0.0:"])
        await device.powerCycle()
        #expect(summary(await device.slotStates) == ["0:1.2.3.4:confirmed,active", "1:1.0.0:"])
    }

    @Test func confirmPermanent() async throws {
        let device = SimulatedDevice()
        try await upload(device, try SimFixture.testImage())
        let state = try success(try await call(device, ImageManagement.StateWriteRequest(hash: SimFixture.imageHash, confirm: true)))
        #expect(summary(state.images) == ["0:1.0.0:confirmed,active", "1:1.2.3.4:pending,permanent"])
        // A permanent choice cannot be turned back into a test.
        let retest = try await call(device, ImageManagement.StateWriteRequest(hash: SimFixture.imageHash, confirm: false))
        #expect(errorKind(retest) == .group(.image, 28))
        await device.powerCycle()
        #expect(summary(await device.slotStates) == ["0:1.2.3.4:confirmed,active", "1:1.0.0:"])
        await device.powerCycle()
        #expect(summary(await device.slotStates) == ["0:1.2.3.4:confirmed,active", "1:1.0.0:"])
    }

    @Test func stateWriteErrors() async throws {
        let device = SimulatedDevice()
        try await upload(device, try SimFixture.testImage())
        let running = try #require(await device.slotStates.first?.hash)
        let unknown = [UInt8](repeating: 0x42, count: 32)
        #expect(errorKind(try await call(device, ImageManagement.StateWriteRequest(hash: unknown, confirm: false)))
            == .group(.image, 8))
        #expect(errorKind(try await call(device, ImageManagement.StateWriteRequest(hash: unknown, confirm: false), version: .v1))
            == .smp(SMPReturnCode(rawValue: 1)))
        #expect(errorKind(try await call(device, ImageManagement.StateWriteRequest(hash: [1, 2, 3], confirm: true)))
            == .group(.image, 24))
        #expect(errorKind(try await call(device, ImageManagement.StateWriteRequest(hash: nil, confirm: false)))
            == .group(.image, 24))
        #expect(errorKind(try await call(device, ImageManagement.StateWriteRequest(hash: running, confirm: false)))
            == .group(.image, 33))
        _ = try success(try await call(device, ImageManagement.StateWriteRequest(hash: running, confirm: true)))
        // The file SHA is not the image hash.
        #expect(errorKind(try await call(device, ImageManagement.StateWriteRequest(hash: SimFixture.fileSHA, confirm: false)))
            == .group(.image, 8))
    }

    @Test func hashNotFoundIsEncodedLikeZephyr() async throws {
        let device = SimulatedDevice()
        let request = ImageManagement.StateWriteRequest(hash: [UInt8](repeating: 0, count: 32), confirm: false)
        let output = await device.handle(request.packet(sequence: 3).bytes)
        let packet = try SMPPacket(decoding: try #require(output.responses.first))
        #expect(packet.body.hex == "bf63657272bf6567726f7570016272630" + "8ffff")
        #expect(packet.header.bytes[0] == 0x0B)
    }
}

@Suite struct SimulatorUploadTests {
    @Test func resumeAnswersStoredOffset() async throws {
        let device = SimulatedDevice()
        let file = try SimFixture.testImage()
        try await upload(device, file, chunk: 512, stopAt: 1536)
        #expect(await device.uploadOffset == 1536)
        let first = ImageManagement.UploadRequest(
            offset: 0, data: Array(file[0..<512]),
            first: .init(length: file.count, sha: SimFixture.fileSHA))
        let resumed = try success(try await call(device, first))
        #expect(resumed.offset == 1536)
        // A different sha starts over.
        let other = ImageManagement.UploadRequest(
            offset: 0, data: Array(file[0..<512]), first: .init(length: file.count, sha: [1, 2, 3]))
        #expect(try success(try await call(device, other)).offset == 512)
        let final = try await upload(device, file, chunk: 900)
        #expect(final.offset == file.count && final.match == true)
    }

    @Test func wrongOffsetIsAnsweredWithExpectedOffset() async throws {
        let device = SimulatedDevice()
        let file = try SimFixture.testImage()
        let noSession = ImageManagement.UploadRequest(offset: 512, data: Array(file[512..<1024]))
        #expect(try success(try await call(device, noSession)).offset == 0)
        try await upload(device, file, chunk: 512, stopAt: 512)
        let skipped = ImageManagement.UploadRequest(offset: 1024, data: Array(file[1024..<1536]))
        #expect(try success(try await call(device, skipped)).offset == 512)
        #expect(await device.flashContents(slot: 1)[1024] == 0xFF)
        let repeated = ImageManagement.UploadRequest(offset: 100, data: Array(file[100..<600]))
        #expect(try success(try await call(device, repeated)).offset == 512)
        #expect(await device.uploadOffset == 512)
    }

    @Test func overrun() async throws {
        let device = SimulatedDevice()
        let file = try SimFixture.testImage()
        let first = ImageManagement.UploadRequest(offset: 0, data: Array(file[0..<64]), first: .init(length: 100, sha: nil))
        #expect(try success(try await call(device, first)).offset == 64)
        let next = ImageManagement.UploadRequest(offset: 64, data: Array(file[64..<128]))
        #expect(errorKind(try await call(device, next)) == .group(.image, 31))
        #expect(errorKind(try await call(device, next, version: .v1)) == .smp(SMPReturnCode(rawValue: 1)))
        let tooMuch = ImageManagement.UploadRequest(offset: 0, data: Array(file[0..<64]), first: .init(length: 40, sha: nil))
        #expect(errorKind(try await call(device, tooMuch)) == .group(.image, 31))
    }

    /// Each first-chunk check with its v2 group code and its v1 translation, in Zephyr's order:
    /// every case also breaks all later checks, so a wrong order gives a wrong code.
    @Test(arguments: [SMPVersion.v2, SMPVersion.v1])
    func firstChunkChecks(version: SMPVersion) async throws {
        let file = try SimFixture.testImage()
        let header = Array(file[0..<64])
        let longSHA: CBORValue = .bytes([UInt8](repeating: 1, count: 33))
        let cases: [(String, [(String, CBORValue)], Int, Int)] = [
            ("off missing", [("data", .bytes([1, 2])), ("sha", longSHA)], 20, 3),
            ("data < 32", [("off", 0), ("data", .bytes(Array(header[0..<31]))), ("sha", longSHA)], 22, 3),
            ("len missing", [("off", 0), ("data", .bytes([0] + header[1...])), ("sha", longSHA)], 21, 3),
            ("bad magic", [("off", 0), ("len", 4770), ("data", .bytes([0] + header[1...])), ("sha", longSHA)], 23, 1),
            ("sha > 32", [("off", 0), ("len", 1_073_741_824), ("data", .bytes(header)), ("sha", longSHA)], 24, 3),
            ("too large", [("off", 0), ("len", 1_073_741_824), ("data", .bytes(header))], 30, 1),
        ]
        for (name, fields, v2, v1) in cases {
            let device = SimulatedDevice()
            let result = try await call(device, rawUpload(fields), version: version)
            let expected: SMPDeviceError.Kind = version == .v2 ? .group(.image, v2) : .smp(SMPReturnCode(rawValue: v1))
            #expect(errorKind(result) == expected, "\(name)")
        }

        // Slot pending → 9 NO_FREE_SLOT (v1 EBADSTATE 6), checked before the size.
        let device = SimulatedDevice()
        try await upload(device, file)
        _ = try success(try await call(device, ImageManagement.StateWriteRequest(hash: SimFixture.imageHash, confirm: false)))
        let pending = try await call(device, rawUpload([("off", 0), ("len", 1_073_741_824), ("data", .bytes(header))]), version: version)
        #expect(errorKind(pending) == (version == .v2 ? .group(.image, 9) : .smp(SMPReturnCode(rawValue: 6))))

        // upgrade and not newer → 27 (v1 6).
        var config = SimulatorConfiguration()
        config.initialVersion = "1.2.3"
        let newer = SimulatedDevice(configuration: config)
        let upgrade = rawUpload([("off", 0), ("len", 4770), ("data", .bytes(header)), ("upgrade", true)])
        #expect(errorKind(try await call(newer, upgrade, version: version))
            == (version == .v2 ? .group(.image, 27) : .smp(SMPReturnCode(rawValue: 6))))
        config.initialVersion = "1.2.2"
        let older = SimulatedDevice(configuration: config)
        #expect(try success(try await call(older, upgrade, version: version)).map["off"] == .unsigned(64))

        // Wrong field types are a decode failure: top-level EINVAL in both versions.
        let badType = try await call(SimulatedDevice(), rawUpload([("off", "zero"), ("data", .bytes(header))]), version: version)
        #expect(errorKind(badType) == .smp(.invalidArgument))
    }

    @Test func slotTooSmall() async throws {
        var config = SimulatorConfiguration()
        config.secondarySlotSizeOverride = 4096
        let device = SimulatedDevice(configuration: config)
        let file = try SimFixture.testImage()
        let first = ImageManagement.UploadRequest(
            offset: 0, data: Array(file[0..<512]), first: .init(length: file.count, sha: SimFixture.fileSHA))
        #expect(errorKind(try await call(device, first)) == .group(.image, 30))
        let info = try success(try await call(device, ImageManagement.SlotInfoRequest()))
        #expect(info.images.first?.slots.map(\.size) == [256 * 1024, 4096])
    }

    @Test func unsignedFiles() async throws {
        // A zephyr.bin: no MCUboot magic → 23.
        var generator = SystemRandomNumberGenerator()
        var bin = (0..<3000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bin.replaceSubrange(0..<4, with: [0x00, 0x10, 0x00, 0x20])
        let device = SimulatedDevice()
        let first = ImageManagement.UploadRequest(offset: 0, data: Array(bin[0..<512]), first: .init(length: bin.count, sha: nil))
        #expect(errorKind(try await call(device, first)) == .group(.image, 23))

        // Valid header, no TLVs: Zephyr completes the upload, then cannot list or test the slot.
        let withTLVs = MCUbootImageBuilder(
            version: MCUbootImageVersion(major: 3, minor: 0, revision: 0), payload: [UInt8](repeating: 7, count: 1500)
        ).build()
        let noTLVs = Array(withTLVs.prefix(0x200 + 1500))
        let done = try await upload(device, noTLVs, chunk: 512)
        #expect(done.offset == noTLVs.count && done.match == true)
        #expect(await device.lastCompletedUpload?.validationError == 4)
        #expect(summary(await device.slotStates) == ["0:1.0.0:confirmed,active"])
        let hash = MCUbootImage.sha256(noTLVs)
        #expect(errorKind(try await call(device, ImageManagement.StateWriteRequest(hash: hash, confirm: false)))
            == .group(.image, 8))

        // Optionally the final chunk reports NO_TLVS (v1: ENOENT 5).
        var config = SimulatorConfiguration()
        config.validateOnCompletion = true
        for version in [SMPVersion.v2, .v1] {
            let strict = SimulatedDevice(configuration: config)
            try await upload(strict, noTLVs, chunk: 1024, version: version, stopAt: 1024)
            let last = ImageManagement.UploadRequest(offset: 1024, data: Array(noTLVs[1024...]))
            #expect(errorKind(try await call(strict, last, version: version))
                == (version == .v2 ? .group(.image, 4) : .smp(.noEntry)))
        }
    }

    @Test func eraseAndSlotInfo() async throws {
        let device = SimulatedDevice()
        let file = try SimFixture.testImage()
        try await upload(device, file)
        _ = try success(try await call(device, ImageManagement.EraseRequest()))
        #expect(await device.flashContents(slot: 1).allSatisfy { $0 == 0xFF })
        #expect(summary(await device.slotStates) == ["0:1.0.0:confirmed,active"])
        #expect(errorKind(try await call(device, ImageManagement.EraseRequest(slot: 0))) == .group(.image, 9))
        #expect(errorKind(try await call(device, ImageManagement.EraseRequest(slot: 0), version: .v1)) == .smp(.badState))
        #expect(errorKind(try await call(device, ImageManagement.EraseRequest(slot: 7))) == .group(.image, 14))
        try await upload(device, file)
        _ = try success(try await call(device, ImageManagement.StateWriteRequest(hash: SimFixture.imageHash, confirm: false)))
        #expect(errorKind(try await call(device, ImageManagement.EraseRequest(slot: 1))) == .group(.image, 9))

        let info = try success(try await call(device, ImageManagement.SlotInfoRequest()))
        let image = try #require(info.images.first)
        #expect(image.image == 0 && image.maxImageSize == 256 * 1024 - 4096)
        #expect(image.slots.map(\.slot) == [0, 1])
        #expect(image.slots.map(\.uploadImageID) == [nil, 0])
        var config = SimulatorConfiguration()
        config.supportsSlotInfo = false
        #expect(errorKind(try await call(SimulatedDevice(configuration: config), ImageManagement.SlotInfoRequest()))
            == .smp(.notSupported))
    }

    @Test func twoImages() async throws {
        var config = SimulatorConfiguration()
        config.imageCount = 2
        let device = SimulatedDevice(configuration: config)
        let file = try SimFixture.testImage()
        try await upload(device, file, image: 1)
        #expect(Array(await device.flashContents(slot: 3).prefix(file.count)) == file)
        let state = try success(try await call(device, ImageManagement.StateReadRequest()))
        #expect(state.images.map { "\($0.image)/\($0.slot)" } == ["0/0", "1/0", "1/1"])
        let raw = try success(try await call(device, SMPRawRequest(group: .image, command: 0, operation: .read)))
        #expect(raw.map["images"]?.arrayValue?.first?.mapValue?["image"] == .unsigned(0))
        _ = try success(try await call(device, ImageManagement.StateWriteRequest(hash: SimFixture.imageHash, confirm: true)))
        await device.powerCycle()
        #expect(summary(await device.slotStates) == ["0:1.0.0:confirmed,active", "0:1.2.3.4:confirmed,active", "1:1.0.0:"])
        let info = try success(try await call(device, ImageManagement.SlotInfoRequest()))
        #expect(info.images.map(\.image) == [0, 1])
        #expect(info.images.last?.slots.last?.uploadImageID == 1)
        // Single-image devices omit `image`.
        let single = try success(try await call(SimulatedDevice(), SMPRawRequest(group: .image, command: 0, operation: .read)))
        #expect(single.map["images"]?.arrayValue?.first?.mapValue?["image"] == nil)
    }

    @Test func resetDuringUploadLosesState() async throws {
        let file = try SimFixture.testImage()
        var config = SimulatorConfiguration()
        config.resetDuringUploadAtOffset = 2000
        let device = SimulatedDevice(configuration: config)
        try await upload(device, file, chunk: 512, stopAt: 1536)
        let chunk = ImageManagement.UploadRequest(offset: 1536, data: Array(file[1536..<2048]))
        let output = await device.handle(chunk.packet(sequence: 1).bytes)
        #expect(output.responses.isEmpty && output.resetting)
        #expect(await device.uploadOffset == nil)
        let flash = await device.flashContents(slot: 1)
        #expect(Array(flash[0..<2000]) == Array(file[0..<2000]))
        #expect(flash[2000] == 0xFF)
        #expect(await device.bootCount == 1)
        // Zephyr keeps the session in RAM: the same sha starts over.
        let first = ImageManagement.UploadRequest(
            offset: 0, data: Array(file[0..<512]), first: .init(length: file.count, sha: SimFixture.fileSHA))
        #expect(try success(try await call(device, first)).offset == 512)
        let final = try await upload(device, file, chunk: 1000)
        #expect(final.match == true)

        config.keepUploadStateAcrossReset = true
        let keeping = SimulatedDevice(configuration: config)
        try await upload(keeping, file, chunk: 512, stopAt: 1536)
        _ = await keeping.handle(chunk.packet(sequence: 1).bytes)
        #expect(await keeping.uploadOffset == 2000)
        #expect(try success(try await call(keeping, first)).offset == 2000)
    }
}
