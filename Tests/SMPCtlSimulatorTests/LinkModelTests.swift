import Testing
@testable import SMPCtlSimulator
import SMPCtlTransport
import SMPCtlProtocol

@Suite("Link model")
struct LinkModelTests {
    @Test("BLE timing follows the documented formula")
    func bleTiming() throws {
        let link = try LinkModel(parsing: "ble:mtu=247,interval=15ms,ppe=6,phy=2m,dle=251")
        // A 251-byte LL packet at 2 Mbit/s: (251+14)·8/2e6 + 150 µs + 10·8/2e6 + 150 µs = 1.4 ms,
        // so 10 fit in 15 ms; the event limit of 6 applies.
        #expect(link.packetsPerInterval == 6)
        // 2048 bytes = 8 writes of 244 bytes + one of 96: 9 LL packets = 1.5 events = 22.5 ms.
        #expect(abs(link.transferSeconds(2048) - 0.0225) < 1e-9)
        // A small answer still takes one packet slot.
        #expect(abs(link.transferSeconds(16) - 0.0025) < 1e-9)
    }

    @Test("short data length and 1M PHY: several LL packets per write")
    func bleShortDLE() throws {
        let link = try LinkModel(parsing: "ble:mtu=65,interval=50ms,ppe=4,phy=1m,dle=27")
        #expect(link.packetsPerInterval == 4)
        // One 62-byte write = 69 bytes of L2CAP = 3 LL packets of at most 27 bytes.
        #expect(abs(link.transferSeconds(62) - 3 * 0.05 / 4) < 1e-9)
    }

    @Test("serial timing uses the framed length at 10 bits per byte")
    func serialTiming() throws {
        let link = try LinkModel(parsing: "serial:115200")
        let framed = SMPSerialFraming.encodedLength(packetLength: 1000)
        #expect(abs(link.transferSeconds(1000) - Double(framed) * 10 / 115_200) < 1e-12)
    }

    @Test("without reassembly, requests are limited to MTU − 3")
    func reassembly() throws {
        #expect(try LinkModel(parsing: "ble:mtu=247,reassembly=no").maximumRequestSize == 244)
        #expect(try LinkModel(parsing: "ble:mtu=247").maximumRequestSize == nil)
    }

    @Test("flash timing and upload capacity")
    func capacity() throws {
        let link = try LinkModel(parsing: "serial:1000000;erase=0ms,write=0ms")
        let capacity = try #require(link.uploadCapacity(fileLength: 1 << 20, requestSize: 2048))
        // Base64 framing costs a third: well under 100 kB/s of file data at 1 Mbaud.
        #expect(capacity > 60_000 && capacity < 75_000)
        let slowFlash = try LinkModel(parsing: "serial:1000000;erase=100ms,write=50ms")
        let limited = try #require(slowFlash.uploadCapacity(fileLength: 1 << 20, requestSize: 2048))
        // 256 sectors × 100 ms + 1024 KiB × 50 ms = 76.8 s for 1 MiB.
        #expect(abs(limited - Double(1 << 20) / 76.8) < 1)
    }

    @Test("bad link descriptions are refused", arguments: ["ble:mtu=10", "ble:phy=3m", "serial:12", "wifi", "ble:mtu", "serial:115200;erase=x"])
    func rejects(_ text: String) {
        #expect(throws: LinkModelError.self) { try LinkModel(parsing: text) }
    }

    @Test("an emulated link slows answers to the modelled rate")
    func emulatedDelivery() async throws {
        let link = try LinkModel(parsing: "serial:115200")
        let server = SimulatorServer(device: SimulatedDevice(), link: link)
        let echo = OSManagement.EchoRequest(String(repeating: "x", count: 500)).packet(sequence: 1)
        let reply = await server.handle(echo.bytes)
        let deliverAt = try #require(reply.deliverAt)
        let expected = link.transferSeconds(echo.bytes.count) + link.transferSeconds(reply.responses[0].count)
        let delay = deliverAt - ContinuousClock.now
        #expect(delay > .seconds(expected * 0.8) && delay <= .seconds(expected))
    }
}
