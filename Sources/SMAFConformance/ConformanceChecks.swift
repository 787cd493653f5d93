import CSMAFPlugin
import Glibc
import SMAF
import SMAFSys
import Synchronization

/// The call-level checks of a conformance run, each against one loaded
/// plugin. Resource checks compare the process's open fds (and the plugin's
/// state report) around repeated calls, after a first round has warmed up
/// whatever the plugin opens once and keeps.
struct ConformanceCalls {
    let plugin: LoadedPlugin
    let plausible: [ConformanceProbe]
    let bad: [ConformanceProbe]

    typealias Check = ConformanceCheck

    /// Problems found, reported as the first few and a count.
    static func outcome(_ name: String, _ problems: [String], pass: String) -> Check {
        guard !problems.isEmpty else { return Check(name, .pass, pass) }
        let shown = problems.prefix(3).joined(separator: "; ")
        return Check(name, .fail, problems.count > 3 ? "\(shown) (and \(problems.count - 3) more)" : shown)
    }

    /// What allocate() wrote past the allocation struct or the error buffer it was given.
    static func overruns(_ probe: ConformanceProbe, _ r: LoadedPlugin.RawAllocation) -> [String] {
        [(r.overrun.allocation, "its struct smaf_allocation"), (r.overrun.message, "the \(SMAF_REASON_MAX)-byte error buffer")]
            .filter { $0.0 > 0 }
            .map { "'\(probe.label)': allocate() wrote past \($0.1) (\($0.0) of the \(GuardedMemory.guardBytes) bytes after it changed)" }
    }

    private func snapshot() -> (fds: Int, stats: String?) { (OpenFiles.count(), plugin.stats()) }

    private func drift(_ before: (fds: Int, stats: String?), _ after: (fds: Int, stats: String?), _ what: String) -> [String] {
        var problems: [String] = []
        if after.fds != before.fds { problems.append("\(what) changed the open fds from \(before.fds) to \(after.fds)") }
        if after.stats != before.stats {
            problems.append("\(what) changed the plugin's state report from '\(before.stats ?? "")' to '\(after.stats ?? "")'")
        }
        return problems
    }

    /// Same inputs, same verdict, three times over; every verdict 1, or 0 with a reason.
    func matchDeterministic() -> (Check, [String: LoadedPlugin.RawVerdict]) {
        var problems: [String] = []
        var first: [String: LoadedPlugin.RawVerdict] = [:]
        for probe in plausible + bad {
            let verdicts = (0..<3).map { _ in plugin.rawMatch(probe, probe.call()) }
            first[probe.label] = verdicts[0]
            if let other = verdicts.first(where: { $0 != verdicts[0] }) {
                problems.append("'\(probe.label)': \(verdicts[0].text), then \(other.text)")
            }
            if let odd = verdicts.first(where: { $0.code != 0 && $0.code != 1 }) {
                problems.append("'\(probe.label)': match returned \(odd.code) (must be 1 or 0)")
            } else if verdicts.contains(where: { $0.code == 0 && $0.reason.isEmpty }) {
                problems.append("'\(probe.label)': rejected without a reason in verdict->reason")
            }
            if let overrun = verdicts.map(\.overrun).max(), overrun > 0 {
                problems.append("'\(probe.label)': match() wrote past its struct smaf_verdict (\(overrun) of the \(GuardedMemory.guardBytes) bytes after it changed)")
            }
        }
        let accepted = first.values.filter(\.accepted).count
        return (Self.outcome("match-deterministic", problems,
                             pass: "\(first.count) requests asked 3 times each: same verdict every time (\(accepted) accepted), every rejection with a reason"),
                first)
    }

    /// match() leaves no trace: no fd opened or closed, the state report unchanged.
    func matchSideEffectFree() -> Check {
        let before = snapshot()
        for _ in 0..<3 { for probe in plausible + bad { _ = plugin.rawMatch(probe, probe.call()) } }
        let problems = drift(before, snapshot(), "\(3 * (plausible.count + bad.count)) match() calls")
        return Self.outcome("match-side-effect-free", problems,
                            pass: "\(3 * (plausible.count + bad.count)) match() calls: open fds \(before.fds) before and after\(plugin.hasStats ? ", state report unchanged" : "")")
    }

    /// Each bad request is refused with a reason, or (impossibly) allocated within every constraint.
    func badRequests() -> Check {
        var problems: [String] = []
        var rejected = 0, failed = 0
        let before = OpenFiles.count()
        for probe in bad {
            let c = probe.call()
            let verdict = plugin.rawMatch(probe, c)
            guard verdict.accepted else {
                rejected += 1
                if verdict.reason.isEmpty { problems.append("'\(probe.label)': rejected without a reason") }
                continue
            }
            var result = plugin.rawAllocate(c)
            problems += Self.overruns(probe, result)
            switch PluginStatus(result.code) {
            case .failure(let errno):
                failed += 1
                if result.message.isEmpty { problems.append("'\(probe.label)': allocate failed (\(errnoName(errno))) without a message") }
            case .success where result.allocation.fd >= 0:
                let broken = AllocationAudit.violations(probe, result.allocation, declared: plugin.capabilities)
                problems.append("'\(probe.label)': accepted and allocated \(result.allocation.size) bytes"
                                + (broken.isEmpty ? "" : ": \(broken.joined(separator: ", "))"))
                plugin.release(&result.allocation)
            case .success:
                problems.append("'\(probe.label)': allocate returned 0 with fd \(result.allocation.fd) (must be 0 with an fd, or a negative errno)")
            case .invalid(let code):
                problems.append("'\(probe.label)': \(PluginStatus.invalidCode("allocate()", code))")
            }
        }
        let after = OpenFiles.count()
        if after != before { problems.append("the bad requests changed the open fds from \(before) to \(after)") }
        return Self.outcome("bad-requests", problems,
                            pass: "\(bad.count) bad requests (0 and huge sizes, unknown format, conflicting constraints): \(rejected) rejected by match, \(failed) failed in allocate, each with a reason")
    }

    /// What match accepted, allocate delivers as promised. Returns the
    /// probes whose allocation succeeded, for the checks that follow.
    func allocationsHonourMatch() -> (Check, [ConformanceProbe]) {
        var problems: [String] = []
        var allocated: [ConformanceProbe] = []
        var notes: [String] = []
        var firstRejection: String?
        for probe in plausible {
            let c = probe.call()
            let verdict = plugin.rawMatch(probe, c)
            guard verdict.accepted else { firstRejection = firstRejection ?? "'\(probe.label)': \(verdict.reason)"; continue }
            var result = plugin.rawAllocate(c)
            problems += Self.overruns(probe, result)
            guard result.code == 0, result.allocation.fd >= 0 else {
                guard case .failure(let err) = PluginStatus(result.code) else {
                    problems.append(result.code == 0 ? "'\(probe.label)': allocate returned 0 with fd \(result.allocation.fd)"
                                    : "'\(probe.label)': \(PluginStatus.invalidCode("allocate()", result.code))")
                    continue
                }
                if [EINVAL, EOVERFLOW, EOPNOTSUPP, ERANGE].contains(err) {
                    problems.append("'\(probe.label)': match accepted, but allocate calls the request invalid: \(withErrno(result.message, err))")
                } else if result.message.isEmpty {
                    problems.append("'\(probe.label)': allocate failed (\(errnoName(err))) without a message")
                } else {
                    notes.append("'\(probe.label)' failed in allocate: \(withErrno(result.message, err))")
                }
                continue
            }
            let broken = AllocationAudit.violations(probe, result.allocation, declared: plugin.capabilities)
            problems += broken.map { "'\(probe.label)': \($0)" }
            plugin.release(&result.allocation)
            allocated.append(probe)
        }
        if problems.isEmpty && allocated.isEmpty {
            let why = notes.first ?? firstRejection ?? "nothing to ask"
            return (Check("allocation-honours-match", .skip, "match accepted none of the \(plausible.count) requests, or none allocated (\(why))"), [])
        }
        let pass = "\(allocated.count) of \(plausible.count) requests accepted and allocated; each checked for size (and the fd's real size), "
            + "pitch, planes, modifier, dma-buf (fdinfo), CPU mapping, contiguity, close-on-exec"
            + (notes.isEmpty ? "" : "; \(notes.count) failed in allocate with a resource error: \(notes[0])")
        return (Self.outcome("allocation-honours-match", problems, pass: pass), allocated)
    }

    /// After a warm-up, repeated allocate/release leaves the fds and the state report as they were.
    func releaseClosesFds(_ allocated: [ConformanceProbe]) -> Check {
        guard !allocated.isEmpty else { return Check("release-closes-fds", .skip, "nothing was allocated") }
        let rounds = 5
        let before = snapshot()
        var failures = 0
        for _ in 0..<rounds {
            for probe in allocated {
                let c = probe.call()
                var result = plugin.rawAllocate(c)
                if result.code == 0 && result.allocation.fd >= 0 { plugin.release(&result.allocation) } else { failures += 1 }
            }
        }
        let problems = drift(before, snapshot(), "\(rounds * allocated.count) allocate/release cycles")
        return Self.outcome("release-closes-fds", problems,
                            pass: "\(rounds * allocated.count) allocate/release cycles\(failures > 0 ? " (\(failures) allocations failed)" : ""): open fds \(before.fds) before and after\(plugin.hasStats ? ", state report back where it was" : "")")
    }

    /// Several threads at once get the verdicts one thread got, distinct
    /// fds, sound allocations, and leave no fd behind. The threads go in
    /// rounds: all call match and allocate together, and every allocation of
    /// a round stays alive until all are registered, so two calls handed the
    /// same fd are caught as such however the threads were scheduled (once
    /// one released, the other's fd would be closed or someone else's: a
    /// size mismatch, or a crash in the audit, instead of the cause).
    func concurrent(_ expected: [String: LoadedPlugin.RawVerdict], _ allocated: [ConformanceProbe], threads: Int = 4, iterations: Int = 24) -> Check {
        // Shared fds first in the report: they are the cause, broken sizes the symptom.
        struct Shared { var live: Set<Int32> = []; var shared: [String] = []; var problems: [String] = []; var allocations = 0 }
        let shared = Mutex(Shared())
        let allocatable = Set(allocated.map(\.label))
        let probes = plausible, plugin = plugin
        guard !probes.isEmpty else { return Check("concurrent-calls", .skip, "no requests to ask") }
        let before = OpenFiles.count()
        ConcurrentRun.onThreads(threads) { t, together in
            for i in 0..<iterations {
                let probe = probes[(t * 7 + i) % probes.count]
                let c = probe.call()
                let verdict = plugin.rawMatch(probe, c)
                if let want = expected[probe.label], verdict != want {
                    shared.withLock { $0.problems.append("'\(probe.label)' on thread \(t): \(verdict.text), alone it was \(want.text)") }
                }
                var result: LoadedPlugin.RawAllocation?
                if verdict.accepted, allocatable.contains(probe.label) {
                    let r = plugin.rawAllocate(c)
                    if r.code == 0, r.allocation.fd >= 0 { result = r }
                }
                // The first to register an fd owns it for this round; a second holder is the fault.
                let owner = result.map { r in
                    shared.withLock { s in
                        s.allocations += 1
                        if s.live.insert(r.allocation.fd).inserted { return true }
                        s.shared.append("two allocations alive at once share fd \(r.allocation.fd)")
                        return false
                    }
                } ?? false
                together() // every allocation of this round is registered, none released
                if owner, var r = result {
                    let broken = AllocationAudit.violations(probe, r.allocation, declared: plugin.capabilities)
                    shared.withLock { s in
                        s.problems += broken.map { "'\(probe.label)' on thread \(t): \($0)" }
                        s.live.remove(r.allocation.fd)
                    }
                    plugin.release(&r.allocation)
                }
                // A shared fd's second holder does not release: that would close the fd the owner holds.
                together()
            }
        }
        let after = OpenFiles.count()
        var (problems, allocations) = shared.withLock { ($0.shared + $0.problems, $0.allocations) }
        if after != before { problems.append("the threads changed the open fds from \(before) to \(after)") }
        let mode = plugin.isSerialized ? " (the plugin asks the core to serialize its calls)" : ""
        return Self.outcome("concurrent-calls", problems,
                            pass: "\(threads) threads x \(iterations) calls\(mode): verdicts as on one thread, \(allocations) allocations with distinct fds, open fds \(before) before and after")
    }
}

