import Foundation
import SMAF
import SMAFSys
import Testing

/// The core checks what a plugin hands back against the fd itself before
/// anyone sees it: a plugin that lies about its memory (size, read-only, a
/// dma-buf) has its allocation released and the next allocator asked.
@Suite(.serialized) struct AllocationAuditTests {
    /// A lying fixture ranked above memfd, and memfd to fall back on.
    func registry(_ lie: String, settings: [String: String] = [:], extra: [String] = []) throws -> AllocatorRegistry {
        try TestSupport.registry([try TestSupport.fixture(name: "liar", rank: 300, lie), TestSupport.shippedPlugin("memfd")]
                                 + extra.map(TestSupport.shippedPlugin), settings: settings)
    }

    static let lies = [
        ("FIXTURE_LIES_ABOUT_SIZE", "the fd holds 32768 bytes, not the 65536 the allocation reports"),
        ("FIXTURE_LIES_READ_ONLY", "claims read-only, but the fd is open for writing (and no write seal stops a writable mapping)"),
        ("FIXTURE_LIES_DMABUF", "claims to be a dma-buf, but the kernel does not call the fd one"),
    ]

    @Test(arguments: lies) func aLieIsAFailedAllocation(lie: String, caught: String) throws {
        let buffer = try registry(lie).buffer(.bytes(1 << 16))
        let a = try buffer.materialize()
        #expect(a.allocator == "memfd", "the next allocator got the buffer")
        let liar = try #require(buffer.explanation?.entries.first)
        #expect(liar.allocator == "liar" && liar.outcome == .failed)
        #expect(liar.reason == "allocate() succeeded but broke its promises: \(caught); released it")
        // What smaf hands out is the memory it describes: mapping it works end to end.
        try buffer.withCPUAccess(.write) { $0[(1 << 16) - 1] = 1 }
    }

    /// The lying allocations' fds are released. Counted in a child process,
    /// where no other test opens fds meanwhile.
    @Test func aLyingAllocationLeaksNoFd() async {
        await #expect(processExitsWith: .success) {
            for (lie, _) in AllocationAuditTests.lies {
                let r = try AllocationAuditTests().registry(lie)
                let before = TestSupport.openFDs()
                for _ in 0..<10 { try r.buffer(.bytes(1 << 16)).materialize() }
                #expect(TestSupport.openFDs() == before)
            }
        }
    }

    /// A secure buffer whose module denies CPU writes needs an fd the kernel
    /// keeps read-only; a plugin that claims one over an O_RDWR memfd used
    /// to get the buffer (and its holder mapped it writable).
    @Test func aFalseReadOnlyClaimNeverBacksASecureBuffer() throws {
        let r = try registry("FIXTURE_LIES_READ_ONLY", settings: ["test.cpu": "read"], extra: ["test"])
        let buffer = try r.buffer(.bytes(4096))
        try buffer.markSecure(module: "test")
        let e = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(e?.message.contains("liar: allocate() succeeded but broke its promises: claims read-only, but the fd is open for writing") == true,
                "\(e?.message ?? "")")
        #expect(buffer.allocation == nil)
    }

    /// The scrub of a secure buffer used to die with SIGBUS on memory a
    /// plugin claimed but never backed; now such memory never gets that far.
    @Test func halfBackedMemoryNeverReachesTheScrub() throws {
        let liarOnly = try TestSupport.registry([try TestSupport.fixture(name: "liar", rank: 300, "FIXTURE_LIES_ABOUT_SIZE"),
                                                 TestSupport.shippedPlugin("test")])
        let buffer = try liarOnly.buffer(.bytes(1 << 16))
        try buffer.markSecure(module: "test")
        let e = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(e?.kind == .noAllocator)
        try buffer.release()
    }
}
