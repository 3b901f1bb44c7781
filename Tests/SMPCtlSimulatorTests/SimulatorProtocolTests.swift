import SMPCtlCBOR
import SMPCtlImage
import SMPCtlProtocol
import SMPCtlSimulator
import Testing

@Suite struct SimulatorSMPLayerTests {
    @Test func unknownGroupsAndCommandsAnswerNotSupported() async throws {
        let device = SimulatedDevice()
        for version in [SMPVersion.v2, .v1] {
            for (group, command, op) in [(SMPGroupID.image, UInt8(2), SMPOperation.write), (.image, 1, .read),
                (.os, 3, .read), (.os, 1, .write), (42, 0, .read), (.perUser, 0, .write)] {
                let result = try await call(device, SMPRawRequest(group: group, command: command, operation: op), version: version)
                #expect(errorKind(result) == .smp(.notSupported), "\(group) \(command)")
            }
        }
    }

    @Test func v1RequestsGetV1Headers() async throws {
        let device = SimulatedDevice()
        let packet = OSManagement.EchoRequest("hi").packet(sequence: 200, version: .v1)
        let response = try await exchange(device, packet)
        #expect(response.header.version == .v1)
        #expect(response.header.bytes[0] == 0x03)
        #expect(response.header.sequence == 200 && response.header.command == 0 && response.header.group == .os)
        #expect(response.body.first == 0xBF && response.body.last == 0xFF)  // indefinite-length map
        let echo = try SMPResponseDecoder.decode(OSManagement.EchoResponse.self, from: response)
        #expect(echo.text == "hi")
        // Read-echo answers with read-rsp.
        let read = SMPRawRequest(group: .os, command: 0, operation: .read, body: ["d": "x"])
        #expect(try success(try await call(device, read)).map["r"] == "x")
    }

    @Test func versionChecks() async throws {
        var config = SimulatorConfiguration()
        config.rejectV1 = true
        let device = SimulatedDevice(configuration: config)
        #expect(errorKind(try await call(device, OSManagement.EchoRequest("a"), version: .v1)) == .smp(.versionTooOld))
        #expect(try success(try await call(device, OSManagement.EchoRequest("a"))).text == "a")
        // Version bits 10 → rc 13 with the version capped at v2.
        let packet = OSManagement.EchoRequest("a").packet(sequence: 1, version: SMPVersion(rawValue: 2))
        let response = try await exchange(device, packet)
        #expect(response.header.version == .v2)
        #expect(try SMPResponseDecoder.map(from: response.body)["rc"] == .unsigned(13))
    }

    @Test func malformedRequests() async throws {
        let device = SimulatedDevice()
        let header = SMPHeader(operation: .write, length: 0, group: .os, sequence: 4, command: 0)
        // Not CBOR.
        let garbage = SMPPacket(header: header, body: [0xFF, 0x00]).bytes
        var output = await device.handle(garbage)
        var response = try SMPPacket(decoding: try #require(output.responses.first))
        #expect(try SMPResponseDecoder.map(from: response.body)["rc"] == .unsigned(3))
        // Not a map.
        output = await device.handle(SMPPacket(header: header, body: [0x01]).bytes)
        response = try SMPPacket(decoding: try #require(output.responses.first))
        #expect(try SMPResponseDecoder.map(from: response.body)["rc"] == .unsigned(3))
        // Echo without `d`.
        #expect(errorKind(try await call(device, SMPRawRequest(group: .os, command: 0, operation: .write))) == .smp(.invalidArgument))
        // Body shorter than the header says → ECORRUPT.
        var short = SMPPacket(header: header, body: [0xA0]).bytes
        short[3] = 9
        output = await device.handle(short)
        response = try SMPPacket(decoding: try #require(output.responses.first))
        #expect(try SMPResponseDecoder.map(from: response.body)["rc"] == .unsigned(9))
        // Fewer than 8 bytes: nothing to answer.
        #expect(await device.handle([0x0A, 0x00]).responses.isEmpty)
        // Larger than buf_size: dropped like a Zephyr transport does.
        let big = OSManagement.EchoRequest(String(repeating: "x", count: 3000)).packet(sequence: 1).bytes
        #expect(await device.handle(big).responses.isEmpty)
        #expect(await device.requestLog.last?.responseDropped == true)
    }

    @Test func concatenatedRequestsGetOneResponseEach() async throws {
        let device = SimulatedDevice()
        let packet = OSManagement.EchoRequest("a").packet(sequence: 1).bytes
            + OSManagement.ParametersRequest().packet(sequence: 2).bytes
        let output = await device.handle(packet)
        #expect(output.responses.count == 2)
        let second = try SMPPacket(decoding: try #require(output.responses.last))
        #expect(second.header.sequence == 2)
    }
}

@Suite struct SimulatorOSGroupTests {
    @Test func echoParamsInfoBootloader() async throws {
        let device = SimulatedDevice()
        #expect(try success(try await call(device, OSManagement.EchoRequest("hello"))).text == "hello")
        let params = try success(try await call(device, OSManagement.ParametersRequest()))
        #expect(params.bufferSize == 2048 && params.bufferCount == 4)
        #expect(try success(try await call(device, OSManagement.InfoRequest())).output == "Zephyr")
        let all = try success(try await call(device, OSManagement.InfoRequest(format: "a"))).output
        #expect(all.hasPrefix("Zephyr smpctl-sim") && all.split(separator: " ").count >= 9)
        #expect(try success(try await call(device, OSManagement.InfoRequest(format: "sm"))).output == "Zephyr ARM")
        #expect(errorKind(try await call(device, OSManagement.InfoRequest(format: "z"))) == .group(.os, 2))
        #expect(errorKind(try await call(device, OSManagement.InfoRequest(format: "z"), version: .v1)) == .smp(.invalidArgument))
        let boot = try success(try await call(device, OSManagement.BootloaderInfoRequest()))
        #expect(boot.bootloader == "MCUboot")
        #expect(try success(try await call(device, OSManagement.BootloaderInfoRequest(query: "mode"))).mode == 3)
        #expect(errorKind(try await call(device, OSManagement.BootloaderInfoRequest(query: "color"))) == .group(.os, 3))
        let tasks = try success(try await call(device, OSManagement.TaskStatisticsRequest())).tasks
        #expect(tasks.count >= 2 && tasks.allSatisfy { $0.stackSize != nil })

        var config = SimulatorConfiguration()
        config.supportsParams = false
        #expect(errorKind(try await call(SimulatedDevice(configuration: config), OSManagement.ParametersRequest()))
            == .smp(.notSupported))
    }

    @Test func dateTime() async throws {
        let device = SimulatedDevice()
        #expect(errorKind(try await call(device, OSManagement.DateTimeGetRequest())) == .group(.os, 4))
        #expect(errorKind(try await call(device, OSManagement.DateTimeGetRequest(), version: .v1)) == .smp(.noEntry))
        #expect(errorKind(try await call(device, OSManagement.DateTimeSetRequest(dateTime: "yesterday"))) == .smp(.invalidArgument))
        let stamp = "2026-03-01T12:34:56.000000+01:00"
        _ = try success(try await call(device, OSManagement.DateTimeSetRequest(dateTime: stamp)))
        #expect(try success(try await call(device, OSManagement.DateTimeGetRequest())).dateTime == stamp)
        await device.powerCycle()
        #expect(errorKind(try await call(device, OSManagement.DateTimeGetRequest())) == .group(.os, 4))
    }

    @Test func resetRefusalAndForce() async throws {
        var config = SimulatorConfiguration()
        config.refuseResetUnlessForced = true
        let device = SimulatedDevice(configuration: config)
        let refused = await device.handle(OSManagement.ResetRequest().packet(sequence: 1).bytes)
        #expect(!refused.resetting)
        let packet = try SMPPacket(decoding: try #require(refused.responses.first))
        #expect(try SMPResponseDecoder.map(from: packet.body)["rc"] == .unsigned(10))
        let forced = await device.handle(OSManagement.ResetRequest(force: true).packet(sequence: 2).bytes)
        #expect(forced.resetting && forced.responses.count == 1)
        #expect(await device.bootCount == 1)
    }
}

@Suite struct SimulatorFaultInjectionTests {
    @Test func busyUploads() async throws {
        var config = SimulatorConfiguration()
        config.busyCount = 2
        let device = SimulatedDevice(configuration: config)
        let file = try SimFixture.testImage()
        let first = ImageManagement.UploadRequest(
            offset: 0, data: Array(file[0..<512]), first: .init(length: file.count, sha: SimFixture.fileSHA))
        #expect(errorKind(try await call(device, first)) == .smp(.busy))
        #expect(errorKind(try await call(device, first)) == .smp(.busy))
        #expect(try success(try await call(device, first)).offset == 512)
        // Other commands are not affected.
        #expect(try success(try await call(SimulatedDevice(configuration: config), OSManagement.EchoRequest("x"))).text == "x")
    }

    @Test func droppedResponsesStillExecute() async throws {
        var config = SimulatorConfiguration()
        config.dropResponses = .requests([2])
        let device = SimulatedDevice(configuration: config)
        _ = try success(try await call(device, OSManagement.EchoRequest("1")))
        let set = OSManagement.DateTimeSetRequest(dateTime: "2026-01-01T00:00:00")
        let lost = await device.handle(set.packet(sequence: 2).bytes)
        #expect(lost.responses.isEmpty)
        #expect(try success(try await call(device, OSManagement.DateTimeGetRequest())).dateTime == "2026-01-01T00:00:00")
        #expect(await device.requestLog.map(\.responseDropped) == [false, true, false])

        var random = SimulatorConfiguration()
        random.dropResponses = .random(probability: 0.5, seed: 42)
        let flaky = SimulatedDevice(configuration: random)
        var lostCount = 0
        for i in 0..<200 {
            let out = await flaky.handle(OSManagement.EchoRequest("\(i)").packet(sequence: UInt8(i)).bytes)
            if out.responses.isEmpty { lostCount += 1 }
        }
        #expect((60...140).contains(lostCount))
    }

    @Test func forcedErrorRules() async throws {
        var config = SimulatorConfiguration()
        config.forcedErrors = [
            FaultRule(group: .os, command: 0, error: .smp(2), count: 1),
            FaultRule(group: .image, command: 1, error: .group(12), minimumUploadOffset: 2048),
        ]
        let device = SimulatedDevice(configuration: config)
        #expect(errorKind(try await call(device, OSManagement.EchoRequest("a"))) == .smp(.noMemory))
        #expect(try success(try await call(device, OSManagement.EchoRequest("a"))).text == "a")
        let file = try SimFixture.testImage()
        try await upload(device, file, chunk: 1024, stopAt: 2048)
        #expect(await device.uploadOffset == 2048)
        let next = ImageManagement.UploadRequest(offset: 2048, data: Array(file[2048..<3072]))
        #expect(errorKind(try await call(device, next)) == .group(.image, 12))
        #expect(errorKind(try await call(device, next, version: .v1)) == .smp(.unknown))
        #expect(await device.uploadOffset == 2048)
    }

    @Test func disconnectAfterBytesAndDelay() async throws {
        var config = SimulatorConfiguration()
        config.disconnectAfterBytes = 30
        config.responseDelay = .milliseconds(5)
        let device = SimulatedDevice(configuration: config)
        let echo = OSManagement.EchoRequest("0123456789").packet(sequence: 1).bytes  // 24 bytes
        let a = await device.handle(echo)
        let b = await device.handle(echo)
        let c = await device.handle(echo)
        #expect(!a.disconnect && b.disconnect && !c.disconnect)
        #expect(b.responses.count == 1)
        let clock = ContinuousClock()
        let elapsed = await clock.measure { _ = await device.handle(echo) }
        #expect(elapsed >= .milliseconds(5))
    }
}

@Suite struct SimulatorRobustnessTests {
    /// Mutated and random packets never trap and every answer decodes as an SMP packet.
    @Test func mutatedPacketsNeverTrap() async throws {
        let device = SimulatedDevice()
        let file = try SimFixture.testImage()
        let seeds: [[UInt8]] = [
            ImageManagement.UploadRequest(
                offset: 0, data: Array(file[0..<512]), first: .init(length: file.count, sha: SimFixture.fileSHA)
            ).packet(sequence: 1).bytes,
            ImageManagement.UploadRequest(offset: 512, data: Array(file[512..<1024])).packet(sequence: 2).bytes,
            ImageManagement.StateWriteRequest(hash: SimFixture.imageHash, confirm: false).packet(sequence: 3).bytes,
            ImageManagement.EraseRequest(slot: 1).packet(sequence: 4).bytes,
            OSManagement.InfoRequest(format: "a").packet(sequence: 5).bytes,
            OSManagement.DateTimeSetRequest(dateTime: "2026-01-01T00:00:00").packet(sequence: 6).bytes,
        ]
        var state: UInt64 = 0xC0FFEE
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for _ in 0..<3000 {
            var packet = seeds[Int(next() % UInt64(seeds.count))]
            for _ in 0..<(1 + Int(next() % 3)) {
                packet[Int(next() % UInt64(packet.count))] = UInt8(truncatingIfNeeded: next())
            }
            if next() % 4 == 0 { packet = Array(packet.prefix(Int(next() % UInt64(packet.count + 1)))) }
            let output = await device.handle(packet)
            for response in output.responses {
                let decoded = try SMPPacket(decoding: response)
                #expect(decoded.header.operation.isResponse)
                _ = try SMPResponseDecoder.map(from: decoded.body)
            }
        }
    }
}
