// Helpers shared by the fuzz targets: invariant checks that trap, a reader that turns the
// fuzzer's bytes into structured choices, and a bridge from the synchronous libFuzzer callback to
// async code.

import Dispatch

/// Checks an invariant of the code under test; on violation prints `message` and traps, which
/// libFuzzer reports as a crash and saves the input.
@inline(__always)
public func invariant(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() {
        fatalError("fuzz invariant violated: \(message())", file: file, line: line)
    }
}

/// The bytes libFuzzer passes, as an array.
public func fuzzBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Reads choices from the front of the input, like LLVM's FuzzedDataProvider: every read
/// succeeds (zero when the input has run out), so any input is a valid program.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Bytes not read yet.
    public var remaining: Int { bytes.count - position }
    public var isEmpty: Bool { remaining == 0 }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// A big-endian 16-bit value.
    public mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    /// A value in `range` (which must not be empty).
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound)
        let raw = UInt64(uint16()) << 16 | UInt64(uint16())
        return range.lowerBound + Int(raw % (span + 1))
    }

    /// Up to `count` bytes.
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, remaining))
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    /// The unread rest.
    public mutating func rest() -> [UInt8] { take(remaining) }
}

/// Holds the result of an async call for ``runBlocking(_:)``.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    var value: T?
}

/// Runs `body` on the cooperative pool and waits for it. Only for the fuzz callback, which
/// libFuzzer calls on its own (non-pool) thread.
public func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let done = DispatchSemaphore(value: 0)
    let box = ResultBox<T>()
    Task {
        box.value = await body()
        done.signal()
    }
    done.wait()
    guard let value = box.value else { fatalError("runBlocking: the task finished without a value") }
    return value
}

/// The number of lines in `text` as libyaml (under Yams) counts them (`IS_BREAK` in
/// yaml_private.h): LF, CR and CR LF end a line, and so do NEL (U+0085), LS (U+2028) and PS
/// (U+2029), YAML 1.1's line breaks.
public func yamlLineCount(_ text: String) -> Int {
    var lines = 1
    var afterCR = false
    for scalar in text.unicodeScalars {
        switch scalar.value {
        case 0x0A:
            if !afterCR { lines += 1 }
            afterCR = false
        case 0x0D:
            lines += 1
            afterCR = true
        case 0x85, 0x2028, 0x2029:
            lines += 1
            afterCR = false
        default:
            afterCR = false
        }
    }
    return lines
}
