import Foundation
import SMAF
import Testing

/// The ABI grows without breaking plugins: a plugin compiled against the
/// frozen 1.0 header (Tests/Fixtures/abi-v1) keeps loading and allocating in
/// today's core, and a plugin built for a newer minor loads at the minor the
/// core speaks unless it says it needs more, in which case it is refused
/// with the reason.
@Suite struct ABIStabilityTests {
    /// SMAF_PLUGIN_ABI_MINOR of the live header, the minor this core speaks.
    static let coreMinor: Int = {
        let header = (try? String(contentsOfFile: "\(TestSupport.packageRoot)/Sources/CSMAFPlugin/include/smaf/plugin.h", encoding: .utf8)) ?? ""
        let line = header.split(separator: "\n").first { $0.hasPrefix("#define SMAF_PLUGIN_ABI_MINOR ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1
    }()

    /// The fixture compiled against the frozen 1.0 header instead of the live one.
    static func v1Fixture(_ name: String, _ switches: String...) throws -> String {
        let out = NSTemporaryDirectory() + "smaf-abi-v1-\(getpid())-\(name).so"
        let args = ["-shared", "-fPIC", "-Wall", "-Werror", "-o", out, "-I", "\(TestSupport.packageRoot)/Tests/Fixtures/abi-v1",
                    "-DFIXTURE_NAME=\"\(name)\""] + switches.map { "-D\($0)" } + ["\(TestSupport.packageRoot)/Tests/Fixtures/fixture_plugin.c"]
        let r = try TestSupport.run("/usr/bin/cc", args)
        guard r.status == 0 else { throw TestSupport.FixtureError(message: "cc failed: \(r.stderr)") }
        return out
    }

    @Test func theFrozenHeaderIsABI1_0() throws {
        let frozen = try String(contentsOfFile: "\(TestSupport.packageRoot)/Tests/Fixtures/abi-v1/smaf/plugin.h", encoding: .utf8)
        #expect(frozen.contains("#define SMAF_PLUGIN_ABI_MAJOR 1\n#define SMAF_PLUGIN_ABI_MINOR 0\n"))
        #expect(Self.coreMinor >= 0, "the live header defines SMAF_PLUGIN_ABI_MINOR")
    }

    @Test func aPluginBuiltAgainstABI1_0KeepsLoading() throws {
        let path = try Self.v1Fixture("abi-one", "FIXTURE_STRICT")
        let registry = try TestSupport.registry([path])
        #expect(registry.warningLines.isEmpty, "\(registry.warningLines)")
        let plugin = try #require(registry.plugins.first)
        #expect(plugin.abiVersion.major == 1 && plugin.abiVersion.minor == 0, "negotiated min(1.0, core)")
        let buffer = try registry.buffer(.image(width: 320, height: 240, format: .xrgb8888, allocator: "abi-one"))
        let a = try buffer.materialize()
        #expect(a.allocator == "abi-one" && a.size >= 320 * 240 * 4 && a.planes.first?.stride == 1280)
        try buffer.withCPUAccess(.readWrite) { bytes in
            bytes[0] = 0x5a
            #expect(bytes[0] == 0x5a)
        }
        // And it holds up under every conformance check in today's core.
        let report = try ConformanceTests.check(path)
        #expect(report.passed, "\(report.checks.filter { $0.outcome == .fail })")
        #expect(report.abi == "1.0")
    }

    @Test func aNewerMinorLoadsAtTheMinorThisCoreSpeaks() throws {
        let minor = Self.coreMinor + 3
        let path = try TestSupport.fixture(["FIXTURE_NAME": "\"newer\"", "FIXTURE_ABI_MINOR": "\(minor)", "FIXTURE_ABI_REQUIRED": "0"])
        let registry = try TestSupport.registry([path])
        #expect(registry.warningLines.isEmpty, "\(registry.warningLines)")
        let plugin = try #require(registry.plugins.first)
        #expect(plugin.abiVersion.minor == UInt32(Self.coreMinor), "built for 1.\(minor), runs at 1.\(Self.coreMinor)")
        #expect(try registry.buffer(.bytes(4096, allocator: "newer")).materialize().allocator == "newer")
        let report = try ConformanceTests.check(path)
        #expect(report.check("entry-and-abi")?.reason.contains("built for ABI 1.\(minor), needs 1.0 or newer; this core speaks 1.\(Self.coreMinor); it runs at 1.\(Self.coreMinor)") == true,
                "\(report.check("entry-and-abi")?.reason ?? "")")
    }

    @Test func aNewerMinorItCannotDoWithoutIsRefusedWithTheReason() throws {
        let minor = Self.coreMinor + 3
        let path = try TestSupport.fixture(["FIXTURE_NAME": "\"needy\"", "FIXTURE_ABI_MINOR": "\(minor)", "FIXTURE_ABI_REQUIRED": "\(minor)"])
        let registry = try TestSupport.registry([path])
        #expect(registry.plugins.isEmpty)
        #expect(registry.warningLines == ["skipping plugin \(path): needs ABI 1.\(minor) or newer, this smaf speaks ABI 1.\(Self.coreMinor)"])
        // Exactly as far as the negotiated version allows: requiring what the core speaks is fine.
        let fits = try TestSupport.fixture(["FIXTURE_NAME": "\"fits\"", "FIXTURE_ABI_MINOR": "\(minor)",
                                            "FIXTURE_ABI_REQUIRED": "\(Self.coreMinor)"])
        #expect(try TestSupport.registry([fits]).plugins.map(\.name) == ["fits"])
    }
}
