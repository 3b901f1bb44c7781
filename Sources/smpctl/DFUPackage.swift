import Foundation
import SMPCtlClient
import SMPCtlDiagnosis
import SMPCtlFiles

/// The images of a DFU package (nRF Connect SDK's dfu_application.zip), extracted to a private
/// temporary folder so the upload engine can read them as files.
struct DFUPackageContents {
    var images: [PackageImage]
    /// "application core", "network core" or "image N", per image.
    var cores: [Int: String]
    let directory: URL

    /// Removes the extracted files.
    func remove() { try? FileManager.default.removeItem(at: directory) }

    /// The package at `path`, or `nil` when the file is not a ZIP archive. The archive is read
    /// within the inspector's bounds (ImageArchive: entry and archive sizes, manifest.json of at most
    /// 1 MiB and 64 files); every listed image must be a valid MCUboot image with its own image number.
    static func load(path: String) throws(SMPClientError) -> DFUPackageContents? {
        let data: Data
        do {
            data = try RegularFile.read(path, limit: 128 << 20)
        } catch {
            return nil  // Reported by the single-image path, which names the problem.
        }
        guard ImageArchive.looksLikeZip([UInt8](data.prefix(4))) else { return nil }
        let inspection = ImageInspector.inspect(bytes: [UInt8](data), name: path)
        guard inspection.kind == .dfuPackage, !inspection.packageImages.isEmpty else {
            throw .invalidInput("\(path) is a ZIP file but not a DFU package with a manifest.json listing images")
        }
        let archive: ImageArchive
        do {
            archive = try ImageArchive(data: data)
        } catch {
            throw .invalidInput("\(path): \(error.reason)")
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("smpctl-dfu-\(UUID().uuidString)", isDirectory: true)
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .invalidInput("cannot create a temporary folder for the package's images: \(error)")
        }
        var contents = DFUPackageContents(images: [], cores: [:], directory: directory)
        do throws(SMPClientError) {
            for (position, listed) in inspection.packageImages.enumerated() {
                if let problem = listed.problem { throw .invalidInput("\(path): \(listed.file): \(problem)") }
                guard let index = listed.imageIndex, (0...7).contains(index) else {
                    throw .invalidInput("\(path): \(listed.file) has no image_index from 0 to 7 in manifest.json")
                }
                guard contents.cores[index] == nil else {
                    throw .invalidInput("\(path): manifest.json lists image_index \(index) twice")
                }
                guard let member = archive.entry(named: listed.file) else {
                    throw .invalidInput("\(path): \(listed.file) is missing from the ZIP")
                }
                let bytes: [UInt8]
                do {
                    bytes = try archive.extract(member)
                } catch {
                    throw .invalidInput("\(path): \(listed.file): \(error.reason)")
                }
                let target = directory.appendingPathComponent("image-\(position).bin")
                do {
                    try Data(bytes).write(to: target, options: .withoutOverwriting)
                } catch {
                    throw .invalidInput("cannot write \(listed.file) to a temporary file: \(error)")
                }
                let file = try FirmwareFile(path: target.path)
                let identity = try FirmwareImageIdentity(file: file)
                contents.images.append(PackageImage(
                    image: index, file: file, hash: identity.hash, version: identity.version, core: listed.core))
                contents.cores[index] = listed.core
            }
        } catch {
            contents.remove()
            throw error
        }
        return contents
    }
}
