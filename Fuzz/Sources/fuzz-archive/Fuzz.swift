// The ZIP reader behind DFU packages (SMPCtlDiagnosis ImageArchive: central directory, stored
// and deflated entries, CRC-32) and the manifest.json reading of `image inspect`.
//
// Only the public entry points are used (ImageArchive(bytes:), entries, entry(named:), extract,
// and ImageInspector.inspect for the manifest), so the target keeps working when the internals
// change. Invariants: an extracted entry has the size the directory gives and is never larger
// than ImageArchive.maximumEntrySize; looking an entry up by its own name finds an entry of that
// name; the work is bounded: the bytes read are at most the extracted entries' compressed sizes
// and the bytes written at most their declared sizes, each entry counted once however often it
// is extracted (Fuzz/Findings/archive-timeout-13k.zip once ran for minutes here).

import FuzzSupport
import SMPCtlDiagnosis

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    if let archive = try? ImageArchive(bytes: bytes) {
        let tried = archive.entries.prefix(32)
        for entry in tried {
            if let found = archive.entry(named: entry.name) {
                invariant(found.name == entry.name, "entry(named:) found \(found.name) for \(entry.name)")
            }
            do {
                let contents = try archive.extract(entry)
                invariant(contents.count == entry.uncompressedSize, "extracted \(contents.count) bytes, directory says \(entry.uncompressedSize)")
                invariant(contents.count <= ImageArchive.maximumEntrySize, "entry over the size bound")
            } catch {
                _ = error.description
            }
        }
        _ = archive.entry(named: "manifest.json")
        // Again: nothing is inflated twice.
        let consumed = archive.consumedBytes, produced = archive.extractedBytes
        for entry in tried { _ = try? archive.extract(entry) }
        invariant(archive.consumedBytes == consumed && archive.extractedBytes == produced, "an entry was inflated twice")
        // Saturating: a ZIP64 directory declares sizes up to 2^64 - 1, which the entries clamp to
        // Int.max, so two of them overflow a plain sum (the fuzzer found this in the target).
        let compressed = tried.reduce(0) { saturatingSum($0, $1.compressedSize) }
        let declared = tried.reduce(0) { saturatingSum($0, $1.uncompressedSize) }
        invariant(consumed <= compressed, "read \(consumed) bytes, the entries hold \(compressed)")
        invariant(produced <= declared, "wrote \(produced) bytes, the entries declare \(declared)")
    }
    // The inspector reads manifest.json and the images it names (it looks for the ZIP magic).
    let inspection = ImageInspector.inspect(bytes: bytes, name: "dfu_application.zip")
    for image in inspection.packageImages {
        _ = image.problem
    }
    _ = inspection.refusal
    return 0
}

/// `a + b`, or `Int.max` when that overflows.
func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? Int.max : sum
}
