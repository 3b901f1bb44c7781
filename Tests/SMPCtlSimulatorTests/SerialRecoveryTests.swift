import SMPCtlTestSupport
import Foundation
import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport
import Testing

/// The simulator in MCUboot serial recovery, as boot/boot_serial/src/boot_serial.c answers.
@Suite("MCUboot serial recovery")
struct SerialRecoveryTests {
    static func recoveryDevice(_ configure: (inout SimulatedRecovery) -> Void = { _ in }) -> SimulatedDevice {
        var configuration = SimulatorConfiguration()
        var recovery = SimulatedRecovery()
        configure(&recovery)
        configuration.recovery = recovery
        return SimulatedDevice(configuration: configuration)
    }

    /// A request's raw answer map, or nil when the device did not answer.
    static func answer<R: SMPRequest>(_ device: SimulatedDevice, _ request: R, sequence: UInt8 = 1) async throws -> CBORMap? {
        let output = await device.handle(request.packet(sequence: sequence, version: .v2).bytes)
        guard let bytes = output.responses.first else { return nil }
        #expect(output.responses.count == 1)
        let packet = try SMPPacket(decoding: bytes)
        #expect(packet.header.sequence == sequence)
        #expect(packet.header.operation == request.operation.response)
        return try SMPResponseDecoder.map(from: packet.body)
    }

    @Test("the image list has slot, hash and version, no flags and no splitStatus (bs_list)")
    func imageList() async throws {
        let device = Self.recoveryDevice()
        #expect(await device.inRecovery)
        let map = try #require(try await Self.answer(device, ImageManagement.StateReadRequest()))
        #expect(map["splitStatus"] == nil)
        let images = try #require(map["images"]?.arrayValue)
        #expect(images.count == 1)
        let entry = try #require(images.first?.mapValue)
        #expect(entry["slot"]?.uint64 == 0)
        #expect(entry["version"]?.string == "1.0.0")
        #expect(entry["hash"]?.byteString?.count == 32)
        #expect(entry["active"] == nil && entry["confirmed"] == nil && entry["image"] == nil)

        let noHash = Self.recoveryDevice { $0.listsHashes = false }
        let bare = try #require(try await Self.answer(noHash, ImageManagement.StateReadRequest()))
        #expect(bare["images"]?.arrayValue?.first?.mapValue?["hash"] == nil)
    }

    @Test("test, confirm, erase, slot info and other groups are answered rc 8")
    func refusals() async throws {
        let device = Self.recoveryDevice()
        let hash = try #require(await device.slotStates.first?.hash)
        for request in [
            ImageManagement.StateWriteRequest(hash: hash, confirm: false).packet(sequence: 1, version: .v2),
            ImageManagement.StateWriteRequest(hash: hash, confirm: true).packet(sequence: 2, version: .v2),
            ImageManagement.EraseRequest(slot: 1).packet(sequence: 3, version: .v2),
            ImageManagement.SlotInfoRequest().packet(sequence: 4, version: .v2),
            OSManagement.InfoRequest().packet(sequence: 5, version: .v2),
            OSManagement.BootloaderInfoRequest().packet(sequence: 6, version: .v2),
        ] {
            let output = await device.handle(request.bytes)
            let packet = try SMPPacket(decoding: try #require(output.responses.first))
            let map = try SMPResponseDecoder.map(from: packet.body)
            // Always a plain rc, even to SMP v2 requests (bs_rc_rsp).
            #expect(map["rc"]?.int == 8, "group \(request.header.group) command \(request.header.command)")
            #expect(map["err"] == nil)
        }
        // Nothing was marked: no flags change, and the next boot still runs the factory image.
        await device.powerCycle()
        #expect(await device.slotStates.first { $0.slot == 0 }?.hash == hash)
    }

    @Test("MCUboot before 1.9: erase answers rc 0 and erases nothing, echo and params get no answer")
    func legacy() async throws {
        let device = Self.recoveryDevice { $0.version = .v1_8 }
        try await SMPCtlSimulatorTests.upload(device, try SimFixture.testImage(), chunk: 256)
        let before = await device.flashContents(slot: 0)
        let erase = try #require(try await Self.answer(device, ImageManagement.EraseRequest(slot: 0)))
        #expect(erase["rc"]?.int == 0)
        #expect(await device.flashContents(slot: 0) == before)
        #expect(try await Self.answer(device, OSManagement.EchoRequest("hi")) == nil)
        #expect(try await Self.answer(device, OSManagement.ParametersRequest()) == nil)
        // A state write got the image list back and changed nothing.
        let hash = try #require(await device.slotStates.first?.hash)
        let write = try #require(try await Self.answer(device, ImageManagement.StateWriteRequest(hash: hash, confirm: true)))
        #expect(write["images"]?.arrayValue?.count == 1)
    }

    @Test("params report MCUBOOT_SERIAL_MAX_RECEIVE_SIZE and one buffer; echo answers")
    func parameters() async throws {
        let device = Self.recoveryDevice { $0.receiveSize = 2048 }
        let params = try #require(try await Self.answer(device, OSManagement.ParametersRequest()))
        #expect(params["buf_size"]?.uint64 == 2048)
        #expect(params["buf_count"]?.uint64 == 1)
        let echo = try #require(try await Self.answer(device, OSManagement.EchoRequest("hello")))
        #expect(echo["r"]?.string == "hello")
        let without = Self.recoveryDevice { $0.reportsParameters = false }
        #expect(try await Self.answer(without, OSManagement.ParametersRequest())?["rc"]?.int == 8)
    }

    @Test("the first chunk needs len; uploads go to the primary slot; every answer carries rc 0 and off")
    func upload() async throws {
        let device = Self.recoveryDevice()
        let image = try SimFixture.testImage()
        // No len: img_size_tmp stays SIZE_MAX and fails the slot size check (rc 3).
        let noLength = ImageManagement.UploadRequest(offset: 0, data: Array(image[0..<256]), first: nil)
        #expect(try await Self.answer(device, noLength)?["rc"]?.int == 3)
        // Longer than the slot: rc 3 too.
        let tooLong = ImageManagement.UploadRequest(
            offset: 0, data: Array(image[0..<256]),
            first: .init(length: 256 * 1024 + 1, sha: nil, image: nil))
        #expect(try await Self.answer(device, tooLong)?["rc"]?.int == 3)

        let first = ImageManagement.UploadRequest(
            offset: 0, data: Array(image[0..<256]), first: .init(length: image.count, sha: nil, image: nil))
        let answer = try #require(try await Self.answer(device, first))
        #expect(answer["rc"]?.int == 0)
        #expect(answer["off"]?.uint64 == 256)
        // An offset other than curr_off is answered with curr_off and nothing is written.
        let wrong = ImageManagement.UploadRequest(offset: 1000, data: Array(image[1000..<1100]), first: nil)
        #expect(try await Self.answer(device, wrong)?["off"]?.uint64 == 256)

        try await SMPCtlSimulatorTests.upload(device, image, chunk: 300)
        let primary = await device.flashContents(slot: 0)
        #expect(Array(primary.prefix(image.count)) == image)
        #expect(await device.flashContents(slot: 1).allSatisfy { $0 == 0xFF })
        #expect(await device.lastCompletedUpload?.slot == 0)
        #expect(await device.lastCompletedUpload?.match == nil)
    }

    @Test("a frame over MCUBOOT_SERIAL_MAX_RECEIVE_SIZE − 3 gets no answer")
    func frameLimit() async throws {
        let device = Self.recoveryDevice { $0.receiveSize = 512 }
        let echo = { (length: Int) in
            OSManagement.EchoRequest(String(repeating: "a", count: length)).packet(sequence: 1, version: .v2).bytes
        }
        // Find the text lengths that make packets of exactly 509 and 510 bytes.
        let base = echo(0).count
        let fits = await device.handle(echo(509 - base - 2))
        #expect(echo(509 - base - 2).count == 509)
        #expect(fits.responses.count == 1)
        let over = await device.handle(echo(510 - base - 2))
        #expect(echo(510 - base - 2).count == 510)
        #expect(over.responses.isEmpty)
    }

    @Test("after a reset the device boots a valid uploaded image as the application")
    func bootsUploadedImage() async throws {
        let device = Self.recoveryDevice()
        let image = try SimFixture.testImage()
        try await SMPCtlSimulatorTests.upload(device, image, chunk: 400)
        let reset = try #require(try await Self.answer(device, OSManagement.ResetRequest()))
        #expect(reset["rc"]?.int == 0)
        #expect(await device.inRecovery == false)
        let primary = try #require(await device.slotStates.first { $0.slot == 0 })
        #expect(primary.hash == SimFixture.imageHash)
        #expect(primary.active && primary.confirmed)
        // Now the application answers, with Zephyr's image list.
        let list = try success(try await call(device, ImageManagement.StateReadRequest()))
        #expect(list.splitStatus == 0)

        // The application's reset with boot_mode 1 enters recovery again.
        _ = try success(try await call(device, OSManagement.ResetRequest(bootMode: 1)))
        #expect(await device.inRecovery)
    }

    @Test("an image that does not validate keeps the device in recovery")
    func invalidImageStays() async throws {
        let device = Self.recoveryDevice()
        var image = try SimFixture.testImage()
        image[600] ^= 0xFF  // the hash TLV no longer matches
        try await SMPCtlSimulatorTests.upload(device, image, chunk: 400)
        let list = try #require(try await Self.answer(device, ImageManagement.StateReadRequest()))
        #expect(list["images"]?.arrayValue?.isEmpty == true)
        _ = try await Self.answer(device, OSManagement.ResetRequest())
        #expect(await device.inRecovery)
    }

    @Test("an empty or corrupt primary at start: bs_list lists no image, a reset stays in recovery, an upload gets it out",
        arguments: [SimulatedPrimaryImage.empty, .corrupt])
    func stuckWithBadPrimary(primary: SimulatedPrimaryImage) async throws {
        let device = Self.recoveryDevice { $0.primaryImage = primary }
        #expect(await device.inRecovery)
        let slot0 = await device.flashContents(slot: 0)
        switch primary {
        case .empty: #expect(slot0.allSatisfy { $0 == 0xFF })
        default:
            // The header is intact (IMAGE_MAGIC 0x96f3b83d little-endian); only the payload changed.
            #expect(Array(slot0.prefix(4)) == [0x3D, 0xB8, 0xF3, 0x96])
        }
        let list = try #require(try await Self.answer(device, ImageManagement.StateReadRequest()))
        #expect(list["images"]?.arrayValue?.isEmpty == true)
        // CONFIG_BOOT_SERIAL_NO_APPLICATION: nothing validates, so the boot enters recovery again.
        _ = try await Self.answer(device, OSManagement.ResetRequest())
        #expect(await device.inRecovery)
        let image = try SimFixture.testImage()
        try await SMPCtlSimulatorTests.upload(device, image, chunk: 400)
        _ = try await Self.answer(device, OSManagement.ResetRequest())
        #expect(await device.inRecovery == false)
        #expect(await device.slotStates.first { $0.slot == 0 }?.hash == SimFixture.imageHash)
    }

    @Test("a valid primary at start (the default) is listed and boots on reset")
    func validPrimary() async throws {
        let device = Self.recoveryDevice { $0.primaryImage = .valid }
        let list = try #require(try await Self.answer(device, ImageManagement.StateReadRequest()))
        #expect(list["images"]?.arrayValue?.count == 1)
        _ = try await Self.answer(device, OSManagement.ResetRequest())
        #expect(await device.inRecovery == false)
    }

    @Test("bootloader info where the port is built with it: MCUboot and its mode")
    func bootloaderInfo() async throws {
        let built = Self.recoveryDevice { $0.bootloaderInfo = true }
        #expect(try await Self.answer(built, OSManagement.BootloaderInfoRequest())?["bootloader"]?.string == "MCUboot")
        #expect(try await Self.answer(built, OSManagement.BootloaderInfoRequest(query: "mode"))?["mode"]?.int == 3)
    }

    @Test("over a PTY: console frames up to MCUBOOT_SERIAL_MAX_RECEIVE_SIZE − 3 are answered as recovery, larger ones are not",
        .timeLimit(.minutes(1)))
    func overPTY() async throws {
        var configuration = SimulatorConfiguration()
        var recovery = SimulatedRecovery()
        recovery.receiveSize = 512
        configuration.recovery = recovery
        let device = SimulatedDevice(configuration: configuration)
        let endpoint = try PTYServerEndpoint(server: SimulatorServer(device: device))
        let port = try #require(RawSerialClient(path: endpoint.path))

        port.send(packet: echoPacket(size: 509, sequence: 1))
        let answer = try #require(await port.receive(milliseconds: 10_000))
        #expect(try SMPHeader(decoding: answer).sequence == 1)
        // 2 length bytes + 510 + 2 CRC bytes = 514 > dec_buf's 513 (boot_serial_in_dec).
        port.send(packet: echoPacket(size: 510, sequence: 2))
        #expect(await port.receive(milliseconds: 400) == nil)

        // An erase through the console is refused with a plain rc 8.
        port.send(packet: ImageManagement.EraseRequest(slot: 1).packet(sequence: 3, version: .v2).bytes)
        let refused = try #require(await port.receive(milliseconds: 10_000))
        let packet = try SMPPacket(decoding: refused)
        #expect(packet.header.sequence == 3)
        #expect(try SMPResponseDecoder.map(from: packet.body)["rc"]?.int == 8)
        await endpoint.stop()
        #expect(await device.inRecovery)
    }
}
