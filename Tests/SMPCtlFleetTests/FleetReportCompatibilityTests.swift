import Foundation
import Testing
import SMPCtlFleet

@Suite("fleet report names")
struct FleetReportCompatibilityTests {
    static let totals = #"{"devices":1,"done":1,"up_to_date":0,"failed":0,"unreachable":0,"blocked":0,"no_image":0,"not_started":0,"active":0,"interrupted":0}"#

    static func report(device: String) -> String {
        #"{"schema":"smpctl-fleet-report/1","manifests":[],"sources":[],"halted":false,"interrupted":false,"totals":"#
            + totals + #","exit_status":0,"devices":["# + device + "]}"
    }

    @Test("a report or journal written with the old `seconds` is still read, and written again as update_seconds")
    func oldSeconds() throws {
        let device = #"{"name":"a","connection":"sim","labels":{},"targets":[],"state":"done","attempts":1,"uploaded_bytes":10,"retries":0,"reconnects":0,"updated":1,"seconds":0.5}"#
        let report = try FleetReport.decode(Data(Self.report(device: device).utf8), source: "old")
        #expect(report.devices.first?.updateSeconds == 0.5)
        let written = String(decoding: try report.json(), as: UTF8.self)
        #expect(written.contains("\"update_seconds\" : 0.5"), "\(written)")
        #expect(!written.contains("\"seconds\""))
        // The new name wins when a record has both.
        let both = device.replacingOccurrences(of: "\"seconds\":0.5", with: "\"seconds\":0.5,\"update_seconds\":2")
        #expect(try FleetReport.decode(Data(Self.report(device: both).utf8), source: "both").devices.first?.updateSeconds == 2)
        // Neither: no duration.
        let neither = device.replacingOccurrences(of: ",\"seconds\":0.5", with: "")
        #expect(try FleetReport.decode(Data(Self.report(device: neither).utf8), source: "neither").devices.first?.updateSeconds == nil)
    }
}
