import CSMAFPlugin
@testable import SMAF
import SMAFSys
import Testing

/// The ABI's one growth rule, held mechanically: the loader reads a field
/// only inside the struct_size a plugin set (a 1.0 table at the very end of
/// its mapping loads), a plugin of a newer minor with longer structs loads
/// at this core's minor, and fields with no meaning yet must be zero.
@Suite struct ABIGrowthTests {
    func growth(_ switches: String..., headers: String? = nil) throws -> String {
        var defines = ["FIXTURE_NAME": "\"growth\""]
        for s in switches { defines[s] = "" }
        return try TestSupport.fixture(defines, source: "fixture_abi_growth.c", headers: headers)
    }

    /// The 1.0 sizes the loader accepts are those of the frozen header,
    /// compiled, not numbers written down.
    @Test func theLoadersABI1_0SizesAreTheFrozenHeaders() throws {
        let program = """
            #include <stdio.h>
            #include <smaf/plugin.h>
            int main(void) {
                printf("%zu %zu %zu", sizeof(struct smaf_plugin), sizeof(struct smaf_allocator_ops), sizeof(struct smaf_secure_ops));
                return 0;
            }
            """
        let source = "\(TestSupport.fixtureDirectory)/abi-sizes.c", exe = "\(TestSupport.fixtureDirectory)/abi-sizes"
        try program.write(toFile: source, atomically: true, encoding: .utf8)
        let cc = try TestSupport.run("/usr/bin/cc", ["-I", TestSupport.frozenABI1_0, "-o", exe, source])
        try #require(cc.status == 0, "\(cc.stderr)")
        let sizes = try TestSupport.run(exe, []).stdout.split(separator: " ").compactMap { Int($0) }
        #expect(sizes == [ABI1_0.plugin, ABI1_0.allocatorOps, ABI1_0.secureOps])
        #expect(MemoryLayout<smaf_allocator_ops>.size > ABI1_0.allocatorOps, "1.1 grew the ops at their end")
    }

    /// A 1.0 plugin whose tables end where an unmapped page begins: reading
    /// one byte past its struct_size would fault.
    @Test func aTableAtTheEndOfItsMappingLoads() throws {
        let path = try growth("FIXTURE_AT_PAGE_END", headers: TestSupport.frozenABI1_0)
        let registry = try TestSupport.registry([path])
        #expect(registry.warningLines.isEmpty, "\(registry.loadWarnings)")
        let plugin = try #require(registry.plugins.first)
        #expect(plugin.abiVersion.minor == 0 && plugin.capabilities == nil, "a 1.0 plugin declares nothing")
        #expect(try registry.buffer(.bytes(4096)).materialize().allocator == "growth")
    }

    /// A "1.2" plugin: every struct one field longer than this header's.
    @Test func aNewerMinorWithLongerStructsLoadsAtThisCoresMinor() throws {
        let registry = try TestSupport.registry([try growth("FIXTURE_NEWER_STRUCTS")])
        #expect(registry.warningLines.isEmpty, "\(registry.loadWarnings)")
        let plugin = try #require(registry.plugins.first)
        #expect(plugin.abiVersion.minor == UInt32(SMAF_PLUGIN_ABI_MINOR), "negotiated min(1.2, 1.\(SMAF_PLUGIN_ABI_MINOR))")
        #expect(try registry.buffer(.bytes(4096)).materialize().allocator == "growth")
    }

    @Test(arguments: [
        ("FIXTURE_SETS_RESERVED", "sets smaf_plugin.reserved, which has no meaning yet and must be 0"),
        ("FIXTURE_SETS_OPS_RESERVED", "sets smaf_allocator_ops.reserved, which has no meaning yet and must be 0"),
    ])
    func aTableThatSetsAFieldWithNoMeaningIsRefused(fault: String, reason: String) throws {
        let path = try growth(fault)
        let registry = try TestSupport.registry([path])
        #expect(registry.plugins.isEmpty)
        #expect(registry.warningLines == ["skipping plugin \(path): 'growth' \(reason)"])
    }

    @Test func aScoreOrAReservedAllocationWordIsNotTakenAtItsWord() throws {
        let fallback = TestSupport.shippedPlugin("memfd")
        let scored = try TestSupport.registry([try growth("FIXTURE_SETS_SCORE"), fallback]).buffer(.bytes(4096))
        #expect(try scored.materialize().allocator == "memfd")
        #expect(scored.explanation?.entries.first?.reason == "match() set smaf_verdict.score to 7, which has no meaning yet and must be 0")
        let reserved = try TestSupport.registry([try growth("FIXTURE_SETS_ALLOCATION_RESERVED"), fallback]).buffer(.bytes(4096))
        #expect(try reserved.materialize().allocator == "memfd")
        #expect(reserved.explanation?.entries.first?.reason
            == "allocate() succeeded but broke its promises: it set smaf_allocation.reserved, which has no meaning yet and must be 0; released it")
    }
}
