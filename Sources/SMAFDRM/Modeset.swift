import CLibDRM
import Glibc
import SMAFSys

/// A KMS failure that is not one system call (no connector, no such mode),
/// or one that is, with a sentence around it. One line, like SystemError.
public struct KMSError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var systemError: SystemError?

    public init(_ message: String, systemError: SystemError? = nil) {
        self.message = message
        self.systemError = systemError
    }

    public var description: String { message }
}

/// One mode a connector offers.
public struct DisplayMode: Sendable, CustomStringConvertible {
    public let info: drmModeModeInfo
    public var width: UInt32 { UInt32(info.hdisplay) }
    public var height: UInt32 { UInt32(info.vdisplay) }
    public var preferred: Bool { info.type & UInt32(DRM_MODE_TYPE_PREFERRED) != 0 }

    /// Vertical refresh in Hz from the timings (vrefresh is rounded to an integer).
    public var refresh: Double {
        let total = Double(info.htotal) * Double(info.vtotal)
        guard total > 0 else { return 0 }
        var hz = Double(info.clock) * 1000 / total
        if info.flags & UInt32(DRM_MODE_FLAG_INTERLACE) != 0 { hz *= 2 }
        if info.flags & UInt32(DRM_MODE_FLAG_DBLSCAN) != 0 { hz /= 2 }
        return hz
    }

    /// `1280x800@74.99`.
    public var description: String {
        "\(width)x\(height)@\(String(format2: refresh))"
    }
}

/// `--mode 1024x768` or `1024x768@60`.
public struct ModeRequest: Sendable, Hashable, CustomStringConvertible {
    public var width: UInt32
    public var height: UInt32
    public var refresh: Double?

    public init(width: UInt32, height: UInt32, refresh: Double? = nil) {
        self.width = width
        self.height = height
        self.refresh = refresh
    }

    public init?(parsing text: String) {
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        let size = parts[0].split(separator: "x", omittingEmptySubsequences: false)
        guard size.count == 2, let w = UInt32(size[0]), let h = UInt32(size[1]), w > 0, h > 0 else { return nil }
        width = w
        height = h
        if parts.count == 2 {
            guard let r = Double(parts[1]), r > 0 else { return nil }
            refresh = r
        }
    }

    func matches(_ m: DisplayMode) -> Bool {
        m.width == width && m.height == height && (refresh.map { abs(m.refresh - $0) < 0.5 } ?? true)
    }

    public var description: String { "\(width)x\(height)" + (refresh.map { "@\(String(format2: $0))" } ?? "") }
}

/// A connector as KMS reports it, with the CRTCs its encoders can drive.
public struct Connector: Sendable {
    public let id: UInt32
    /// `Virtual-1`, `HDMI-A-2`: the type name and its per-type index, as xrandr and modetest name them.
    public let name: String
    public let connected: Bool
    public let modes: [DisplayMode]
    /// The CRTC driving it now, if any.
    public let currentCRTC: UInt32?
    /// Bit i set: the CRTC at index i of the device's resources can drive it.
    public let possibleCRTCs: UInt32
}

/// Connector, mode, CRTC and primary plane: what one picture on one screen needs.
public struct DisplayPipe: Sendable {
    public let connector: Connector
    public let mode: DisplayMode
    public let crtcID: UInt32
    public let crtcIndex: Int
    public let planeID: UInt32
}

extension DRMDevice {
    /// Every connector, probed (GETCONNECTOR re-reads the modes; slow on real
    /// monitors, so it runs once per session).
    public func connectors() -> [Connector] {
        guard let res = drmModeGetResources(rawFD) else { return [] }
        defer { drmModeFreeResources(res) }
        return (0..<Int(res.pointee.count_connectors)).compactMap { i in
            guard let c = drmModeGetConnector(rawFD, res.pointee.connectors[i]) else { return nil }
            defer { drmModeFreeConnector(c) }
            let type = drmModeGetConnectorTypeName(c.pointee.connector_type).map { String(cString: $0) } ?? "Unknown"
            let modes = (0..<Int(c.pointee.count_modes)).map { DisplayMode(info: c.pointee.modes[$0]) }
            var possible: UInt32 = 0
            for e in 0..<Int(c.pointee.count_encoders) {
                guard let enc = drmModeGetEncoder(rawFD, c.pointee.encoders[e]) else { continue }
                possible |= enc.pointee.possible_crtcs
                drmModeFreeEncoder(enc)
            }
            var current: UInt32?
            if c.pointee.encoder_id != 0, let enc = drmModeGetEncoder(rawFD, c.pointee.encoder_id) {
                if enc.pointee.crtc_id != 0 { current = enc.pointee.crtc_id }
                drmModeFreeEncoder(enc)
            }
            return Connector(id: c.pointee.connector_id, name: "\(type)-\(c.pointee.connector_type_id)",
                             connected: c.pointee.connection == DRM_MODE_CONNECTED, modes: modes,
                             currentCRTC: current, possibleCRTCs: possible)
        }
    }

    /// The CRTC ids in resource order (a CRTC's index is what possible_crtcs bits mean).
    func crtcIDs() -> [UInt32] {
        guard let res = drmModeGetResources(rawFD) else { return [] }
        defer { drmModeFreeResources(res) }
        return (0..<Int(res.pointee.count_crtcs)).map { res.pointee.crtcs[$0] }
    }

    /// Picks connector (named, else the first connected), mode (requested,
    /// else the preferred one, else the first), CRTC (the one already driving
    /// the connector, else the first free one it can use) and that CRTC's
    /// primary plane. Needs DRM_CLIENT_CAP_UNIVERSAL_PLANES to see the plane.
    public func choosePipe(connector wanted: String? = nil, mode request: ModeRequest? = nil) throws(KMSError) -> DisplayPipe {
        _ = drmSetClientCap(rawFD, UInt64(DRM_CLIENT_CAP_UNIVERSAL_PLANES), 1)
        let all = connectors()
        let where_ = "\(path) (\(driver))"
        guard !all.isEmpty else { throw KMSError("\(where_) has no display connectors (no KMS)") }
        let listing = all.map { "\($0.name) \($0.connected ? "connected" : "disconnected")" }.joined(separator: ", ")
        let connector: Connector
        if let wanted {
            guard let c = all.first(where: { $0.name == wanted }) else {
                throw KMSError("connector: \(where_) has no connector named \(wanted) (it has \(listing))")
            }
            guard c.connected, !c.modes.isEmpty else { throw KMSError("connector: \(wanted) on \(where_) is not connected") }
            connector = c
        } else {
            guard let c = all.first(where: { $0.connected && !$0.modes.isEmpty }) else {
                throw KMSError("\(where_) has no connected connector (\(listing))")
            }
            connector = c
        }

        let mode: DisplayMode
        if let request {
            let matching = connector.modes.filter(request.matches)
            guard let m = matching.first(where: \.preferred) ?? matching.first else {
                let offered = connector.modes.map(\.description).joined(separator: ", ")
                throw KMSError("mode: \(connector.name) on \(where_) has no mode \(request) (it offers \(offered))")
            }
            mode = m
        } else {
            // Non-empty: checked above.
            mode = connector.modes.first(where: \.preferred) ?? connector.modes[0]
        }

        let crtcs = crtcIDs()
        let busy = Set(all.filter { $0.id != connector.id }.compactMap(\.currentCRTC))
        let usable = crtcs.indices.filter { connector.possibleCRTCs & (1 << UInt32($0)) != 0 }
        guard let crtcIndex = connector.currentCRTC.flatMap({ crtcs.firstIndex(of: $0) })
                ?? usable.first(where: { !busy.contains(crtcs[$0]) }) else {
            throw KMSError("\(connector.name) on \(where_) has no free CRTC (possible CRTC mask 0x\(String(connector.possibleCRTCs, radix: 16)))")
        }
        guard let plane = primaryPlane(forCRTCIndex: crtcIndex) else {
            throw KMSError("CRTC \(crtcs[crtcIndex]) on \(where_) has no primary plane")
        }
        return DisplayPipe(connector: connector, mode: mode, crtcID: crtcs[crtcIndex], crtcIndex: crtcIndex, planeID: plane)
    }

    /// The primary plane that can feed the CRTC at `index`, preferring the
    /// one already on it.
    func primaryPlane(forCRTCIndex index: Int) -> UInt32? {
        guard let planes = drmModeGetPlaneResources(rawFD) else { return nil }
        defer { drmModeFreePlaneResources(planes) }
        var candidates: [(id: UInt32, onCRTC: Bool)] = []
        let crtc = crtcIDs()[index]
        for i in 0..<Int(planes.pointee.count_planes) {
            guard let p = drmModeGetPlane(rawFD, planes.pointee.planes[i]) else { continue }
            defer { drmModeFreePlane(p) }
            guard p.pointee.possible_crtcs & (1 << UInt32(index)) != 0,
                  properties(of: p.pointee.plane_id, type: UInt32(DRM_MODE_OBJECT_PLANE))["type"]?.value == UInt64(DRM_PLANE_TYPE_PRIMARY)
            else { continue }
            candidates.append((p.pointee.plane_id, p.pointee.crtc_id == crtc))
        }
        return (candidates.first(where: \.onCRTC) ?? candidates.first)?.id
    }

    /// Property name -> (property id, current value) for one KMS object.
    public func properties(of object: UInt32, type: UInt32) -> [String: (id: UInt32, value: UInt64)] {
        guard let props = drmModeObjectGetProperties(rawFD, object, type) else { return [:] }
        defer { drmModeFreeObjectProperties(props) }
        var result: [String: (id: UInt32, value: UInt64)] = [:]
        for i in 0..<Int(props.pointee.count_props) {
            guard let prop = drmModeGetProperty(rawFD, props.pointee.props[i]) else { continue }
            defer { drmModeFreeProperty(prop) }
            let name = withUnsafeBytes(of: prop.pointee.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            result[name] = (prop.pointee.prop_id, props.pointee.prop_values[i])
        }
        return result
    }
}

extension String {
    /// Two decimals, no Foundation: 74.9927 -> "74.99" (refresh rates, flip rates).
    public init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let frac = abs(hundredths % 100)
        self = "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
    }
}
