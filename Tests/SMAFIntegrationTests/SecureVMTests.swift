import Glibc
import SMAF
import SMAFDRM
import SMAFProbe
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

    /// Memory smaf holds read-only cannot be zeroed by the CPU: a release
    /// says so (an error the caller sees) while a device's fd still reaches
    /// it, and needs no scrub once nothing else references it.
    @Test func readOnlyMemoryIsScrubbedOnlyWhenNothingReachesIt() throws {
        let r = registry(["dmaheap", "test"], ["test.cpu": "read"])
        func secureBuffer() throws -> Buffer {
            let buffer = try r.buffer(.bytes(1 << 16))
            try buffer.markSecure(module: "test")
            try buffer.attach(DeviceConstraints(name: "display", usage: [.scanout]))
            #expect(try buffer.materialize().readOnly)
            return buffer
        }
        let held = try secureBuffer()
        let e = try withExtendedLifetime(try held.exportFD(for: "display")) {
            #expect(throws: SMAFError.self) { try held.release() }
        }
        #expect(e?.message == "scrub of secure buffer \(held.id) impossible: its dmaheap memory is read-only to smaf and 1 other reference(s) (an exported fd, a mapping, a device's import) still reach it")
        #expect(held.securityLog.contains { $0.hasPrefix("scrub failed:") })

        let dropped = try secureBuffer()
        _ = try dropped.exportFD(for: "display") // closed at once
        try dropped.release()
        #expect(dropped.securityLog.contains("scrub: not needed: the memory is read-only to smaf and nothing else references it; dmaheap frees it now"))
    }

    /// A name proves nothing: a device that names a DRM node is judged by
    /// what the node is (its driver, or the node itself), never by the name
    /// its descriptor gives itself; a node that is no DRM device gets nothing.
    @Test func policyGrantsBindToTheNodeNotTheName() throws {
        let virtio = try KernelTestBed.device(driver: "virtio_gpu").path
        let path = "/tmp/smaf-bind-\(getpid()).json"
        func attempt(node: String, drm: String) throws -> String? {
            let json = #"{"default": "none", "cpu": "read_write", "devices": {"video-decoder": "read_write"}, "drm": "# + drm + "}"
            let f = try #require(fopen(path, "w"))
            fputs(json, f)
            fclose(f)
            let r = registry(["memfd", "policy"], ["policy.rules": path])
            var decoder = DeviceConstraints(name: "video-decoder", usage: [.videoDecode])
            decoder.importNode = node
            let buffer = try r.buffer(.bytes(4096, allocator: "memfd"))
            try buffer.markSecure(module: "policy")
            try buffer.attach(decoder)
            do { try buffer.materialize() } catch { return error.message }
            return nil
        }
        // The rule for the name would grant; the node's driver has none.
        #expect(try attempt(node: virtio, drm: #"{"vgem": "read_write"}"#)?
            .hasSuffix("allows video-decoder none (default; \(virtio) is driven by virtio_gpu, which drm does not name), not write") == true)
        #expect(try attempt(node: virtio, drm: #"{"virtio_gpu": "write"}"#) == nil, "the driver's rule")
        #expect(try attempt(node: virtio, drm: "{\"\(virtio)\": \"read_write\"}") == nil, "the node's own rule")
        let notDRM = try attempt(node: "/dev/udmabuf", drm: #"{"vgem": "read_write"}"#)
        #expect(notDRM?.contains("allows video-decoder none (its import_node is not a DRM device: open as a DRM node (a character device of major 226) on /dev/udmabuf failed: No such device (ENODEV))") == true, "\(notDRM ?? "")")
    }

    /// The core's own DRM node check agrees with libdrm on every node, and
    /// refuses what is not one without opening it for writing or hanging.
    @Test func drmNodeIdentityAgreesWithLibdrm() throws {
        for node in DRMDevice.primaryNodes() {
            #expect(try DRMNode.identify(node).driver == DRMDevice(path: node).driver)
        }
        for notANode in ["/dev/udmabuf", "/dev/zero", "/etc/passwd"] {
            #expect(throws: SystemError.self) { _ = try DRMNode.identify(notANode) }
        }
    }

    @Test func memfdCannotHandOutReadOnlyFds() throws {
        let r = registry(["memfd", "test"], ["test.cpu": "none"])
        let buffer = try r.buffer(.bytes(4096, allocator: "memfd"))
        try buffer.markSecure(module: "test")
        let e = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(e?.message == "forced allocator memfd cannot satisfy the request: memfd: it cannot hand out read-only fds, which a secure module that denies CPU writes needs")
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
        try buffer.release()
        try DmaBuf.beginCPUAccess(kept.rawValue, .read)
        let view = try Mapping(fd: kept.rawValue, length: 1 << 20, writable: false)
        #expect(view.bytes.allSatisfy { $0 == 0 })
        try DmaBuf.endCPUAccess(kept.rawValue, .read)
        #expect(buffer.securityLog.contains("scrub: zeroed 1048576 bytes"))
        let next = try r.buffer(.bytes(1 << 20))
        try next.withCPUAccess(.read) { #expect($0.allSatisfy { $0 == 0 }) }
    }
}
