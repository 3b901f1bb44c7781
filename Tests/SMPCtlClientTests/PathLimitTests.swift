import SMPCtlTestSupport
import Foundation
import SMPCtlLocking
import Testing
@testable import SMPCtlClient
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlPOSIX
import SMPCtlTransport

/// Learning the largest datagram over UDP when no `?mtu=` is given.
@Suite("UDP path limit: learned from the device, not assumed", .timeLimit(.minutes(2)))
struct PathLimitTests {
    /// A simulator on a UDP socket, with Zephyr's buffer and UDP MTU settings.
    private func udpDevice(bufferSize: Int, udpMTU: Int, truncate: Bool = false) throws -> (
        transport: UDPTransport, device: SimulatedDevice, address: SocketAddress, stop: @Sendable () -> Void
    ) {
        var configuration = SimulatorConfiguration()
        configuration.bufferSize = bufferSize
        configuration.udpMTU = udpMTU
        if truncate { configuration.udpOversize = .truncate }
        let device = SimulatedDevice(configuration: configuration)
        let endpoint = try UDPServerEndpoint(host: "127.0.0.1", port: 0, server: SimulatorServer(device: device))
        let address = try SocketAddress.resolve(host: "127.0.0.1", port: endpoint.boundPort)
        return (UDPTransport(address: address), device, address, { endpoint.stop() })
    }

    @Test("echo requests are padded to the size asked for (one byte less where CBOR cannot make it)")
    func paddedEcho() throws {
        for size in 12...3_000 {
            let request = try #require(OSManagement.EchoRequest.padded(toPacketSize: size), "size \(size)")
            let expected = size == 36 || size == 269 ? size - 1 : size
            #expect(SMPHeader.size + request.bodyBytes.count == expected, "size \(size)")
        }
        // 8-byte header + {"d": "xxxx"}: map(1), text(1) "d", text(4) "xxxx".
        #expect(OSManagement.EchoRequest.padded(toPacketSize: 16)?.bodyBytes == [0xA1, 0x61, 0x64, 0x64, 0x78, 0x78, 0x78, 0x78])
        #expect(OSManagement.EchoRequest.padded(toPacketSize: 12)?.text == "")
        #expect(OSManagement.EchoRequest.padded(toPacketSize: 11) == nil)
    }

    @Test("a device whose UDP MTU takes its whole buffer gets buffer-sized requests (the real Zephyr peer: 2475)")
    func wholeBuffer() async throws {
        let served = try udpDevice(bufferSize: 2475, udpMTU: 2475)
        defer { served.stop() }
        let client = try await openClient(served.transport, options: testClientOptions(timeout: .seconds(3)))
        try await client.readParameters()
        #expect(await client.maximumRequestSize() == SMPClient.unlearnedDatagramLimit)
        let image = try TestImage.built(payloadSize: 30_000, seed: 7)
        let result = try await client.upload(image.file)
        #expect(await client.learnedPacketLimit == 2475)
        #expect(await client.maximumRequestSize() == 2475)
        #expect(result.chunkSize > 2_400)
        #expect(await served.device.slotStates.contains { $0.slot == 1 && $0.hash == image.hash })
        await client.close()
    }

    @Test("Zephyr's default UDP MTU (1500) under a 2048-byte buffer: the big probe is lost, 1472 gets through",
        arguments: [false, true])
    func defaultMTU(truncate: Bool) async throws {
        // Dropped (recvfrom into a 1500-byte buffer, then a failed length check) or cut and answered rc 9.
        let served = try udpDevice(bufferSize: 2048, udpMTU: 1500, truncate: truncate)
        defer { served.stop() }
        // The client's log, printed if the upload fails.
        let lines = LockedValue<[String]>([])
        var options = testClientOptions(timeout: .seconds(3))
        let start = ContinuousClock.now
        options.log = { line in lines.withLock { $0.append("\(ContinuousClock.now - start) \(line.prefix(120))") } }
        let client = try await openClient(served.transport, options: options)
        let image = try TestImage.built(payloadSize: 20_000, seed: 8)
        let result: UploadResult
        do {
            result = try await client.upload(image.file)
        } catch {
            let log = lines.withLock { $0.suffix(80).joined(separator: "\n") }
            Issue.record("\(error)\n\(log)")
            await client.close()
            return
        }
        #expect(await client.learnedPacketLimit == 1472)
        #expect(result.chunkSize > 1_400 && result.chunkSize < 1_472)
        #expect(await served.device.slotStates.contains { $0.slot == 1 && $0.hash == image.hash })
        await client.close()
    }

    @Test("a path that drops everything over 1232 bytes settles on 1232")
    func smallPath() async throws {
        let served = try udpDevice(bufferSize: 2048, udpMTU: 1300)
        defer { served.stop() }
        let client = try await openClient(served.transport, options: testClientOptions(timeout: .seconds(3)))
        #expect(try await client.learnLargestPacket() == 1232)
        // Learned once per client.
        #expect(try await client.learnLargestPacket() == 1232)
        await client.close()
    }

    @Test("a buffer no larger than the smallest fallback needs no probe; an explicit ?mtu= is never probed")
    func nothingToLearn() async throws {
        let small = try udpDevice(bufferSize: 512, udpMTU: 1500)
        defer { small.stop() }
        let client = try await openClient(small.transport, options: testClientOptions(timeout: .seconds(3)))
        #expect(try await client.learnLargestPacket() == 512)
        await client.close()

        let explicit = try udpDevice(bufferSize: 2048, udpMTU: 2048)
        defer { explicit.stop() }
        let fixed = try await openClient(UDPTransport(address: explicit.address, maximumDatagram: 1000))
        #expect(try await fixed.learnLargestPacket() == nil)
        _ = try await fixed.readParameters()
        #expect(await fixed.maximumRequestSize() == 1000)
        await fixed.close()
    }
}
