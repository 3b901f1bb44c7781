import Foundation
import Testing
@testable import SMPCtlClient
import SMPCtlProtocol
import SMPCtlSimulator
import SMPCtlTransport

/// Issue #13: answers that are discarded say so in the timeout, and a device buffer too small for
/// an upload is the device's limit, named with its figure.
@Suite("discarded answers and tiny device buffers")
struct DeviceAnswerHardeningTests {
    @Test("a timeout after undecodable answers counts them")
    func undecodableAnswers() async throws {
        let (_, server) = simulator { $0.truncateRate = 1 }
        let client = try await openClient(
            InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(200), retries: 1))
        let error = await capture { _ = try await client.send(OSManagement.EchoRequest("hello")) }
        guard case SMPClientError.timedOut(_, _, let attempts, let malformed)? = error as? SMPClientError else {
            Issue.record("expected a timeout, got \(String(describing: error))")
            return
        }
        #expect(attempts == 2)
        #expect(malformed == 2)
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains("2 undecodable or malformed answers"), "\(text)")
        #expect(await client.discardedAnswers == 2)
        await client.close()
    }

    @Test("a timeout with no answer at all says no response, as before")
    func silence() async throws {
        let (_, server) = simulator { $0.dropResponses = .random(probability: 1, seed: 1) }
        let client = try await openClient(
            InProcessTransport(server: server), options: testClientOptions(timeout: .milliseconds(100), retries: 1))
        let error = await capture { _ = try await client.send(OSManagement.EchoRequest("hello")) }
        guard case SMPClientError.timedOut(_, _, _, let malformed)? = error as? SMPClientError else {
            Issue.record("expected a timeout, got \(String(describing: error))")
            return
        }
        #expect(malformed == 0)
        #expect("\(error.map { "\($0)" } ?? "")".hasPrefix("no response from the device"))
        await client.close()
    }

    @Test("a device reporting a buffer too small for the first request is a device limit", arguments: [0, 9, 40])
    func tinyBuffer(reported: Int) async throws {
        let (device, server) = simulator { $0.reportedBufferSize = reported }
        let client = try await openClient(InProcessTransport(server: server), options: testClientOptions(timeout: .seconds(2)))
        let parameters = try await client.readParameters()
        #expect(parameters.bufferSize == reported)
        #expect(await client.maximumRequestSize() >= 0)
        let image = try TestImage.built(payloadSize: 4096, seed: 70)
        let error = await capture { _ = try await client.upload(image.file) }
        guard case SMPClientError.deviceLimit(let text)? = error as? SMPClientError else {
            Issue.record("expected a device limit, got \(String(describing: error))")
            return
        }
        #expect(text.contains("buf_size \(reported) bytes"), "\(text)")
        #expect(text.contains("at least"))
        // Nothing was sent for the upload.
        #expect(await device.requestLog.allSatisfy { $0.header?.group != .image || $0.header?.command != 1 })
        await client.close()
    }
}
