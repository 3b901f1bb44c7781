import Foundation
public import SMPCtlDiagnosis
public import SMPCtlProtocol
public import SMPCtlTransport

/// Says which firmware settings would make uploads faster, with the gain the link model predicts.
public enum SpeedAdvisor {
    /// The SMP buffer size recommended for fast uploads: a 2 KiB chunk with its headers.
    public static let recommendedBufferSize = 2475
    /// The buffer count recommended: room for three chunks in flight.
    public static let recommendedBufferCount = 4

    /// Upload throughput in file bytes per second that `link` allows with requests of
    /// `requestSize` bytes and `window` of them in flight, or `nil` for a link without a model.
    public static func estimatedUploadRate(link: LinkModel, requestSize: Int, window: Int) -> Double? {
        let data = ImageManagement.UploadRequest.largestDataLength(
            bodyBudget: requestSize - SMPHeader.size, offset: 100_000, first: nil)
        let up = link.transferSeconds(requestSize)
        let down = link.transferSeconds(SMPHeader.size + 8)
        let perChunk = max(up, (up + down) / Double(max(1, window)))
        guard data > 0, perChunk > 0 else { return nil }
        return Double(data) / perChunk
    }

    /// Findings about slow settings, given the device's parameters and, when known, the link.
    public static func advise(
        parameters: OSManagement.ParametersResponse?, supported: Bool, link: LinkModel?
    ) -> [Finding] {
        var findings: [Finding] = []
        guard supported, let parameters else {
            findings.append(Finding(
                id: "params-unsupported", severity: .info,
                summary: "the device does not report its SMP buffers (mcumgr params)",
                why: "smpctl then sends \(SMPClient.defaultBufferSize)-byte requests one at a time, which is slow\(gainText(link: link, from: (SMPClient.defaultBufferSize, 1)))",
                fix: "enable the mcumgr params command, and size the buffers as below",
                settings: ["CONFIG_MCUMGR_GRP_OS_MCUMGR_PARAMS", "CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE=\(recommendedBufferSize)",
                    "CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT=\(recommendedBufferCount)"]))
            return findings
        }
        let window = max(1, parameters.bufferCount - 1)
        if parameters.bufferSize < 1024 {
            findings.append(Finding(
                id: "small-buffer", severity: .warning,
                summary: "SMP buffers are \(parameters.bufferSize) bytes",
                why: "every upload request carries less than \(parameters.bufferSize) bytes, so uploads need many round trips\(gainText(link: link, from: (parameters.bufferSize, window)))",
                fix: "raise the netbuf size to \(recommendedBufferSize) (a 2 KiB chunk with headers)\(isSerial(link) ? "" : "; on BLE pair it with MTU 498, DLE 251 and reassembly")",
                settings: ["CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE=\(recommendedBufferSize)"]
                    + (isSerial(link) ? [] : ["CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY=y", "CONFIG_BT_L2CAP_TX_MTU=498",
                        "CONFIG_BT_BUF_ACL_RX_SIZE=502", "CONFIG_BT_CTLR_DATA_LENGTH_MAX=251"])))
        }
        if parameters.bufferCount < 2 {
            findings.append(Finding(
                id: "single-buffer", severity: .warning,
                summary: "the device has \(parameters.bufferCount) SMP buffer",
                why: "with one buffer only one request can be in flight, so the link idles while the device writes flash\(gainText(link: link, from: (parameters.bufferSize, 1)))",
                fix: "give mcumgr \(recommendedBufferCount) buffers so smpctl can keep chunks in flight",
                settings: ["CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT=\(recommendedBufferCount)"]))
        }
        if let link, case .ble(let mtu, let interval, _, _, let dle, let reassembly) = link.medium {
            var slow: [String] = []
            if mtu < 247 { slow.append("the ATT MTU is \(mtu)") }
            if dle < 251 { slow.append("the data length is \(dle)") }
            if !reassembly { slow.append("the device does not reassemble requests") }
            if interval > .milliseconds(15) { slow.append("the connection interval is \(Int((interval.seconds * 1000).rounded())) ms") }
            if !slow.isEmpty {
                let current = min(parameters.bufferSize, reassembly ? parameters.bufferSize : mtu - 3)
                findings.append(Finding(
                    id: "slow-ble-link", severity: .warning, summary: slow.joined(separator: ", "),
                    why: "each request is cut into more, smaller packets, or waits longer for a connection event\(gainText(link: link, from: (current, window)))",
                    fix: "negotiate MTU 498 with DLE 251, enable SMP reassembly, and ask for a 7.5–15 ms interval during DFU",
                    settings: ["CONFIG_BT_L2CAP_TX_MTU=498", "CONFIG_BT_BUF_ACL_RX_SIZE=502", "CONFIG_BT_BUF_ACL_TX_SIZE=502",
                        "CONFIG_BT_CTLR_DATA_LENGTH_MAX=251", "CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY=y",
                        "CONFIG_MCUMGR_TRANSPORT_BT_CONN_PARAM_CONTROL=y"]))
            }
        }
        return findings
    }

    static func isSerial(_ link: LinkModel?) -> Bool {
        if case .serial? = link?.medium { return true }
        return false
    }

    /// The recommended link: the same medium with fast settings.
    static func recommended(_ link: LinkModel) -> LinkModel {
        guard case .ble(_, let interval, let perEvent, let phy, _, _) = link.medium else { return link }
        var better = link
        better.medium = .ble(
            mtu: 498, interval: min(interval, .milliseconds(15)), packetsPerEvent: perEvent, phy: phy, dataLength: 251,
            reassembly: true)
        return better
    }

    /// " — about N× faster (A → B KiB/s by the link model)", or nothing when the link is unknown.
    static func gainText(link: LinkModel?, from current: (requestSize: Int, window: Int)) -> String {
        guard let link,
            let now = estimatedUploadRate(link: link, requestSize: current.requestSize, window: current.window),
            let then = estimatedUploadRate(
                link: recommended(link), requestSize: recommendedBufferSize, window: recommendedBufferCount - 1),
            then > now * 1.1
        else { return "" }
        return String(
            format: "; the recommended settings together would make uploads about %.1f× faster (%.1f → %.1f KiB/s by the link model of %@)",
            then / now, now / 1024, then / 1024, link.description)
    }
}
