#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif
import SMPCtlLocking
import SMPCtlProtocol
public import SMPCtlTransport

/// Terminal settings shared by the serial client and the PTY server.
enum Terminal {
    /// The termios speed constant for a baud rate, if the rate is a standard one.
    static func speed(for baud: Int) -> speed_t? {
        switch baud {
        case 1200: speed_t(B1200)
        case 2400: speed_t(B2400)
        case 4800: speed_t(B4800)
        case 9600: speed_t(B9600)
        case 19200: speed_t(B19200)
        case 38400: speed_t(B38400)
        case 57600: speed_t(B57600)
        case 115200: speed_t(B115200)
        case 230400: speed_t(B230400)
        case 460800: speed_t(B460800)
        case 500000: speed_t(B500000)
        case 576000: speed_t(B576000)
        case 921600: speed_t(B921600)
        case 1000000: speed_t(B1000000)
        case 1152000: speed_t(B1152000)
        case 1500000: speed_t(B1500000)
        case 2000000: speed_t(B2000000)
        case 3000000: speed_t(B3000000)
        case 4000000: speed_t(B4000000)
        default: nil
        }
    }

    /// Puts `fd` in raw mode (no echo, no line editing, 8N1) at `baud`, if given.
    static func makeRaw(fd: Int32, baud: Int?) throws(SMPTransportError) {
        var settings = termios()
        guard tcgetattr(fd, &settings) == 0 else {
            throw SMPTransportError(.openFailed, "not a terminal", errno: errno)
        }
        cfmakeraw(&settings)
        settings.c_cflag |= tcflag_t(CLOCAL | CREAD)
        if let baud {
            guard let speed = speed(for: baud) else {
                throw SMPTransportError(.invalidAddress, "unsupported baud rate \(baud)")
            }
            cfsetispeed(&settings, speed)
            cfsetospeed(&settings, speed)
        }
        guard tcsetattr(fd, TCSANOW, &settings) == 0 else {
            throw SMPTransportError(.openFailed, "cannot configure the terminal", errno: errno)
        }
    }
}

/// SMP over a serial line (USB-CDC ACM, a UART, or a pseudo-terminal) with console framing.
public final class SerialTransport: SMPTransport {
    /// The device path, such as `/dev/ttyACM0`.
    public let path: String
    /// The baud rate (ignored by USB-CDC devices, required by UARTs).
    public let baud: Int
    private let packetLimit: Int
    private let link = OpenDescriptor()

    public init(path: String, baud: Int = 115_200, maximumPacketSize: Int = 8192) {
        self.path = path
        self.baud = baud
        self.packetLimit = maximumPacketSize
    }

    public var description: String { "serial \(path) at \(baud) baud" }
    /// A UART at the configured baud rate (a USB-CDC device is faster than this).
    public var linkModel: LinkModel? { LinkModel(medium: .serial(baud: baud)) }
    /// Any packet fits one framed write; Zephyr keeps the frame's length and CRC16 in the packet's
    /// buffer, so 4 bytes of `buf_size` are not available to the packet
    /// (`subsys/mgmt/mcumgr/transport/src/serial_util.c`: the length is pulled from and the CRC
    /// stripped off the same net_buf that `base64_decode` fills up to its tailroom).
    public var framing: SMPFraming { SMPFraming(maximumWrite: packetLimit, deviceBufferOverhead: 4) }

    public func open(events: AsyncStream<SMPTransportEvent>.Continuation) async throws(SMPTransportError) {
        await close()
        let fd: Int32
        switch FileDescriptor.open(path, O_RDWR | O_NOCTTY | O_NONBLOCK) {
        case .success(let descriptor): fd = descriptor.rawValue
        case .failure(let error): throw SMPTransportError(.openFailed, "cannot open \(path)", errno: error.code)
        }
        do {
            try Terminal.makeRaw(fd: fd, baud: baud)
        } catch {
            closeDescriptor(fd)
            throw error
        }
        let box = DecoderBox(maxPacketLength: packetLimit)
        let reader = DescriptorReader(fd: fd, bufferSize: 4096) { output in
            switch output {
            case .bytes(let bytes):
                for event in box.feed(bytes) {
                    switch event {
                    case .packet(let packet): events.yield(.packet(packet))
                    case .consoleText(let text): events.yield(.console(text))
                    case .error(let error): events.yield(.invalid(error.description))
                    }
                }
            case .closed(let code):
                events.yield(.disconnected(SMPTransportError(.disconnected, "\(self.path) closed", errno: code)))
            }
        }
        link.install(fd: fd, reader: reader)
    }

    public func send(_ packet: [UInt8]) async throws(SMPTransportError) {
        guard packet.count <= packetLimit else {
            throw SMPTransportError(.packetTooLarge, "packet of \(packet.count) bytes exceeds \(packetLimit)")
        }
        guard let fd = link.fd else { throw SMPTransportError(.notConnected, "\(path) is not open") }
        try writeAll(fd: fd, SMPSerialFraming.encode(packet: packet))
    }

    public func close() async {
        await link.close()
    }
}

/// Holds a serial decoder shared with the reader thread.
final class DecoderBox: Sendable {
    private let decoder: LockedValue<SMPSerialDecoder>
    init(maxPacketLength: Int) { decoder = LockedValue(SMPSerialDecoder(maxPacketLength: maxPacketLength)) }
    func feed(_ bytes: [UInt8]) -> [SMPSerialDecoder.Event] { decoder.withLock { $0.feed(bytes) } }
}
