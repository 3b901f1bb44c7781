public import Foundation
import ZIPFoundation

/// Builds ZIP archives for the tests (deflated, in memory) with ZIPFoundation.
public enum ZipFixture {
    /// An archive of `members` (name and contents), deflated.
    public static func archive(_ members: [(name: String, bytes: Data)]) throws -> Data {
        let archive = try Archive(accessMode: .create)
        for member in members {
            let bytes = member.bytes
            try archive.addEntry(
                with: member.name, type: .file, uncompressedSize: Int64(bytes.count), compressionMethod: .deflate
            ) { position, size in
                bytes.subdata(in: Int(position)..<(Int(position) + size))
            }
        }
        guard let data = archive.data else { throw CocoaError(.fileWriteUnknown) }
        return data
    }

    /// A manifest.json listing `file` `times` times, as nRF Connect SDK writes it for one image.
    public static func manifest(listing file: String, times: Int, compact: Bool = false) -> Data {
        let entry = compact
            ? #"{"file":"\#(file)"}"#
            : #"{"file":"\#(file)","image_index":"0","board":"nrf52840dk_nrf52840","type":"application"}"#
        return Data(("{\"format-version\":0,\"files\":[" + Array(repeating: entry, count: times).joined(separator: ",") + "]}").utf8)
    }
}
