import CLibDRM
import Glibc
import SMAFSys

/// What a KMS device's display hardware accepts, read as drm_info reads it.
public struct KMSInfo: Sendable, Hashable {
    public enum PlaneType: String, Sendable, Hashable, Codable { case overlay, primary, cursor }

    public struct Plane: Sendable, Hashable {
        public var id: UInt32
        public var type: PlaneType
        /// Format -> modifiers, from IN_FORMATS, or from the plane's plain
        /// format list with [LINEAR, INVALID] when it has no IN_FORMATS.
        public var formats: [(format: UInt32, modifiers: [UInt64])]
        public var hasInFormats: Bool

        public static func == (a: Plane, b: Plane) -> Bool {
            a.id == b.id && a.type == b.type && a.hasInFormats == b.hasInFormats
                && a.formats.map(\.format) == b.formats.map(\.format) && a.formats.map(\.modifiers) == b.formats.map(\.modifiers)
        }
        public func hash(into h: inout Hasher) { h.combine(id) }
    }

    public var minWidth: UInt32, maxWidth: UInt32
    public var minHeight: UInt32, maxHeight: UInt32
    public var crtcCount: Int
    public var connectorCount: Int
    public var planes: [Plane]
}

extension DRMDevice {
    /// The device's KMS facts, or nil for a device without display (vgem).
    public func kmsInfo() -> KMSInfo? {
        // Universal planes so primary and cursor planes are listed too.
        _ = drmSetClientCap(rawFD, UInt64(DRM_CLIENT_CAP_UNIVERSAL_PLANES), 1)
        guard let res = drmModeGetResources(rawFD) else { return nil }
        defer { drmModeFreeResources(res) }
        var info = KMSInfo(minWidth: res.pointee.min_width, maxWidth: res.pointee.max_width,
                           minHeight: res.pointee.min_height, maxHeight: res.pointee.max_height,
                           crtcCount: Int(res.pointee.count_crtcs), connectorCount: Int(res.pointee.count_connectors),
                           planes: [])
        guard let planes = drmModeGetPlaneResources(rawFD) else { return info }
        defer { drmModeFreePlaneResources(planes) }
        for i in 0..<Int(planes.pointee.count_planes) {
            guard let plane = drmModeGetPlane(rawFD, planes.pointee.planes[i]) else { continue }
            defer { drmModeFreePlane(plane) }
            let props = objectProperties(plane.pointee.plane_id, UInt32(DRM_MODE_OBJECT_PLANE))
            let type: KMSInfo.PlaneType = switch props["type"] {
            case UInt64(DRM_PLANE_TYPE_PRIMARY): .primary
            case UInt64(DRM_PLANE_TYPE_CURSOR): .cursor
            default: .overlay
            }
            var p = KMSInfo.Plane(id: plane.pointee.plane_id, type: type, formats: [], hasInFormats: false)
            if let blobID = props["IN_FORMATS"], let blob = drmModeGetPropertyBlob(rawFD, UInt32(blobID)) {
                defer { drmModeFreePropertyBlob(blob) }
                p.formats = inFormats(blob)
                p.hasInFormats = true
            } else {
                // No IN_FORMATS: the plane predates modifiers; linear and the
                // driver's implicit layout are what it can take.
                p.formats = (0..<Int(plane.pointee.count_formats)).map {
                    (plane.pointee.formats[$0], [0, 0x00ff_ffff_ffff_ffff])
                }
            }
            info.planes.append(p)
        }
        return info
    }

    /// Property name -> value for one KMS object.
    private func objectProperties(_ id: UInt32, _ type: UInt32) -> [String: UInt64] {
        properties(of: id, type: type).mapValues(\.value)
    }

    /// Walks an IN_FORMATS blob (drm_format_modifier_blob) into format -> modifiers.
    private func inFormats(_ blob: UnsafeMutablePointer<drmModePropertyBlobRes>) -> [(format: UInt32, modifiers: [UInt64])] {
        var iter = drmModeFormatModifierIterator()
        var order: [UInt32] = []
        var byFormat: [UInt32: [UInt64]] = [:]
        while drmModeFormatModifierBlobIterNext(blob, &iter) {
            if byFormat[iter.fmt] == nil { order.append(iter.fmt) }
            byFormat[iter.fmt, default: []].append(iter.mod)
        }
        return order.map { ($0, byFormat[$0] ?? []) }
    }
}
