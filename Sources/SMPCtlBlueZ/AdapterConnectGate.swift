/// One connection set-up at a time per adapter, within this process.
///
/// A controller creates one LE connection at a time, and bluetoothd then runs GATT discovery on it.
/// In the BlueZ VM (bluetoothd 5.66, btvirt), two central connections set up at once from one
/// adapter left one of them connected but never `ServicesResolved`, not even when its properties
/// were read again, in every run of the fleet step (scripts/ble-vm/README.md); set up one after the
/// other, both work, and their uploads still run side by side. So a fleet's BLE devices on one
/// adapter take turns from discovery to the subscribed characteristic, and only that part.
///
/// Waiting is bounded by the holder's own phases, each of which has a deadline; a cancelled waiter
/// leaves the queue at once.
actor AdapterConnectGate {
    static let shared = AdapterConnectGate()

    private var busy: Set<String> = []
    private var waiters: [String: [(id: UInt64, continuation: CheckedContinuation<Bool, Never>)]] = [:]
    private var nextID: UInt64 = 0

    /// Takes the adapter's turn; `false` when the task was cancelled while it waited (it then holds nothing).
    func acquire(_ adapter: String) async -> Bool {
        if !busy.contains(adapter) {
            busy.insert(adapter)
            return true
        }
        nextID &+= 1
        let id = nextID
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(returning: false)
                } else {
                    waiters[adapter, default: []].append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancel(adapter, id: id) }
        }
    }

    /// Gives the turn to the next waiter, or frees the adapter.
    func release(_ adapter: String) {
        if var queue = waiters[adapter], !queue.isEmpty {
            let next = queue.removeFirst()
            waiters[adapter] = queue.isEmpty ? nil : queue
            next.continuation.resume(returning: true)
        } else {
            busy.remove(adapter)
        }
    }

    private func cancel(_ adapter: String, id: UInt64) {
        guard var queue = waiters[adapter], let index = queue.firstIndex(where: { $0.id == id }) else { return }
        let waiter = queue.remove(at: index)
        waiters[adapter] = queue.isEmpty ? nil : queue
        waiter.continuation.resume(returning: false)
    }

    /// Whether someone holds the adapter's turn (for tests).
    func isBusy(_ adapter: String) -> Bool { busy.contains(adapter) }
}
