import SMAF
import Testing

@Suite struct RegistryTests {
    @Test func ranksOrderThenNamesBreakTies() throws {
        let registry = try TestSupport.registry([
            try TestSupport.fixture(name: "zeta", rank: 200), try TestSupport.fixture(name: "alpha", rank: 200),
            try TestSupport.fixture(name: "low", rank: 10), TestSupport.shippedPlugin("memfd"),
        ])
        #expect(registry.plugins.map(\.name) == ["alpha", "zeta", "memfd", "low"])
        #expect(registry.plugins.map(\.rank.value) == [200, 200, 128, 10])
    }

    @Test func overridesChangeRanksAndSayWhere() throws {
        let registry = try TestSupport.registry(
            [try TestSupport.fixture(name: "zeta", rank: 200), TestSupport.shippedPlugin("memfd")],
            ranks: "memfd:primary,zeta:none")
        #expect(registry.plugins.map(\.name) == ["memfd", "zeta"])
        #expect(registry.plugins[0].rank == .primary)
        #expect(registry.plugins[0].rankSource == "test")
        #expect(registry.plugins[0].defaultRank == .secondary)
    }

    @Test func rankSyntax() throws {
        let o = try RankOverrides(parsing: "gbm:primary, dumb:NONE,memfd:100,memfd:7", source: "SMAF_RANKS")
        #expect(o.ranks == ["gbm": .primary, "dumb": .none, "memfd": Rank(7)])
        let error = #expect(throws: SMAFError.self) { try RankOverrides(parsing: "gbm=primary", source: "SMAF_RANKS") }
        #expect(error?.message == "SMAF_RANKS: rank entry 'gbm=primary' is not NAME:RANK (RANK: primary, secondary, marginal, none or a number >= 0)")
        #expect(throws: SMAFError.self) { try RankOverrides(parsing: "gbm:-3", source: "x") }
    }

    @Test func environmentAndConfigFile() throws {
        let path = NSTemporaryDirectoryShim.file("smaf.conf", """
        # comment
        ranks = memfd:none
        plugin_path = /opt/x
        cma.size = 32M
        """)
        let c = try Configuration.fromEnvironment([
            "SMAF_CONFIG": path, "SMAF_RANKS": "memfd:300", "SMAF_PLUGIN_PATH": "/a:/b", "SMAF_CMA_SIZE": "16M",
        ])
        #expect(c.pluginPaths == ["/a", "/b", "/opt/x"])
        #expect(c.settings["cma.size"] == "16M", "the environment wins over the file")
        #expect(c.rankOverrides.map(\.source) == ["\(path):2", "SMAF_RANKS"])
        let bad = NSTemporaryDirectoryShim.file("bad.conf", "rank = memfd:none\n")
        let error = #expect(throws: SMAFError.self) { try Configuration.fromEnvironment(["SMAF_CONFIG": bad]) }
        #expect(error?.message == "\(bad):1: unknown key 'rank' (ranks, plugin_path, log, or <plugin>.<setting>)")
        let missing = #expect(throws: SMAFError.self) { try Configuration.fromEnvironment(["SMAF_CONFIG": "/nonexistent/smaf.conf"]) }
        #expect(missing?.message.hasPrefix("config file /nonexistent/smaf.conf: open failed: No such file") == true)
    }

    @Test func rankNoneIsUsedOnlyWhenForced() throws {
        let registry = try TestSupport.registry([try TestSupport.fixture(name: "hidden", rank: 0)])
        let error = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(4096)).materialize() }
        #expect(error?.kind == .noAllocator)
        #expect(error?.message == "no allocator can satisfy the request: hidden: rank none: used only when forced by name")
        let forced = try registry.buffer(.bytes(4096, allocator: "hidden"))
        #expect(try forced.materialize().allocator == "hidden")
    }

    @Test func forcedAllocatorWinsOverRank() throws {
        let registry = try TestSupport.registry([try TestSupport.fixture(name: "top", rank: 500), TestSupport.shippedPlugin("memfd")])
        let buffer = try registry.buffer(.bytes(8192, allocator: "memfd"))
        #expect(try buffer.materialize().allocator == "memfd")
        let e = try #require(buffer.explanation)
        #expect(e.forcedAllocator == "memfd")
        #expect(e.entries.map(\.outcome) == [.skipped, .chosen])
    }

    @Test func unknownForcedAllocatorListsTheKnownOnes() throws {
        let registry = try TestSupport.registry([try TestSupport.fixture(name: "top"), TestSupport.shippedPlugin("memfd")])
        let error = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(4096, allocator: "gbm")) }
        #expect(error?.kind == .unknownAllocator)
        #expect(error?.message == "allocator: no allocator named 'gbm' is loaded (known: memfd, top)")
    }

    @Test func allocateFailureFallsBackToTheNextMatch() throws {
        let registry = try TestSupport.registry([
            try TestSupport.fixture(name: "exhausted", rank: 300, "FIXTURE_ALLOC_FAILS"),
            try TestSupport.fixture(name: "picky", rank: 200, "FIXTURE_REJECT"),
            TestSupport.shippedPlugin("memfd"),
        ])
        let buffer = try registry.buffer(.bytes(1 << 20))
        #expect(try buffer.materialize().allocator == "memfd")
        let e = try #require(buffer.explanation)
        #expect(e.entries.map(\.allocator) == ["exhausted", "picky", "memfd"])
        #expect(e.entries.map(\.outcome) == [.failed, .rejected, .chosen])
        #expect(e.entries[0].reason == "match accepted but allocate failed: pool exhausted (test fixture) (ENOMEM)")
        #expect(e.entries[1].reason == "picky never accepts (test fixture)")
    }

    @Test func everyAllocatorFailingExplainsEach() throws {
        let registry = try TestSupport.registry([
            try TestSupport.fixture(name: "exhausted", rank: 300, "FIXTURE_ALLOC_FAILS"),
            try TestSupport.fixture(name: "picky", rank: 200, "FIXTURE_REJECT"),
        ])
        let buffer = try registry.buffer(.bytes(4096))
        let error = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(error?.message == "no allocator can satisfy the request: exhausted: match accepted but allocate failed: pool exhausted (test fixture) (ENOMEM); picky: picky never accepts (test fixture)")
        #expect(buffer.explanation?.entries.count == 2, "the explanation survives the failure")
        #expect(buffer.allocation == nil)
    }

    @Test func noPluginsAtAll() throws {
        let registry = try TestSupport.registry([])
        let error = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(4096)).materialize() }
        #expect(error?.message == "no allocator can satisfy the request: no allocators loaded")
    }

    /// The registry keeps its prepared choices; a choice must not keep the
    /// registry, or its plugin contexts (and their device fds: a DRM node's
    /// master with them) would stay open for the process's life.
    @Test func aRegistryGoesAwayWithItsLastUser() throws {
        weak var gone: AllocatorRegistry?
        do {
            let registry = try TestSupport.registry([TestSupport.shippedPlugin("memfd")])
            gone = registry
            let prepared = try registry.prepare(.bytes(4096))
            try prepared.allocate().release()
            try registry.buffer(.bytes(8192)).materialize()
            _ = try registry.choose(.bytes(4096), constraints: MergedConstraints([]))
        }
        #expect(gone == nil, "something keeps the registry alive after its last buffer and user went away")
    }
}

import Foundation
enum NSTemporaryDirectoryShim {
    static func file(_ name: String, _ text: String) -> String {
        let path = NSTemporaryDirectory() + "smaf-test-\(getpid())-\(name)"
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

}
