// ISO 8601 times in UTC with milliseconds, as device logs and JSON events carry them, made with
// gmtime_r: Date.formatted(.iso8601...) built a format style per call and was a few percent of a
// 200-device fleet run's CPU (one per device log line and per JSON event).

public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum UTCTimestamp {
    /// `2026-12-03T11:41:30.123`, with `Z` after it when `zone` is true; milliseconds truncated,
    /// as Date.formatted gives them. A date outside years 1 to 9999 falls back to Date.formatted.
    public static func string(_ date: Date, zone: Bool) -> String {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, seconds > -62_135_596_800, seconds < 253_402_300_800 else { return fallback(date, zone: zone) }
        let whole = seconds.rounded(.down)
        var time = time_t(whole)
        let milliseconds = min(999, max(0, Int((seconds - whole) * 1000)))
        var parts = tm()
        guard gmtime_r(&time, &parts) != nil else { return fallback(date, zone: zone) }
        var out = [UInt8]()
        out.reserveCapacity(24)
        func digits(_ value: Int32, _ count: Int) {
            var value = Int(max(0, value))
            let start = out.count
            out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: count))
            for index in stride(from: start + count - 1, through: start, by: -1) {
                out[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
        digits(parts.tm_year + 1900, 4)
        out.append(UInt8(ascii: "-"))
        digits(parts.tm_mon + 1, 2)
        out.append(UInt8(ascii: "-"))
        digits(parts.tm_mday, 2)
        out.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2)
        out.append(UInt8(ascii: ":"))
        digits(parts.tm_min, 2)
        out.append(UInt8(ascii: ":"))
        digits(parts.tm_sec, 2)
        out.append(UInt8(ascii: "."))
        digits(Int32(milliseconds), 3)
        if zone { out.append(UInt8(ascii: "Z")) }
        return String(decoding: out, as: UTF8.self)
    }

    private static func fallback(_ date: Date, zone: Bool) -> String {
        zone
            ? date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
            : date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
    }
}
