import Foundation
import SMPCtlLocking
import Testing
@testable import SMPCtlBlueZ

@Suite("One BLE connection set-up at a time per adapter")
struct AdapterConnectGateTests {
    @Test("a second set-up on the same adapter waits for the first; another adapter does not")
    func turns() async throws {
        let gate = AdapterConnectGate()
        let order = LockedValue<[String]>([])
        #expect(await gate.acquire("hci1"))
        #expect(await gate.acquire("hci2"), "another adapter takes its turn at once")
        let second = Task {
            let got = await gate.acquire("hci1")
            order.withLock { $0.append("second got the turn") }
            return got
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(order.withLock { $0 }.isEmpty, "the second set-up ran while the first held the adapter")
        order.withLock { $0.append("first released") }
        await gate.release("hci1")
        #expect(await second.value)
        #expect(order.withLock { $0 } == ["first released", "second got the turn"])
        await gate.release("hci1")
        await gate.release("hci2")
        #expect(await gate.isBusy("hci1") == false)
        #expect(await gate.isBusy("hci2") == false)
    }

    @Test("a cancelled waiter leaves the queue without the turn, and the next one gets it")
    func cancelledWaiter() async throws {
        let gate = AdapterConnectGate()
        #expect(await gate.acquire("hci0"))
        let cancelled = Task { await gate.acquire("hci0") }
        let third = Task { () -> Bool in
            try? await Task.sleep(for: .milliseconds(100))
            return await gate.acquire("hci0")
        }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        #expect(await cancelled.value == false)
        try await Task.sleep(for: .milliseconds(150))
        await gate.release("hci0")
        #expect(await third.value)
        await gate.release("hci0")
        #expect(await gate.isBusy("hci0") == false)
    }
}
