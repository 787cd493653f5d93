import CSMAFBaseline
import Glibc
import SMAF
import SMAFDRM
import SMAFPool
import SMAFSys

/// What to measure; BenchCommand fills it from the command line, the demo
/// with its own short settings.
struct BenchPlan {
    var allocators: [String] = []
    var shapes: [BenchShape] = []
    /// Cycles per cell, or a time budget per cell (at least 3 cycles).
    var iterations = 30
    var seconds: Double?
    var modes: [BenchMode] = BenchMode.allCases
    /// Extra devices attached to every framework buffer (--device).
    var devices: [DeviceConstraints] = []
    var touch = true
    var importDRM = true
    /// Populations for the live-buffer scale run; empty skips it.
    var liveCounts: [Int] = []
    var liveShape: BenchShape? = .bytes(64 << 10)
}

/// Runs the plan: per allocator and shape, the framework's cycle and the
/// raw one interleaved (A, B, A, B...) so drift hits both alike, then the
/// pooled modes and the live-buffer scale.
final class BenchRunner {
    let registry: AllocatorRegistry
    let plan: BenchPlan
    let pool: BufferPool
    let progress: BenchProgress
    /// Every primary node, opened once; the import phase uses those that take the buffer.
    private let drm: [DRMDevice]
    private var raw: [String: RawBackend] = [:]
    private var report: BenchReport

    init(registry: AllocatorRegistry, plan: BenchPlan, command: String, progress: BenchProgress) {
        self.registry = registry
        self.plan = plan
        self.progress = progress
        // Large enough that every pooled mode keeps its one buffer.
        pool = BufferPool(registry: registry, limits: .init(maxCount: 4, maxBytes: 1 << 30, idleExpiry: .seconds(600)))
        drm = plan.importDRM ? DRMDevice.primaryNodes().compactMap { try? DRMDevice(path: $0) } : []
        report = BenchReport(command: command, machine: .current(), iterations: plan.seconds == nil ? plan.iterations : nil,
                             seconds: plan.seconds)
    }

    /// The allocators the plan names that are loaded, in rank order; a named
    /// one that is not loaded gets a note.
    var allocators: [String] {
        let loaded = registry.plugins.map(\.name)
        return plan.allocators.isEmpty ? loaded : plan.allocators.filter(loaded.contains)
    }

    func run() -> BenchReport {
        for name in plan.allocators where registry.plugin(named: name) == nil {
            note("\(name): not loaded (smaf list shows the loaded allocators; libsmafplugin_\(name).so may be missing or refused)")
        }
        raiseFileLimit()
        progress.start(total: allocators.count * plan.shapes.count * plan.modes.count + allocators.count * plan.liveCounts.count)
        for name in allocators {
            for shape in plan.shapes { measure(name, shape) }
            if let shape = plan.liveShape { scale(name, shape) }
        }
        progress.finish()
        return report
    }

    private var devices: [DeviceConstraints] {
        var cpu = DeviceConstraints(name: "cpu", usage: [.cpuRead, .cpuWrite])
        cpu.cpuAccess = true
        return plan.devices + (plan.touch ? [cpu] : [])
    }

    private func note(_ text: String) {
        if !report.notes.contains(text) { report.notes.append(text) }
    }

    // MARK: - One allocator, one shape

    private func measure(_ name: String, _ shape: BenchShape) {
        // A first buffer tells what the allocator makes of this shape, which
        // devices import it, and which raw backend matches.
        let probe: (Allocation, [DRMDevice])
        do { probe = try self.probe(name, shape) } catch {
            note("\(name) \(shape.label): not measured: \(error)")
            progress.advance(by: plan.modes.count)
            return
        }
        let (allocation, importers) = probe
        var backend: RawBackend?
        switch raw[name].map({ Result<RawBackend, BenchSkip>.success($0) }) ?? RawBackend.matching(allocator: name, allocation, log: Logger(level: registry.configuration.logLevel)) {
        case .success(let b): backend = b; raw[name] = b
        case .failure(let skip): note(skip.message)
        }
        for mode in plan.modes {
            progress.label = "\(name) \(shape.label) \(mode.rawValue)"
            do {
                try cell(name, shape, mode, allocation, importers, mode == .cold ? backend : nil)
            } catch {
                note("\(name) \(shape.label) \(mode.rawValue): stopped: \(error)")
            }
            progress.advance(by: 1)
        }
        poolFigure(name, shape)
    }

    private func probe(_ name: String, _ shape: BenchShape) throws -> (Allocation, [DRMDevice]) {
        let buffer = try registry.buffer(shape.request(allocator: name), devices: devices)
        defer { try? buffer.release() } // not secure: nothing to scrub
        let fd = try buffer.exportFD()
        let a = try buffer.materialize()
        let importers = a.isDmaBuf ? drm.filter { d in (try? d.importDmaBuf(fd.rawValue)) != nil } : []
        return (a, importers)
    }

    private func cell(_ name: String, _ shape: BenchShape, _ mode: BenchMode, _ a: Allocation,
                      _ importers: [DRMDevice], _ backend: RawBackend?) throws {
        if mode != .cold { pool.drain() }
        // One warm-up cycle each, not recorded (first-use costs, the pool's miss).
        _ = try frameworkCycle(name, shape, mode, importers)
        _ = try backend?.cycle(shape, touch: plan.touch, importInto: importers)
        var smaf: [PhaseTimes] = [], rawTimes: [PhaseTimes] = []
        let start = csmaf_baseline_now_ns()
        while true {
            smaf.append(try frameworkCycle(name, shape, mode, importers))
            if let backend { rawTimes.append(try backend.cycle(shape, touch: plan.touch, importInto: importers)) }
            if let seconds = plan.seconds {
                if smaf.count >= 3 && Double(csmaf_baseline_now_ns() - start) / 1e9 >= seconds { break }
            } else if smaf.count >= plan.iterations { break }
        }
        pool.drain()
        let drivers = importers.map(\.driver)
        report.results.append(result(name, shape, mode, "smaf", smaf, a.size, drivers, a.exporter))
        guard let backend, !rawTimes.isEmpty else { return }
        report.results.append(result(name, shape, mode, "raw", rawTimes, a.size, drivers, backend.label))
        let paired = zip(smaf, rawTimes).map { Double($0.cycle) / Double(max($1.cycle, 1)) }
        var phaseRatios: [String: Double] = [:]
        for p in BenchPhase.allCases {
            let f = Percentiles(smaf.map { $0[p] }).median_ns, r = Percentiles(rawTimes.map { $0[p] }).median_ns
            if r > 0 && (p != .touch || plan.touch) && (p != .importDRM || !importers.isEmpty) { phaseRatios[p.name] = Double(f) / Double(r) }
        }
        let ratio = median(paired)
        let withTouch = plan.touch ? median(zip(smaf, rawTimes).map { Double($0.cycleWithTouch) / Double(max($1.cycleWithTouch, 1)) }) : nil
        let target: Double? = shape.bytes <= 4096 ? 1.20 : shape.bytes >= 1 << 20 ? 1.05 : nil
        report.ratios.append(BenchRatio(allocator: name, shape: shape.label, bytes: shape.bytes, ratio: ratio, ratio_with_touch: withTouch,
                                        phase_ratios: phaseRatios, target: target, meets_target: target.map { ratio <= $0 }))
    }

    private func result(_ name: String, _ shape: BenchShape, _ mode: BenchMode, _ path: String, _ times: [PhaseTimes],
                        _ bytes: UInt64, _ drivers: [String], _ exporter: String) -> BenchResult {
        var phases: [String: Percentiles] = [:]
        for p in BenchPhase.allCases { phases[p.name] = Percentiles(times.map { $0[p] }) }
        let touch = phases["touch"]?.median_ns ?? 0
        return BenchResult(allocator: name, shape: shape.label, bytes: shape.bytes, allocated_bytes: bytes, mode: mode.rawValue, path: path, phases: phases,
                           cycle: Percentiles(times.map(\.cycle)),
                           touch_gb_per_s: plan.touch && touch > 0 ? Double(bytes) / Double(touch) : nil,
                           import_into: drivers, exporter: exporter)
    }

    /// The framework's cycle: the buffer (fresh, or from the pool), an
    /// exported fd, one write per page through a mapping, an import into
    /// each device, and back (released, or recycled).
    private func frameworkCycle(_ name: String, _ shape: BenchShape, _ mode: BenchMode, _ importers: [DRMDevice]) throws -> PhaseTimes {
        var t = PhaseTimes()
        var mark = csmaf_baseline_now_ns()
        func lap(_ p: BenchPhase) {
            let now = csmaf_baseline_now_ns()
            t[p] = now - mark
            mark = now
        }
        let request = shape.request(allocator: name)
        let buffer: Buffer
        switch mode {
        case .cold:
            buffer = try registry.buffer(request, devices: devices)
            try buffer.materialize()
        case .pooled: buffer = try pool.acquire(request, devices: devices, scrub: true)
        case .pooledNoScrub: buffer = try pool.acquire(request, devices: devices, scrub: false)
        }
        lap(.allocate)
        do {
            let fd = try buffer.exportFD()
            lap(.export)
            if plan.touch { try buffer.withCPUAccess(.write, writeEveryPage) }
            lap(.touch)
            for d in importers { _ = try d.importDmaBuf(fd.rawValue) }
            lap(.importDRM)
        } // the exported fd closes here, in the release phase
        if mode == .cold { try buffer.release() } else { pool.recycle(buffer) }
        lap(.release)
        return t
    }

    // MARK: - Pool and scale

    private func poolFigure(_ name: String, _ shape: BenchShape) {
        func allocate(_ mode: BenchMode) -> UInt64? {
            report.results.first { $0.allocator == name && $0.shape == shape.label && $0.mode == mode.rawValue && $0.path == "smaf" }?
                .phases["allocate"]?.median_ns
        }
        guard let fresh = allocate(.cold), let scrubbed = allocate(.pooled), let unscrubbed = allocate(.pooledNoScrub) else { return }
        report.pool.append(PoolFigure(allocator: name, shape: shape.label, bytes: shape.bytes, fresh_allocate_ns: fresh,
                                      recycled_scrubbed_ns: scrubbed, recycled_unscrubbed_ns: unscrubbed,
                                      speedup_scrubbed: Double(fresh) / Double(max(scrubbed, 1)),
                                      speedup_unscrubbed: Double(fresh) / Double(max(unscrubbed, 1))))
    }

    /// For each population: allocate (and materialize) that many buffers,
    /// timing each, holding all of them; then release them all.
    private func scale(_ name: String, _ shape: BenchShape) {
        for count in plan.liveCounts {
            progress.label = "\(name) \(count) live buffers"
            defer { progress.advance(by: 1) }
            var held: [Buffer] = []
            held.reserveCapacity(count)
            var times: [UInt64] = []
            do {
                for _ in 0..<count {
                    let start = csmaf_baseline_now_ns()
                    let b = try registry.buffer(shape.request(allocator: name), devices: devices)
                    try b.materialize()
                    times.append(csmaf_baseline_now_ns() - start)
                    held.append(b)
                }
            } catch {
                note("\(name) \(shape.label): stopped at \(held.count + 1) live buffers: \(error)")
                return
            }
            let start = csmaf_baseline_now_ns()
            for b in held { try? b.release() } // not secure: nothing to scrub
            let release = (csmaf_baseline_now_ns() - start) / UInt64(max(count, 1))
            held.removeAll()
            report.scale.append(ScaleRow(allocator: name, shape: shape.label, live: count, allocate: Percentiles(times),
                                         release_per_buffer_ns: release))
        }
    }

    /// 1,000 live buffers need more fds than the usual soft limit of 1024.
    private func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// One write per page: the first CPU touch faults every page in.
func writeEveryPage(_ bytes: UnsafeMutableRawBufferPointer) {
    let page = Int(Memory.pageSize)
    for offset in stride(from: 0, to: bytes.count, by: page) {
        bytes.storeBytes(of: UInt8(truncatingIfNeeded: offset >> 12), toByteOffset: offset, as: UInt8.self)
    }
}
