import CLibDRM
import Glibc
import SMAFSys
import SystemPackage

/// How a framebuffer was created. Compositors try these in order because
/// drivers and kernels differ in what they accept (wlroots does the same).
public enum FramebufferPath: String, Sendable, Codable {
    /// ADDFB2 with DRM_MODE_FB_MODIFIERS: the layout is stated explicitly.
    case addFB2WithModifiers = "AddFB2WithModifiers"
    /// ADDFB2 without modifiers: the driver assumes linear or its implicit layout.
    case addFB2 = "AddFB2"
    /// Legacy ADDFB: depth and bpp instead of a fourcc, one plane.
    case addFB = "AddFB"
}

/// What a framebuffer is made of: one GEM handle (all planes in one buffer
/// object, as every smaf allocation is) and each plane's offset and pitch.
public struct FramebufferLayout: Sendable {
    public var width: UInt32
    public var height: UInt32
    public var fourcc: UInt32
    /// nil or DRM_FORMAT_MOD_INVALID: the implicit layout.
    public var modifier: UInt64?
    public var planes: [(offset: UInt32, pitch: UInt32)]

    public init(width: UInt32, height: UInt32, fourcc: UInt32, modifier: UInt64?, planes: [(offset: UInt32, pitch: UInt32)]) {
        self.width = width
        self.height = height
        self.fourcc = fourcc
        self.modifier = modifier
        self.planes = planes
    }

    static let invalidModifier: UInt64 = 0x00ff_ffff_ffff_ffff
    static let linearModifier: UInt64 = 0
    var explicitModifier: UInt64? { modifier == Self.invalidModifier ? nil : modifier }
}

/// A KMS framebuffer, removed (RMFB) exactly once when this owner goes. It
/// holds its own reference on the buffer object, so the GEM handle it was
/// made from may close first.
public struct Framebuffer: ~Copyable, Sendable {
    public let device: DRMDevice
    public let id: UInt32
    public let path: FramebufferPath
    /// The paths tried before `path`, each with why it was skipped or how it failed.
    public let fallbacks: [String]

    deinit { _ = drmModeRmFB(device.rawFD, id) }
}

extension DRMDevice {
    /// Creates a framebuffer: AddFB2WithModifiers, falling back to AddFB2
    /// and then legacy AddFB, each fallback passed to `log`. Modifiers are
    /// only dropped when that does not change the layout's meaning (LINEAR
    /// or implicit); legacy AddFB only takes the formats it has a depth for.
    public func addFramebuffer(_ layout: FramebufferLayout, handle: borrowing GEMHandle,
                               log: (String) -> Void = { _ in }) throws(KMSError) -> Framebuffer {
        let what = "\(layout.width)x\(layout.height) \(fourccCode(layout.fourcc))"
        guard !layout.planes.isEmpty, layout.planes.count <= 4 else {
            throw KMSError("framebuffer \(what): \(layout.planes.count) planes (1 to 4 allowed)")
        }
        var handles: [UInt32] = [0, 0, 0, 0], pitches: [UInt32] = [0, 0, 0, 0], offsets: [UInt32] = [0, 0, 0, 0]
        var modifiers: [UInt64] = [0, 0, 0, 0]
        for (i, p) in layout.planes.enumerated() {
            handles[i] = handle.handle
            pitches[i] = p.pitch
            offsets[i] = p.offset
            modifiers[i] = layout.explicitModifier ?? 0
        }
        var fallbacks: [String] = []
        func fallBack(_ path: FramebufferPath, _ why: String) {
            fallbacks.append("\(path.rawValue): \(why)")
            log("framebuffer on \(self.path) (\(driver)): \(path.rawValue) \(why); falling back")
        }
        func failure(_ rc: Int32) -> String {
            let e = Errno(rawValue: libdrmErrno(rc))
            return "failed: \(e.description) (\(e.symbolicName))"
        }
        var id: UInt32 = 0

        // 1. Explicit modifier, where the device takes modifiers at all.
        if let modifier = layout.explicitModifier {
            if supportsFramebufferModifiers {
                let rc = drmModeAddFB2WithModifiers(rawFD, layout.width, layout.height, layout.fourcc, handles, pitches, offsets,
                                                    modifiers, &id, UInt32(DRM_MODE_FB_MODIFIERS))
                if rc == 0 { return Framebuffer(device: self, id: id, path: .addFB2WithModifiers, fallbacks: fallbacks) }
                fallBack(.addFB2WithModifiers, failure(rc))
            } else {
                fallBack(.addFB2WithModifiers, "not used: \(driver) has no DRM_CAP_ADDFB2_MODIFIERS")
            }
            guard modifier == FramebufferLayout.linearModifier else {
                throw KMSError("framebuffer \(what) on \(path) (\(driver)): modifier 0x\(String(modifier, radix: 16)) "
                    + "cannot be expressed without AddFB2WithModifiers (\(fallbacks.joined(separator: "; ")))")
            }
        } else {
            fallBack(.addFB2WithModifiers, "not used: the buffer has the implicit modifier")
        }

        // 2. No modifier: the driver's default, linear for every driver smaf feeds from dumb or CPU memory.
        let rc = drmModeAddFB2(rawFD, layout.width, layout.height, layout.fourcc, handles, pitches, offsets, &id, 0)
        if rc == 0 { return Framebuffer(device: self, id: id, path: .addFB2, fallbacks: fallbacks) }
        fallBack(.addFB2, failure(rc))

        // 3. Legacy: depth/bpp, one plane at offset 0.
        guard let (depth, bpp) = Self.legacyDepth(layout.fourcc), layout.planes.count == 1, layout.planes[0].offset == 0 else {
            throw KMSError("framebuffer \(what) on \(path) (\(driver)): every path failed (\(fallbacks.joined(separator: "; ")); "
                + "AddFB: no legacy depth for this layout)")
        }
        let legacy = drmModeAddFB(rawFD, layout.width, layout.height, depth, bpp, layout.planes[0].pitch, handle.handle, &id)
        if legacy == 0 { return Framebuffer(device: self, id: id, path: .addFB, fallbacks: fallbacks) }
        throw KMSError("framebuffer \(what) on \(path) (\(driver)): every path failed (\(fallbacks.joined(separator: "; ")); AddFB: \(failure(legacy)))")
    }

    /// The depth/bpp pairs legacy ADDFB maps to fourccs (drm_mode_legacy_fb_format).
    static func legacyDepth(_ fourcc: UInt32) -> (UInt8, UInt8)? {
        switch fourccCode(fourcc) {
        case "XR24": (24, 32)
        case "AR24": (32, 32)
        case "XR30": (30, 32)
        case "RG16": (16, 16)
        case "XR15": (15, 16)
        case "C8  ": (8, 8)
        default: nil
        }
    }

    /// DIRTYFB over the whole framebuffer: drivers that copy to the real
    /// display (virtio-gpu, bochs via its shadow) show nothing new without it.
    /// Returns false when the driver has no dirty hook (ENOSYS): it scans the
    /// memory out directly and needs no flush.
    @discardableResult
    public func markDirty(_ fb: borrowing Framebuffer) throws(KMSError) -> Bool {
        let rc = drmModeDirtyFB(rawFD, fb.id, nil, 0)
        if rc == 0 { return true }
        let e = libdrmErrno(rc)
        if e == ENOSYS { return false }
        throw kmsFailure("drmModeDirtyFB(fb \(fb.id))", e)
    }

    /// A failed KMS call as a one-line error; EACCES/EPERM on a call that
    /// needs DRM master says so, since that is nearly always the cause.
    func kmsFailure(_ call: String, _ errno: Int32, masterHeld: Bool? = nil) -> KMSError {
        let error = SystemError(call, Errno(rawValue: errno), context: "\(path) (\(driver))")
        if masterHeld ?? (errno == EACCES || errno == EPERM) {
            return KMSError("\(error): another client is DRM master of \(path) (a display server or compositor?); "
                + "scanout needs the display to itself: stop that client or run on a free VT", systemError: error)
        }
        return KMSError(error.description, systemError: error)
    }
}

/// `XR24` from a fourcc code (no SMAFFormats dependency here).
func fourccCode(_ v: UInt32) -> String {
    String(decoding: (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }, as: UTF8.self)
}
