import SMAF

/// The demo's teaser of `smaf bench`: allocate + export + release through
/// smaf against the same backend's raw syscalls, interleaved, for every
/// loaded allocator that has a raw baseline, at three sizes. Same runner,
/// same table as the full tool; no touch, import, pool or scale phases.
struct DemoBenchmark {
    let registry: AllocatorRegistry
    let iterations: Int

    func table() throws -> String {
        var plan = BenchPlan()
        // Only the allocators CSMAFBaseline has a raw path for: the table is the comparison.
        plan.allocators = registry.plugins.map(\.name).filter(RawBackend.kinds.contains)
        plan.shapes = try BenchCommand.sizes("4K,1M,8M")
        plan.iterations = iterations
        plan.modes = [.cold]
        plan.touch = false
        plan.importDRM = false
        plan.liveShape = nil
        guard !plan.allocators.isEmpty else {
            return "  (no allocator with a raw baseline loaded: nothing to compare with raw syscalls)"
        }
        let report = BenchRunner(registry: registry, plan: plan, command: "smaf demo", progress: BenchProgress(enabled: false)).run()
        if report.ratios.isEmpty {
            return (["  (no allocator with a raw baseline loaded: nothing to compare with raw syscalls)"] + report.notes.map { "  " + $0 })
                .joined(separator: "\n")
        }
        // One note per allocator: the sizes an unusable allocator skipped all say the same.
        var seen: Set<Substring> = []
        let notes = report.notes.filter { seen.insert($0.prefix { $0 != " " && $0 != ":" }).inserted }
        return (BenchTable.ratioTable(report) + notes.flatMap { BenchTable.wrap("note: " + $0, width: 96).map { "  " + $0 } })
            .joined(separator: "\n")
    }
}
