import Glibc
import SMAFCommandLine

/// `smaf bench --plot FILE.svg`: two log-log panels a browser shows as is.
/// Left, the cold cycle (allocate + export + release) against buffer size,
/// one line per allocator, its raw baseline dashed in the same colour.
/// Right, allocating one more buffer against the number already live.
enum BenchSVG {
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    struct Series {
        var name: String
        var color: String
        var dashed: Bool
        var points: [(x: Double, y: Double)]
    }

    static func render(_ r: BenchReport) -> String {
        let allocators = r.results.reduce(into: [String]()) { if !$0.contains($1.allocator) { $0.append($1.allocator) } }
        func color(_ a: String) -> String { colors[(allocators.firstIndex(of: a) ?? 0) % colors.count] }

        var sizeSeries: [Series] = []
        for a in allocators {
            for path in ["smaf", "raw"] {
                let points = r.results.filter { $0.allocator == a && $0.mode == "cold" && $0.path == path }
                    .map { (x: Double($0.bytes), y: Double($0.cycle.median_ns) / 1000) }.sorted { $0.x < $1.x }
                if !points.isEmpty {
                    sizeSeries.append(Series(name: path == "raw" ? "\(a) raw" : a, color: color(a), dashed: path == "raw", points: points))
                }
            }
        }
        var liveSeries: [Series] = []
        for a in allocators {
            let points = r.scale.filter { $0.allocator == a }.map { (x: Double($0.live), y: Double($0.allocate.median_ns) / 1000) }
            if !points.isEmpty { liveSeries.append(Series(name: a, color: color(a), dashed: false, points: points)) }
        }

        let width = 1000.0, height = 520.0
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" \
        font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(width / 2))" y="22" text-anchor="middle" font-size="15">\(escape(title(r)))</text>

        """
        svg += panel(x: 70, y: 50, w: 400, h: 380, series: sizeSeries, title: "cold cycle (allocate + export + release), median",
                     xLabel: "buffer size", yLabel: "time", xTick: bytesLabel)
        svg += panel(x: 580, y: 50, w: 400, h: 380, series: liveSeries,
                     title: "allocating one more buffer, median", xLabel: "live buffers", yLabel: "time", xTick: { "\(Int($0))" })
        // Legend: one entry per allocator, and what dashed means.
        var lx = 70.0
        let ly = 480.0
        for a in allocators {
            svg += "<line x1=\"\(lx)\" y1=\"\(ly)\" x2=\"\(lx + 24)\" y2=\"\(ly)\" stroke=\"\(color(a))\" stroke-width=\"2.5\"/>"
            svg += "<text x=\"\(lx + 30)\" y=\"\(ly + 4)\">\(escape(a))</text>\n"
            lx += 40 + Double(a.count) * 8
        }
        svg += "<line x1=\"\(lx + 10)\" y1=\"\(ly)\" x2=\"\(lx + 34)\" y2=\"\(ly)\" stroke=\"#555\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>"
        svg += "<text x=\"\(lx + 40)\" y=\"\(ly + 4)\">raw syscalls (CSMAFBaseline), same colour</text>\n"
        svg += "<text x=\"70\" y=\"505\" fill=\"#555\" font-size=\"11\">\(escape(caveat(r)))</text>\n"
        return svg + "</svg>\n"
    }

    private static func title(_ r: BenchReport) -> String {
        "smaf bench: \(r.machine.kernel)"
    }

    private static func caveat(_ r: BenchReport) -> String {
        r.machine.in_vm || r.machine.hypervisor
            ? "Measured in a virtual machine: absolute times are not hardware times; ratios measured side by side are."
            : "Median of interleaved cycles; see docs/BENCHMARKS.md for the method."
    }

    /// One log-log panel with decade (or power-of-four) grid lines.
    private static func panel(x: Double, y: Double, w: Double, h: Double, series: [Series], title: String,
                              xLabel: String, yLabel: String, xTick: (Double) -> String) -> String {
        var s = "<g>\n<text x=\"\(x + w / 2)\" y=\"\(y - 8)\" text-anchor=\"middle\" font-size=\"13\">\(escape(title))</text>\n"
        s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(w)\" height=\"\(h)\" fill=\"none\" stroke=\"#888\"/>\n"
        let all = series.flatMap(\.points).filter { $0.x > 0 && $0.y > 0 }
        guard let minX = all.map(\.x).min(), let maxX = all.map(\.x).max(),
              let minY = all.map(\.y).min(), let maxY = all.map(\.y).max() else {
            return s + "<text x=\"\(x + w / 2)\" y=\"\(y + h / 2)\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n</g>\n"
        }
        let x0 = log10(minX), x1 = max(log10(maxX), x0 + 1)
        let y0 = floor(log10(minY)), y1 = max(ceil(log10(maxY)), y0 + 1)
        func px(_ v: Double) -> Double { x + (log10(v) - x0) / (x1 - x0) * w }
        func py(_ v: Double) -> Double { y + h - (log10(v) - y0) / (y1 - y0) * h }
        // Y grid: decades, labelled in µs.
        var d = y0
        while d <= y1 {
            let v = pow(10, d), gy = py(v)
            s += "<line x1=\"\(x)\" y1=\"\(gy)\" x2=\"\(x + w)\" y2=\"\(gy)\" stroke=\"#ddd\"/>"
            s += "<text x=\"\(x - 6)\" y=\"\(gy + 4)\" text-anchor=\"end\">\(escape(number(v)))</text>\n"
            d += 1
        }
        // X grid: the data's own x values (sizes or live counts).
        for v in Set(all.map(\.x)).sorted() {
            let gx = px(v)
            s += "<line x1=\"\(gx)\" y1=\"\(y)\" x2=\"\(gx)\" y2=\"\(y + h)\" stroke=\"#eee\"/>"
            s += "<text x=\"\(gx)\" y=\"\(y + h + 16)\" text-anchor=\"middle\" font-size=\"10\">\(escape(xTick(v)))</text>\n"
        }
        s += "<text x=\"\(x + w / 2)\" y=\"\(y + h + 34)\" text-anchor=\"middle\">\(escape(xLabel)) (log scale)</text>\n"
        s += "<text x=\"\(x - 50)\" y=\"\(y + h / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 \(x - 50) \(y + h / 2))\">\(escape(yLabel)) (log scale)</text>\n"
        for line in series {
            let pts = line.points.filter { $0.x > 0 && $0.y > 0 }.map { "\(fmt(px($0.x))),\(fmt(py($0.y)))" }
            let dash = line.dashed ? " stroke-dasharray=\"6 4\"" : ""
            s += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"\(line.dashed ? 1.8 : 2.5)\"\(dash) points=\"\(pts.joined(separator: " "))\">"
            s += "<title>\(escape(line.name))</title></polyline>\n"
            for p in line.points where p.x > 0 && p.y > 0 && !line.dashed {
                s += "<circle cx=\"\(fmt(px(p.x)))\" cy=\"\(fmt(py(p.y)))\" r=\"3\" fill=\"\(line.color)\"/>"
            }
            s += "\n"
        }
        return s + "</g>\n"
    }

    private static func bytesLabel(_ v: Double) -> String {
        formatBytes(UInt64(v)).replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "iB", with: "")
    }

    /// A y value in µs as 10µs, 1ms, 100ms, 1s.
    private static func number(_ v: Double) -> String {
        let ns = v * 1000
        if ns < 1_000 { return "\(Int(ns.rounded()))ns" }
        if ns < 1_000_000 { return "\(Int((ns / 1_000).rounded()))µs" }
        if ns < 1_000_000_000 { return "\(Int((ns / 1_000_000).rounded()))ms" }
        return "\(Int((ns / 1_000_000_000).rounded()))s"
    }

    private static func fmt(_ v: Double) -> String { BenchTable.format(v, digits: 1) }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
