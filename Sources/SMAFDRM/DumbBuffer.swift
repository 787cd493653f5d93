import CLibDRM
import Glibc
import SMAFSys
import SystemPackage

extension DRMDevice {
    /// DRM_IOCTL_MODE_CREATE_DUMB. Returns the handle and the pitch and size
    /// the kernel chose: those are the truth, never recomputed. Dumb buffers
    /// need a primary node (render nodes refuse them with EACCES).
    public func createDumbBuffer(width: UInt32, height: UInt32, bitsPerPixel: UInt32) throws(SystemError) -> DumbBuffer {
        var handle: UInt32 = 0, pitch: UInt32 = 0
        var size: UInt64 = 0
        let rc = drmModeCreateDumbBuffer(rawFD, width, height, bitsPerPixel, 0, &handle, &pitch, &size)
        if rc != 0 {
            throw SystemError("DRM_IOCTL_MODE_CREATE_DUMB(\(width)x\(height), bpp \(bitsPerPixel))",
                              .init(rawValue: libdrmErrno(rc)), context: "\(path) (\(driver))")
        }
        return DumbBuffer(handle: GEMHandle(device: self, handle: handle), pitch: pitch, size: size)
    }

    /// Zeroes a dumb buffer through its MAP_DUMB mapping. Drivers backed by
    /// VRAM (bochs) do not promise zeroed memory, and a buffer must never show
    /// what the last user left in it.
    public func zeroFill(_ handle: borrowing GEMHandle, size: UInt64) throws(SystemError) {
        try withDumbMapping(handle, size: size) { memset($0.baseAddress!, 0, $0.count) }
    }

    /// Runs `body` on a read-write MAP_DUMB mapping of the buffer, unmapped after.
    public func withDumbMapping<R>(_ handle: borrowing GEMHandle, size: UInt64,
                                   _ body: (UnsafeMutableRawBufferPointer) -> R) throws(SystemError) -> R {
        var offset: UInt64 = 0
        let rc = drmModeMapDumbBuffer(rawFD, handle.handle, &offset)
        if rc != 0 {
            throw SystemError("DRM_IOCTL_MODE_MAP_DUMB", .init(rawValue: libdrmErrno(rc)), context: "\(path) (\(driver))")
        }
        guard size > 0, size <= UInt64(Int.max),
              let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_SHARED, rawFD, off_t(Int64(bitPattern: offset))),
              p != MAP_FAILED else {
            throw SystemError.current("mmap(dumb buffer)", context: "\(path) (\(driver))")
        }
        defer { munmap(p, Int(size)) }
        return body(UnsafeMutableRawBufferPointer(start: p, count: Int(size)))
    }

    /// PRIME export (drmPrimeHandleToFD) as a close-on-exec dma-buf; writable
    /// mappings need DRM_RDWR, so a read-only export is kernel-enforced.
    public func exportDmaBuf(_ handle: borrowing GEMHandle, readOnly: Bool = false) throws(SystemError) -> UniqueFD {
        var fd: Int32 = -1
        let flags = UInt32(O_CLOEXEC) | (readOnly ? 0 : UInt32(O_RDWR))
        let rc = drmPrimeHandleToFD(rawFD, handle.handle, flags, &fd)
        if rc != 0 || fd < 0 {
            throw SystemError("drmPrimeHandleToFD", .init(rawValue: libdrmErrno(rc)), context: "\(path) (\(driver))")
        }
        return UniqueFD(adopting: fd)
    }
}

/// A dumb buffer: its GEM handle (closed when this goes) and the pitch and
/// size the kernel chose.
public struct DumbBuffer: ~Copyable, Sendable {
    public let handle: GEMHandle
    public let pitch: UInt32
    public let size: UInt64
}

/// libdrm's wrappers return -1 with errno set, or -errno, depending on the
/// function and version; this reads whichever it was.
func libdrmErrno(_ rc: Int32) -> Int32 {
    rc < -1 ? -rc : (errno != 0 ? errno : EIO)
}
