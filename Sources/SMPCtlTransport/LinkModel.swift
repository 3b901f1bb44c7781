public import SMPCtlProtocol

/// A model of the link between a client and a device: the simulator uses it to answer as slowly
/// as a real link would, and `dfu` and `diagnose` use it to estimate what faster firmware settings gain.
///
/// These are models, not measurements. Each direction of the link is a queue: a packet starts when
/// the previous one in the same direction has finished, and takes the time the formulas below give.
///
/// **BLE.** An SMP packet of `n` bytes goes out as `ceil(n / (MTU − 3))` ATT writes (or
/// notifications). A write carrying `w` bytes is an L2CAP frame of `w + 7` bytes (3 bytes ATT
/// header, 4 bytes L2CAP header), split into `ceil((w + 7) / DLE)` link-layer packets. One
/// link-layer packet of `p` payload bytes takes `(p + 14) · 8 / rate` on air (preamble, access
/// address, header, MIC and CRC), plus a 150 µs gap, the peer's empty acknowledgement
/// (`10 · 8 / rate`) and another 150 µs gap. A connection event carries at most
/// `packetsPerEvent` packets and cannot outlast the interval, so the link moves
/// `e = min(packetsPerEvent, floor(interval / packetTime))` packets per interval, and a packet
/// needs `interval / e`. `rate` is 1 Mbit/s (1M PHY), 2 Mbit/s (2M) or 125 kbit/s (coded, S8).
///
/// **Serial.** An SMP packet of `n` bytes is `SMPSerialFraming.encodedLength(n)` bytes on the wire
/// (base64, length, CRC, frame markers), each taking 10 bit times (8N1) at the baud rate.
///
/// **Flash.** The first upload chunk erases the sectors the image needs (`eraseTime` each); every
/// written byte takes `writeTimePerKiB / 1024`.
public struct LinkModel: Sendable, Hashable, CustomStringConvertible {
    /// The physical layer of a BLE link.
    public enum PHY: String, Sendable, Hashable {
        case le1M = "1m"
        case le2M = "2m"
        case coded = "coded"

        /// Bits per second.
        public var bitRate: Double {
            switch self {
            case .le1M: 1_000_000
            case .le2M: 2_000_000
            case .coded: 125_000
            }
        }
    }

    /// What carries the bytes.
    public enum Medium: Sendable, Hashable {
        /// No delay.
        case ideal
        /// Bluetooth LE GATT.
        case ble(mtu: Int, interval: Duration, packetsPerEvent: Int, phy: PHY, dataLength: Int, reassembly: Bool)
        /// A UART at a baud rate, 8N1.
        case serial(baud: Int)
    }

    public var medium: Medium
    /// Time to erase one flash sector.
    public var eraseTime: Duration = .zero
    /// Time to write 1 KiB of flash.
    public var writeTimePerKiB: Duration = .zero

    public init(medium: Medium, eraseTime: Duration = .zero, writeTimePerKiB: Duration = .zero) {
        self.medium = medium
        self.eraseTime = eraseTime
        self.writeTimePerKiB = writeTimePerKiB
    }

    /// A link with no delay.
    public static let ideal = LinkModel(medium: .ideal)

    /// The largest SMP request the link carries in one piece, when that is less than the device buffer:
    /// MTU − 3 for a BLE device that does not reassemble.
    public var maximumRequestSize: Int? {
        if case .ble(let mtu, _, _, _, _, let reassembly) = medium, !reassembly { return mtu - 3 }
        return nil
    }

    /// Seconds one direction of the link needs for an SMP packet of `bytes` bytes.
    public func transferSeconds(_ bytes: Int) -> Double {
        switch medium {
        case .ideal:
            return 0
        case .serial(let baud):
            return Double(SMPSerialFraming.encodedLength(packetLength: bytes)) * 10 / Double(baud)
        case .ble(let mtu, let interval, _, _, let dle, _):
            let attPayload = max(1, mtu - 3)
            var remaining = bytes
            var llPackets = 0
            repeat {
                let write = min(remaining, attPayload)
                llPackets += max(1, (write + 7 + dle - 1) / dle)
                remaining -= write
            } while remaining > 0
            return Double(llPackets) * interval.seconds / Double(packetsPerInterval)
        }
    }

    /// Link-layer packets per connection interval (BLE only).
    public var packetsPerInterval: Int {
        guard case .ble(_, let interval, let perEvent, let phy, let dle, _) = medium else { return 0 }
        let bit = 1 / phy.bitRate
        let packetTime = Double(dle + 14) * 8 * bit + 150e-6 + 10 * 8 * bit + 150e-6
        return max(1, min(perEvent, Int(interval.seconds / packetTime)))
    }

    /// Flash time for a first chunk (erasing `sectors`) and for writing `bytes`.
    public func flashSeconds(erasingSectors sectors: Int, writing bytes: Int) -> Double {
        Double(sectors) * eraseTime.seconds + Double(bytes) / 1024 * writeTimePerKiB.seconds
    }

    /// The link's capacity for an upload, in file bytes per second: the rate at which it carries
    /// requests of `requestSize` bytes that each hold `dataPerRequest` bytes of the file, with the
    /// link never idle. A client's efficiency is its throughput divided by this.
    public func uploadCapacity(requestSize: Int, dataPerRequest: Int) -> Double? {
        let seconds = transferSeconds(requestSize)
        guard seconds > 0 else { return nil }
        return Double(dataPerRequest) / seconds
    }

    /// The link's capacity for uploading a file of `fileLength` bytes in requests of at most
    /// `requestSize` bytes (header included), in file bytes per second, assuming the link is never
    /// idle: the file length divided by the busiest of the uplink (every request, exactly sized),
    /// the downlink (every answer, about 16 bytes) and the flash. `nil` for an ideal link.
    public func uploadCapacity(fileLength: Int, requestSize: Int, sectorSize: Int = 4096) -> Double? {
        guard medium != .ideal || eraseTime > .zero || writeTimePerKiB > .zero, fileLength > 0 else { return nil }
        let budget = requestSize - SMPHeader.size
        var offset = 0
        var uplink = 0.0
        var downlink = 0.0
        let first = ImageManagement.UploadRequest.FirstChunkFields(length: fileLength, sha: [UInt8](repeating: 0, count: 32))
        while offset < fileLength {
            let fields = offset == 0 ? first : nil
            let count = min(
                fileLength - offset,
                ImageManagement.UploadRequest.largestDataLength(bodyBudget: budget, offset: offset, first: fields))
            guard count > 0 else { return nil }
            uplink += transferSeconds(
                SMPHeader.size + ImageManagement.UploadRequest.bodyLength(offset: offset, dataLength: count, first: fields))
            downlink += transferSeconds(SMPHeader.size + 8)
            offset += count
        }
        let flash = flashSeconds(erasingSectors: (fileLength + sectorSize - 1) / max(1, sectorSize), writing: fileLength)
        let busiest = max(uplink, downlink, flash)
        return busiest > 0 ? Double(fileLength) / busiest : nil
    }

    /// Parses `ble:mtu=247,interval=15ms,ppe=6,phy=2m,dle=251,reassembly=yes`, `serial:115200`
    /// or `ideal`, optionally followed by `;erase=40ms,write=10ms` for flash timing (per sector, per KiB).
    public init(parsing text: String) throws(LinkModelError) {
        let parts = text.split(separator: ";", maxSplits: 1).map(String.init)
        let head = parts.first ?? ""
        var model: LinkModel
        if head == "ideal" {
            model = .ideal
        } else if head.hasPrefix("serial:") {
            guard let baud = Int(head.dropFirst(7)), baud >= 300, baud <= 20_000_000 else {
                throw LinkModelError("serial:BAUD needs a baud rate from 300 to 20000000")
            }
            model = LinkModel(medium: .serial(baud: baud))
        } else if head.hasPrefix("ble") {
            var mtu = 247
            var interval = Duration.milliseconds(15)
            var perEvent = 6
            var phy = PHY.le2M
            var dle = 251
            var reassembly = true
            let options = head.hasPrefix("ble:") ? head.dropFirst(4) : ""
            for pair in try Self.pairs(String(options)) {
                switch pair.key {
                case "mtu": mtu = try Self.integer(pair, in: 23...517)
                case "interval": interval = try Self.duration(pair, in: 0.0075...4.0)
                case "ppe", "packets": perEvent = try Self.integer(pair, in: 1...64)
                case "dle": dle = try Self.integer(pair, in: 27...251)
                case "phy":
                    guard let value = PHY(rawValue: pair.value) else { throw LinkModelError("phy is 1m, 2m or coded") }
                    phy = value
                case "reassembly":
                    reassembly = ["yes", "true", "1", "on"].contains(pair.value)
                default: throw LinkModelError("unknown BLE link parameter \(pair.key)")
                }
            }
            model = LinkModel(medium: .ble(
                mtu: mtu, interval: interval, packetsPerEvent: perEvent, phy: phy, dataLength: dle,
                reassembly: reassembly))
        } else {
            throw LinkModelError("a link is ble:KEY=VALUE,..., serial:BAUD or ideal")
        }
        if parts.count > 1 {
            for pair in try Self.pairs(parts[1]) {
                switch pair.key {
                case "erase": model.eraseTime = .seconds(try Self.seconds(pair))
                case "write": model.writeTimePerKiB = .seconds(try Self.seconds(pair))
                default: throw LinkModelError("unknown flash parameter \(pair.key)")
                }
            }
        }
        self = model
    }

    public var description: String {
        switch medium {
        case .ideal: return "ideal"
        case .serial(let baud): return "serial \(baud) baud"
        case .ble(let mtu, let interval, let perEvent, let phy, let dle, let reassembly):
            return "BLE MTU \(mtu), \(Self.milliseconds(interval)) ms interval, \(perEvent) packets/event, \(phy.rawValue.uppercased()) PHY, DLE \(dle), \(reassembly ? "reassembly" : "no reassembly")"
        }
    }

    /// A duration in milliseconds without float noise: "7.5", "15".
    static func milliseconds(_ duration: Duration) -> String {
        let tenths = Int((duration.seconds * 10_000).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(tenths % 10)"
    }

    private static func pairs(_ text: String) throws(LinkModelError) -> [(key: String, value: String)] {
        var out: [(key: String, value: String)] = []
        for item in text.split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw LinkModelError("expected key=value, got \(item)") }
            out.append((kv[0], kv[1]))
        }
        return out
    }

    private static func integer(_ pair: (key: String, value: String), in range: ClosedRange<Int>) throws(LinkModelError) -> Int {
        guard let value = Int(pair.value), range.contains(value) else {
            throw LinkModelError("\(pair.key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    private static func seconds(_ pair: (key: String, value: String)) throws(LinkModelError) -> Double {
        let text = pair.value
        let (number, scale): (Substring, Double) =
            text.hasSuffix("us") ? (text.dropLast(2), 1e-6)
            : text.hasSuffix("ms") ? (text.dropLast(2), 1e-3)
            : text.hasSuffix("s") ? (text.dropLast(1), 1) : (Substring(text), 1e-3)
        guard let value = Double(number), value >= 0, value.isFinite else {
            throw LinkModelError("\(pair.key) must be a time such as 15ms")
        }
        return value * scale
    }

    private static func duration(_ pair: (key: String, value: String), in range: ClosedRange<Double>) throws(LinkModelError) -> Duration {
        let value = try seconds(pair)
        guard range.contains(value) else {
            throw LinkModelError("\(pair.key) must be from \(range.lowerBound * 1000) ms to \(range.upperBound * 1000) ms")
        }
        return .nanoseconds(Int64((value * 1e9).rounded()))
    }
}

/// A link description that cannot be parsed.
public struct LinkModelError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
