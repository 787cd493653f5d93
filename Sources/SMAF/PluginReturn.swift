import CSMAFPlugin
import Glibc

/// What an `int` a plugin returned means under the ABI, decided before the
/// core does any arithmetic on it: 0 is success, -1...-4095 a negative errno
/// (the kernel's own range, MAX_ERRNO), anything else a broken plugin.
/// Negating INT_MIN or reading 7 as an errno is never reached.
package enum PluginStatus: Equatable {
    case success
    case failure(errno: Int32)
    case invalid(Int32)

    /// The largest errno the kernel hands out (include/linux/err.h).
    static let maxErrno: Int32 = 4095

    package init(_ code: Int32) {
        switch code {
        case 0: self = .success
        case -Self.maxErrno ... -1: self = .failure(errno: -code)
        default: self = .invalid(code)
        }
    }

    /// The refusal for a code outside the ABI, naming the op.
    package static func invalidCode(_ op: String, _ code: Int32) -> String {
        "\(op) returned an invalid code \(code) (only 0 or a negative errno -1...-\(maxErrno) mean something)"
    }

    /// The refusal for a yes/no op (match, allow_cpu_access) that said neither.
    static func invalidVerdict(_ op: String, _ code: Int32) -> String {
        "\(op) returned an invalid code \(code) (only 1, yes, or 0, no, mean something)"
    }
}

/// The most of a plugin's report (`describe_stats`) the core reads: a
/// region map and a call log fit many times over; a length beyond it is a
/// broken plugin, not a request to allocate its number of bytes.
package let statsReportLimit = 64 << 10

/// Plugin strings the core reads through a bare pointer (names, summaries,
/// log lines, setting keys) are read up to here and no further: the core
/// never runs strlen past what a plugin may have left unterminated.
enum PluginStringLimit {
    static let name = Int(SMAF_NAME_MAX)
    static let description = Int(SMAF_REASON_MAX)
    static let logLine = 4096
}

/// A C string read through a pointer, at most `limit` bytes of it; nil for NULL.
func boundedCString(_ pointer: UnsafePointer<CChar>?, limit: Int) -> String? {
    guard let pointer else { return nil }
    let length = strnlen(pointer, limit)
    return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
    }
}

/// A NUL-terminated string in a fixed C buffer (never reads past it).
package func cString(_ raw: UnsafeRawBufferPointer) -> String {
    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
}

/// A NUL-terminated C buffer as a String, nil when empty.
func cString(_ buffer: [CChar]) -> String? {
    let s = buffer.withUnsafeBytes { cString($0) }
    return s.isEmpty ? nil : s
}
