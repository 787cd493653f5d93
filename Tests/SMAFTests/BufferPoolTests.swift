@testable import SMAF
import Foundation
import SMAFPool
import SMAFSys
import Testing

/// BufferPool on the host (memfd memory) and AllocatorRegistry.choose. The
/// leak checks count fds in a child process (an exit test), where no other
/// test opens any.
@Suite struct BufferPoolTests {
    func registry(_ extra: [String] = []) throws -> AllocatorRegistry {
        try TestSupport.registry([TestSupport.shippedPlugin("memfd")] + extra)
    }

    /// The inode behind a buffer's memory, to tell one allocation from
    /// another (without exporting: exported memory is pooled only once
    /// nothing else references it).
    func inode(_ buffer: Buffer) throws -> UInt64 {
        try #require(buffer.memoryInode)
    }

    func fill(_ buffer: Buffer, _ byte: UInt8) throws {
        _ = try buffer.withCPUAccess(.write) { $0.initializeMemory(as: UInt8.self, repeating: byte) }
    }

    func bytes(_ buffer: Buffer) throws -> Set<UInt8> {
        try buffer.withCPUAccess(.read) { Set($0) }
    }

    @Test func recycledMemoryComesBackScrubbedUnlessTheCallerOptsOut() throws {
        let pool = BufferPool(registry: try registry())
        let request = BufferRequest.bytes(1 << 16)
        let first = try pool.acquire(request)
        #expect(first.allocation != nil, "acquire hands out a buffer that already has memory")
        let memory = try inode(first)
        try fill(first, 0xAB)
        pool.recycle(first)

        let scrubbed = try pool.acquire(request)
        #expect(try inode(scrubbed) == memory, "the same memory, recycled")
        #expect(try bytes(scrubbed) == [0])
        try fill(scrubbed, 0xCD)
        pool.recycle(scrubbed)

        let kept = try pool.acquire(request, scrub: false)
        #expect(try inode(kept) == memory)
        #expect(try bytes(kept) == [0xCD])
        let s = pool.statistics
        #expect((s.hits, s.misses, s.scrubs, s.scrubbedBytes, s.recycled) == (2, 1, 1, 1 << 16, 2))
    }

    static let allocators = ["memfd"] + (access("/dev/dma_heap/system", R_OK) == 0 ? ["dmaheap"] : [])

    /// acquire, export, recycle, acquire: the first user's kept fd must not
    /// reach the second user's data. A dma-buf's memory waits in the pool
    /// until the kernel shows no other reference (the kept fd closed);
    /// memory that is not a dma-buf (memfd on a host without udmabuf) is
    /// never pooled once exported. Runs on the host and in the VM.
    @Test(arguments: allocators) func exportedMemoryIsNotHandedToTheNextUser(allocator: String) throws {
        let pool = BufferPool(registry: try TestSupport.registry([TestSupport.shippedPlugin(allocator)]))
        let request = BufferRequest.bytes(1 << 16, allocator: allocator)
        let first = try pool.acquire(request)
        let memory = try inode(first)
        let isDmaBuf = try #require(first.allocation).isDmaBuf
        do {
            let kept = try first.exportFD()
            pool.recycle(first)

            let second = try pool.acquire(request)
            #expect(try inode(second) != memory, "memory an fd still reaches was handed out again")
            try fill(second, 0x5A)
            let seen = try Mapping(fd: kept.rawValue, length: 1 << 16, writable: false)
            #expect(!seen.bytes.contains(0x5A), "the first user's fd reads the second user's data")
            if isDmaBuf {
                #expect(pool.statistics.pooledCount == 1 && pool.statistics.stillReferenced == 1, "parked, waiting: \(pool.statistics)")
            } else {
                #expect(pool.statistics.pooledCount == 0 && pool.statistics.refused == 1, "not a dma-buf: never pooled once exported")
            }
        } // the first user closes its fd (and the mapping goes)
        let third = try pool.acquire(request)
        #expect(isDmaBuf == (try inode(third) == memory), "reused once nothing else references it (dma-bufs only)")
        #expect(try bytes(third) == [0])
    }

    @Test func aRecycledBufferObjectIsOver() throws {
        let pool = BufferPool(registry: try registry())
        let buffer = try pool.acquire(.bytes(4096))
        pool.recycle(buffer)
        let e = #expect(throws: SMAFError.self) { _ = try buffer.exportFD() }
        #expect(e?.message == "buffer was released")
        #expect(buffer.allocation == nil)
    }

    @Test func onlyTheSameRequestAndDevicesShareMemory() throws {
        let pool = BufferPool(registry: try registry())
        let a = try pool.acquire(.bytes(4096))
        let memory = try inode(a)
        pool.recycle(a)
        let bigger = try pool.acquire(.bytes(8192))
        let display = DeviceConstraints(name: "display", usage: [.scanout])
        let withDevice = try pool.acquire(.bytes(4096), devices: [display])
        #expect(try inode(bigger) != memory)
        #expect(try inode(withDevice) != memory)
        #expect(pool.statistics.hits == 0 && pool.statistics.pooledCount == 1)
        pool.recycle(withDevice)
        #expect(try inode(try pool.acquire(.bytes(4096), devices: [display])) != memory)
        #expect(pool.statistics.hits == 1)
    }

    @Test func countAndByteLimitsEvictTheOldest() throws {
        let pool = BufferPool(registry: try registry(), limits: .init(maxCount: 2, maxBytes: 3 << 16))
        let buffers = try (0..<3).map { _ in try pool.acquire(.bytes(1 << 16)) }
        let inodes = try buffers.map(inode)
        buffers.forEach(pool.recycle)
        #expect(pool.statistics.pooledCount == 2 && pool.statistics.evicted == 1)
        #expect(pool.contents.count == 2)
        // The newest comes back first; the oldest was evicted.
        #expect(try inode(try pool.acquire(.bytes(1 << 16))) == inodes[2])
        #expect(try inode(try pool.acquire(.bytes(1 << 16))) == inodes[1])

        let big = try pool.acquire(.bytes(4 << 16))
        pool.recycle(big)
        #expect(pool.statistics.pooledBytes == 0, "a buffer over maxBytes alone is not kept")
        #expect(pool.statistics.evicted == 2)
    }

    @Test func idleBuffersExpire() throws {
        let pool = BufferPool(registry: try registry(), limits: .init(idleExpiry: .milliseconds(1)))
        pool.recycle(try pool.acquire(.bytes(4096)))
        #expect(pool.statistics.pooledCount == 1)
        usleep(20_000)
        pool.trim()
        #expect(pool.statistics.pooledCount == 0 && pool.statistics.expired == 1)
    }

    @Test func secureBuffersAreNeverPooled() throws {
        let pool = BufferPool(registry: try registry([TestSupport.shippedPlugin("test")]))
        let buffer = try pool.registry.buffer(.bytes(4096))
        try buffer.markSecure(module: "test")
        try buffer.materialize()
        pool.recycle(buffer)
        #expect(pool.statistics.refused == 1 && pool.statistics.pooledCount == 0)
        #expect(buffer.securityLog.contains { $0.contains("scrub: zeroed 4096 bytes") }, "released through its module: \(buffer.securityLog)")
    }

    @Test func drainAndDeinitReleaseEverything() async {
        await #expect(processExitsWith: .success) {
            // The registry first: its plugins hold fds of their own (/dev/udmabuf in the VM).
            let registry = try TestSupport.registry([TestSupport.shippedPlugin("memfd")])
            let before = TestSupport.openFDs()
            do {
                let pool = BufferPool(registry: registry)
                for _ in 0..<3 { pool.recycle(try pool.acquire(.bytes(4096), scrub: false)) }
                let buffers = try (0..<3).map { _ in try pool.acquire(.bytes(8192)) }
                buffers.forEach(pool.recycle)
                #expect(TestSupport.openFDs() > before)
                pool.drain()
                #expect(pool.statistics.pooledCount == 0)
                #expect(TestSupport.openFDs() == before)
                pool.recycle(try pool.acquire(.bytes(4096)))
            }
            #expect(TestSupport.openFDs() == before, "the pool's deinit released what it held")
        }
    }

    @Test func chooseAllocatesNothing() async {
        await #expect(processExitsWith: .success) {
            let reject = try TestSupport.fixture(name: "picky", rank: 300, "FIXTURE_REJECT")
            let r = try TestSupport.registry([TestSupport.shippedPlugin("memfd"), reject])
            let before = TestSupport.openFDs()
            _ = try r.choose(.bytes(1 << 20), devices: [DeviceConstraints(name: "cpu", usage: [.cpuRead])])
            #expect(TestSupport.openFDs() == before, "nothing was allocated")
        }
    }

    @Test func chooseNamesTheWinnerWithoutAllocating() throws {
        let reject = try TestSupport.fixture(name: "picky", rank: 300, "FIXTURE_REJECT")
        let r = try registry([reject])
        let e = try r.choose(.bytes(1 << 20), devices: [DeviceConstraints(name: "cpu", usage: [.cpuRead])])
        #expect(e.chosen == "memfd")
        #expect(e.devices == ["cpu"])
        #expect(e.entries.map(\.outcome) == [.rejected, .chosen])
        #expect(e.entries.first?.reason == "picky never accepts (test fixture)")
        // The same walk as a real allocation.
        let buffer = try r.buffer(.bytes(1 << 20), devices: [DeviceConstraints(name: "cpu", usage: [.cpuRead])])
        try buffer.materialize()
        #expect(buffer.explanation?.entries.map(\.outcome) == e.entries.map(\.outcome))
        #expect(buffer.explanation?.chosen == "memfd")
    }

    @Test func chooseRefusesWhatSelectionRefuses() throws {
        let r = try registry()
        let e1 = #expect(throws: SMAFError.self) { try r.choose(.bytes(0)) }
        #expect(e1?.message == "size: a buffer of 0 bytes cannot be allocated")
        let e2 = #expect(throws: SMAFError.self) { try r.choose(.bytes(4096, allocator: "nope")) }
        #expect(e2?.message == "allocator: no allocator named 'nope' is loaded (known: memfd)")
        var secure = DeviceConstraints(name: "tee", usage: [])
        secure.secure = true
        let nobody = try r.choose(.bytes(4096), devices: [secure])
        #expect(nobody.chosen == nil)
        #expect(nobody.entries.map(\.outcome) == [.rejected])
    }
}
