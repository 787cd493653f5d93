import CLibDRM
import Glibc
import SMAFSys

/// How the mode was set and frames flipped.
public enum CommitPath: String, Sendable, Codable {
    /// DRM_IOCTL_MODE_ATOMIC, each configuration checked with TEST_ONLY first.
    case atomic
    /// drmModeSetCrtc and drmModePageFlip, for drivers without atomic support.
    case legacy
}

/// A CRTC's configuration as found, so it can be put back.
public struct SavedCRTC: Sendable {
    public let crtcID: UInt32
    /// 0: the CRTC was off.
    public let framebuffer: UInt32
    public let x: UInt32, y: UInt32
    public let mode: DisplayMode?
    /// The connectors it was driving.
    public let connectors: [UInt32]
}

/// Drives one display pipe: sets the mode, flips framebuffers, waits for
/// flip events, and puts the CRTC back as it found it. Holds DRM master on
/// its device's fd for its lifetime (the fd is the device's, not shared).
/// Not thread-safe: one thread drives a display.
public final class DisplayController {
    public let device: DRMDevice
    public let pipe: DisplayPipe
    public let path: CommitPath
    public let saved: SavedCRTC
    /// Why legacy was used, when it was.
    public let legacyReason: String?

    private var props: [String: UInt32] = [:]
    private var modeBlob: UInt32 = 0
    private var touched = false
    private var restored = false
    /// Flip-complete events seen; the event's user data points here.
    private let flips = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)

    /// Takes DRM master (or fails saying who has it), chooses atomic unless
    /// `preferLegacy` or the driver lacks it, and saves the CRTC's state.
    public init(device: DRMDevice, pipe: DisplayPipe, preferLegacy: Bool = false) throws(KMSError) {
        self.device = device
        self.pipe = pipe
        flips.initialize(to: 0)
        try device.becomeMaster()
        saved = device.saveCRTC(pipe.crtcID)
        var reason: String? = preferLegacy ? "legacy requested" : nil
        if reason == nil {
            if drmSetClientCap(device.rawFD, UInt64(DRM_CLIENT_CAP_ATOMIC), 1) != 0 {
                reason = "\(device.driver) has no atomic modesetting (DRM_CLIENT_CAP_ATOMIC refused)"
            } else {
                do throws(KMSError) { props = try device.atomicProperties(pipe) } catch { reason = error.message }
            }
        }
        legacyReason = reason
        path = reason == nil ? .atomic : .legacy
    }

    deinit {
        try? restore()
        if modeBlob != 0 { _ = drmModeDestroyPropertyBlob(device.rawFD, modeBlob) }
        flips.deallocate()
    }

    private var fd: Int32 { device.rawFD }

    /// Shows `fb` (the mode's size) on the pipe. Atomic: the whole
    /// configuration is tested with TEST_ONLY, then committed.
    public func modeset(framebuffer fb: UInt32) throws(KMSError) {
        let w = pipe.mode.width, h = pipe.mode.height
        guard path == .atomic else {
            var connector = pipe.connector.id
            var mode = pipe.mode.info
            touched = true
            let rc = drmModeSetCrtc(fd, pipe.crtcID, fb, 0, 0, &connector, 1, &mode)
            if rc != 0 { throw device.kmsFailure("drmModeSetCrtc(CRTC \(pipe.crtcID), fb \(fb), \(pipe.mode))", libdrmErrno(rc)) }
            return
        }
        if modeBlob == 0 {
            var mode = pipe.mode.info
            let rc = drmModeCreatePropertyBlob(fd, &mode, MemoryLayout<drmModeModeInfo>.size, &modeBlob)
            if rc != 0 { throw device.kmsFailure("drmModeCreatePropertyBlob(mode \(pipe.mode))", libdrmErrno(rc)) }
        }
        let settings: [(UInt32, String, UInt64)] = [
            (pipe.connector.id, "connector.CRTC_ID", UInt64(pipe.crtcID)),
            (pipe.crtcID, "crtc.MODE_ID", UInt64(modeBlob)),
            (pipe.crtcID, "crtc.ACTIVE", 1),
            (pipe.planeID, "plane.FB_ID", UInt64(fb)),
            (pipe.planeID, "plane.CRTC_ID", UInt64(pipe.crtcID)),
            (pipe.planeID, "plane.SRC_X", 0), (pipe.planeID, "plane.SRC_Y", 0),
            (pipe.planeID, "plane.SRC_W", UInt64(w) << 16), (pipe.planeID, "plane.SRC_H", UInt64(h) << 16),
            (pipe.planeID, "plane.CRTC_X", 0), (pipe.planeID, "plane.CRTC_Y", 0),
            (pipe.planeID, "plane.CRTC_W", UInt64(w)), (pipe.planeID, "plane.CRTC_H", UInt64(h)),
        ]
        let what = "connector \(pipe.connector.name), CRTC \(pipe.crtcID), plane \(pipe.planeID), fb \(fb), \(pipe.mode)"
        try atomicCommit(settings, flags: UInt32(DRM_MODE_ATOMIC_TEST_ONLY | DRM_MODE_ATOMIC_ALLOW_MODESET),
                         call: "drmModeAtomicCommit(TEST_ONLY: \(what))")
        touched = true
        try atomicCommit(settings, flags: UInt32(DRM_MODE_ATOMIC_ALLOW_MODESET), call: "drmModeAtomicCommit(\(what))")
    }

    /// Queues a flip to `fb` at the next vblank with a flip-complete event;
    /// `waitForFlip` waits for it.
    public func flip(to fb: UInt32) throws(KMSError) {
        if path == .atomic {
            try atomicCommit([(pipe.planeID, "plane.FB_ID", UInt64(fb))],
                             flags: UInt32(DRM_MODE_ATOMIC_NONBLOCK | DRM_MODE_PAGE_FLIP_EVENT),
                             call: "drmModeAtomicCommit(NONBLOCK|PAGE_FLIP_EVENT: plane \(pipe.planeID), fb \(fb))", userData: flips)
        } else {
            let rc = drmModePageFlip(fd, pipe.crtcID, fb, UInt32(DRM_MODE_PAGE_FLIP_EVENT), flips)
            if rc != 0 { throw device.kmsFailure("drmModePageFlip(CRTC \(pipe.crtcID), fb \(fb))", libdrmErrno(rc)) }
        }
    }

    public enum Wait: Sendable, Equatable { case flipped, stopRequested, timedOut }

    /// Waits for the flip-complete event, or until `stopFD` (a signalfd, say)
    /// becomes readable, or `timeoutMS` passes. The stop fd is not read.
    public func waitForFlip(stopFD: Int32? = nil, timeoutMS: Int32) throws(KMSError) -> Wait {
        let before = flips.pointee
        let deadline = monotonicSeconds() + Double(timeoutMS) / 1000
        var ctx = drmEventContext()
        ctx.version = 2
        ctx.page_flip_handler = { _, _, _, _, data in
            data?.assumingMemoryBound(to: UInt64.self).pointee += 1
        }
        while flips.pointee == before {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            if let stopFD { fds.append(pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)) }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return .timedOut }
            let n = poll(&fds, nfds_t(fds.count), Int32(clamping: Int64((remaining * 1000).rounded(.up))))
            if n < 0 {
                if errno == EINTR { continue }
                throw KMSError(SystemError.current("poll", context: "\(device.path) (\(device.driver))").description)
            }
            if fds.count > 1 && fds[1].revents != 0 { return .stopRequested }
            if fds[0].revents & Int16(POLLIN) != 0 && drmHandleEvent(fd, &ctx) != 0 {
                throw KMSError(SystemError.current("drmHandleEvent", context: "\(device.path) (\(device.driver))").description)
            }
        }
        return .flipped
    }

    /// Puts the CRTC back as it was found (its framebuffer, position, mode
    /// and connectors), or turns it off if it was off. Legacy SetCrtc does
    /// this on atomic drivers too, as modetest and kmscube do. Idempotent;
    /// runs on deinit if not called.
    public func restore() throws(KMSError) {
        guard touched, !restored else { return }
        restored = true
        var connectors = saved.connectors
        if saved.framebuffer != 0, var mode = saved.mode?.info, !connectors.isEmpty {
            let rc = drmModeSetCrtc(fd, saved.crtcID, saved.framebuffer, saved.x, saved.y, &connectors, Int32(connectors.count), &mode)
            if rc == 0 { return }
            let e = libdrmErrno(rc)
            _ = drmModeSetCrtc(fd, saved.crtcID, 0, 0, 0, nil, 0, nil)
            throw device.kmsFailure("drmModeSetCrtc(restore CRTC \(saved.crtcID) to fb \(saved.framebuffer); turned it off instead)", e)
        }
        let rc = drmModeSetCrtc(fd, saved.crtcID, 0, 0, 0, nil, 0, nil)
        if rc != 0 { throw device.kmsFailure("drmModeSetCrtc(turn CRTC \(saved.crtcID) off again)", libdrmErrno(rc)) }
    }

    private func atomicCommit(_ settings: [(UInt32, String, UInt64)], flags: UInt32, call: String,
                              userData: UnsafeMutableRawPointer? = nil) throws(KMSError) {
        guard let req = drmModeAtomicAlloc() else { throw KMSError("drmModeAtomicAlloc: out of memory") }
        defer { drmModeAtomicFree(req) }
        for (object, name, value) in settings {
            guard let prop = props[name] else { throw KMSError("atomic: no property \(name) on object \(object)") }
            if drmModeAtomicAddProperty(req, object, prop, value) < 0 {
                throw KMSError("drmModeAtomicAddProperty(\(name)): out of memory")
            }
        }
        let rc = drmModeAtomicCommit(fd, req, flags, userData)
        if rc != 0 { throw device.kmsFailure(call, libdrmErrno(rc)) }
    }
}

extension DRMDevice {
    /// Makes this fd DRM master, needed to change what is on screen. The
    /// first opener of a primary node is master already; root may take it
    /// when nobody holds it. EBUSY means another fd holds it.
    public func becomeMaster() throws(KMSError) {
        if drmIsMaster(rawFD) != 0 { return }
        let rc = drmSetMaster(rawFD)
        if rc == 0 { return }
        let e = libdrmErrno(rc)
        throw kmsFailure("drmSetMaster", e, masterHeld: e == EBUSY || e == EACCES || e == EPERM)
    }

    /// Gives DRM master up (drmDropMaster), so another process can take it
    /// while this fd stays open to watch. Harmless if not master.
    public func dropMaster() {
        if drmIsMaster(rawFD) != 0 { _ = drmDropMaster(rawFD) }
    }

    /// What a CRTC shows now: its framebuffer (0: off), position, mode and
    /// the connectors it drives. Reading needs no master.
    public func crtcState(_ id: UInt32) -> SavedCRTC { saveCRTC(id) }

    func saveCRTC(_ id: UInt32) -> SavedCRTC {
        var fb: UInt32 = 0, x: UInt32 = 0, y: UInt32 = 0
        var mode: DisplayMode?
        if let c = drmModeGetCrtc(rawFD, id) {
            fb = c.pointee.buffer_id
            x = c.pointee.x
            y = c.pointee.y
            if c.pointee.mode_valid != 0 { mode = DisplayMode(info: c.pointee.mode) }
            drmModeFreeCrtc(c)
        }
        var driven: [UInt32] = []
        if let res = drmModeGetResources(rawFD) {
            for i in 0..<Int(res.pointee.count_connectors) {
                // GetConnectorCurrent: no re-probe, just the state.
                guard let c = drmModeGetConnectorCurrent(rawFD, res.pointee.connectors[i]) else { continue }
                if c.pointee.encoder_id != 0, let e = drmModeGetEncoder(rawFD, c.pointee.encoder_id) {
                    if e.pointee.crtc_id == id { driven.append(c.pointee.connector_id) }
                    drmModeFreeEncoder(e)
                }
                drmModeFreeConnector(c)
            }
            drmModeFreeResources(res)
        }
        return SavedCRTC(crtcID: id, framebuffer: fb, x: x, y: y, mode: mode, connectors: driven)
    }

    /// The property ids an atomic modeset of `pipe` needs, as "object.NAME".
    func atomicProperties(_ pipe: DisplayPipe) throws(KMSError) -> [String: UInt32] {
        var ids: [String: UInt32] = [:]
        let wanted: [(String, UInt32, UInt32, [String])] = [
            ("connector", pipe.connector.id, UInt32(DRM_MODE_OBJECT_CONNECTOR), ["CRTC_ID"]),
            ("crtc", pipe.crtcID, UInt32(DRM_MODE_OBJECT_CRTC), ["MODE_ID", "ACTIVE"]),
            ("plane", pipe.planeID, UInt32(DRM_MODE_OBJECT_PLANE),
             ["FB_ID", "CRTC_ID", "SRC_X", "SRC_Y", "SRC_W", "SRC_H", "CRTC_X", "CRTC_Y", "CRTC_W", "CRTC_H"]),
        ]
        for (kind, object, type, names) in wanted {
            let props = properties(of: object, type: type)
            for name in names {
                guard let p = props[name] else {
                    throw KMSError("\(driver) lacks the atomic property \(name) on \(kind) \(object)")
                }
                ids["\(kind).\(name)"] = p.id
            }
        }
        return ids
    }
}
