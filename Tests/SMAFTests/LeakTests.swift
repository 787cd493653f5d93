import SMAF
import SMAFSys
import Testing

/// Every fd has one owner and one release path: many cycles and many
/// failures leave the process's fd count where it was. (The suite runs with
/// --no-parallel so other tests' fds do not move the count.)
@Suite(.serialized) struct LeakTests {
    @Test func tenThousandAllocateReleaseCycles() throws {
        let registry = try TestSupport.registry([TestSupport.shippedPlugin("memfd")])
        let before = OpenFiles.count()
        for i in 0..<10_000 {
            let buffer = try registry.buffer(.bytes(UInt64(4096 * (1 + i % 4))))
            let fd = try buffer.exportFD()
            _ = fd
            if i % 2 == 0 { try buffer.release() }
        }
        #expect(OpenFiles.count() == before)
    }

    @Test func thousandFailingRequests() throws {
        let registry = try TestSupport.registry([
            TestSupport.shippedPlugin("memfd"),
            try TestSupport.fixture(name: "exhausted", rank: 300, "FIXTURE_ALLOC_FAILS"),
        ])
        var contiguous = DeviceConstraints(name: "camera")
        contiguous.contiguous = true
        var a = DeviceConstraints(name: "a")
        a.formats = [.init(.xrgb8888)]
        var b = DeviceConstraints(name: "b")
        b.formats = [.init(.nv12)]
        let before = OpenFiles.count()
        var failures = 0
        for i in 0..<1_000 {
            do {
                switch i % 5 {
                case 0: _ = try registry.buffer(.bytes(0))
                case 1: _ = try registry.buffer(.bytes(4096, allocator: "nope"))
                case 2: _ = try registry.buffer(.bytes(4096), devices: [a, b])
                case 3: _ = try registry.buffer(.bytes(4096), devices: [contiguous]).exportFD()
                default: _ = try registry.buffer(.bytes(4096, allocator: "exhausted")).exportFD()
                }
            } catch {
                failures += 1
            }
        }
        #expect(failures == 1_000)
        #expect(OpenFiles.count() == before)
        // And the framework is still usable afterwards.
        #expect(try registry.buffer(.bytes(4096)).materialize().allocator == "memfd")
    }
}
