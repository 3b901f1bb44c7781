// The Kconfig reader of `smpctl doctor` (SMPCtlDiagnosis DoctorKconfig: zephyr/.config).
//
// Invariants: parsing never traps; every option has a line within the file, and only options
// (CONFIG_ / SB_CONFIG_ names) are kept.

import FuzzSupport
@_spi(Fuzzing) import SMPCtlDiagnosis

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: fuzzBytes(data, size), as: UTF8.self)
    let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
    let config = DoctorKconfig(file: "zephyr/.config", text: text)
    invariant(Set(config.values.keys) == Set(config.lines.keys), "values and lines name different options")
    for (name, line) in config.lines {
        invariant(line >= 1 && line <= lineCount, "\(name) on line \(line) of \(lineCount)")
        invariant(name.hasPrefix("CONFIG_") || name.hasPrefix("SB_CONFIG_"), "\(name) is not an option")
        _ = config.integer(name)
        _ = config.isEnabled(name)
        invariant(config.location(name).line == line, "location line")
    }
    return 0
}
