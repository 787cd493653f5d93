import Glibc
import SMAF
import SMAFDRM
import SMAFFormats
import SMAFProbe
import SMAFSys

/// What to show where. Every field has a default: the first connected
/// display, its preferred mode, XR24, SMPTE bars, the allocator the core picks.
public struct ScanoutOptions: Sendable {
    /// A primary node (/dev/dri/card1); nil: the first with a connected connector.
    public var device: String?
    /// `Virtual-1`, `HDMI-A-1`; nil: the first connected one.
    public var connector: String?
    /// nil: the connector's preferred mode.
    public var mode: ModeRequest?
    public var format: FourCC = .xrgb8888
    /// Force an allocator by name; nil lets the core choose.
    public var allocator: String?
    public var pattern: TestPattern = .smpte
    /// 1 for a still picture; 2 or 3 for a swapchain that page-flips.
    public var buffers = 1
    /// Use drmModeSetCrtc/drmModePageFlip even where atomic is available.
    public var legacy = false

    public init() {}
}

/// A picture on a KMS display from a smaf buffer: the display pipe chosen,
/// the plane's constraints as a device descriptor, buffers allocated by
/// whichever allocator the core picks for that plane, imported (PRIME) and
/// wrapped in framebuffers, drawn through a CPU mapping, and shown. `close()`
/// (or deinit) puts the CRTC back as it was and releases everything.
/// One thread drives a session.
public final class ScanoutSession {
    public let options: ScanoutOptions
    public let device: DRMDevice
    public let pipe: DisplayPipe
    /// The primary plane as a device: the probe's descriptor (what the device
    /// imports, its size limits) with formats narrowed to this plane's IN_FORMATS.
    public let plane: DeviceConstraints
    /// Why the allocator of the first buffer was chosen.
    public let explanation: Explanation?
    public let allocation: Allocation
    public let framebufferPath: FramebufferPath
    /// Each fallback taken on the way to `framebufferPath`, in order.
    public let framebufferFallbacks: [String]
    public var commitPath: CommitPath { controller.path }
    public var legacyReason: String? { controller.legacyReason }
    public var savedCRTC: SavedCRTC { controller.saved }
    /// Events worth telling a user (a short swapchain).
    public private(set) var notes: [String] = []
    /// DirtyFB's answer after the mode was set: true flushed, false not needed (ENOSYS).
    public private(set) var dirtyFBHonoured: Bool?
    /// Buffers allocated: 1 for a still picture, 2 or 3 for a swapchain.
    public let bufferCount: Int

    private let controller: DisplayController
    private var frames: [Frame]
    private var onScreen: Int?
    private let packing: PixelPacking
    private let log: Logger
    private var closed = false

    /// One swapchain image: the smaf buffer, its GEM handle on the display's
    /// fd, and the framebuffer made from it.
    final class Frame {
        let buffer: Buffer
        let handle: GEMHandle
        let framebuffer: Framebuffer
        init(buffer: Buffer, handle: consuming GEMHandle, framebuffer: consuming Framebuffer) {
            self.buffer = buffer
            self.handle = handle
            self.framebuffer = framebuffer
        }
    }

    /// Opens the display (taking DRM master), picks the pipe, builds the
    /// plane's descriptor and allocates, imports and wraps the buffers.
    /// Nothing is on screen until `show()`.
    public init(registry: AllocatorRegistry, options: ScanoutOptions) throws(SMAFError) {
        self.options = options
        log = Logger(level: registry.configuration.logLevel)
        guard let packing = PixelPacking(options.format) else {
            throw SMAFError(.invalidRequest, "format: the test patterns are drawn in \(PixelPacking.formats.map(\.code).joined(separator: ", ")), not \(options.format.code)")
        }
        self.packing = packing
        guard (1...3).contains(options.buffers) else {
            throw SMAFError(.invalidRequest, "buffers: \(options.buffers); a still picture takes 1, a swapchain 2 or 3")
        }
        // The display's fd is opened before anything else touches the node:
        // the first opener of a primary node becomes DRM master.
        (device, pipe) = try Self.open(options)
        do { controller = try DisplayController(device: device, pipe: pipe, preferLegacy: options.legacy) } catch {
            throw SMAFError(error)
        }
        plane = try Self.planeDescriptor(device: device, pipe: pipe)

        var cpu = DeviceConstraints(name: "cpu", usage: [.cpuWrite])
        cpu.cpuAccess = true
        let request = BufferRequest.image(width: pipe.mode.width, height: pipe.mode.height, format: options.format,
                                          allocator: options.allocator)
        var made: [Frame] = []
        var notes: [String] = []
        for i in 0..<options.buffers {
            let buffer = try registry.buffer(request, devices: [plane, cpu])
            do { try buffer.materialize() } catch {
                // A third buffer is a luxury (bochs has 16 MiB of VRAM); the first two are not.
                guard i >= 2 else { throw error }
                notes.append("swapchain: \(i) buffers, a \(i + 1)th failed: \(error.message)")
                break
            }
            // The fallbacks are the same for every buffer: logged once.
            made.append(try Self.wrap(buffer, on: device, log: { [log] in if i == 0 { log(.info, $0) } }))
        }
        frames = made
        bufferCount = made.count
        guard let first = made.first, let a = first.buffer.allocation else {
            throw SMAFError(.noAllocator, "scanout: no buffer was allocated")
        }
        allocation = a
        explanation = first.buffer.explanation
        framebufferPath = first.framebuffer.path
        framebufferFallbacks = first.framebuffer.fallbacks
        self.notes = notes
        for n in notes { log(.info, n) }
    }

    deinit { try? close() }

    /// Draws frame 0 into the first buffer, sets the mode showing it, and
    /// marks it dirty so virtual displays copy it out.
    public func show() throws(SMAFError) {
        try draw(frame: 0, into: 0)
        do {
            try controller.modeset(framebuffer: frames[0].framebuffer.id)
            onScreen = 0
            dirtyFBHonoured = try device.markDirty(frames[0].framebuffer)
        } catch { throw SMAFError(error) }
    }

    public struct FlipResult: Sendable, Codable {
        /// Frames on screen, the one the mode was set with included.
        public var frames: Int
        public var flips: Int
        /// From the first redraw to the last flip event.
        public var seconds: Double
        /// Of which drawing through the CPU mapping.
        public var drawSeconds: Double
        public var flipsPerSecond: Double?
        /// The stop signal that ended the run early, if one did.
        public var stoppedBy: String?
        public var stopSignal: Int32?

        enum CodingKeys: String, CodingKey {
            case frames, flips, seconds
            case drawSeconds = "draw_seconds", flipsPerSecond = "flips_per_second", stoppedBy = "stopped_by"
        }
    }

    /// Shows `count` frames: frame 0 by `show()` (if not shown yet), then
    /// each next one redrawn into the buffer not on screen and page-flipped,
    /// waiting for every flip's event. A stop signal ends it after the flip
    /// in progress.
    public func run(frames count: Int, stop: StopSignals? = nil) throws(SMAFError) -> FlipResult {
        guard count >= 1 else { throw SMAFError(.invalidRequest, "frames: \(count); at least 1") }
        guard count == 1 || frames.count >= 2 else {
            throw SMAFError(.invalidRequest, "frames: page flips need a swapchain of 2 or 3 buffers; this session has \(frames.count)")
        }
        if onScreen == nil { try show() }
        var result = FlipResult(frames: 1, flips: 0, seconds: 0, drawSeconds: 0)
        let start = monotonicSeconds()
        for n in 1..<max(count, 1) {
            if let s = stop?.received() {
                (result.stopSignal, result.stoppedBy) = (s, StopSignals.name(s))
                break
            }
            let back = ((onScreen ?? 0) + 1) % frames.count
            let drawStart = monotonicSeconds()
            try draw(frame: n, into: back)
            result.drawSeconds += monotonicSeconds() - drawStart
            var wait: DisplayController.Wait
            do {
                try controller.flip(to: frames[back].framebuffer.id)
                wait = try controller.waitForFlip(stopFD: stop?.fd, timeoutMS: 2000)
                if wait == .stopRequested {
                    result.stopSignal = stop?.received()
                    result.stoppedBy = result.stopSignal.map(StopSignals.name)
                    // The flip is queued: let it land before anything is torn down.
                    wait = try controller.waitForFlip(timeoutMS: 2000)
                }
            } catch { throw SMAFError(error) }
            guard wait == .flipped else {
                throw SMAFError(.system, "page flip to fb \(frames[back].framebuffer.id) on \(device.path) (\(device.driver)): no flip-complete event within 2 s")
            }
            onScreen = back
            result.flips += 1
            result.frames += 1
            if result.stoppedBy != nil { break }
        }
        result.seconds = monotonicSeconds() - start
        if result.flips > 0 && result.seconds > 0 { result.flipsPerSecond = Double(result.flips) / result.seconds }
        return result
    }

    /// Puts the CRTC back as it was and releases framebuffers, GEM handles
    /// and buffers. Idempotent; deinit calls it.
    public func close() throws(SMAFError) {
        guard !closed else { return }
        closed = true
        defer { frames.removeAll() }
        do { try controller.restore() } catch { throw SMAFError(error) }
    }

    private func draw(frame: Int, into index: Int) throws(SMAFError) {
        let f = frames[index]
        guard let a = f.buffer.allocation, let p = a.planes.first,
              let offset = Int(exactly: p.offset), let pitch = Int(exactly: p.stride) else {
            throw SMAFError(.unsupported, "draw: the buffer has no image layout")
        }
        do {
            try f.buffer.withCPUAccess(.write) { bytes in
                try packing.draw(options.pattern, frame: frame, into: bytes, width: Int(a.width), height: Int(a.height),
                                 offset: offset, pitch: pitch)
            }
        } catch let e as SMAFError {
            throw e
        } catch let e as SystemError {
            throw .system(e, "draw into the \(a.allocator) buffer")
        } catch {
            throw SMAFError(.system, "draw into the \(a.allocator) buffer: \(error)")
        }
    }

}

extension ScanoutSession {
    /// The named device, or the first primary node with a connected connector.
    static func open(_ options: ScanoutOptions) throws(SMAFError) -> (DRMDevice, DisplayPipe) {
        let nodes = options.device.map { [$0] } ?? DRMDevice.primaryNodes()
        guard !nodes.isEmpty else { throw SMAFError(.unsupported, "scanout: no DRM device (/dev/dri/card* missing)") }
        var reasons: [String] = []
        for node in nodes {
            do {
                let device = try DRMDevice(path: node)
                return (device, try device.choosePipe(connector: options.connector, mode: options.mode))
            } catch let e as KMSError {
                if options.device != nil { throw SMAFError(.unsupported, e.message) }
                reasons.append(e.message)
            } catch let e as SystemError {
                if options.device != nil { throw .system(e, "scanout") }
                reasons.append(e.description)
            } catch {
                reasons.append("\(node): \(error)")
            }
        }
        throw SMAFError(.unsupported, "scanout: no display to show on: \(reasons.joined(separator: "; "))")
    }

    /// The probe's descriptor of the device, formats narrowed to the plane's.
    static func planeDescriptor(device: DRMDevice, pipe: DisplayPipe) throws(SMAFError) -> DeviceConstraints {
        var d = try DeviceConstraints.probe(node: device.path)
        d.usage = [.scanout]
        if let p = device.kmsInfo()?.planes.first(where: { $0.id == pipe.planeID }), !p.formats.isEmpty {
            d.formats = p.formats.map { .init(FourCC(rawValue: $0.format), $0.modifiers.map(Modifier.init(rawValue:))) }
        }
        return d
    }

    /// Exports the buffer, imports it into the display's fd and makes a framebuffer.
    static func wrap(_ buffer: Buffer, on device: DRMDevice, log: (String) -> Void) throws(SMAFError) -> Frame {
        guard let a = buffer.allocation, let format = a.format else { throw SMAFError(.unsupported, "scanout: not an image buffer") }
        var planes: [(offset: UInt32, pitch: UInt32)] = []
        for p in a.planes {
            guard let offset = UInt32(exactly: p.offset) else {
                throw SMAFError(.unsupported, "framebuffer: plane offset \(p.offset) of the \(a.allocator) buffer exceeds 32 bits")
            }
            planes.append((offset, p.stride))
        }
        let fd = try buffer.exportFD()
        let handle: GEMHandle
        do { handle = try device.importDmaBuf(fd.rawValue) } catch {
            throw .system(error, "import the \(a.allocator) buffer (exporter \(a.exporter)) into the display")
        }
        let layout = FramebufferLayout(width: a.width, height: a.height, fourcc: format.rawValue,
                                       modifier: a.modifier?.rawValue, planes: planes)
        do {
            let fb = try device.addFramebuffer(layout, handle: handle, log: log)
            return Frame(buffer: buffer, handle: handle, framebuffer: fb)
        } catch {
            throw SMAFError(error)
        }
    }
}

extension SMAFError {
    /// A KMS failure, its sentence kept whole.
    init(_ e: KMSError) { self.init(.system, e.message, systemError: e.systemError) }
}
