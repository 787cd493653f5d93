import Foundation
import SMAF
import Testing

/// On a machine without dma-heaps (the build hosts) the dmaheap plugin still
/// loads, so `smaf list` shows it, and rejects every request saying why.
/// Where /dev/dma_heap exists (the VM) DmaHeapTests covers the plugin.
@Suite(.enabled(if: access("/dev/dma_heap", F_OK) != 0, "this machine has /dev/dma_heap: see DmaHeapTests (run through scripts/vm)"))
struct DmaHeapHostTests {
    let noHeaps = "no dma-heaps (/dev/dma_heap is missing or empty)"

    @Test func loadsAndRejectsEverythingWithTheReason() throws {
        let registry = try TestSupport.registry([TestSupport.shippedPlugin("dmaheap"), TestSupport.shippedPlugin("memfd")])
        #expect(registry.loadWarnings.isEmpty, "\(registry.loadWarnings)")
        #expect(registry.plugins.map(\.name) == ["dmaheap", "memfd"])
        #expect(registry.plugin(named: "dmaheap")?.defaultRank == Rank(144))
        #expect(registry.plugin(named: "dmaheap")?.stats() == noHeaps)

        let buffer = try registry.buffer(.bytes(4096))
        #expect(try buffer.materialize().allocator == "memfd")
        let entry = buffer.explanation?.entries.first
        #expect(entry?.allocator == "dmaheap" && entry?.outcome == .rejected && entry?.reason == noHeaps)

        let forced = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(4096, allocator: "dmaheap")).materialize() }
        #expect(forced?.message == "forced allocator dmaheap cannot satisfy the request: dmaheap: \(noHeaps)")
        let withSetting = try TestSupport.registry([TestSupport.shippedPlugin("dmaheap")], settings: ["dmaheap.heap": "system"])
        let error = #expect(throws: SMAFError.self) { try withSetting.buffer(.bytes(4096)).materialize() }
        #expect(error?.message == "no allocator can satisfy the request: dmaheap: \(noHeaps)")
    }

    @Test func smafListShowsIt() throws {
        var env = ProcessInfo.processInfo.environment
        env["SMAF_RANKS"] = nil
        env["SMAF_PLUGIN_PATH"] = TestSupport.shippedPlugin("dmaheap")
        let r = try TestSupport.run(TestSupport.smafExecutable, ["list", "--json"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let plugin = (json?["plugins"] as? [[String: Any]])?.first { $0["name"] as? String == "dmaheap" }
        #expect(plugin?["default_rank"] as? Int == 144)
        #expect((plugin?["description"] as? String)?.isEmpty == false)
    }
}
