// What the two command-line tools (smaf, smaf-bench) write and read alike:
// sizes in and out, and tables.

/// Parses `8M`, `4K`, `1G`, `1048576` or `0x1000` into bytes (K/M/G are 1024-based).
public func parseSize(_ text: String) -> UInt64? {
    let t = text.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "")
    if t.hasPrefix("0X") { return UInt64(t.dropFirst(2), radix: 16) }
    let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
    if let last = t.last, let unit = units[last] {
        guard let n = UInt64(t.dropLast()) else { return nil }
        let (v, o) = n.multipliedReportingOverflow(by: unit)
        return o ? nil : v
    }
    return UInt64(t)
}

/// 8388608 -> "8 MiB", 1228800 -> "1.17 MiB".
public func formatBytes(_ n: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    if i == 0 { return "\(n) B" }
    let rounded = (v * 100).rounded() / 100
    return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[i])" : "\(rounded) \(units[i])"
}

/// Left-aligned columns, two spaces apart.
public func table(_ rows: [[String]]) -> [String] {
    let widths = (0..<(rows.first?.count ?? 0)).map { c in rows.map { $0[c].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padded(widths[i]) }.joined(separator: "  ")
    }
}

extension String {
    public func replacingOccurrences(of a: String, with b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }

    public func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    public func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
