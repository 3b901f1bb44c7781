import Testing
@testable import SMPCtlClient
import SMPCtlProtocol
import SMPCtlTransport

@Suite("Speed advice")
struct SpeedAdvisorTests {
    let fast = OSManagement.ParametersResponse(bufferSize: 2475, bufferCount: 4)

    @Test("fast settings on a fast BLE link: no advice")
    func fastLink() throws {
        let link = try LinkModel(parsing: "ble:mtu=498,interval=7.5ms,dle=251")
        #expect(SpeedAdvisor.advise(parameters: fast, supported: true, link: link).isEmpty)
    }

    @Test("a slow BLE link gets MTU, DLE and reassembly advice with the modelled gain")
    func slowBLE() throws {
        let link = try LinkModel(parsing: "ble:mtu=65,interval=50ms,dle=27,phy=1m,reassembly=no")
        let findings = SpeedAdvisor.advise(
            parameters: OSManagement.ParametersResponse(bufferSize: 62, bufferCount: 1), supported: true, link: link)
        #expect(Set(findings.map(\.id)) == ["small-buffer", "single-buffer", "slow-ble-link"])
        let ble = try #require(findings.first { $0.id == "slow-ble-link" })
        #expect(ble.settings.contains("CONFIG_BT_L2CAP_TX_MTU=498"))
        #expect(ble.settings.contains("CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY=y"))
        #expect(ble.why?.contains("× faster") == true)
        // The estimate is the link model's: recommended over current.
        let now = try #require(SpeedAdvisor.estimatedUploadRate(link: link, requestSize: 62, window: 1))
        let then = try #require(SpeedAdvisor.estimatedUploadRate(
            link: SpeedAdvisor.recommended(link), requestSize: 2475, window: 3))
        #expect(then / now > 20)
    }

    @Test("on a serial link the advice names no Bluetooth settings")
    func serial() {
        let findings = SpeedAdvisor.advise(
            parameters: OSManagement.ParametersResponse(bufferSize: 256, bufferCount: 1), supported: true,
            link: LinkModel(medium: .serial(baud: 115_200)))
        #expect(!findings.isEmpty)
        #expect(findings.allSatisfy { $0.settings.allSatisfy { !$0.contains("_BT_") } })
    }

    @Test("without params the advice says to enable them")
    func unsupported() {
        let findings = SpeedAdvisor.advise(parameters: nil, supported: false, link: nil)
        #expect(findings.map(\.id) == ["params-unsupported"])
        #expect(findings[0].settings.contains("CONFIG_MCUMGR_GRP_OS_MCUMGR_PARAMS"))
    }
}
