import Glibc
import SMAF
import SMAFSys
import Testing

@Suite struct BufferTests {
    let registry: AllocatorRegistry
    init() throws { registry = try TestSupport.registry([TestSupport.shippedPlugin("memfd")]) }

    /// In a child process: the fd count is this test's alone, whatever other tests open meanwhile.
    @Test func noMemoryUntilFirstUse() async {
        await #expect(processExitsWith: .success) {
            let registry = try TestSupport.registry([TestSupport.shippedPlugin("memfd")])
            let fds = TestSupport.openFDs()
            let buffer = try registry.buffer(.image(width: 640, height: 480, format: .xrgb8888))
            #expect(buffer.allocation == nil)
            #expect(buffer.explanation == nil)
            #expect(TestSupport.openFDs() == fds, "a deferred buffer holds no fd")
            let fd = try buffer.exportFD()
            #expect(buffer.allocation?.allocator == "memfd")
            #expect(try fd.byteSize() == buffer.allocation?.size)
        }
    }

    /// The forced allocator is a property of the request until the buffer
    /// has memory (what smaf_buffer_force_allocator stands on): a name is
    /// checked against the registry when it is given, nil lets the core
    /// choose again, and once there is memory nothing changes it.
    @Test func anAllocatorIsForcedUntilTheBufferHasMemory() throws {
        let r = try TestSupport.registry([TestSupport.shippedPlugin("memfd"), TestSupport.shippedPlugin("shm")])
        let buffer = try r.buffer(.bytes(8192))
        let unknown = #expect(throws: SMAFError.self) { try buffer.force(allocator: "no-such-allocator") }
        #expect(unknown?.kind == .unknownAllocator)
        #expect(unknown?.message == "allocator: no allocator named 'no-such-allocator' is loaded (known: memfd, shm)")
        #expect(buffer.request.allocator == nil, "a refused name changes nothing")
        try buffer.force(allocator: "memfd")
        try buffer.force(allocator: "shm")
        #expect(buffer.request.allocator == "shm")
        #expect(try buffer.materialize().allocator == "shm")
        #expect(buffer.explanation?.forcedAllocator == "shm")
        let late = #expect(throws: SMAFError.self) { try buffer.force(allocator: "memfd") }
        #expect(late?.message == "allocator: the buffer already has shm memory; force an allocator before its first use")
        #expect(buffer.allocation?.allocator == "shm")

        let unforced = try r.buffer(.bytes(8192, allocator: "shm"))
        try unforced.force(allocator: nil)
        #expect(try unforced.materialize().allocator == "memfd", "memfd outranks shm when nobody forces")
    }

    @Test func imageLayoutFromTheDevices() throws {
        var codec = DeviceConstraints(name: "codec")
        codec.pitchAlignment = 256
        codec.heightAlignment = 16
        let buffer = try registry.buffer(.image(width: 1000, height: 1000, format: .nv12), devices: [codec])
        let a = try buffer.materialize()
        #expect(a.planes.map(\.stride) == [1024, 1024])
        #expect(a.planes.map(\.offset) == [0, 1024 * 1008])
        #expect(a.size >= 1024 * 1008 * 3 / 2)
        #expect(a.size % Memory.pageSize == 0)
        #expect(a.modifier == .linear)
    }

    /// The sealed memfd udmabuf needs: shrink, grow and seal; never write.
    /// Where /dev/udmabuf exists the fd is the dma-buf instead.
    @Test func memfdIsSealedOrAUdmabuf() throws {
        let buffer = try registry.buffer(.bytes(3 * 4096 + 1))
        let fd = try buffer.exportFD()
        let a = try #require(buffer.allocation)
        #expect(a.size == 4 * 4096)
        if a.isDmaBuf {
            #expect(DmaBuf.exporterName(fd.rawValue) == "udmabuf")
        } else {
            let seals = try Memfd.seals(fd.rawValue)
            #expect(seals.isSuperset(of: [.shrink, .grow, .seal]))
            #expect(!seals.contains(.write), "udmabuf refuses F_SEAL_WRITE")
            #expect(ftruncate(fd.rawValue, 4096) == -1 && errno == EPERM, "the kernel enforces the seal")
        }
    }

    @Test func writtenBytesReadBackThroughAnotherMapping() throws {
        let buffer = try registry.buffer(.bytes(1 << 20))
        try buffer.withCPUAccess(.write) { bytes in
            for i in stride(from: 0, to: bytes.count, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i / 4096 + 1) }
        }
        #expect(buffer.devices.map(\.name) == ["cpu"], "mapping first attached the CPU as a device")
        let fd = try buffer.exportFD()
        let mapping = try Mapping(fd: fd.rawValue, length: 1 << 20, writable: false)
        for i in stride(from: 0, to: 1 << 20, by: 4096) {
            #expect(mapping.bytes[i] == UInt8(truncatingIfNeeded: i / 4096 + 1))
        }
    }

    @Test func lateAttachIsCheckedAgainstTheMemory() throws {
        let buffer = try registry.buffer(.image(width: 1920, height: 1080, format: .xrgb8888))
        let a = try buffer.materialize()
        #expect(a.planes[0].stride == 7680)

        var fits = DeviceConstraints(name: "blitter")
        fits.pitchAlignment = 256
        try buffer.attach(fits)

        var strict = DeviceConstraints(name: "dma-engine")
        strict.pitchAlignment = 4096
        let e1 = #expect(throws: SMAFError.self) { try buffer.attach(strict) }
        #expect(e1?.kind == .lateAttachRefused)
        #expect(e1?.message == "late attach of dma-engine refused: the buffer already has memfd memory and its pitch 7680 is not a multiple of 4096")

        var camera = DeviceConstraints(name: "camera")
        camera.contiguous = true
        let e2 = #expect(throws: SMAFError.self) { try buffer.attach(camera) }
        #expect(e2?.message.hasSuffix("it is not verified physically contiguous") == true)

        var yuvOnly = DeviceConstraints(name: "isp")
        yuvOnly.formats = [.init(.nv12)]
        let e3 = #expect(throws: SMAFError.self) { try buffer.attach(yuvOnly) }
        #expect(e3?.message == "late attach of isp refused: the buffer already has memfd memory and its format XR24 is not among NV12")

        #expect(buffer.devices.map(\.name) == ["blitter"], "refused devices are not attached")
    }

    @Test func conflictingDevicesAreRefusedAtAttach() throws {
        let buffer = try registry.buffer(.bytes(4096))
        var a = DeviceConstraints(name: "a")
        a.formats = [.init(.xrgb8888)]
        var b = DeviceConstraints(name: "b")
        b.formats = [.init(.nv12)]
        try buffer.attach(a)
        #expect(throws: SMAFError.self) { try buffer.attach(b) }
        #expect(buffer.devices.map(\.name) == ["a"])
        #expect(try buffer.materialize().allocator == "memfd", "still usable after the error")
    }

    @Test func requestChecksAgainstDevices() throws {
        var plane = DeviceConstraints(name: "plane")
        plane.maxWidth = 4096
        plane.formats = [.init(.xrgb8888, [.linear])]
        let tooWide = try registry.buffer(.image(width: 8192, height: 10, format: .xrgb8888), devices: [plane])
        let e1 = #expect(throws: SMAFError.self) { try tooWide.materialize() }
        #expect(e1?.message == "width: 8192 exceeds the max width 4096 of device plane")
        let wrongFormat = try registry.buffer(.image(width: 64, height: 64, format: .nv12), devices: [plane])
        let e2 = #expect(throws: SMAFError.self) { try wrongFormat.materialize() }
        #expect(e2?.message == "format: NV12 is not accepted by device plane (all accept: XR24)")
        let tiled = try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888, modifiers: [Modifier(rawValue: 0x0100_0000_0000_0001)]), devices: [plane])
        let e3 = #expect(throws: SMAFError.self) { try tiled.materialize() }
        #expect(e3?.message == "modifier: none of INTEL_0x1 is accepted by the devices for XR24 (they accept LINEAR)")
    }

    @Test func memfdRejectsWhatItCannotPromise() throws {
        var camera = DeviceConstraints(name: "camera")
        camera.contiguous = true
        let buffer = try registry.buffer(.bytes(1 << 20), devices: [camera])
        let error = #expect(throws: SMAFError.self) { try buffer.materialize() }
        #expect(error?.message == "no allocator can satisfy the request: memfd: it cannot deliver physically contiguous memory, which device camera needs")
        let tiledOnly = try registry.buffer(.image(width: 64, height: 64, format: .xrgb8888, modifiers: [Modifier(rawValue: 0x0100_0000_0000_0001)]))
        #expect(throws: SMAFError.self) { try tiledOnly.materialize() }
    }

    @Test func badRequestsAreClearErrors() throws {
        let e1 = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(0)) }
        #expect(e1?.message == "size: a buffer of 0 bytes cannot be allocated")
        let e2 = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(.max)) }
        #expect(e2?.message == "size: 18446744073709551615 bytes is more than any allocator can address")
        let e3 = #expect(throws: SMAFError.self) { try registry.buffer(.image(width: .max, height: .max, format: .abgr16161616f)) }
        #expect(e3?.kind == .invalidRequest)
        let e4 = #expect(throws: SMAFError.self) { try registry.buffer(.image(width: 0, height: 1, format: .xrgb8888)) }
        #expect(e4?.message == "image: image size 0x1 has a zero dimension")
        let e5 = #expect(throws: SMAFError.self) { try registry.buffer(.image(width: 8, height: 8, format: FourCC("ZZ99"))) }
        #expect(e5?.message == "image: format ZZ99 (0x39395a5a) is not known to smaf")
    }

    @Test func releaseIsIdempotentAndFinal() throws {
        let buffer = try registry.buffer(.bytes(4096))
        try buffer.materialize()
        try buffer.release()
        try buffer.release()
        #expect(buffer.allocation == nil)
        let error = #expect(throws: SMAFError.self) { _ = try buffer.exportFD() }
        #expect(error?.message == "buffer was released")
    }

    @Test func concurrentUseOfOneBuffer() async throws {
        let buffer = try registry.buffer(.bytes(1 << 16))
        let sizes = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for _ in 0..<16 {
                group.addTask { try buffer.exportFD().byteSize() }
            }
            return try await group.reduce(into: [UInt64]()) { $0.append($1) }
        }
        #expect(sizes == Array(repeating: 1 << 16, count: 16))
    }
}
