import CLibDRM
import CLibGBM
import Glibc
import SMAFDRM
import SMAFPluginKit
import SMAFSys
import Synchronization
import SystemPackage

/// One DRM primary node opened for one gbm plugin context, with Mesa's GBM
/// device on it. Every gbm_* call goes through here, under `lock`: Mesa does
/// not promise that one gbm_device may be used from several threads at once.
///
/// Primary nodes, not render nodes: where Mesa has no driver of its own for
/// the device (vgem, bochs, virtio-gpu without 3D) it falls back to
/// kms_swrast, which allocates dumb buffers, and the kernel allows those on
/// primary nodes only (measured: EACCES on the render nodes of vgem and
/// virtio-gpu). Devices name primary nodes as their import_node too.
final class GBMNode: @unchecked Sendable {
    // @unchecked: `device` is only touched under `lock`; the rest is immutable.
    let drm: DRMDevice
    private let device: OpaquePointer
    private let lock = Mutex(())
    /// Whether this node's BOs map at all, per (usage flags, format), learnt
    /// once on a one-page BO instead of mapping every BO it hands out.
    private let mappable = Mutex<[UInt64: Bool]>([:])

    /// The exporter name devices' probes record: "drm:<driver>".
    var exporter: String { "drm:\(drm.driver)" }
    var label: String { "\(drm.path) (\(drm.driver))" }

    /// Opens `path` afresh: GEM handles belong to the open file, so this
    /// context's BOs never share a handle namespace with anyone else's.
    ///
    /// On a device without its own Mesa driver, gbm_create_device prints
    /// "MESA-LOADER: failed to open vgem ..." / "failed to load driver" on
    /// stderr before it falls back to kms_swrast and succeeds. Nobody asked
    /// for that and it reads like an error, so fd 2 is taken aside around
    /// this one call (StandardErrorCapture: serialized on stdio's stderr
    /// lock, process-wide) and what Mesa said goes to `mesaSaid`, the
    /// plugin's debug log; smaf's own log lines from other threads caught in
    /// the window are written back to stderr. Setting MESA_LOADER_DRIVER_OVERRIDE=kms_swrast would
    /// silence the loader too, but setenv() in a threaded host process races
    /// every getenv() and would push the application's own EGL/GBM onto
    /// software rendering. BO creation is left alone: it loads no driver, and
    /// the lines kms_swrast prints there ("KMS: DRM_IOCTL_MODE_CREATE_DUMB
    /// failed") come with a failure smaf reports anyway.
    init(path: String, mesaSaid: (String) -> Void) throws(PluginError) {
        do { drm = try DRMDevice(path: path) } catch {
            throw PluginError(errno: error.errno.rawValue, "no DRM device: \(error)")
        }
        guard drm.canExportPRIME else {
            throw PluginError(errno: EOPNOTSUPP, "\(path) (\(drm.driver)) cannot export dma-bufs (no DRM_PRIME_CAP_EXPORT)")
        }
        let fd = drm.rawFD
        let ((created, err), said) = StandardErrorCapture.capturing { () -> (OpaquePointer?, Int32) in
            Glibc.errno = 0
            let device = gbm_create_device(fd)
            return (device, Glibc.errno)
        }
        StandardErrorCapture.forward(said.smafs)
        said.call.forEach(mesaSaid)
        guard let device = created else {
            throw PluginError(errno: err == 0 ? ENODEV : err,
                              "gbm_create_device on \(path) (\(drm.driver)) failed: \(Self.errnoText(err)); Mesa has no driver for it (kms_swrast comes with libgl1-mesa-dri)")
        }
        self.device = device
    }

    deinit {
        // Every BO holds its node, so none is left when this runs.
        gbm_device_destroy(device)
    }

    func isSupported(_ format: FourCC, flags: UInt32) -> Bool {
        lock.withLock { _ in gbm_device_is_format_supported(device, format.rawValue, flags) != 0 }
    }

    /// True if the driver says it can lay `format` out with `modifier`.
    /// kms_swrast answers -1 for every modifier, LINEAR included.
    func knowsModifier(_ format: FourCC, _ modifier: UInt64) -> Bool {
        lock.withLock { _ in gbm_device_get_format_modifier_plane_count(device, format.rawValue, modifier) > 0 }
    }

    /// gbm_bo_create_with_modifiers2 when `modifiers` is non-empty, else
    /// gbm_bo_create. Returns the BO's address, which the caller must hand
    /// to `destroy` exactly once.
    func createBO(width: UInt32, height: UInt32, format: FourCC, flags: UInt32,
                  modifiers: [UInt64]) throws(PluginError) -> UInt {
        let (bo, err): (OpaquePointer?, Int32) = lock.withLock { _ in
            Glibc.errno = 0
            let bo = modifiers.isEmpty
                ? gbm_bo_create(device, width, height, format.rawValue, flags)
                : gbm_bo_create_with_modifiers2(device, width, height, format.rawValue, modifiers, UInt32(modifiers.count), flags)
            return (bo, Glibc.errno)
        }
        guard let bo else {
            let call = modifiers.isEmpty ? "gbm_bo_create" : "gbm_bo_create_with_modifiers2"
            throw PluginError(errno: err == 0 ? ENOMEM : err, "\(call) on \(label) failed: \(Self.errnoText(err))")
        }
        return UInt(bitPattern: bo)
    }

    /// Do the dma-bufs of BOs made with `flags` for `format` take a CPU
    /// mapping here? Measured once on a 16x16 BO (kms_swrast's dumb BOs map;
    /// a driver's own tiled BOs may not), then remembered.
    func mapsBOs(flags: UInt32, format: FourCC) -> Bool {
        let key = UInt64(flags) << 32 | UInt64(format.rawValue)
        if let known = mappable.withLock({ $0[key] }) { return known }
        var maps = false
        if let bo = try? createBO(width: 16, height: 16, format: format, flags: flags, modifiers: []) {
            if let fd = try? export(bo, readOnly: true), let size = try? fd.byteSize(), size > 0 {
                maps = (try? Mapping(fd: fd.rawValue, length: Int(clamping: size), writable: false)) != nil
            }
            destroy(bo)
        }
        mappable.withLock { $0[key] = maps }
        return maps
    }

    func destroy(_ bo: UInt) {
        guard let p = OpaquePointer(bitPattern: bo) else { return }
        lock.withLock { _ in gbm_bo_destroy(p) }
    }

    struct Layout {
        var modifier: Modifier
        var planes: [PluginAllocation.Plane]
    }

    func layout(_ bo: UInt) -> Layout {
        let p = OpaquePointer(bitPattern: bo)
        return lock.withLock { _ in
            let count = max(1, Int(gbm_bo_get_plane_count(p)))
            let planes = (0..<Int32(count)).map {
                PluginAllocation.Plane(offset: UInt64(gbm_bo_get_offset(p, $0)), stride: gbm_bo_get_stride_for_plane(p, $0))
            }
            return Layout(modifier: Modifier(rawValue: gbm_bo_get_modifier(p)), planes: planes)
        }
    }

    /// The BO as one dma-buf. First drmPrimeHandleToFD(DRM_CLOEXEC|DRM_RDWR)
    /// on this node's own fd (DRM_RDWR left out for a read-only buffer, which
    /// the kernel then enforces): Mesa's gbm_bo_get_fd exports without
    /// DRM_RDWR, so its fd refuses mmap(PROT_WRITE) with EACCES (measured on
    /// all three VM devices), and the kernel keeps one dma-buf per GEM object,
    /// so whoever exports first fixes the mode. gbm_bo_get_fd_for_plane is the
    /// fallback (kernels before 4.6 reject DRM_RDWR). Dumb-backed BOs have no
    /// fd of their own in Mesa's dri backend, which the PRIME path covers.
    func export(_ bo: UInt, readOnly: Bool) throws(PluginError) -> UniqueFD {
        let p = OpaquePointer(bitPattern: bo)
        let (handles, primeFD, primeErr, gbmFD): ([UInt32], Int32, Int32, Int32) = lock.withLock { _ in
            let count = max(1, gbm_bo_get_plane_count(p))
            let handles = (0..<count).map { gbm_bo_get_handle_for_plane(p, $0).u32 }
            guard Set(handles).count == 1 else { return (handles, -1, 0, -1) }
            var fd: Int32 = -1
            let rc = drmPrimeHandleToFD(drm.rawFD, handles[0], UInt32(O_CLOEXEC | (readOnly ? 0 : O_RDWR)), &fd)
            if rc == 0 && fd >= 0 { return (handles, fd, 0, -1) }
            let err = rc < -1 ? -rc : Glibc.errno
            return (handles, -1, err, gbm_bo_get_fd_for_plane(p, 0))
        }
        if Set(handles).count != 1 {
            throw PluginError(errno: EOPNOTSUPP, "the BO's \(handles.count) planes live in \(Set(handles).count) GEM objects on \(label); smaf hands out one dma-buf per buffer")
        }
        if primeFD >= 0 { return UniqueFD(adopting: primeFD) }
        if gbmFD >= 0 { return UniqueFD(adopting: gbmFD) }
        throw PluginError(errno: primeErr == 0 ? EIO : primeErr,
                          "drmPrimeHandleToFD on \(label) failed: \(Self.errnoText(primeErr)), and so did gbm_bo_get_fd_for_plane")
    }

    private static func errnoText(_ err: Int32) -> String {
        guard err != 0 else { return "no errno set" }
        let e = Errno(rawValue: err)
        return "\(e.description) (\(e.symbolicName))"
    }
}

/// One allocation: the BO, its dma-buf and the node both belong to.
/// Holding the node keeps gbm_device_destroy after the last BO's destroy.
final class GBMBuffer: @unchecked Sendable {
    // @unchecked: immutable; the BO is touched only through `node`, under its lock.
    let node: GBMNode
    let bo: UInt
    let dmabuf: UniqueFD

    init(node: GBMNode, bo: UInt, dmabuf: consuming UniqueFD) {
        self.node = node
        self.bo = bo
        self.dmabuf = dmabuf
    }

    deinit { node.destroy(bo) } // `dmabuf` closes right after
}
