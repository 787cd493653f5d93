import Foundation
import SMAF
import SMAFSys
import Synchronization
import Testing

/// The scrub promise with other threads racing it: a secure buffer's memory
/// is zeroed only after every CPU access has ended, and nothing maps it once
/// a release has started. On the host with memfd; in the VM (scripts/test)
/// with memfd over udmabuf and with the system dma-heap, whose kept fds are
/// real dma-bufs. Run under ThreadSanitizer by scripts/test.
@Suite(.serialized) struct SecureConcurrencyTests {
    static let allocators = ["memfd"] + (access("/dev/dma_heap/system", R_OK) == 0 ? ["dmaheap"] : [])
    static let secret: UInt8 = 0x5A

    /// A secure buffer granted to a display, with memory.
    func secureBuffer(_ allocator: String) throws -> Buffer {
        let registry = try TestSupport.registry([TestSupport.shippedPlugin(allocator), TestSupport.shippedPlugin("test")])
        let buffer = try registry.buffer(.bytes(1 << 16, allocator: allocator))
        try buffer.markSecure(module: "test")
        try buffer.attach(DeviceConstraints(name: "display", usage: [.scanout]))
        try buffer.materialize()
        return buffer
    }

    /// What a device that kept its fd sees: the distinct byte values.
    func seen(through fd: borrowing UniqueFD) throws -> Set<UInt8> {
        let mapping = try Mapping(fd: fd.rawValue, length: 1 << 16, writable: false)
        return Set(mapping.bytes)
    }

    /// A writer maps the buffer over and over, writing the secret each time,
    /// while the main thread releases it. Every write the writer managed
    /// happened before the scrub, so the display's kept fd reads zeros; and
    /// once the release started, the writer's next map was refused.
    @Test(arguments: allocators) func releaseWaitsForCPUWritersThenScrubs(allocator: String) throws {
        for trial in 0..<30 {
            let buffer = try secureBuffer(allocator)
            let kept = try buffer.exportFD(for: "display")
            let writes = Atomic<Int>(0)
            let refusal = Mutex<String?>(nil)
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                while true {
                    do {
                        try buffer.withCPUAccess(.write) { bytes in
                            // Long enough that the release lands while this body runs.
                            for _ in 0..<20 { memset(bytes.baseAddress!, Int32(Self.secret), bytes.count) }
                        }
                        writes.add(1, ordering: .relaxed)
                    } catch {
                        refusal.withLock { $0 = "\(error)" }
                        break
                    }
                }
                done.signal()
            }
            while writes.load(ordering: .relaxed) < 2 { usleep(100) }
            try buffer.release()
            done.wait()
            #expect(try seen(through: kept) == [0], "trial \(trial): the secret survived the scrub")
            #expect(refusal.withLock { $0 } == "map: buffer was released")
            #expect(buffer.securityLog.last(where: { $0.hasPrefix("scrub") }) == "scrub: zeroed 65536 bytes")
            let revokes = buffer.securityLog.filter { $0.hasPrefix("revoke cpu") }.count
            #expect(revokes == writes.load(ordering: .relaxed), "every CPU grant was revoked, none left for the scrub to race")
        }
    }

    /// release() from inside the buffer's own CPU access cannot wait for
    /// itself: it takes effect when the access ends, and scrubs then.
    @Test(arguments: allocators) func releaseFromInsideAnAccessHappensWhenItEnds(allocator: String) throws {
        let buffer = try secureBuffer(allocator)
        let kept = try buffer.exportFD(for: "display")
        try buffer.withCPUAccess(.write) { bytes in
            memset(bytes.baseAddress!, Int32(Self.secret), bytes.count)
            try buffer.release()
            memset(bytes.baseAddress!, Int32(Self.secret), bytes.count) // still this access's mapping
        }
        #expect(try seen(through: kept) == [0])
        let e = #expect(throws: SMAFError.self) { try buffer.withCPUAccess(.read) { _ in } }
        #expect(e?.message == "map: buffer was released")
    }

    /// Two CPU accesses at once hold two grants; each revokes its own, so
    /// a reader that finishes first does not take the writer's grant away.
    @Test func concurrentAccessesRevokeTheirOwnGrants() throws {
        let buffer = try secureBuffer("memfd")
        let writerIn = DispatchSemaphore(value: 0), readerDone = DispatchSemaphore(value: 0), writerDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? buffer.withCPUAccess(.write) { _ in
                writerIn.signal()
                readerDone.wait()
            }
            writerDone.signal()
        }
        writerIn.wait()
        try buffer.withCPUAccess(.read) { _ in }
        let log = buffer.securityLog
        readerDone.signal()
        writerDone.wait()
        #expect(log.filter { $0.hasPrefix("revoke cpu") } == ["revoke cpu bytes 0..<65536 read"], "\(log)")
        #expect(buffer.securityLog.filter { $0.hasPrefix("revoke cpu") }.last == "revoke cpu bytes 0..<65536 write")
    }
}
