import Foundation
import SMPCtlLocking
import Testing

import SMPCtlFiles

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` on a thread and fails the test if it has not returned within `seconds`
/// (a blocked `open(2)` on a FIFO cannot be cancelled, so the thread is left behind).
func withHangGuard(seconds: Double, _ body: @escaping @Sendable () -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        body()
        done.signal()
    }
    if done.wait(timeout: .now() + seconds) == .timedOut {
        Issue.record("still blocked after \(seconds) s", sourceLocation: sourceLocation)
    }
}

@Suite("regular files only")
struct RegularFileTests {
    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("smpctl-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("pieces are read at any offset, short at the end, without moving the file position")
    func pieces() throws {
        let path = try Self.folder().appendingPathComponent("image.bin").path
        let content = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(content)))
        let handle = try RegularFile.open(path)
        #expect(try RegularFile.read(handle, path: path, offset: 4096, count: 2048) == Array(content[4096..<6144]))
        #expect(try RegularFile.read(handle, path: path, offset: 0, count: 3) == Array(content[0..<3]))
        #expect(try RegularFile.read(handle, path: path, offset: 9_000, count: 4096) == Array(content[9_000...]))
        #expect(try RegularFile.read(handle, path: path, offset: 10_000, count: 16).isEmpty)
        #expect(try RegularFile.read(handle, path: path, offset: 20_000, count: 16).isEmpty)
        #expect(throws: RegularFileError.self) { try RegularFile.read(handle, path: path, offset: -1, count: 16) }
        try handle.close()
    }

    @Test("a FIFO with no writer is refused at once, not read")
    func fifo() throws {
        let path = try Self.folder().appendingPathComponent("pipe").path
        #expect(mkfifo(path, 0o600) == 0)
        let outcome = LockedValue<RegularFileError?>(nil)
        withHangGuard(seconds: 10) {
            do throws(RegularFileError) {
                _ = try RegularFile.read(path, limit: 1024)
            } catch {
                outcome.withLock { $0 = error }
            }
        }
        let error = try #require(outcome.withLock { $0 })
        #expect(error.kind == .notRegular("a FIFO (named pipe)"))
        #expect(error.description.contains("FIFO"))
        #expect(!RegularFile.isRegular(path))
    }

    @Test("directories and devices are refused; missing files say so")
    func others() throws {
        let folder = try Self.folder()
        #expect(throws: RegularFileError(path: folder.path, kind: .notRegular("a directory"))) {
            try RegularFile.read(folder.path, limit: 10)
        }
        #expect(throws: RegularFileError(path: "/dev/zero", kind: .notRegular("a character device"))) {
            try RegularFile.read("/dev/zero", limit: 10)
        }
        let missing = folder.appendingPathComponent("nothing").path
        #expect {
            try RegularFile.read(missing, limit: 10)
        } throws: { error in
            (error as? RegularFileError)?.kind == .missing && "\(error)".contains("cannot open")
        }
    }

    @Test("the size limit is exact")
    func limit() throws {
        let path = try Self.folder().appendingPathComponent("file").path
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: path))
        #expect(try RegularFile.read(path, limit: 100).count == 100)
        #expect(throws: RegularFileError(path: path, kind: .tooLarge(limit: 99))) { try RegularFile.read(path, limit: 99) }
        // A symbolic link to a regular file is followed.
        let link = path + ".link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        #expect(try RegularFile.read(link, limit: 100).count == 100)
        #expect(RegularFile.isRegular(link))
    }
}
