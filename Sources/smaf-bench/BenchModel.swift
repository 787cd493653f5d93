import Glibc
import SMAF
import SMAFCommandLine
import SMAFFormats
import SMAFSys

/// What `smaf bench` measures and reports: the phases of a buffer's life,
/// their percentiles, and the JSON document (--json) every view is drawn from.

enum BenchPhase: Int, CaseIterable, Sendable {
    case allocate, export, touch, importDRM, release

    var name: String {
        switch self {
        case .allocate: "allocate"
        case .export: "export"
        case .touch: "touch"
        case .importDRM: "import"
        case .release: "release"
        }
    }

    /// The phases the headline ratio adds up: what the framework itself does
    /// (touch and import are the same syscalls on the same memory either way).
    static let cycle: [BenchPhase] = [.allocate, .export, .release]
}

/// One measured cycle: nanoseconds per phase.
struct PhaseTimes: Sendable {
    var ns = [UInt64](repeating: 0, count: BenchPhase.allCases.count)
    subscript(_ p: BenchPhase) -> UInt64 {
        get { ns[p.rawValue] }
        set { ns[p.rawValue] = newValue }
    }
    var cycle: UInt64 { BenchPhase.cycle.reduce(0) { $0 + self[$1] } }
    /// The cycle plus the first CPU touch: fair to backends that populate
    /// pages lazily (raw dumb and gbm buffers get their pages at first touch,
    /// the dumb and gbm plugins at allocation).
    var cycleWithTouch: UInt64 { cycle + self[.touch] }
}

/// Median, p90 and p99 of a set of samples (nearest rank).
struct Percentiles: Codable, Sendable {
    var median_ns: UInt64
    var p90_ns: UInt64
    var p99_ns: UInt64
    var samples: Int

    init(_ values: [UInt64]) {
        let s = values.sorted()
        func rank(_ q: Double) -> UInt64 {
            guard !s.isEmpty else { return 0 }
            return s[min(s.count - 1, max(0, Int((q * Double(s.count)).rounded(.up)) - 1))]
        }
        median_ns = rank(0.5)
        p90_ns = rank(0.9)
        p99_ns = rank(0.99)
        samples = s.count
    }
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    guard !s.isEmpty else { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// A buffer shape the bench asks for: a byte size (laid out as an XR24
/// image 1024 pixels wide, so image-only allocators such as dumb and gbm
/// take the very same bytes) or an image from --image.
struct BenchShape: Sendable, Hashable {
    var label: String
    var width: UInt32
    var height: UInt32
    var format: FourCC

    static let byteWidth: UInt32 = 1024

    /// `bytes` as a 1024-pixel-wide XR24 image: a multiple of 4 KiB.
    static func bytes(_ bytes: UInt64) -> BenchShape? {
        let row = UInt64(byteWidth) * 4
        guard bytes >= row, bytes % row == 0, let height = UInt32(exactly: bytes / row) else { return nil }
        return BenchShape(label: formatBytes(bytes), width: byteWidth, height: height, format: .xrgb8888)
    }

    /// A tightly packed linear layout's size.
    var bytes: UInt64 { (try? ImageLayout.linear(width: width, height: height, format: format).size) ?? 0 }
    var isByteSize: Bool { label == formatBytes(bytes) }
    var bitsPerPixel: UInt32 { FormatInfo.lookup(format)?.bitsPerPixel ?? 32 }

    func request(allocator: String) -> BufferRequest {
        .image(width: width, height: height, format: format, allocator: allocator)
    }
}

/// How the framework side gets its buffer.
enum BenchMode: String, Codable, Sendable, CaseIterable {
    /// A fresh allocation every cycle, released at the end (interleaved with raw).
    case cold
    /// BufferPool.acquire (scrubbed) and recycle.
    case pooled
    /// BufferPool.acquire(scrub: false): for buffers whose old contents may be seen.
    case pooledNoScrub = "pooled-noscrub"
}

// MARK: - The JSON document

struct BenchReport: Codable {
    var command: String
    var machine: MachineInfo
    var iterations: Int?
    var seconds: Double?
    /// One per allocator x shape x mode x path (smaf or raw).
    var results: [BenchResult] = []
    /// framework / raw per allocator and shape, cold cycles interleaved.
    var ratios: [BenchRatio] = []
    /// Recycled against fresh, per allocator at each size.
    var pool: [PoolFigure] = []
    /// Cost against the number of live buffers.
    var scale: [ScaleRow] = []
    /// Allocators not measured (or not compared with raw), and why.
    var notes: [String] = []
}

struct BenchResult: Codable {
    var allocator: String
    var shape: String
    /// The bytes the shape asks for (what the chart's x axis shows).
    var bytes: UInt64
    /// What the allocator actually made (drivers pad: kms_swrast's 1024x1 BO is 256 KiB).
    var allocated_bytes: UInt64
    var mode: String
    /// "smaf" (the framework) or "raw" (CSMAFBaseline).
    var path: String
    var phases: [String: Percentiles]
    /// allocate + export + release.
    var cycle: Percentiles
    /// Bytes touched per second at the median touch time.
    var touch_gb_per_s: Double?
    /// DRM drivers the import phase imported into.
    var import_into: [String]
    var exporter: String
}

struct BenchRatio: Codable {
    var allocator: String
    var shape: String
    var bytes: UInt64
    /// Median over cycles of smaf cycle time / raw cycle time of the same pair.
    var ratio: Double
    /// The same with the first CPU touch included (touch phase measured).
    var ratio_with_touch: Double?
    /// Per phase, the ratio of the medians (phase boundaries differ a little, see docs/BENCHMARKS.md).
    var phase_ratios: [String: Double]
    /// 1.20 at 4 KiB, 1.05 at 1 MiB and above; nil in between.
    var target: Double?
    var meets_target: Bool?
}

struct PoolFigure: Codable {
    var allocator: String
    var shape: String
    var bytes: UInt64
    var fresh_allocate_ns: UInt64
    var recycled_scrubbed_ns: UInt64
    var recycled_unscrubbed_ns: UInt64
    var speedup_scrubbed: Double
    var speedup_unscrubbed: Double
}

struct ScaleRow: Codable {
    var allocator: String
    var shape: String
    var live: Int
    /// allocate + export of one more buffer with `live - 1` already held.
    var allocate: Percentiles
    /// Releasing all of them, per buffer.
    var release_per_buffer_ns: UInt64
}

struct MachineInfo: Codable {
    var kernel: String
    var cpu: String
    var cpus: Int
    var memory_mib: UInt64
    var in_vm: Bool
    var hypervisor: Bool
    var cmdline: String
    var transparent_hugepage: String
    var udmabuf_size_limit: UInt64?

    static func current() -> MachineInfo {
        var u = utsname()
        uname(&u)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let cpuinfo = (try? readFile("/proc/cpuinfo")) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { String($0.drop { $0 == " " }) } ?? "unknown"
        let memKB = ((try? readFile("/proc/meminfo")) ?? "").split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { UInt64($0) } ?? 0
        let thp = ((try? readFile("/sys/kernel/mm/transparent_hugepage/enabled")) ?? "unknown")
        return MachineInfo(
            kernel: "\(field(u.sysname)) \(field(u.release)) \(field(u.machine))",
            cpu: model, cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), memory_mib: memKB / 1024,
            in_vm: Environment.value("SMAFVM_GUEST") == "1",
            hypervisor: cpuinfo.contains(" hypervisor"),
            cmdline: ((try? readFile("/proc/cmdline")) ?? "").trimmingNewlines,
            transparent_hugepage: thp.trimmingNewlines,
            udmabuf_size_limit: Udmabuf.sizeLimit())
    }
}

private func readFile(_ path: String) throws -> String { try readTextFile(path) }

extension String {
    var trimmingNewlines: String {
        var s = Substring(self)
        while s.last == "\n" || s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
