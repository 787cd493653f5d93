import Glibc
import SMAF
import SMAFDRM
import SMAFSys
import Testing

/// Facts about the kernel the integration tests run on. These tests talk to
/// real drivers only, and come in two kinds:
/// - suites written around the test bed's devices and their measured
///   behaviour (vgem, virtio-gpu, bochs, /dev/udmabuf, the system dma-heap):
///   `.enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason)`.
///   They run in the VM (scripts/vm, SMAFVM_GUEST=1), where a missing device
///   fails, and on a machine that has every one of those devices; elsewhere
///   (a workstation's real GPU, a host without DRM) they are skipped, visibly.
/// - suites that need a DRM device of any kind and expect nothing
///   driver-specific: `.enabled(if: KernelTestBed.anyDRM, KernelTestBed.noDRMReason)`.
///   They run in the VM and on real hardware too.
enum KernelTestBed {
    static let inVM = getenv("SMAFVM_GUEST").map { String(cString: $0) == "1" } ?? false
    static let drivers = Set(DRMDevice.primaryNodes().compactMap { try? DRMDevice(path: $0).driver })
    static let testBedDrivers: Set<String> = ["vgem", "virtio_gpu", "bochs-drm"]
    /// What this machine lacks of the test bed: DRM drivers, /dev/udmabuf, the system dma-heap.
    static let missingTestBedDevices: [String] = testBedDrivers.subtracting(drivers).sorted()
        + (access(Udmabuf.devicePath, R_OK | W_OK) == 0 ? [] : [Udmabuf.devicePath])
        + (access("/dev/dma_heap/system", R_OK) == 0 ? [] : ["/dev/dma_heap/system"])

    static let testBed = inVM || missingTestBedDevices.isEmpty
    static let testBedSkipReason: Comment = """
        needs the VM test bed's devices (vgem, virtio_gpu, bochs-drm, /dev/udmabuf, /dev/dma_heap/system), \
        and this machine lacks \(missingTestBedDevices.joined(separator: ", ")): run through scripts/vm (README: the test command does)
        """

    static let anyDRM = inVM || !drivers.isEmpty
    static let noDRMReason: Comment = "no DRM device on this machine (/dev/dri/card*): run through scripts/vm (README: the test command does)"

    /// The primary node of the device driven by `driver`, opened fresh.
    static func device(driver: String) throws -> DRMDevice {
        for path in DRMDevice.primaryNodes() {
            if let d = try? DRMDevice(path: path), d.driver == driver { return d }
        }
        throw TestBedError(message: "no DRM device with driver \(driver) (nodes: \(DRMDevice.primaryNodes()))")
    }

    static var buildDirectory: String {
        let exe = realpath("/proc/self/exe", nil).map { p in defer { free(p) }; return String(cString: p) } ?? ""
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)])
    }

    /// A registry of exactly these shipped plugins (default: memfd).
    static func registry(_ plugins: String...) -> AllocatorRegistry {
        let names = plugins.isEmpty ? ["memfd"] : plugins
        var c = Configuration.only(pluginPaths: names.map { "\(buildDirectory)/libsmafplugin_\($0).so" })
        c.logLevel = .error
        return AllocatorRegistry(configuration: c)
    }

    struct TestBedError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}

@Suite(.enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason))
struct KernelDeviceTests {
    @Test func theTestBedHasItsDevices() throws {
        let drivers = Set(DRMDevice.primaryNodes().compactMap { try? DRMDevice(path: $0).driver })
        #expect(drivers.isSuperset(of: ["vgem", "virtio_gpu", "bochs-drm"]), "found \(drivers)")
        #expect(access(Udmabuf.devicePath, R_OK | W_OK) == 0)
        #expect(access("/dev/dma_heap/system", R_OK) == 0)
        #expect(Udmabuf.sizeLimit() == 64 << 20, "udmabuf's default size_limit_mb")
    }

    @Test func memfdAllocatorExportsARealUdmabuf() throws {
        let buffer = try KernelTestBed.registry().buffer(.image(width: 640, height: 480, format: .xrgb8888))
        let fd = try buffer.exportFD()
        let a = try #require(buffer.allocation)
        #expect(a.isDmaBuf)
        let info = DmaBuf.fdInfo(fd.rawValue)
        #expect(info["exp_name"] == "udmabuf")
        #expect(info["name"]?.hasPrefix("smaf:") != true, "unnamed unless asked (an ioctl per buffer): \(info)")
        #expect(try fd.byteSize() == a.size)
    }

    /// SMAF_NAME_BUFFERS=1: each allocator that can names its dma-bufs.
    @Test(arguments: ["memfd", "dmaheap"]) func buffersAreNamedWhenAsked(allocator: String) throws {
        var c = Configuration.only(pluginPaths: ["\(KernelTestBed.buildDirectory)/libsmafplugin_\(allocator).so"])
        c.nameBuffers = true
        let fd = try AllocatorRegistry(configuration: c).buffer(.bytes(4096)).exportFD()
        #expect(DmaBuf.fdInfo(fd.rawValue)["name"]?.hasPrefix("smaf:\(allocator)") == true, "DMA_BUF_SET_NAME labels it")
    }

    /// The import matrix for udmabuf memory, measured: vgem takes it,
    /// virtio-gpu refuses with ENODEV, bochs with EINVAL. Asserting the
    /// refusals too means a kernel that changes this shows up here.
    @Test func udmabufImportsIntoVgemOnly() throws {
        let buffer = try KernelTestBed.registry().buffer(.bytes(1 << 20))
        let fd = try buffer.exportFD()
        let vgem = try KernelTestBed.device(driver: "vgem")
        let handle = try vgem.importDmaBuf(fd.rawValue)
        #expect(handle.handle != 0)

        let virtio = try KernelTestBed.device(driver: "virtio_gpu")
        let e1 = #expect(throws: SystemError.self) { _ = try virtio.importDmaBuf(fd.rawValue) }
        #expect(e1?.errno.rawValue == ENODEV)
        let bochs = try KernelTestBed.device(driver: "bochs-drm")
        let e2 = #expect(throws: SystemError.self) { _ = try bochs.importDmaBuf(fd.rawValue) }
        #expect(e2?.errno.rawValue == EINVAL)
        #expect(e2?.description.hasPrefix("drmPrimeFDToHandle on \(bochs.path) (bochs-drm) failed: Invalid argument (EINVAL)") == true)
    }

    @Test func bytesWrittenThroughOneMappingReadBackThroughAnother() throws {
        let size = 4 << 20
        let buffer = try KernelTestBed.registry().buffer(.bytes(UInt64(size)))
        try buffer.withCPUAccess(.write) { bytes in
            for i in stride(from: 0, to: bytes.count, by: 1024) { bytes[i] = UInt8(truncatingIfNeeded: i >> 10) ^ 0x5a }
        }
        // A second, independent mapping of an exported dma-buf fd, synced for reading.
        let fd = try buffer.exportFD()
        let mapping = try Mapping(fd: fd.rawValue, length: size, writable: false)
        try DmaBuf.beginCPUAccess(fd.rawValue, .read)
        var mismatches = 0
        for i in stride(from: 0, to: size, by: 1024) where mapping.bytes[i] != UInt8(truncatingIfNeeded: i >> 10) ^ 0x5a {
            mismatches += 1
        }
        try DmaBuf.endCPUAccess(fd.rawValue, .read)
        #expect(mismatches == 0)
    }

    @Test func overUdmabufsLimitIsRefusedInMatch() throws {
        let buffer = try KernelTestBed.registry().buffer(.bytes(65 << 20))
        let error = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(error?.message == "no allocator can satisfy the request: memfd: 68157440 bytes exceeds udmabuf's size limit of 67108864 bytes (/sys/module/udmabuf/parameters/size_limit_mb)")
    }
}
