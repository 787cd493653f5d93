import Glibc
import SMAF
import SMAFDRM
import SMAFSys
import Testing

/// The dmaheap plugin against the VM's real /dev/dma_heap (only "system":
/// no CMA heap there). Expected values were measured in the VM first
/// (Debian 13 kernel 6.12), so a kernel that behaves differently shows up.
@Suite(.serialized, .enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason))
struct DmaHeapTests {
    /// Like KernelTestBed.registry, with rank overrides and plugin settings.
    func registry(_ plugins: [String], ranks: String? = nil, settings: [String: String] = [:]) throws -> AllocatorRegistry {
        var c = Configuration.only(pluginPaths: plugins.map { "\(KernelTestBed.buildDirectory)/libsmafplugin_\($0).so" })
        if let ranks { c.rankOverrides = [try RankOverrides(parsing: ranks, source: "test")] }
        c.settings = settings
        c.logLevel = .error
        return AllocatorRegistry(configuration: c)
    }

    /// An open system heap, for the tests that call the SMAFSys wrapper directly.
    func systemHeap() throws -> UniqueFD { try UniqueFD.open(DmaHeap.path("system"), O_RDWR) }

    @Test func theVMHasOnlyTheSystemHeap() {
        #expect(DmaHeap.heapNames() == ["system"])
    }

    @Test func systemHeapGivesADmaBuf() throws {
        let buffer = try KernelTestBed.registry("dmaheap").buffer(.bytes((3 << 20) + 100))
        let fd = try buffer.exportFD()
        let a = try #require(buffer.allocation)
        #expect(a.allocator == "dmaheap")
        #expect(a.exporter == "dma-heap:system")
        #expect(a.isDmaBuf && a.cpuMappable)
        #expect(!a.contiguous && a.largestContiguous == 0, "the system heap promises no contiguity")
        #expect(a.size == (3 << 20) + 4096)
        let info = DmaBuf.fdInfo(fd.rawValue)
        #expect(info["exp_name"] == "system", "measured: the system heap exports as 'system'")
        #expect(info["name"] == nil, "unnamed unless SMAF_NAME_BUFFERS=1 asks")
        #expect(info["size"] == String(a.size))
        #expect(try fd.byteSize() == a.size)
    }

    @Test func bytesWrittenThroughOneMappingReadBackThroughAnother() throws {
        let buffer = try KernelTestBed.registry("dmaheap").buffer(.image(width: 640, height: 480, format: .xrgb8888))
        let a = try buffer.materialize()
        #expect(a.planes.first?.stride == 2560)
        let pattern = { (i: Int) in UInt8(truncatingIfNeeded: (i >> 7) &* 31) ^ 0xa5 }
        try buffer.withCPUAccess(.write) { bytes in
            for i in stride(from: 0, to: bytes.count, by: 128) { bytes[i] = pattern(i) }
        }
        let fd = try buffer.exportFD()
        let mapping = try Mapping(fd: fd.rawValue, length: Int(a.size), writable: false)
        try DmaBuf.beginCPUAccess(fd.rawValue, .read)
        let mismatches = stride(from: 0, to: mapping.length, by: 128).filter { mapping.bytes[$0] != pattern($0) }.count
        try DmaBuf.endCPUAccess(fd.rawValue, .read)
        #expect(mismatches == 0)
    }

    @Test func outranksMemfdUnlessRanksSayOtherwise() throws {
        let both = KernelTestBed.registry("memfd", "dmaheap")
        #expect(both.plugins.map(\.name) == ["dmaheap", "memfd"])
        #expect(both.plugins.first?.rank == Rank(144))
        #expect(try both.buffer(.bytes(1 << 20)).materialize().allocator == "dmaheap")
        let forcedMemfd = try both.buffer(.bytes(1 << 20, allocator: "memfd")).materialize()
        #expect(forcedMemfd.allocator == "memfd" && forcedMemfd.exporter == "udmabuf")

        let memfdFirst = try registry(["memfd", "dmaheap"], ranks: "memfd:primary")
        #expect(memfdFirst.plugins.map(\.name) == ["memfd", "dmaheap"])
        #expect(try memfdFirst.buffer(.bytes(1 << 20)).materialize().allocator == "memfd")
        let forced = try memfdFirst.buffer(.bytes(1 << 20, allocator: "dmaheap"))
        #expect(try forced.materialize().exporter == "dma-heap:system")
        #expect(forced.explanation?.entries.map(\.outcome) == [.skipped, .chosen])
    }

    @Test func contiguousIsRejectedWithoutACMAHeap() throws {
        var camera = DeviceConstraints(name: "camera")
        camera.contiguous = true
        let buffer = try KernelTestBed.registry("memfd", "dmaheap").buffer(.bytes(1 << 20), devices: [camera])
        let error = #expect(throws: SMAFError.self) { try buffer.materialize() }
        // No CMA heap here: dmaheap does not declare contiguity, and the core says so.
        let reason = "it cannot deliver physically contiguous memory, which device camera needs"
        #expect(error?.kind == .noAllocator)
        #expect(error?.message.hasPrefix("no allocator can satisfy the request: dmaheap: \(reason); memfd: ") == true, "\(error?.message ?? "")")
        let entry = buffer.explanation?.entries.first
        #expect(entry?.allocator == "dmaheap" && entry?.outcome == .rejected && entry?.reason == reason)
        #expect(buffer.explanation?.description.contains("dmaheap    rank 144  \(reason)") == true)
    }

    static func device(_ name: String, _ configure: (inout DeviceConstraints) -> Void) -> DeviceConstraints {
        var d = DeviceConstraints(name: name)
        configure(&d)
        return d
    }

    /// The refusals of a request forced onto dmaheap (so only its verdict is
    /// listed): the core's, from what dmaheap declared, and match()'s own.
    @Test(arguments: [
        (device("tee") { $0.secure = true },
         "the CPU can map its memory, and device tee needs memory the CPU cannot map"),
        (device("dma32") { $0.dmaAddressBits = 32 },
         "it cannot keep memory below 2^32, which device dma32 needs"),
        (device("aligned") { $0.addressAlignment = 1 << 16 },
         "it aligns buffers to at most 4096 bytes, and device aligned needs 65536"),
        (device("sg4") { $0.maxSegments = 4 },
         "heap system needs up to 256 segments; a device takes 4"),
        (device("udmabuf-only") { $0.needsDmaBuf = true; $0.importableFrom = ["udmabuf"] },
         "device udmabuf-only cannot import dma-heap:system dma-bufs (measured by the probe)"),
        (device("tiled") { $0.formats = [.init(.xrgb8888, [Modifier(rawValue: 1 << 56 | 1)])] },
         "it lays out LINEAR only; the devices accept INTEL_0x1"),
    ])
    func matchRejects(device: DeviceConstraints, reason: String) throws {
        let request: BufferRequest = device.formats == nil
            ? .bytes(1 << 20, allocator: "dmaheap")
            : .image(width: 512, height: 512, format: .xrgb8888, allocator: "dmaheap")
        let buffer = try KernelTestBed.registry("memfd", "dmaheap").buffer(request, devices: [device])
        let error = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(error?.message == "forced allocator dmaheap cannot satisfy the request: dmaheap: \(reason)")
    }

    @Test func theHeapSettingForcesOneHeap() throws {
        let unknown = try registry(["dmaheap"], settings: ["dmaheap.heap": "linux,cma"])
        let error = #expect(throws: SMAFError.self) { try unknown.buffer(.bytes(4096)).materialize() }
        #expect(error?.message == "no allocator can satisfy the request: dmaheap: dmaheap.heap is 'linux,cma', which /dev/dma_heap does not have (heaps: system)")
        #expect(unknown.plugin(named: "dmaheap")?.stats() == "system: open\ndmaheap.heap = linux,cma")

        let system = try registry(["dmaheap"], settings: ["dmaheap.heap": "system"])
        #expect(try system.buffer(.bytes(4096)).materialize().exporter == "dma-heap:system")
        var camera = DeviceConstraints(name: "camera")
        camera.contiguous = true
        let contiguous = #expect(throws: SMAFError.self) { try system.buffer(.bytes(4096), devices: [camera]).materialize() }
        #expect(contiguous?.message == "no allocator can satisfy the request: dmaheap: it cannot deliver physically contiguous memory, which device camera needs")
    }

    /// Measured matrix for system-heap buffers (drmPrimeFDToHandle): vgem
    /// imports, virtio-gpu refuses with ENODEV, bochs with EINVAL; the same
    /// as for udmabuf memory.
    @Test func importMatrix() throws {
        let buffer = try KernelTestBed.registry("dmaheap").buffer(.bytes(1 << 20))
        let fd = try buffer.exportFD()
        let handle = try KernelTestBed.device(driver: "vgem").importDmaBuf(fd.rawValue)
        #expect(handle.handle != 0)
        for (driver, expected) in [("virtio_gpu", ENODEV), ("bochs-drm", EINVAL)] {
            let device = try KernelTestBed.device(driver: driver)
            let error = #expect(throws: SystemError.self, "\(driver)") { _ = try device.importDmaBuf(fd.rawValue) }
            #expect(error?.errno.rawValue == expected, "\(driver): \(error?.description ?? "imported")")
        }
    }

    /// A heap fd allocated without O_RDWR: the kernel refuses writable
    /// mappings (measured: EACCES for mmap and for mprotect). Heap memory
    /// arrives zeroed.
    @Test func readOnlyHeapBufferRefusesWritableMappings() throws {
        let heap = try systemHeap()
        let ro = try DmaHeap.allocate(heap: heap.rawValue, size: 1 << 20, readOnly: true, context: DmaHeap.path("system"))
        #expect(fcntl(ro.rawValue, F_GETFL) & O_ACCMODE == O_RDONLY)
        let error = #expect(throws: SystemError.self) { _ = try Mapping(fd: ro.rawValue, length: 1 << 20, writable: true) }
        #expect(error?.description == "mmap(PROT_READ|PROT_WRITE) failed: Permission denied (EACCES)")
        let readable = try Mapping(fd: ro.rawValue, length: 1 << 20, writable: false)
        #expect(readable.bytes.allSatisfy { $0 == 0 })
        #expect(mprotect(readable.base, 4096, PROT_READ | PROT_WRITE) == -1 && errno == EACCES)
    }

    /// The core refuses size 0 before any plugin; the wrapper still reports
    /// the kernel's EINVAL naming the ioctl and the heap. Odd sizes are
    /// rounded up to pages by the kernel (measured: 100 -> 4096).
    @Test func sizesTheKernelRoundsOrRefuses() throws {
        let heap = try systemHeap()
        let error = #expect(throws: SystemError.self) {
            _ = try DmaHeap.allocate(heap: heap.rawValue, size: 0, context: DmaHeap.path("system"))
        }
        #expect(error?.description == "ioctl(DMA_HEAP_IOCTL_ALLOC, 0 bytes) on /dev/dma_heap/system failed: Invalid argument (EINVAL)")
        let odd = try DmaHeap.allocate(heap: heap.rawValue, size: 100)
        #expect(try odd.byteSize() == 4096)
    }

    @Test func fiveHundredCyclesLeakNoFD() throws {
        let registry = KernelTestBed.registry("memfd", "dmaheap")
        var camera = DeviceConstraints(name: "camera")
        camera.contiguous = true
        let before = OpenFiles.count()
        var fromHeap = 0, refused = 0
        for i in 0..<500 {
            let buffer = try registry.buffer(.bytes(UInt64(4096 * (1 + i % 8))), devices: i % 10 == 9 ? [camera] : [])
            do {
                let fd = try buffer.exportFD()
                if buffer.allocation?.exporter == "dma-heap:system" && DmaBuf.exporterName(fd.rawValue) == "system" { fromHeap += 1 }
            } catch {
                refused += 1
            }
            if i % 2 == 0 { try buffer.release() }
        }
        #expect(fromHeap == 450 && refused == 50)
        #expect(OpenFiles.count() == before)
    }
}
