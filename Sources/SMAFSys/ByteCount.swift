/// Byte counts as people and the kernel write them.
public enum ByteCount {
    /// 67108864 -> "64 MiB", 1572864 -> "1.5 MiB", 100 -> "100 B".
    public static func describe(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var unit = 0
        var scale: UInt64 = 1
        while unit < units.count - 1, n / scale >= 1024 {
            scale *= 1024
            unit += 1
        }
        if n % scale == 0 { return "\(n / scale) \(units[unit])" }
        let hundredths = Int((Double(n) / Double(scale) * 100).rounded())
        let whole = hundredths / 100, fraction = hundredths % 100
        let digits = fraction % 10 == 0 ? "\(fraction / 10)" : (fraction < 10 ? "0\(fraction)" : "\(fraction)")
        return fraction == 0 ? "\(whole) \(units[unit])" : "\(whole).\(digits) \(units[unit])"
    }

    /// The kernel's `memparse()` (how `cma=64M` is read): a decimal, 0x hex
    /// or 0 octal number with an optional K, M, G, T, P or E suffix (powers
    /// of 1024, any case). nil if malformed or over 2^64.
    public static func parseKernelSize(_ text: String) -> UInt64? {
        var digits = Substring(text.filter { !$0.isWhitespace })
        let shifts: [Character: UInt64] = ["K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60]
        var shift: UInt64 = 0
        if let last = digits.last?.uppercased().first, let s = shifts[last] {
            shift = s
            digits = digits.dropLast()
        }
        let radix: Int
        if digits.lowercased().hasPrefix("0x") { radix = 16; digits = digits.dropFirst(2) }
        else if digits.count > 1, digits.hasPrefix("0") { radix = 8; digits = digits.dropFirst() }
        else { radix = 10 }
        guard !digits.isEmpty, let value = UInt64(digits, radix: radix) else { return nil }
        guard shift == 0 || value <= UInt64.max >> shift else { return nil }
        return value << shift
    }
}
