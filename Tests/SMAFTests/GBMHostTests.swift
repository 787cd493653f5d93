import Foundation
import SMAF
import Testing

private let hasPrimaryNode = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/dri")) ?? []).contains { $0.hasPrefix("card") }

/// On a machine without DRM the gbm plugin still loads, and its match() says
/// why it cannot help; the kernel behaviour is GBMTests' job, in the VM.
@Suite(.enabled(if: !hasPrimaryNode, "this machine has /dev/dri/card*: GBMTests covers gbm there"))
struct GBMHostTests {
    @Test func loadsAndRejectsForWantOfADRMDevice() throws {
        let registry = try TestSupport.registry([TestSupport.shippedPlugin("gbm"), TestSupport.shippedPlugin("memfd")])
        #expect(registry.loadWarnings.isEmpty)
        #expect(registry.plugins.map(\.name) == ["gbm", "memfd"])
        #expect(registry.plugin(named: "gbm")?.rank == .primary)
        let buffer = try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888))
        try buffer.materialize()
        let gbm = buffer.explanation?.entries.first { $0.allocator == "gbm" }
        #expect(gbm?.outcome == .rejected)
        #expect(gbm?.reason == "no DRM device: /dev/dri has no primary node (card*)")
        #expect(buffer.explanation?.chosen == "memfd")
    }

    @Test func aConfiguredNodeThatIsMissingIsNamed() throws {
        let registry = try TestSupport.registry([TestSupport.shippedPlugin("gbm")], settings: ["gbm.device": "/dev/dri/card7"])
        let buffer = try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888))
        let error = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(error?.message == "no allocator can satisfy the request: gbm: no DRM device: stat on /dev/dri/card7 failed: No such file or directory (ENOENT)")
    }

    @Test func plainBytesAreRejectedWithTheReason() throws {
        let registry = try TestSupport.registry([TestSupport.shippedPlugin("gbm")])
        let error = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(4096)).materialize() }
        #expect(error?.message == "no allocator can satisfy the request: gbm: it serves images, not plain byte buffers")
    }
}
