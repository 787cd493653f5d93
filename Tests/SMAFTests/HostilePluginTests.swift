import Foundation
import SMAF
import Testing

/// Plugins that return what the ABI does not allow: every value is
/// range-checked before the core computes with it, so the CLI (in a child
/// process, where a trap would show as exit 132 or 134) prints one line and
/// carries on with the other plugins.
@Suite struct HostilePluginTests {
    /// Runs the CLI with exactly these plugins.
    static func smaf(_ args: [String], plugins: [String]) throws -> TestSupport.RunResult {
        var env = ProcessInfo.processInfo.environment
        env["SMAF_LOG"] = nil
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        env["SMAF_PLUGIN_PATH"] = plugins.joined(separator: ":")
        return try TestSupport.run(TestSupport.smafExecutable, args, environment: env)
    }

    static func hostile(_ name: String, rank: Int = 200, _ defines: [String: String]) throws -> String {
        try TestSupport.fixture(defines.merging(["FIXTURE_NAME": "\"\(name)\"", "FIXTURE_RANK": "\(rank)"]) { a, _ in a })
    }

    static let invalidRange = "(only 0 or a negative errno -1...-4095 mean something)"

    @Test(arguments: ["INT_MIN", "7", "-4096"])
    func openReturningAnInvalidCodeIsRefused(code: String) throws {
        let bad = try Self.hostile("bad-open", ["FIXTURE_OPEN_RETURNS": code])
        let r = try Self.smaf(["list"], plugins: [bad, TestSupport.shippedPlugin("memfd")])
        #expect(r.status == 0, "\(r.stderr)")
        let value = code == "INT_MIN" ? "-2147483648" : code
        #expect(r.stderr.contains("smaf: warning: skipping plugin \(bad): 'bad-open' open failed: open() returned an invalid code \(value) \(Self.invalidRange)"),
                "\(r.stderr)")
        #expect(r.stdout.contains("memfd"))
    }

    @Test func allocateReturningIntMinFallsThroughToTheNextAllocator() throws {
        let bad = try Self.hostile("bad-allocate", ["FIXTURE_ALLOCATE_RETURNS": "INT_MIN"])
        let r = try Self.smaf(["alloc", "--size", "4K", "--explain"], plugins: [bad, TestSupport.shippedPlugin("memfd")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("allocated 4.00 KiB with memfd") || r.stdout.contains("with memfd"), "\(r.stdout)")
        #expect(r.stdout.contains("match accepted but allocate failed: allocate() returned an invalid code -2147483648 \(Self.invalidRange) (EPROTO)"),
                "\(r.stdout)")
    }

    @Test(arguments: ["2", "-1", "INT_MIN"])
    func matchReturningNeitherZeroNorOneIsARejectionThatSaysSo(code: String) throws {
        let bad = try Self.hostile("bad-match", ["FIXTURE_MATCH_RETURNS": code])
        let r = try Self.smaf(["alloc", "--size", "4K", "--explain"], plugins: [bad, TestSupport.shippedPlugin("memfd")])
        #expect(r.status == 0, "\(r.stderr)")
        let value = code == "INT_MIN" ? "-2147483648" : code
        #expect(r.stdout.contains("match() returned an invalid code \(value) (only 1, yes, or 0, no, mean something)"), "\(r.stdout)")
        // Forced, nothing else to fall back on: one error line, exit 1.
        let forced = try Self.smaf(["alloc", "--size", "4K", "--allocator", "bad-match"], plugins: [bad])
        #expect(forced.status == 1)
        #expect(forced.stderr == "smaf: error: forced allocator bad-match cannot satisfy the request: bad-match: match() returned an invalid code \(value) (only 1, yes, or 0, no, mean something)\n")
    }

    @Test(arguments: [("SIZE_MAX", "18446744073709551615"), ("(1ull << 62)", "4611686018427387904")])
    func statsClaimingAnImpossibleLengthIsReportedNotAllocated(code: String, value: String) throws {
        let bad = try Self.hostile("bad-stats", ["FIXTURE_STATS_RETURNS": code])
        let r = try Self.smaf(["list", "--stats"], plugins: [bad])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("(no report: describe_stats() returned \(value), more than the 65536 bytes a report may take)"), "\(r.stdout)")
    }

    static func secure(_ name: String, _ defines: [String: String]) throws -> String {
        try TestSupport.fixture(defines.merging(["FIXTURE_NAME": "\"\(name)\""]) { a, _ in a }, source: "fixture_secure.c")
    }

    @Test func createContextReturningIntMinRefusesTheSecureBuffer() throws {
        let module = try Self.secure("bad-create", ["FIXTURE_CREATE_RETURNS": "INT_MIN"])
        let r = try Self.smaf(["alloc", "--size", "4K", "--secure"], plugins: [module, TestSupport.shippedPlugin("memfd")])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("smaf: error: "), "\(r.stderr)")
        #expect(r.stderr.contains("create_context() returned an invalid code -2147483648 \(Self.invalidRange)"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }

    @Test(arguments: ["INT_MIN", "3"])
    func grantAccessReturningAnInvalidCodeIsADenial(code: String) throws {
        let module = try Self.secure("bad-grant", ["FIXTURE_GRANT_RETURNS": code])
        let device = "\(TestSupport.packageRoot)/examples/devices/cpu-writer.json"
        let r = try Self.smaf(["alloc", "--size", "4K", "--secure", "--device", device], plugins: [module, TestSupport.shippedPlugin("memfd")])
        #expect(r.status == 1, "\(r.stderr)")
        let value = code == "INT_MIN" ? "-2147483648" : code
        #expect(r.stderr.contains("grant_access() returned an invalid code \(value) \(Self.invalidRange)"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }

    @Test func allowCPUAccessReturningNeitherYesNorNoIsADenial() throws {
        let module = try Self.secure("bad-cpu", ["FIXTURE_CPU_RETURNS": "2"])
        let registry = try TestSupport.registry([module, TestSupport.shippedPlugin("memfd")])
        let buffer = try registry.buffer(.bytes(4096))
        try buffer.markSecure()
        let refusal = buffer.cpuAccessRefusal(.read)
        #expect(refusal?.contains("allow_cpu_access() returned an invalid code 2 (only 1, yes, or 0, no, mean something)") == true, "\(refusal ?? "allowed")")
    }
}
