import CLibDRM
import Glibc
import SMAFSys
import SystemPackage

/// One open DRM node. Owns its fd: GEM handles are per open file and not
/// reference counted, so smaf never shares a DRM fd with other code and
/// opens its own per user (wlroots learned this the hard way).
public final class DRMDevice: Sendable {
    public let path: String
    private let fd: UniqueFD
    /// The kernel driver's name (`vgem`, `virtio_gpu`, `bochs-drm`, `i915`...).
    public let driver: String
    public let driverVersion: String

    /// The character-device major of every DRM node (DRM_MAJOR in the kernel).
    public static let major = DeviceNode.drmMajor

    /// Opens a DRM node. `path` may come from a descriptor: anything that is
    /// not a character device of major 226 is refused before any ioctl (see
    /// `UniqueFD.openCharacterDevice`); every DRM node smaf opens comes here.
    public init(path: String) throws(SystemError) {
        self.path = path
        fd = try UniqueFD.openCharacterDevice(path, major: Self.major, kind: "DRM device", flags: O_RDWR)
        guard let v = drmGetVersion(fd.rawValue) else {
            throw SystemError.current("drmGetVersion", context: path)
        }
        defer { drmFreeVersion(v) }
        driver = v.pointee.name.map { String(cString: $0) } ?? "unknown"
        driverVersion = "\(v.pointee.version_major).\(v.pointee.version_minor).\(v.pointee.version_patchlevel)"
    }

    /// The borrowed fd, for libdrm calls. Valid while `self` lives.
    public var rawFD: Int32 { fd.rawValue }

    public var isRenderNode: Bool { path.contains("/renderD") }

    /// drmGetCap; nil when the kernel does not know the cap.
    public func capability(_ cap: UInt64) -> UInt64? {
        var value: UInt64 = 0
        return drmGetCap(fd.rawValue, cap, &value) == 0 ? value : nil
    }

    /// Whether the device creates dumb buffers. DRM_CAP_DUMB_BUFFER answers
    /// only for KMS drivers (vgem gets EOPNOTSUPP yet creates them), so where
    /// the cap is unknown a 1x1 buffer is created and destroyed to find out.
    public var supportsDumbBuffers: Bool {
        if let cap = capability(UInt64(DRM_CAP_DUMB_BUFFER)) { return cap == 1 }
        do {
            _ = try createDumbBuffer(width: 1, height: 1, bitsPerPixel: 32)
            return true
        } catch {
            return false
        }
    }
    /// DRM_CAP_PRIME's import bit. Says the driver imports, not whose buffers.
    public var canImportPRIME: Bool { (capability(UInt64(DRM_CAP_PRIME)) ?? 0) & UInt64(DRM_PRIME_CAP_IMPORT) != 0 }
    /// DRM_CAP_PRIME's export bit.
    public var canExportPRIME: Bool { (capability(UInt64(DRM_CAP_PRIME)) ?? 0) & UInt64(DRM_PRIME_CAP_EXPORT) != 0 }
    /// DRM_CAP_ADDFB2_MODIFIERS: framebuffers may carry explicit modifiers.
    public var supportsFramebufferModifiers: Bool { capability(UInt64(DRM_CAP_ADDFB2_MODIFIERS)) == 1 }

    /// Imports a dma-buf (PRIME). The handle is closed when the returned owner goes.
    public func importDmaBuf(_ dmabuf: Int32) throws(SystemError) -> GEMHandle {
        var handle: UInt32 = 0
        let rc = drmPrimeFDToHandle(fd.rawValue, dmabuf, &handle)
        if rc != 0 {
            throw SystemError("drmPrimeFDToHandle", .init(rawValue: libdrmErrno(rc)), context: "\(path) (\(driver))")
        }
        return GEMHandle(device: self, handle: handle)
    }

    /// The primary nodes present (`/dev/dri/card*`), sorted.
    public static func primaryNodes() -> [String] {
        nodes(prefix: "card")
    }

    public static func renderNodes() -> [String] {
        nodes(prefix: "renderD")
    }

    private static func nodes(prefix: String) -> [String] {
        let names = ((try? Directory.entries("/dev/dri")) ?? []).filter { $0.hasPrefix(prefix) }
        // card2 before card10.
        return names.map { "/dev/dri/\($0)" }.sorted { $0.count != $1.count ? $0.count < $1.count : $0 < $1 }
    }
}

/// A GEM handle on one DRM fd, closed exactly once when this owner goes.
public struct GEMHandle: ~Copyable, Sendable {
    public let device: DRMDevice
    public let handle: UInt32

    init(device: DRMDevice, handle: UInt32) {
        self.device = device
        self.handle = handle
    }

    deinit { _ = drmCloseBufferHandle(device.rawFD, handle) }
}
