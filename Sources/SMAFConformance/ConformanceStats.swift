import CSMAFPlugin
import SMAF

extension ConformanceCalls {
    /// describe_stats() keeps its contract: the length it asks for is one
    /// the core will read (at most 64 KiB), the same when asked twice, and
    /// it writes no more than the size it is given, the NUL included,
    /// whether that is the length it asked for or half of it.
    func describeStats() -> Check {
        let name = "describe-stats"
        guard plugin.hasStats, let (needed, _, _) = plugin.rawStats(size: 0) else {
            return Check(name, .pass, "describe_stats absent (optional)")
        }
        // size_t arrives as Int: SIZE_MAX reads as -1.
        guard needed >= 0, needed <= statsReportLimit else {
            return Check(name, .fail, "describe_stats(NULL, 0) returned \(UInt(bitPattern: needed)), more than the \(statsReportLimit) bytes a report may take")
        }
        guard needed > 0 else { return Check(name, .pass, "describe_stats present, with nothing to report (returned 0)") }
        var problems: [String] = []
        for size in [needed, max(needed / 2, 1)] {
            guard let (again, text, overrun) = plugin.rawStats(size: size) else { continue }
            if overrun > 0 {
                problems.append("given \(size) bytes, describe_stats wrote past them (\(overrun) of the \(GuardedMemory.guardBytes) bytes after it changed)")
            }
            if again != needed { problems.append("describe_stats returned \(needed), then \(again) for the same state") }
            if text.utf8.count >= size { problems.append("given \(size) bytes, describe_stats left no NUL inside them") }
        }
        return Self.outcome(name, problems, pass: "describe_stats asks for \(needed) bytes and writes within them, and within half as many (truncating)")
    }
}
