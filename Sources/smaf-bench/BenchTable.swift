import Glibc
import SMAFCommandLine
import SMAFSys

/// The text and CSV views of a bench report. The text view keeps every
/// line within 100 columns; the JSON (--json) has everything.
enum BenchTable {
    /// The whole report as text.
    static func text(_ r: BenchReport) -> String {
        var out: [String] = []
        out.append("machine: \(r.machine.kernel), \(r.machine.cpus) x \(r.machine.cpu), \(r.machine.memory_mib) MiB"
            + (r.machine.in_vm ? " (the VM test bed: QEMU times, not hardware times)" : ""))
        let cycles = r.seconds.map { "\(format(seconds: $0)) s per cell" } ?? "\(r.iterations ?? 0) cycles per cell"
        if !r.ratios.isEmpty {
            out.append("")
            out.append("framework vs raw syscalls: allocate + export + release, cold, interleaved, \(cycles);")
            out.append("RATIO: median of smaf/raw per pair; +TOUCH: the same with the first CPU touch; TARGET: RATIO's")
            out += ratioTable(r)
        }
        if !r.results.isEmpty {
            out.append("")
            out.append("phases, median (touch: one write per page, GB/s; import: into \(importers(r)))")
            out += phaseTable(r)
        }
        if !r.pool.isEmpty {
            out.append("")
            out.append("buffer pool: allocate phase, fresh vs recycled (median)")
            var rows = [["ALLOCATOR", "SIZE", "FRESH", "RECYCLED+SCRUB", "SPEEDUP", "RECYCLED", "SPEEDUP"]]
            for p in r.pool {
                rows.append([p.allocator, p.shape, time(p.fresh_allocate_ns), time(p.recycled_scrubbed_ns),
                             "\(format(p.speedup_scrubbed))x", time(p.recycled_unscrubbed_ns), "\(format(p.speedup_unscrubbed))x"])
            }
            out += indent(table(rows))
        }
        if !r.scale.isEmpty {
            out.append("")
            out.append("live buffers: allocating one more while N are held, and releasing them (per buffer)")
            var rows = [["ALLOCATOR", "SIZE", "LIVE", "ALLOC P50", "P90", "P99", "RELEASE"]]
            for s in r.scale {
                rows.append([s.allocator, s.shape, "\(s.live)", time(s.allocate.median_ns), time(s.allocate.p90_ns),
                             time(s.allocate.p99_ns), time(s.release_per_buffer_ns)])
            }
            out += indent(table(rows))
        }
        if !r.notes.isEmpty {
            out.append("")
            out.append("notes:")
            out += r.notes.flatMap { wrap($0, width: 98).enumerated().map { ($0.offset == 0 ? "  " : "    ") + $0.element } }
        }
        return out.joined(separator: "\n")
    }

    /// The demo's short table: allocator x size, framework vs raw, ratio.
    static func ratioTable(_ r: BenchReport) -> [String] {
        // Raw p90 is in the JSON; the table keeps to 100 columns.
        var rows = [["ALLOCATOR", "SIZE", "SMAF P50", "P90", "P99", "RAW P50", "P99", "RATIO", "+TOUCH", "TARGET"]]
        for ratio in r.ratios {
            guard let smaf = find(r, ratio.allocator, ratio.shape, "cold", "smaf"),
                  let raw = find(r, ratio.allocator, ratio.shape, "cold", "raw") else { continue }
            let target = ratio.target.map { "\(format($0)) \(ratio.meets_target == true ? "ok" : "MISS")" } ?? "-"
            rows.append([ratio.allocator, ratio.shape, time(smaf.cycle.median_ns), time(smaf.cycle.p90_ns), time(smaf.cycle.p99_ns),
                         time(raw.cycle.median_ns), time(raw.cycle.p99_ns), format(ratio.ratio),
                         ratio.ratio_with_touch.map { format($0) } ?? "-", target])
        }
        return indent(table(rows))
    }

    private static func phaseTable(_ r: BenchReport) -> [String] {
        var rows = [["ALLOCATOR", "SIZE", "PATH", "ALLOCATE", "EXPORT", "TOUCH", "GB/S", "IMPORT", "RELEASE"]]
        for x in r.results {
            let p = x.phases
            func t(_ phase: String) -> String { p[phase].map { time($0.median_ns) } ?? "-" }
            let path = x.path == "raw" ? "raw" : x.mode == "cold" ? "smaf" : x.mode == "pooled" ? "smaf pool" : "pool noscrub"
            rows.append([x.allocator, x.shape, path, t("allocate"), t("export"), t("touch"),
                         x.touch_gb_per_s.map { format($0) } ?? "-", x.import_into.isEmpty ? "-" : t("import"), t("release")])
        }
        return indent(table(rows))
    }

    private static func importers(_ r: BenchReport) -> String {
        var seen: [String] = []
        for x in r.results { for d in x.import_into where !seen.contains(d) { seen.append(d) } }
        return seen.isEmpty ? "no DRM device" : "every DRM device that takes the buffer: \(seen.joined(separator: ", "))"
    }

    private static func find(_ r: BenchReport, _ a: String, _ shape: String, _ mode: String, _ path: String) -> BenchResult? {
        r.results.first { $0.allocator == a && $0.shape == shape && $0.mode == mode && $0.path == path }
    }

    private static func indent(_ lines: [String]) -> [String] { lines.map { "  " + $0 } }

    /// `text` in lines of at most `width` characters, broken at spaces.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        return line.isEmpty ? lines : lines + [line]
    }

    /// One line per result and phase (plus the cycle), ratio on the smaf
    /// cold cycle rows.
    static func csv(_ r: BenchReport) -> String {
        var lines = ["allocator,shape,bytes,mode,path,phase,median_ns,p90_ns,p99_ns,samples,touch_gb_per_s,ratio"]
        for x in r.results {
            let ratio = x.path == "smaf" && x.mode == "cold"
                ? r.ratios.first { $0.allocator == x.allocator && $0.shape == x.shape }.map { format($0.ratio, digits: 4) } ?? "" : ""
            let rows = BenchPhase.allCases.compactMap { p in x.phases[p.name].map { (p.name, $0) } } + [("cycle", x.cycle)]
            for (phase, q) in rows {
                let gbps = phase == "touch" ? x.touch_gb_per_s.map { format($0, digits: 3) } ?? "" : ""
                lines.append([x.allocator, csvField(x.shape), "\(x.bytes)", x.mode, x.path, phase, "\(q.median_ns)", "\(q.p90_ns)",
                              "\(q.p99_ns)", "\(q.samples)", gbps, phase == "cycle" ? ratio : ""].joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    // MARK: - Numbers

    /// 812ns, 12.3µs, 1.23ms, 1.23s: at most 7 columns.
    static func time(_ ns: UInt64) -> String {
        let v = Double(ns)
        if v < 1_000 { return "\(ns)ns" }
        if v < 1_000_000 { return "\(format(v / 1_000, digits: v < 100_000 ? 1 : 0))µs" }
        if v < 1_000_000_000 { return "\(format(v / 1_000_000, digits: v < 100_000_000 ? 2 : 1))ms" }
        return "\(format(v / 1_000_000_000, digits: 2))s"
    }

    static func format(seconds: Double) -> String { format(seconds, digits: seconds < 10 ? 1 : 0) }

    /// A fixed number of decimals, no Foundation.
    static func format(_ v: Double, digits: Int = 2) -> String {
        guard v.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let n = Int64((abs(v) * scale).rounded())
        let whole = n / Int64(scale), frac = n % Int64(scale)
        var f = String(frac)
        while f.count < digits { f = "0" + f }
        return (v < 0 && n != 0 ? "-" : "") + (digits == 0 ? "\(whole)" : "\(whole).\(f)")
    }
}

/// A progress bar on stderr while the bench runs, only when stderr is a terminal.
final class BenchProgress {
    private let enabled: Bool
    private var total = 1, done = 0
    var label = "" { didSet { draw() } }

    init(enabled: Bool = isatty(2) == 1) { self.enabled = enabled }

    func start(total: Int) {
        self.total = max(total, 1)
        done = 0
        draw()
    }

    func advance(by n: Int) {
        done = min(total, done + n)
        draw()
    }

    func finish() {
        guard enabled else { return }
        writeRaw("\r\u{1B}[K")
    }

    private func draw() {
        guard enabled else { return }
        let width = 30, filled = width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        writeRaw("\r\u{1B}[K[\(bar)] \(100 * done / total)% \(label.prefix(50))")
    }

    private func writeRaw(_ s: String) {
        var s = s
        s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}
