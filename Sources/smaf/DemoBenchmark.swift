import Glibc
import SMAF
import SMAFSys

/// The demo's short benchmark: the framework path against the same
/// syscalls made directly, interleaved (A, B, A, B...) so machine drift
/// hits both alike. `smaf bench` is the full tool; this is the teaser.
struct DemoBenchmark {
    let registry: AllocatorRegistry
    let iterations: Int
    let sizes: [UInt64] = [4096, 1 << 20, 8 << 20]

    func table() throws -> String {
        var rows = [["ALLOCATOR", "SIZE", "FRAMEWORK", "RAW SYSCALLS", "RATIO"]]
        let udmabuf = UdmabufExporter()
        for plugin in registry.plugins where plugin.name == "memfd" {
            for size in sizes {
                var framework: [UInt64] = [], raw: [UInt64] = []
                for _ in 0..<iterations {
                    framework.append(try time {
                        let b = try registry.buffer(.bytes(size, allocator: plugin.name))
                        _ = try b.exportFD()
                        b.release()
                    })
                    raw.append(try time { try rawMemfd(size, udmabuf) })
                }
                let f = Stats(framework), r = Stats(raw)
                rows.append([plugin.name, formatBytes(size), f.text, r.text, String(format2(Double(f.median) / Double(max(r.median, 1))))])
            }
        }
        if rows.count == 1 { return "  (no memfd plugin loaded: nothing to compare with raw syscalls yet)" }
        return smaf.table(rows).map { "  " + $0 }.joined(separator: "\n")
    }

    /// What the memfd plugin does, minus the framework: memfd_create,
    /// ftruncate, seals, UDMABUF_CREATE (where present), dup for the export.
    private func rawMemfd(_ size: UInt64, _ udmabuf: UdmabufExporter) throws {
        let memfd = try Memfd.create(name: "smaf-raw", size: Memory.pageRounded(size)!)
        try Memfd.addSeals(memfd.rawValue, UdmabufExporter.requiredSeals)
        if udmabuf.isAvailable {
            let dmabuf = try udmabuf.export(memfd: memfd.rawValue, offset: 0, size: Memory.pageRounded(size)!, name: "smaf:raw")
            _ = try dmabuf.duplicate()
        } else {
            _ = try memfd.duplicate()
        }
    }

    private func time(_ body: () throws -> Void) throws -> UInt64 {
        let start = monotonicNanoseconds()
        try body()
        return monotonicNanoseconds() - start
    }
}

struct Stats {
    let median: UInt64
    let p90: UInt64
    init(_ samples: [UInt64]) {
        let s = samples.sorted()
        median = s[s.count / 2]
        p90 = s[min(s.count - 1, s.count * 9 / 10)]
    }
    var text: String { "\(micros(median)) (\(micros(p90)))" }
}

func micros(_ ns: UInt64) -> String { "\(format2(Double(ns) / 1000)) µs" }

func format2(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    let whole = Int(r), frac = Int(((r - Double(whole)) * 100).rounded())
    return "\(whole).\(frac < 10 ? "0" : "")\(frac)"
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
