import Foundation
import SMAF
import SMAFConformance
import Synchronization
import Testing

/// `smaf plugin check` on the host: the conformant fixture and the shipped
/// plugins pass, and each deliberately broken fixture fails the check made
/// for its fault, with the reason. Runs the CLI in a child process, so the
/// fd counts are the checker's own and a crashing plugin cannot take the
/// test bundle down.
@Suite(.serialized) struct ConformanceTests {
    static func check(_ path: String) throws -> ConformanceReport {
        let (report, status) = try checked(path)
        #expect((status == 0) == report.passed, "exit status follows the verdict")
        return report
    }

    /// `smaf plugin check --json` in a child process: the report and the exit status.
    static func checked(_ path: String) throws -> (ConformanceReport, Int32) {
        var env = ProcessInfo.processInfo.environment
        env["SMAF_LOG"] = nil
        let r = try TestSupport.run(TestSupport.smafExecutable, ["plugin", "check", "--json", path], environment: env)
        guard r.status == 0 || r.status == 1 else { throw TestSupport.FixtureError(message: "smaf plugin check exited \(r.status): \(r.stderr)") }
        return (try JSONDecoder().decode(ConformanceReport.self, from: Data(r.stdout.utf8)), r.status)
    }

    static func failing(_ report: ConformanceReport) -> Set<String> {
        Set(report.checks.filter { $0.outcome == .fail }.map(\.name))
    }

    static func strict(_ name: String, _ switches: String...) throws -> String {
        var d = ["FIXTURE_NAME": "\"\(name)\"", "FIXTURE_STRICT": ""]
        for s in switches { d[s] = "" }
        return try TestSupport.fixture(d)
    }

    @Test func theConformantFixturePassesEveryCheck() throws {
        let report = try Self.check(try Self.strict("strict"))
        #expect(report.checks.map(\.name) == Conformance.checks.map(\.name))
        for c in report.checks { #expect(c.outcome == .pass, "\(c.name): \(c.reason)") }
        #expect(report.plugin == "strict")
        #expect(report.allocated == ["4 KiB of bytes", "1 MiB + 1 byte", "640x480 XR24", "100x50 XR24, pitch aligned to 256, height to 16",
                                     "64 KiB for a CPU writer", "256x256 XR24, LINEAR only"], "what a memfd that lays out RGB can serve")
    }

    /// One fault per fixture; `fails` is every check that catches it (a leaked
    /// fd is seen wherever fds are counted), `because` part of the reason.
    @Test(arguments: [
        // Taking formats it does not know as 4 bytes a pixel also gets NV12's planes wrong.
        ("FIXTURE_ACCEPTS_BAD_REQUESTS", ["bad-requests", "allocation-honours-match", "concurrent-calls"], "'0 bytes': accepted and allocated 0 bytes"),
        ("FIXTURE_NONDETERMINISTIC", ["match-deterministic", "concurrent-calls"], "accepted, then rejected (busy every other call)"),
        ("FIXTURE_MATCH_SIDE_EFFECT", ["match-side-effect-free", "bad-requests", "concurrent-calls", "open-close-repeated"], "match() calls changed the open fds"),
        ("FIXTURE_LIES_ABOUT_SIZE", ["allocation-honours-match", "concurrent-calls"], "the fd holds 2048 bytes, not the 4096 the allocation reports"),
        ("FIXTURE_WRONG_PITCH", ["allocation-honours-match", "concurrent-calls"], "its pitch 400 is not a multiple of 256"),
        ("FIXTURE_LEAK_FD", ["release-closes-fds", "concurrent-calls", "open-close-repeated"], "allocate/release cycles changed the open fds"),
        ("FIXTURE_THREAD_UNSAFE", ["concurrent-calls"], "two allocations alive at once share fd"),
        ("FIXTURE_CLOSE_LEAKS", ["open-close-repeated"], "7 open/close cycles changed the open fds"),
    ])
    func eachBrokenFixtureFailsItsCheck(fault: String, fails: [String], because: String) throws {
        let name = fault.dropFirst(8).lowercased().replacingOccurrences(of: "_", with: "-")
        let report = try Self.check(try Self.strict(name, fault))
        #expect(Self.failing(report) == Set(fails), "\(report.checks.filter { $0.outcome == .fail }.map { "\($0.name): \($0.reason)" })")
        let first = try #require(report.check(fails[0]))
        // Two threads sharing an fd may also map a memfd another thread just
        // truncated: the SIGBUS ends the isolated run in the same check.
        let crashed = fault == "FIXTURE_THREAD_UNSAFE" && first.reason.hasPrefix("the plugin crashed with SIGBUS")
        #expect(first.reason.contains(because) || crashed, "\(first.reason)")
    }

    /// The thread-unsafety verdict does not hang on scheduling: six checks of
    /// the broken fixture side by side (their threads competing for two
    /// cores) all name the cause, never a symptom such as a size mismatch or
    /// a crash in the audit of an fd another thread closed.
    @Test func theThreadUnsafetyVerdictHoldsUnderLoad() throws {
        let path = try Self.strict("thread-unsafe", "FIXTURE_THREAD_UNSAFE")
        let outcomes = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            let outcome: String
            do {
                let (report, _) = try Self.checked(path)
                let failed = report.checks.filter { $0.outcome == .fail }
                outcome = failed.map(\.name).joined(separator: ", ") + ": " + (failed.first?.reason ?? "passed")
            } catch {
                outcome = "\(error)"
            }
            outcomes.withLock { $0.append(outcome) }
        }
        for outcome in outcomes.withLock({ $0 }) {
            // One failing check, and its reason starts with the cause.
            #expect(outcome.hasPrefix("concurrent-calls: two allocations alive at once share fd "), "\(outcome)")
        }
    }

    /// The loader's refusals land on the step that refused; later checks are skipped.
    @Test(arguments: [
        ("FIXTURE_NO_ENTRY", "entry-and-abi", "no entry symbol 'smaf_plugin_entry' (is it a smaf plugin?)"),
        ("FIXTURE_NULL_ENTRY", "entry-and-abi", "smaf_plugin_entry() returned NULL"),
        ("FIXTURE_NO_RELEASE", "required-ops", "lacks required op release"),
        ("FIXTURE_OPEN_FAILS", "open", "open failed (No such device): no such hardware here"),
    ])
    func loaderRefusalsFailTheirStep(fault: String, step: String, because: String) throws {
        let name = fault.dropFirst(8).lowercased().replacingOccurrences(of: "_", with: "-")
        let report = try Self.check(try Self.strict(name, fault))
        let names = Conformance.checks.map(\.name)
        let index = try #require(names.firstIndex(of: step))
        #expect(report.checks.map(\.name) == names)
        for (i, c) in report.checks.enumerated() {
            #expect(c.outcome == (i < index ? .pass : i == index ? .fail : .skip), "\(c.name): \(c.reason)")
        }
        #expect(report.checks[index].reason.hasSuffix(because), "\(report.checks[index].reason)")
    }

    @Test func anABIMajorFromTheFutureFailsTheEntryCheck() throws {
        let report = try Self.check(try TestSupport.fixture(["FIXTURE_NAME": "\"abi9\"", "FIXTURE_ABI_MAJOR": "9", "FIXTURE_STRICT": ""]))
        #expect(report.check("entry-and-abi")?.outcome == .fail)
        #expect(report.check("entry-and-abi")?.reason.contains("built for ABI 9.") == true)
    }

    /// The examples on a host without udmabuf: every check passes and the
    /// allocation checks really allocated.
    @Test(arguments: ["shm", "carveout"])
    func theExamplesPass(name: String) throws {
        let report = try Self.check(TestSupport.shippedPlugin(name))
        #expect(report.plugin == name)
        #expect(report.allocated.count >= 6, "\(report.allocated)")
        for c in report.checks where c.outcome != .pass {
            Issue.record("\(name) \(c.name): \(c.outcome.rawValue): \(c.reason)")
        }
    }

    /// This check once found memfd handing out a 0-byte memfd where there is no
    /// udmabuf; the kit's linearLayout now refuses 0 bytes for every kit plugin.
    @Test func memfdPassesEveryCheck() throws {
        let report = try Self.check(TestSupport.shippedPlugin("memfd"))
        for c in report.checks where c.outcome != .pass {
            Issue.record("memfd \(c.name): \(c.outcome.rawValue): \(c.reason)")
        }
        #expect(report.check("bad-requests")?.outcome == .pass)
    }

    /// Plugins for hardware this host lacks: nothing fails; what cannot be
    /// allocated here is skipped with the reason (the VM suite allocates).
    @Test(arguments: ["dmaheap", "dumb", "cma", "gbm"])
    func shippedDevicePluginsDoNotFailOnTheHost(name: String) throws {
        let report = try Self.check(TestSupport.shippedPlugin(name))
        for c in report.checks where c.outcome == .fail {
            Issue.record("\(name) \(c.name): \(c.reason)")
        }
    }

    @Test func textOutputIsOneLinePerCheck() throws {
        let r = try TestSupport.run(TestSupport.smafExecutable, ["plugin", "check", try Self.strict("lax", "FIXTURE_ACCEPTS_BAD_REQUESTS")])
        #expect(r.status == 1)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == Conformance.checks.count + 2, "a header, one line per check, a summary")
        #expect(lines.contains { $0.hasPrefix("FAIL  bad-requests ") })
        #expect(lines.last == "lax: 8 passed, 3 failed, 0 skipped")
        let missing = try TestSupport.run(TestSupport.smafExecutable, ["plugin", "check", "/nonexistent.so"])
        #expect(missing.status == 1)
        #expect(missing.stderr == "smaf: error: plugin check: cannot read /nonexistent.so: No such file or directory\n")
    }
}

/// Plugins whose values break the ABI's ranges, or that crash: each is a
/// FAIL line naming what it did, never a backtrace from the checker.
@Suite(.serialized) struct ConformanceHostileTests {
    static func hostile(_ name: String, _ defines: [String: String]) throws -> String {
        try TestSupport.fixture(defines.merging(["FIXTURE_NAME": "\"\(name)\""]) { a, _ in a })
    }

    @Test(arguments: [
        (["FIXTURE_OPEN_RETURNS": "INT_MIN"], "open", "open() returned an invalid code -2147483648"),
        (["FIXTURE_STATS_RETURNS": "SIZE_MAX"], "describe-stats",
         "describe_stats(NULL, 0) returned 18446744073709551615, more than the 65536 bytes a report may take"),
        (["FIXTURE_STATS_RETURNS": "(1ull << 62)"], "describe-stats", "returned 4611686018427387904, more than the 65536 bytes"),
        (["FIXTURE_ALLOCATE_RETURNS": "INT_MIN"], "bad-requests", "'0 bytes': allocate() returned an invalid code -2147483648"),
        (["FIXTURE_MATCH_RETURNS": "-7"], "match-deterministic", "match returned -7 (must be 1 or 0)"),
        (["FIXTURE_STRICT": "", "FIXTURE_MATCH_OVERRUN": ""], "match-deterministic",
         "match() wrote past its struct smaf_verdict (64 of the 256 bytes after it changed)"),
    ])
    func anOutOfRangeValueFailsItsCheck(defines: [String: String], check: String, because: String) throws {
        let name = "hostile-\(abs(defines.description.hashValue) % 10000)"
        let report = try ConformanceTests.check(try Self.hostile(name, defines))
        let line = try #require(report.check(check))
        #expect(line.outcome == .fail, "\(line.reason)")
        #expect(line.reason.contains(because), "\(line.reason)")
    }

    /// A folder holds any number of plugins: the checker names them rather than pick one.
    @Test func aFolderIsRefusedNamingThePluginsInIt() throws {
        let a = try Self.hostile("in-folder", [:])
        let folder = String(a[..<a.lastIndex(of: "/")!])
        let r = try TestSupport.run(TestSupport.smafExecutable, ["plugin", "check", folder])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.hasPrefix("smaf: error: plugin check: \(folder) is a folder; name one plugin file in it ("), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        let report = Conformance.run(path: folder)
        #expect(report.check("entry-and-abi")?.outcome == .fail)
        #expect(report.check("entry-and-abi")?.reason == "\(folder) is a folder; the checks take one plugin file")
    }

    @Test func aPluginThatCrashesFailsTheCheckItCrashedIn() throws {
        let path = try Self.hostile("crasher", ["FIXTURE_STRICT": "", "FIXTURE_MATCH_CRASHES": ""])
        let report = try ConformanceTests.check(path)
        #expect(report.plugin == "crasher")
        #expect(report.checks.map(\.name) == Conformance.checks.map(\.name))
        let crashed = try #require(report.check("match-deterministic"))
        #expect(crashed.outcome == .fail)
        #expect(crashed.reason == "the plugin crashed with SIGSEGV (Segmentation fault) during this check", "\(crashed.reason)")
        #expect(report.check("describe-stats")?.outcome == .pass, "the checks before it ran")
        for later in ["match-side-effect-free", "bad-requests", "open-close-repeated"] {
            #expect(report.check(later)?.outcome == .skip)
            #expect(report.check(later)?.reason == "not run: the plugin crashed with SIGSEGV (Segmentation fault) during match-deterministic")
        }
        // The text form: a FAIL line, no backtrace, exit 1.
        let r = try TestSupport.run(TestSupport.smafExecutable, ["plugin", "check", path])
        #expect(r.status == 1)
        #expect(r.stdout.contains("FAIL  match-deterministic"), "\(r.stdout)")
        #expect(!r.stderr.contains("Current stack trace") && !r.stderr.contains("Backtrace"), "\(r.stderr)")
    }
}
