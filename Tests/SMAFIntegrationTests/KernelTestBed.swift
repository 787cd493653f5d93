import Glibc
import SMAF
import SMAFDRM
import SMAFSys
import Testing

/// Facts about the kernel the integration tests run on. These tests talk to
/// real drivers only: in the VM test bed (scripts/vm, SMAF_IN_VM=1) every
/// device must be there and a missing one fails; on a host without DRM they
/// are skipped, visibly.
enum KernelTestBed {
    static let inVM = getenv("SMAF_IN_VM").map { String(cString: $0) == "1" } ?? false
    static let hasDRM = !DRMDevice.primaryNodes().isEmpty
    static let enabled = inVM || hasDRM
    static let skipReason: Comment = "no DRM device on this machine: run through scripts/vm (README: the test command does)"

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

@Suite(.enabled(if: KernelTestBed.enabled, KernelTestBed.skipReason))
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
        #expect(info["name"]?.hasPrefix("smaf:memfd") == true, "DMA_BUF_SET_NAME labels it: \(info)")
        #expect(try fd.byteSize() == a.size)
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

extension KernelTestBed {
    /// Runs a program (a libdrm tool, say) and returns its stdout.
    static func run(_ program: String, _ args: [String]) throws -> String {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TestBedError(message: "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv = ([program] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, program, &actions, nil, argv, environ)
        close(fds[1])
        defer { close(fds[0]) }
        guard rc == 0 else { throw TestBedError(message: "cannot run \(program): \(String(cString: strerror(rc)))") }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &chunk, chunk.count)
            if n <= 0 { break }
            output += chunk[0..<n]
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return String(decoding: output, as: UTF8.self)
    }
}
