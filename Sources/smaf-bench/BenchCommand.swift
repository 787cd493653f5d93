import ArgumentParser
import Glibc
import SMAF
import SMAFCommandLine
import SMAFFormats
import SMAFProbe
import SMAFSys

/// smaf-bench: the benchmark harness, an executable of its own so that
/// the raw baselines it links (CSMAFBaseline: libdrm, GBM) stay off smaf's
/// link line. `smaf bench ARGS` runs it with ARGS; so does `smaf demo`, for
/// its teaser.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smaf bench",
        abstract: "Compare allocators on this machine and measure what the framework costs over the raw syscalls.",
        discussion: """
        For each allocator and size it times the phases of a buffer's life \
        separately: allocate, export to an fd, first CPU touch of every page, import \
        into each DRM device that takes the buffer, release. Each cold cycle through \
        smaf is paired with the same backend's raw syscalls (CSMAFBaseline: \
        CREATE_DUMB + PRIME export, gbm_bo_create + gbm_bo_get_fd, memfd + seals + \
        UDMABUF_CREATE, DMA_HEAP_IOCTL_ALLOC), run A, B, A, B so drift hits both; the \
        headline is the median ratio smaf/raw of allocate + export + release. Then \
        the same through a BufferPool (scrubbed and not), and the cost of one more \
        allocation with 1 to 1,000 buffers live.

        A size is laid out as an XR24 image 1024 pixels wide, so every allocator, \
        image-only ones included, gets the same bytes. Absolute times in a VM are not \
        hardware times; the ratios, measured side by side, are. docs/BENCHMARKS.md \
        has the method and one run.
        """
    )

    @Option(name: .customLong("allocator"), help: "Measure this allocator (repeat for several; default: every loaded one).")
    var allocators: [String] = []
    @Option(name: .customLong("device"), help: "Attach this device to every buffer: a descriptor file (JSON) or a DRM node to probe.")
    var devices: [String] = []
    @Option(help: "Sizes, comma separated (multiples of 4K).")
    var sizes: String?
    @Option(help: "Images instead of sizes: WIDTHxHEIGHT:FORMAT, comma separated (1920x1080:XR24).")
    var image: String?
    @Option(help: "Cycles per allocator, size and mode (default 30).")
    var iterations: Int?
    @Option(help: "Instead of --iterations: seconds per allocator, size and mode (at least 3 cycles).")
    var seconds: Double?
    @Option(help: "Modes, comma separated: cold, pooled, pooled-noscrub.")
    var modes = "cold,pooled,pooled-noscrub"
    @Option(help: "Live-buffer populations for the scale run, comma separated (empty: skip it).")
    var live = "1,10,100,1000"
    @Flag(name: .customLong("no-touch"), help: "Skip the CPU touch phase.")
    var noTouch = false
    @Flag(name: .customLong("no-import"), help: "Skip the DRM import phase.")
    var noImport = false
    @Flag(help: "Print the whole report as JSON.")
    var json = false
    @Flag(help: "Print one CSV line per result and phase.")
    var csv = false
    @Option(help: "Write a chart (SVG) to this file: latency against size and against live buffers, log-log.")
    var plot: String?
    /// `smaf demo`'s last section: the ratio table alone (DemoBenchmark).
    @Flag(help: .hidden) var teaser = false

    static func main() { runWithOneErrorRule() }

    static let defaultSizes = "4K,64K,1M,8M,32M"

    func validate() throws {
        if sizes != nil && image != nil { throw ValidationError("give --sizes or --image, not both") }
        if iterations != nil && seconds != nil { throw ValidationError("give --iterations or --seconds, not both") }
        if json && csv { throw ValidationError("give --json or --csv, not both") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
        if let seconds, !(seconds > 0) { throw ValidationError("--seconds must be more than 0") }
    }

    func plan() throws -> BenchPlan {
        var plan = BenchPlan()
        plan.allocators = allocators
        plan.shapes = try image.map(Self.images) ?? Self.sizes(sizes ?? Self.defaultSizes)
        plan.iterations = iterations ?? 30
        plan.seconds = seconds
        plan.modes = try modes.split(separator: ",").map { text in
            guard let m = BenchMode(rawValue: String(text)) else {
                throw CommandFailure(message: "--modes: '\(text)' is not one of cold, pooled, pooled-noscrub", code: 64)
            }
            return m
        }
        plan.liveCounts = try live.split(separator: ",").map { text in
            guard let n = Int(text), n >= 1, n <= 100_000 else {
                throw CommandFailure(message: "--live: '\(text)' is not a count from 1 to 100000", code: 64)
            }
            return n
        }
        plan.touch = !noTouch
        plan.importDRM = !noImport
        plan.devices = try devices.map { path throws(SMAFError) in
            path.hasPrefix("/dev/dri/") ? try DeviceConstraints.probe(node: path) : try DeviceConstraints.load(path: path)
        }
        return plan
    }

    static func sizes(_ text: String) throws -> [BenchShape] {
        try text.split(separator: ",").map { part in
            guard let bytes = parseSize(String(part)) else {
                throw CommandFailure(message: "--sizes: '\(part)' is not a size (examples: 4K, 64K, 1M, 8M)", code: 64)
            }
            guard let shape = BenchShape.bytes(bytes) else {
                throw CommandFailure(message: "--sizes: \(part) is not a multiple of 4 KiB (each size is laid out as 1024-pixel XR24 rows)", code: 64)
            }
            return shape
        }
    }

    static func images(_ text: String) throws -> [BenchShape] {
        try text.split(separator: ",").map { part in
            let fields = part.split(separator: ":")
            let dims = fields.first?.lowercased().split(separator: "x") ?? []
            guard fields.count == 2, dims.count == 2, let w = UInt32(dims[0]), let h = UInt32(dims[1]), w > 0, h > 0,
                  let format = FourCC(parsing: String(fields[1])) else {
                throw CommandFailure(message: "--image: '\(part)' is not WIDTHxHEIGHT:FORMAT (example: 1920x1080:XR24)", code: 64)
            }
            return BenchShape(label: "\(w)x\(h):\(format.code)", width: w, height: h, format: format)
        }
    }

    func run() throws {
        if teaser {
            print(try DemoBenchmark(registry: try AllocatorRegistry.load(), iterations: iterations ?? 200).table())
            return
        }
        let plan = try plan()
        let registry = try AllocatorRegistry.load()
        let command = (["smaf", "bench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        var report = BenchRunner(registry: registry, plan: plan, command: command, progress: BenchProgress()).run()
        report.notes += Self.missingPlugins(registry, asked: allocators)
        if let plot {
            let svg = BenchSVG.render(report)
            do { try writeFile(plot, svg) } catch { throw CommandFailure(message: "--plot: \(error)") }
        }
        if json { try printJSON(report) }
        else if csv { print(BenchTable.csv(report)) }
        else { print(BenchTable.text(report)) }
    }

    /// A visible line for each shipped allocator that did not load (gbm and
    /// cma need their libraries; a refused plugin says why).
    static func missingPlugins(_ registry: AllocatorRegistry, asked: [String]) -> [String] {
        guard asked.isEmpty, registry.configuration.searchDefaultPaths else { return [] }
        return ["memfd", "dmaheap", "dumb", "gbm", "cma"].filter { registry.plugin(named: $0) == nil }.map { name in
            let why = registry.loadWarnings.first { $0.plugin == name || $0.path.hasSuffix("libsmafplugin_\(name).so") }
            return "\(name): not measured: \(why?.description ?? "libsmafplugin_\(name).so did not load (not built or not found)")"
        }
    }
}
