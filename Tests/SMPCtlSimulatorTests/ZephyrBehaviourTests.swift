import SMPCtlTestSupport
import Foundation
import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol
@testable import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport
import Testing

private func server(_ configure: (inout SimulatorConfiguration) -> Void) -> SimulatorServer {
    var configuration = SimulatorConfiguration()
    configure(&configuration)
    return SimulatorServer(device: SimulatedDevice(configuration: configuration))
}

private func body(_ packet: [UInt8]) -> [UInt8] { Array(packet.dropFirst(SMPHeader.size)) }

/// `{"off": n}` as zcbor encodes it.
private func offBody(_ offset: Int) -> [UInt8] {
    IndefiniteCBOR.encode(["off": .unsigned(UInt64(offset))])
}

@Suite("Zephyr transport limits", .timeLimit(.minutes(1)))
struct ZephyrTransportLimitTests {
    @Test("serial: a packet of buf_size − 4 is answered, one byte more is dropped without an answer")
    func serialNetbuf() async throws {
        let endpoint = try PTYServerEndpoint(server: server { $0.bufferSize = 256 })
        let port = try #require(RawSerialClient(path: endpoint.path))
        let fits = echoPacket(size: 252, sequence: 1)
        let over = echoPacket(size: 253, sequence: 2)
        #expect(fits.count == 252 && over.count == 253)

        port.send(packet: fits)
        let answer = try #require(await port.receive(milliseconds: 10_000))
        #expect(try SMPHeader(decoding: answer).sequence == 1)
        // 2 length bytes + 253 + 2 CRC bytes = 257 > the 256-byte net_buf (serial_util.c).
        port.send(packet: over)
        #expect(await port.receive(milliseconds: 400) == nil)
        // The device is still there.
        port.send(packet: echoPacket(size: 100, sequence: 3))
        #expect(try SMPHeader(decoding: try #require(await port.receive(milliseconds: 10_000))).sequence == 3)
        await endpoint.stop()
    }

    @Test("UDP: a port in use is refused to a second endpoint, and many free ports are all different")
    func udpPortsAreExclusive() async throws {
        let first = try UDPServerEndpoint(host: "127.0.0.1", port: 0, server: server { _ in })
        defer { first.stop() }
        #expect(throws: SMPTransportError.self) {
            let second = try UDPServerEndpoint(host: "127.0.0.1", port: first.boundPort, server: server { _ in })
            second.stop()
        }
        var endpoints = [first]
        for _ in 0..<100 { endpoints.append(try UDPServerEndpoint(host: "127.0.0.1", port: 0, server: server { _ in })) }
        defer { for endpoint in endpoints.dropFirst() { endpoint.stop() } }
        #expect(Set(endpoints.map(\.boundPort)).count == endpoints.count)
    }

    @Test("UDP: datagrams over the UDP MTU get no answer, separately from buf_size")
    func udpMTU() async throws {
        let endpoint = try UDPServerEndpoint(
            host: "127.0.0.1", port: 0, server: server { $0.udpMTU = 600; $0.bufferSize = 2048 })
        defer { endpoint.stop() }
        let socket = try #require(RawUDPClient(port: endpoint.boundPort))
        socket.send(echoPacket(size: 600, sequence: 1))
        #expect(try SMPHeader(decoding: try #require(await socket.receive(milliseconds: 10_000))).sequence == 1)
        socket.send(echoPacket(size: 601, sequence: 2))
        #expect(await socket.receive(milliseconds: 400) == nil)
    }

    @Test("UDP: the default UDP MTU is Zephyr's 1500, and buf_size still bounds a datagram within it")
    func udpDefaultsAndNetbuf() async throws {
        #expect(SimulatorConfiguration().udpMTU == 1500)
        let endpoint = try UDPServerEndpoint(host: "127.0.0.1", port: 0, server: server { $0.bufferSize = 512 })
        defer { endpoint.stop() }
        let socket = try #require(RawUDPClient(port: endpoint.boundPort))
        socket.send(echoPacket(size: 1600, sequence: 1))
        #expect(await socket.receive(milliseconds: 400) == nil)
        socket.send(echoPacket(size: 513, sequence: 2))
        #expect(await socket.receive(milliseconds: 400) == nil)
        socket.send(echoPacket(size: 512, sequence: 3))
        #expect(try SMPHeader(decoding: try #require(await socket.receive(milliseconds: 10_000))).sequence == 3)
    }

    @Test("UDP truncate mode: an over-MTU datagram is cut and answered rc 9, as smp.c answers a short packet")
    func udpTruncate() async throws {
        let endpoint = try UDPServerEndpoint(
            host: "127.0.0.1", port: 0, server: server { $0.udpMTU = 600; $0.udpOversize = .truncate })
        defer { endpoint.stop() }
        let socket = try #require(RawUDPClient(port: endpoint.boundPort))
        socket.send(echoPacket(size: 700, sequence: 4))
        let answer = try #require(await socket.receive(milliseconds: 10_000))
        #expect(try SMPHeader(decoding: answer).sequence == 4)
        #expect(body(answer) == IndefiniteCBOR.encode(["rc": 9]))
    }

    @Test("in process: a packet over buf_size is dropped, one of buf_size is answered")
    func inProcess() async throws {
        let device = SimulatedDevice(configuration: { var c = SimulatorConfiguration(); c.bufferSize = 300; return c }())
        #expect(await device.handle(echoPacket(size: 301)).responses.isEmpty)
        #expect(await device.handle(echoPacket(size: 300)).responses.count == 1)
    }

    @Test("frame limits the endpoints read from the simulator")
    func frameLimits() throws {
        let limits = server { $0.bufferSize = 2475; $0.udpMTU = 2475 }.frameLimits
        #expect(limits == SMPServerFrameLimits(netbufSize: 2475, udpMTU: 2475, udpOversize: .drop, bleReassembly: true))
        #expect(limits.serialPacketLimit == 2471)
        let noReassembly = SimulatorServer(
            device: SimulatedDevice(), link: try LinkModel(parsing: "ble:mtu=65,reassembly=no"))
        #expect(noReassembly.frameLimits.bleReassembly == false)
        var lax = SimulatorConfiguration()
        lax.enforceBufferSize = false
        #expect(lax.frameLimits == .unlimited)
    }

    @Test("BLE reassembly as smp_reassembly.c: up to the net_buf, refusals drop the packet")
    func reassembly() {
        let request = echoPacket(size: 1000)
        var zephyr = SMPServerReassembly(netbufSize: 1024, reassembles: true)
        #expect(zephyr.collect(Array(request[0..<510])) == .incomplete)
        #expect(zephyr.collect(Array(request[510...])) == .packet(request))
        // A header claiming more than the net_buf (-ENOSR), a write shorter than a header (-ENODATA).
        #expect(zephyr.collect(Array(echoPacket(size: 1100)[0..<510])) == .refused(discarded: 510))
        #expect(zephyr.collect([0, 1, 2]) == .refused(discarded: 3))
        // A write past the expected length drops what was gathered (-EOVERFLOW).
        #expect(zephyr.collect(Array(request[0..<600])) == .incomplete)
        #expect(zephyr.collect(Array(request[0..<600])) == .refused(discarded: 1200))
        #expect(!zephyr.inProgress)
        // Without reassembly each write is a packet; one over the net_buf is refused.
        var whole = SMPServerReassembly(netbufSize: 1024, reassembles: false)
        #expect(whole.collect(Array(request[0..<20])) == .packet(Array(request[0..<20])))
        #expect(whole.collect(echoPacket(size: 1100)) == .refused(discarded: 1100))
    }
}

@Suite("Zephyr upload and erase answers")
struct ZephyrImageAnswerTests {
    @Test("a late resend of a middle or last chunk after completion gets rc 0 and off 0, and writes nothing")
    func lateChunkAfterCompletion() async throws {
        let device = SimulatedDevice()
        let file = try SimFixture.testImage()
        let done = try await upload(device, file, chunk: 1024)
        #expect(done.offset == file.count && done.match == true)
        let flash = await device.flashContents(slot: 1)
        for offset in [1024, 4096] {
            let resend = ImageManagement.UploadRequest(offset: offset, data: Array(file[offset..<min(offset + 1024, file.count)]))
            let answer = try await exchange(device, resend.packet(sequence: 9))
            // img_mgmt_reset_upload left off 0: "Invalid offset ... respond with the offset we're expecting".
            #expect(answer.body == offBody(0))
        }
        #expect(await device.flashContents(slot: 1) == flash)
        #expect(await device.uploadOffset == nil)
    }

    @Test("a chunk whose off differs from the device's offset gets rc 0 and the current offset")
    func wrongOffsetDuringUpload() async throws {
        let device = SimulatedDevice()
        let file = try SimFixture.testImage()
        try await upload(device, file, chunk: 1024, stopAt: 2048)
        for offset in [1024, 3072, 10] {
            let stray = ImageManagement.UploadRequest(offset: offset, data: Array(file[1024..<1100]))
            #expect(try await exchange(device, stray.packet(sequence: 3)).body == offBody(2048))
        }
        #expect(await device.uploadOffset == 2048)
    }

    @Test("erasing an empty slot answers image rc 1 (UNKNOWN) as Zephyr 3.5; 3.6 answers success")
    func eraseEmptySlot() async throws {
        let zephyr35 = SimulatedDevice()
        let answer = try await exchange(zephyr35, ImageManagement.EraseRequest(slot: 1).packet(sequence: 2))
        #expect(answer.body == IndefiniteCBOR.encode(["err": ["group": 1, "rc": 1]]))
        #expect(errorKind(try await call(zephyr35, ImageManagement.EraseRequest(), version: .v1)) == .smp(.unknown))
        // A slot that holds data is erased; afterwards it is empty again.
        try await upload(zephyr35, try SimFixture.testImage(), stopAt: 2048)
        _ = try success(try await call(zephyr35, ImageManagement.EraseRequest()))
        #expect(await zephyr35.uploadOffset == nil)
        #expect(errorKind(try await call(zephyr35, ImageManagement.EraseRequest())) == .group(.image, 1))

        var configuration = SimulatorConfiguration()
        configuration.zephyrVersion = .v3_6
        let zephyr36 = SimulatedDevice(configuration: configuration)
        _ = try success(try await call(zephyr36, ImageManagement.EraseRequest(slot: 1)))
        // The running image's slot is in use in both.
        #expect(errorKind(try await call(zephyr36, ImageManagement.EraseRequest(slot: 0))) == .group(.image, 9))
    }
}

@Suite("Simulator faults for client tests")
struct SimulatorFaultTests {
    private func device(_ configure: (inout SimulatorConfiguration) -> Void) -> SimulatedDevice {
        var configuration = SimulatorConfiguration()
        configure(&configuration)
        return SimulatedDevice(configuration: configuration)
    }

    private func chunk(_ file: [UInt8], at offset: Int, first: Bool = false) -> ImageManagement.UploadRequest {
        ImageManagement.UploadRequest(
            offset: offset, data: Array(file[offset..<min(offset + 512, file.count)]),
            first: first ? .init(length: file.count, sha: MCUbootImage.sha256(file)) : nil)
    }

    private func offsets(_ device: SimulatedDevice, _ file: [UInt8], requests: [Int]) async throws -> [Int?] {
        var answers: [Int?] = []
        for (index, offset) in requests.enumerated() {
            let response = try await call(device, chunk(file, at: offset, first: offset == 0), sequence: UInt8(index))
            answers.append(try success(response).offset)
        }
        return answers
    }

    @Test("hostile offsets: stuck, backwards, zero and one")
    func hostileOffsets() async throws {
        let file = try SimFixture.testImage()
        #expect(try await offsets(device { $0.hostileOffset = .stuck }, file, requests: [0, 512, 1024, 0])
            == [512, 512, 512, 512])
        #expect(try await offsets(device { $0.hostileOffset = .backwards }, file, requests: [0, 512, 511, 100])
            == [512, 511, 510, 99])
        #expect(try await offsets(device { $0.hostileOffset = .zero }, file, requests: [0, 512, 0]) == [0, 0, 0])
        #expect(try await offsets(device { $0.hostileOffset = .one }, file, requests: [0, 1, 512]) == [1, 1, 1])
    }

    @Test("busy forever: every upload chunk answers rc 10")
    func busyForever() async throws {
        let busy = device { $0.busyCount = Int.max }
        let file = try SimFixture.testImage()
        for sequence in 0..<300 {
            let result = try await call(busy, chunk(file, at: 0, first: true), sequence: UInt8(truncatingIfNeeded: sequence))
            #expect(errorKind(result) == .smp(.busy))
        }
    }

    @Test("reordering: a held request is answered after the next one")
    func reorder() async throws {
        let reordering = device { $0.reorderRate = 1 }
        let first = OSManagement.EchoRequest("one").packet(sequence: 1).bytes
        let second = OSManagement.EchoRequest("two").packet(sequence: 2).bytes
        #expect(await reordering.handle(first).responses.isEmpty)
        let both = await reordering.handle(second).responses
        #expect(try both.map { try SMPHeader(decoding: $0).sequence } == [2, 1])
        #expect(await reordering.requestLog.map(\.number) == [2, 1])
    }

    @Test("duplication, corruption and truncation of responses")
    func responseFaults() async throws {
        let echo = OSManagement.EchoRequest("hello").packet(sequence: 5).bytes
        let clean = try #require(await SimulatedDevice().handle(echo).responses.first)

        let twice = await device { $0.duplicateRate = 1 }.handle(echo).responses
        #expect(twice == [clean, clean])

        let corrupted = try #require(await device { $0.corruptRate = 1 }.handle(echo).responses.first)
        #expect(corrupted.count == clean.count)
        #expect(Array(corrupted.prefix(SMPHeader.size)) == Array(clean.prefix(SMPHeader.size)))
        #expect(throws: CBORError.self) { try CBORDecoder().decode(body(corrupted)) }

        let cut = try #require(await device { $0.truncateRate = 1 }.handle(echo).responses.first)
        #expect(cut.count < clean.count && cut.count >= SMPHeader.size)
        #expect(Array(cut.prefix(SMPHeader.size)) == Array(clean.prefix(SMPHeader.size)))
    }

    @Test("every random fault is seeded: the same seed gives the same schedule")
    func seeded() async throws {
        func schedule(seed: UInt64) async -> [[[UInt8]]] {
            let faulty = device {
                $0.faultSeed = seed
                $0.reorderRate = 0.3
                $0.duplicateRate = 0.3
                $0.corruptRate = 0.3
                $0.truncateRate = 0.3
            }
            var outputs: [[[UInt8]]] = []
            for sequence in 0..<40 {
                outputs.append(await faulty.handle(OSManagement.EchoRequest("x\(sequence)").packet(sequence: UInt8(sequence)).bytes).responses)
            }
            return outputs
        }
        let a = await schedule(seed: 42)
        #expect(await schedule(seed: 42) == a)
        #expect(await schedule(seed: 43) != a)
        // Some of each happened.
        #expect(a.contains { $0.isEmpty } && a.contains { $0.count >= 2 })
    }
}

@Suite("One error-code table")
struct SimulatorCodeTableTests {
    @Test("every code the simulator answers with is named in SMPErrorCatalog, with Zephyr's numbers")
    func codesFromTheCatalog() {
        for name in ImageError.names {
            #expect(SMPErrorCatalog.code(named: "IMG_MGMT_ERR_" + name, in: .image) != nil, "\(name)")
        }
        for name in OSError.names {
            #expect(SMPErrorCatalog.code(named: "OS_MGMT_ERR_" + name, in: .os) != nil, "\(name)")
        }
        // Spot checks against img_mgmt.h and os_mgmt.h.
        #expect(ImageError.hashNotFound == 8)
        #expect(ImageError.tooLarge == 30)
        #expect(ImageError.testToActiveDenied == 33)
        #expect(OSError.queryYieldsNoAnswer == 3)
    }
}
