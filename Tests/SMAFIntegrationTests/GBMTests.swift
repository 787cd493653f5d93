import Glibc
import SMAF
import SMAFDRM
import SMAFSys
import Testing

/// The gbm allocator on the VM's three DRM devices, used through the core as
/// an application would. Mesa serves all three with kms_swrast (vgem and
/// bochs have no Mesa driver, virtio-gpu has no 3D under QEMU): linear dumb
/// buffers, no modifier support (ENOSYS), NV12 unsupported.
@Suite(.enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason), .serialized)
struct GBMTests {
    static let drivers = ["vgem", "virtio_gpu", "bochs-drm"]

    /// A device that imports the buffer into `driver`'s primary node.
    static func importer(_ driver: String) throws -> DeviceConstraints {
        var d = DeviceConstraints(name: "\(driver)-importer")
        d.importNode = try KernelTestBed.device(driver: driver).path
        d.needsDmaBuf = true
        return d
    }

    static func image(_ format: FourCC = .xrgb8888, _ modifiers: [Modifier] = []) -> BufferRequest {
        .image(width: 640, height: 480, format: format, modifiers: modifiers)
    }

    static func entry(_ buffer: Buffer, _ allocator: String) -> Explanation.Entry? {
        buffer.explanation?.entries.first { $0.allocator == allocator }
    }

    @Test(arguments: drivers) func allocatesOnTheImportersDeviceAndImportsBack(driver: String) throws {
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(Self.image(), devices: [Self.importer(driver)])
        let fd = try buffer.exportFD()
        let a = try #require(buffer.allocation)
        #expect(a.allocator == "gbm", "\(String(describing: buffer.explanation))")
        #expect(a.exporter == "drm:\(driver)")
        #expect(a.isDmaBuf)
        #expect(a.planes.count == 1)
        let stride = UInt64(a.planes.first?.stride ?? 0)
        #expect(stride >= 640 * 4)
        #expect(try fd.byteSize() == a.size)
        #expect(a.size >= stride * 480)
        // A fresh open of the node: GEM handles are per open file.
        let device = try KernelTestBed.device(driver: driver)
        let handle = try device.importDmaBuf(fd.rawValue)
        #expect(handle.handle != 0)
    }

    @Test(arguments: drivers) func cpuWritesReadBackThroughASecondMapping(driver: String) throws {
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(Self.image(), devices: [Self.importer(driver)])
        func pattern(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i >> 6) ^ 0xa5 }
        try buffer.withCPUAccess(.write) { bytes in
            for i in stride(from: 0, to: bytes.count, by: 64) { bytes[i] = pattern(i) }
        }
        let a = try #require(buffer.allocation)
        #expect(a.allocator == "gbm")
        #expect(a.cpuMappable, "kms_swrast's BOs are dumb buffers: linear and mappable (measured)")
        let fd = try buffer.exportFD()
        let mapping = try Mapping(fd: fd.rawValue, length: Int(a.size), writable: false)
        try DmaBuf.beginCPUAccess(fd.rawValue, .read)
        var mismatches = 0
        for i in stride(from: 0, to: mapping.length, by: 64) where mapping.bytes[i] != pattern(i) { mismatches += 1 }
        try DmaBuf.endCPUAccess(fd.rawValue, .read)
        #expect(mismatches == 0)
        // The CPU's buffer is still the device's: it imports.
        _ = try KernelTestBed.device(driver: driver).importDmaBuf(fd.rawValue)
    }

    @Test(arguments: drivers) func aFormatGBMLacksIsRejectedAndMemfdServes(driver: String) throws {
        let importer = try Self.importer(driver)
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(Self.image(.nv12), devices: [importer])
        try buffer.materialize()
        let gbm = try #require(Self.entry(buffer, "gbm"))
        #expect(gbm.outcome == .rejected)
        #expect(gbm.reason == "gbm on \(importer.importNode ?? "?") (\(driver)) does not support NV12 with no usage flags")
        #expect(buffer.explanation?.entries.map(\.outcome) == [.rejected, .chosen])
        #expect(buffer.explanation?.chosen == "memfd")
    }

    /// GBM says virtio-gpu takes RG16, but kms_swrast's dumb buffer of 16 bpp
    /// is refused by virtio-gpu (32 bpp only): allocate fails, memfd serves.
    @Test func aBOTheDriverRefusesFailsOverToMemfd() throws {
        let importer = try Self.importer("virtio_gpu")
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(Self.image(.rgb565), devices: [importer])
        try buffer.materialize()
        let gbm = try #require(Self.entry(buffer, "gbm"))
        #expect(gbm.outcome == .failed)
        #expect(gbm.reason.contains("gbm_bo_create on \(importer.importNode ?? "?") (virtio_gpu) failed: Invalid argument (EINVAL)"), "\(gbm.reason)")
        #expect(buffer.explanation?.chosen == "memfd")
    }

    @Test func plainBytesAreLeftToOtherAllocators() throws {
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(.bytes(1 << 20))
        try buffer.materialize()
        let gbm = try #require(Self.entry(buffer, "gbm"))
        #expect(gbm.outcome == .rejected)
        #expect(gbm.reason == "it serves images, not plain byte buffers", "the core, from gbm's capabilities")
        #expect(buffer.explanation?.chosen == "memfd")
    }

    @Test(arguments: drivers) func threeHundredCyclesLeaveNoFilesOrHandles(driver: String) throws {
        let registry = KernelTestBed.registry("gbm", "memfd")
        let importer = try Self.importer(driver)
        let device = try KernelTestBed.device(driver: driver)
        func cycle() throws -> UInt32 {
            let buffer = try registry.buffer(Self.image(), devices: [importer])
            let fd = try buffer.exportFD()
            #expect(buffer.allocation?.allocator == "gbm")
            let handle = try device.importDmaBuf(fd.rawValue)
            try buffer.release()
            return handle.handle // the import's GEM handle closes here
        }
        // The first cycle opens the plugin's node and Mesa's driver: they stay for the registry's life.
        let first = try cycle()
        let before = OpenFiles.count()
        var handles: Set<UInt32> = [first]
        for _ in 0..<300 { handles.insert(try cycle()) }
        #expect(OpenFiles.count() == before)
        // GEM handles are the lowest free number: the same one each time only if each import was closed.
        #expect(handles == [first])
    }

    /// Without probe data every device is assumed to import anything, so the
    /// first named node is home; the measured matrix agrees (virtio-gpu dumb
    /// buffers import into vgem).
    @Test func twoImportersGetTheFirstNodeBothCanImportFrom() throws {
        let buffer = try KernelTestBed.registry("gbm", "memfd")
            .buffer(Self.image(), devices: [Self.importer("virtio_gpu"), Self.importer("vgem")])
        let fd = try buffer.exportFD()
        #expect(buffer.allocation?.exporter == "drm:virtio_gpu")
        _ = try KernelTestBed.device(driver: "virtio_gpu").importDmaBuf(fd.rawValue)
        _ = try KernelTestBed.device(driver: "vgem").importDmaBuf(fd.rawValue)
    }

    /// With probe data, a node whose buffers another device cannot import is passed over.
    @Test func probeDataSteersTheHomeNode() throws {
        var bochs = try Self.importer("bochs-drm")
        bochs.importableFrom = ["drm:bochs-drm"]
        var vgem = try Self.importer("vgem")
        vgem.importableFrom = ["drm:vgem", "drm:virtio_gpu", "udmabuf"]
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(Self.image(), devices: [bochs, vgem])
        #expect(throws: SMAFError.self) { try buffer.materialize() }
        let gbm = try #require(Self.entry(buffer, "gbm"))
        #expect(gbm.reason == "device vgem-importer cannot import drm:bochs-drm dma-bufs (measured by the probe); device bochs-drm-importer cannot import drm:vgem dma-bufs (measured by the probe)")
    }

    @Test func linearOnlyFallsBackToTheLinearFlag() throws {
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(Self.image(.xrgb8888, [.linear]), devices: [Self.importer("vgem")])
        let a = try buffer.materialize()
        #expect(a.allocator == "gbm")
        #expect(a.modifier == .linear)
        #expect(a.detail.hasPrefix("gbm_bo_create(LINEAR) on "), "with_modifiers2 gives ENOSYS on kms_swrast: \(a.detail)")
    }

    @Test func implicitOnlyIsReportedAsInvalid() throws {
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(Self.image(.xrgb8888, [.invalid]), devices: [Self.importer("vgem")])
        let a = try buffer.materialize()
        #expect(a.allocator == "gbm")
        #expect(a.modifier == .invalid)
        #expect(!a.cpuMappable, "an implicit layout without GBM_BO_USE_LINEAR is not promised linear")
    }

    @Test func aVendorModifierGBMCannotMakeIsRejected() throws {
        let xTiled = Modifier(rawValue: 0x0100_0000_0000_0001)
        let buffer = try KernelTestBed.registry("gbm", "memfd").buffer(Self.image(.xrgb8888, [xTiled]), devices: [Self.importer("vgem")])
        #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(Self.entry(buffer, "gbm")?.reason == "gbm on \(try Self.importer("vgem").importNode ?? "?") (vgem) supports none of the modifiers INTEL_0x1 for XR24 (XRGB8888)")
    }

    /// GBM takes no pitch constraint: a BO whose pitch does not fit is
    /// destroyed and the next allocator gets the request.
    @Test func aPitchGBMDidNotHonourFailsOverToMemfd() throws {
        var device = try Self.importer("vgem")
        device.pitchAlignment = 4096
        let registry = KernelTestBed.registry("gbm", "memfd")
        func misfit() throws -> (Allocation, Explanation.Entry?) {
            let buffer = try registry.buffer(Self.image(), devices: [device])
            defer { try? buffer.release() }
            return (try buffer.materialize(), Self.entry(buffer, "gbm"))
        }
        _ = try misfit() // opens the plugin's node, which stays
        let before = OpenFiles.count()
        let (a, gbm) = try misfit()
        #expect(gbm?.outcome == .failed)
        #expect(gbm?.reason.contains("does not fit: plane 0 pitch 2560 is not a multiple of 4096") == true, "\(gbm?.reason ?? "")")
        #expect(a.allocator == "memfd")
        #expect(a.planes.first?.stride == 4096)
        #expect(OpenFiles.count() == before, "the BO that did not fit and its dma-buf are gone")
    }

    /// What Mesa's loader says opening vgem (it has no driver of its own) is
    /// not lost: SMAF_LOG=debug shows it, as one of the gbm plugin's log lines.
    @Test func mesasLoaderLinesGoToTheDebugLog() throws {
        let vgem = try KernelTestBed.device(driver: "vgem").path
        var env = KernelTestBed.environmentWithoutSMAF
        env["SMAF_GBM_DEVICE"] = vgem
        env["SMAF_LOG"] = "debug"
        let r = try KernelTestBed.execute("\(KernelTestBed.buildDirectory)/smaf",
                                          ["alloc", "--allocator", "gbm", "--width", "64", "--height", "64", "--format", "XR24"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.allSatisfy { $0.hasPrefix("smaf: ") }, "only smaf's own log lines:\n\(r.stderr)")
        #expect(lines.contains { $0.hasPrefix("smaf: debug: [gbm] Mesa, opening \(vgem): MESA-LOADER: failed to open vgem") }, "\(r.stderr)")
    }
}
