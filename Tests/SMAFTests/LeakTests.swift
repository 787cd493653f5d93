import Foundation
import SMAF
import SMAFSys
import Synchronization
import Testing

/// Every fd has one owner and one release path: many cycles and many
/// failures leave the process's fd count where it was. Each test counts in a
/// child process of its own (an exit test), so the fds other tests open and
/// close meanwhile, in parallel, do not move the count.
@Suite struct LeakTests {
    /// What the counts here rest on: while this process opens and closes fds
    /// on another thread, as the tests running beside these do, a count taken
    /// in the exit test's child does not move. (The same count taken here, in
    /// the parent, would; the test checks that too, so it cannot pass idly.)
    @Test func aChildsFdCountIgnoresOtherTestsFds() async {
        let churn = FDChurn()
        defer { churn.stop() }
        while churn.cycles.load(ordering: .relaxed) == 0 { usleep(1000) }
        var movedHere = false
        for _ in 0..<200 where !movedHere {
            let before = TestSupport.openFDs()
            usleep(500)
            movedHere = TestSupport.openFDs() != before
        }
        #expect(movedHere, "the churn moves this process's fd count")
        await #expect(processExitsWith: .success) {
            let before = TestSupport.openFDs()
            for _ in 0..<100 {
                usleep(1000)
                #expect(TestSupport.openFDs() == before)
            }
        }
        #expect(churn.cycles.load(ordering: .relaxed) > 100, "the churn ran while the child counted")
    }

    @Test func tenThousandAllocateReleaseCycles() async {
        await #expect(processExitsWith: .success) {
            let registry = try TestSupport.registry([TestSupport.shippedPlugin("memfd")])
            let before = TestSupport.openFDs()
            for i in 0..<10_000 {
                let buffer = try registry.buffer(.bytes(UInt64(4096 * (1 + i % 4))))
                let fd = try buffer.exportFD()
                _ = fd
                if i % 2 == 0 { try buffer.release() }
            }
            #expect(TestSupport.openFDs() == before)
        }
    }

    @Test func thousandFailingRequests() async {
        await #expect(processExitsWith: .success) {
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
            let before = TestSupport.openFDs()
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
            #expect(TestSupport.openFDs() == before)
            // And the framework is still usable afterwards.
            #expect(try registry.buffer(.bytes(4096)).materialize().allocator == "memfd")
        }
    }
}

/// Opens and closes fds on a thread of its own until stopped, holding a
/// few at a time, like tests running in parallel with a leak check.
final class FDChurn: Sendable {
    let cycles = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    init() {
        Thread.detachNewThread { [self] in
            var held: [Int32] = []
            while !self.stopped.load(ordering: .relaxed) {
                let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
                if fd >= 0 { held.append(fd) }
                if held.count > 8 || fd < 0 { held.forEach { close($0) }; held.removeAll() }
                self.cycles.add(1, ordering: .relaxed)
                usleep(50)
            }
            held.forEach { close($0) }
        }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }
}
