import Glibc
import SMAF
import SMAFSys
import Testing

/// Secure buffers against the real kernel: where a module denies CPU
/// writes the fd itself is read-only, and the kernel refuses a writable
/// mapping (EACCES) whatever the holder tries.
@Suite(.enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason))
struct SecureVMTests {
    func registry(_ plugins: [String], _ settings: [String: String]) -> AllocatorRegistry {
        var c = Configuration.only(pluginPaths: plugins.map { "\(KernelTestBed.buildDirectory)/libsmafplugin_\($0).so" })
        c.settings = settings
        c.logLevel = .error
        return AllocatorRegistry(configuration: c)
    }

    /// The fd a device receives, and whether mmap with PROT_WRITE works on it.
    func writableMapping(_ fd: borrowing UniqueFD, _ size: UInt64) -> Int32 {
        guard let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0), p != MAP_FAILED else { return errno }
        munmap(p, Int(size))
        return 0
    }

    /// Which allocators can hand out a kernel-enforced read-only fd: dmaheap
    /// (allocation without O_RDWR), dumb and gbm (PRIME export without DRM_RDWR).
    /// memfd cannot: udmabuf exports are always O_RDWR.
    @Test(arguments: ["dmaheap", "dumb", "gbm"])
    func readOnlyFdIsEnforcedByTheKernel(allocator: String) throws {
        let r = registry(["memfd", "dmaheap", "dumb", "test"] + (allocator == "gbm" ? ["gbm"] : []), ["test.cpu": "read"])
        // virtio-gpu (probed) takes only its own buffers: dumb or gbm there.
        var display = allocator != "dmaheap"
            ? try DeviceConstraints.probe(node: try KernelTestBed.device(driver: "virtio_gpu").path)
            : DeviceConstraints(name: "display", usage: [.scanout])
        display.name = "display"
        let buffer = try r.buffer(.image(width: 256, height: 256, format: .xrgb8888))
        try buffer.markSecure(module: "test")
        try buffer.attach(display)
        let a = try buffer.materialize()
        #expect(a.allocator == allocator, "\(buffer.explanation?.description ?? "")")
        #expect(a.readOnly)
        let fd = try buffer.exportFD(for: "display")
        #expect(writableMapping(fd, a.size) == EACCES, "the kernel refuses a writable mapping")
        let read = try Mapping(fd: fd.rawValue, length: Int(a.size), writable: false)
        #expect(read.bytes[0] == 0, "a read-only mapping works, and the memory starts zeroed")
        let e = #expect(throws: SMAFError.self) { try buffer.withCPUAccess(.write) { _ in } }
        #expect(e?.kind == .accessDenied)
        // gbm's scanout BOs are not promised linear, so not CPU-mappable through smaf.
        #expect(a.cpuMappable || allocator == "gbm")
        if a.cpuMappable { try buffer.withCPUAccess(.read) { #expect($0[0] == 0) } }
    }

    @Test func memfdCannotHandOutReadOnlyFds() throws {
        let r = registry(["memfd", "test"], ["test.cpu": "none"])
        let buffer = try r.buffer(.bytes(4096, allocator: "memfd"))
        try buffer.markSecure(module: "test")
        let e = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(e?.message == "forced allocator memfd cannot satisfy the request: memfd: udmabuf dma-bufs are always writable (the kernel exports them O_RDWR); a read-only fd needs dmaheap or dumb")
    }

    /// Release scrubs a writable secure buffer: an fd a device kept shows
    /// zeros, and a new buffer from the heap never shows the old bytes.
    @Test func releaseScrubsHeapMemory() throws {
        let r = registry(["dmaheap", "test"], [:])
        let buffer = try r.buffer(.bytes(1 << 20))
        try buffer.markSecure(module: "test")
        try buffer.attach(DeviceConstraints(name: "decoder", usage: [.videoDecode]))
        let kept = try buffer.exportFD(for: "decoder")
        try buffer.withCPUAccess(.write) { $0.initializeMemory(as: UInt8.self, repeating: 0xa5) }
        buffer.release()
        try DmaBuf.beginCPUAccess(kept.rawValue, .read)
        let view = try Mapping(fd: kept.rawValue, length: 1 << 20, writable: false)
        #expect(view.bytes.allSatisfy { $0 == 0 })
        try DmaBuf.endCPUAccess(kept.rawValue, .read)
        #expect(buffer.securityLog.contains("scrub: zeroed 1048576 bytes"))
        let next = try r.buffer(.bytes(1 << 20))
        try next.withCPUAccess(.read) { #expect($0.allSatisfy { $0 == 0 }) }
    }
}
