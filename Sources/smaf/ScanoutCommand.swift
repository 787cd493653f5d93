import ArgumentParser
import Glibc
import SMAF
import SMAFCommandLine
import SMAFDRM
import SMAFScanout
import SMAFSys

struct ScanoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scanout",
        abstract: "Show a test pattern on a KMS display from a smaf buffer chosen for the display's plane.",
        discussion: """
        Picks a connected connector, a mode (the preferred one by default), a CRTC \
        and its primary plane; describes the plane as a device (formats and \
        modifiers from IN_FORMATS, the device's size limits, the exporters it imports \
        from, as measured by the probe) and lets the core choose the allocator; \
        imports the dma-buf, creates the framebuffer (AddFB2WithModifiers, else \
        AddFB2, else AddFB), draws the pattern through a CPU mapping and sets the \
        mode (an atomic commit tested with TEST_ONLY first; legacy SetCrtc where \
        there is no atomic).

        Without --frames or --seconds the picture stays until Ctrl-C or SIGTERM. \
        With --frames N a swapchain of --buffers buffers page-flips N frames, \
        redrawing each, and the flip rate is printed. On exit, normal or by \
        SIGINT/SIGTERM (status 128+signal), the CRTC is put back as it was. Needs \
        DRM master: no display server may hold the device.
        """
    )

    @Option(help: "Primary DRM node (default: the first with a connected display).") var device: String?
    @Option(help: "Connector name as modetest shows it, e.g. Virtual-1 (default: the first connected).") var connector: String?
    @Option(help: "Mode WxH or WxH@R, e.g. 1024x768 or 1024x768@60 (default: the preferred mode).") var mode: String?
    @Option(help: "DRM format: a fourcc (XR24) or its name (XRGB8888).") var format = "XR24"
    @Option(help: "Force this allocator by name (default: the core chooses for the plane).") var allocator: String?
    @Option(help: "smpte, gradient or solid:RRGGBB.") var pattern = "smpte"
    @Option(help: "Page-flip this many frames (the first is the mode set), then exit.") var frames: Int?
    @Option(help: "Keep the picture up this long, then exit.") var seconds: Double?
    @Option(help: "Swapchain size for --frames: 2 or 3 (default 3).") var buffers: Int?
    @Flag(help: "Use legacy drmModeSetCrtc/drmModePageFlip even where the driver has atomic.") var legacy = false
    @Flag(help: "Print JSON for scripts instead of text.") var json = false

    func validate() throws {
        if frames != nil && seconds != nil { throw ValidationError("give --frames or --seconds, not both") }
        if let frames, frames < 1 { throw ValidationError("--frames must be at least 1") }
        if let seconds, !(seconds > 0) { throw ValidationError("--seconds must be more than 0") }
        if let buffers, !(2...3).contains(buffers) { throw ValidationError("--buffers must be 2 or 3") }
        if buffers != nil && frames == nil { throw ValidationError("--buffers is for --frames (a still picture uses one buffer)") }
    }

    func options() throws(SMAFError) -> ScanoutOptions {
        var o = ScanoutOptions()
        o.device = device
        o.connector = connector
        if let mode {
            guard let m = ModeRequest(parsing: mode) else {
                throw SMAFError(.invalidRequest, "mode: '\(mode)' is not WxH or WxH@R (examples: 1024x768, 1920x1080@60)")
            }
            o.mode = m
        }
        guard let f = FourCC(parsing: format) else {
            throw SMAFError(.invalidRequest, "format: '\(format)' is not a known DRM format (examples: XR24, XRGB8888, RG16)")
        }
        o.format = f
        guard let p = TestPattern(parsing: pattern) else {
            throw SMAFError(.invalidRequest, "pattern: '\(pattern)' is not smpte, gradient or solid:RRGGBB")
        }
        o.pattern = p
        o.allocator = allocator
        o.buffers = frames.map { $0 > 1 ? (buffers ?? 3) : 1 } ?? 1
        o.legacy = legacy
        return o
    }

    func run() throws {
        // Before anything could start a thread: the stop signals must be blocked everywhere.
        let stop = try StopSignals()
        let options = try options()
        let session = try ScanoutSession(registry: try AllocatorRegistry.load(), options: options)
        if !json { print(summary(session)) }

        var result: ScanoutSession.FlipResult?
        var signal: Int32?
        do {
            if let frames {
                result = try session.run(frames: frames, stop: stop)
                signal = result?.stopSignal
            } else {
                try session.show()
                if !json {
                    print(commitLine(session))
                    print("showing \(options.pattern) on \(session.pipe.connector.name): "
                        + (seconds.map { "for \($0) s" } ?? "press Ctrl-C (or send SIGTERM) to restore the display"))
                    fflush(nil) // a script waiting for this line sees it now
                }
                signal = stop.wait(seconds: seconds)
            }
        } catch {
            try? session.close()
            throw error
        }

        var restoreError: SMAFError?
        do { try session.close() } catch { restoreError = error }
        if json {
            try printJSON(session.report(run: result, restoreError: restoreError, restored: true))
        } else {
            if let result {
                print(commitLine(session))
                print(flipLine(result))
            }
            if let signal { print("stopped by \(StopSignals.name(signal))") }
            let saved = session.savedCRTC
            if restoreError == nil {
                print(saved.framebuffer != 0 ? "restored CRTC \(saved.crtcID) to fb \(saved.framebuffer) (\(saved.mode?.description ?? "?"))"
                                             : "turned CRTC \(saved.crtcID) off again, as it was")
            }
        }
        if let restoreError { throw restoreError }
        if let signal { throw ExitCode(128 + signal) }
    }

    func summary(_ s: ScanoutSession) -> String {
        let m = s.pipe.mode
        var lines = ["display:     \(s.device.path) (\(s.device.driver)), connector \(s.pipe.connector.name), \(m)\(m.preferred ? " (preferred)" : ""), CRTC \(s.pipe.crtcID), primary plane \(s.pipe.planeID)"]
        let formats = (s.plane.formats ?? []).map { "\($0.format.code) (\($0.modifiers.map(\.description).joined(separator: ", ")))" }
        lines.append("plane:       \(formats.joined(separator: ", ")); imports from \((s.plane.importableFrom ?? []).joined(separator: ", "))")
        lines.append(describe(s.allocation))
        if let e = s.explanation { lines.append(e.description) }
        let after = s.framebufferFallbacks.isEmpty ? "" : " (after \(s.framebufferFallbacks.joined(separator: "; ")))"
        lines.append("framebuffer: \(s.framebufferPath.rawValue)\(after), \(s.bufferCount) buffer\(s.bufferCount == 1 ? "" : "s")")
        lines += s.notes.map { "note:        \($0)" }
        return lines.joined(separator: "\n")
    }

    func commitLine(_ s: ScanoutSession) -> String {
        let how = s.commitPath == .atomic ? "atomic (TEST_ONLY, then commit)" : "legacy drmModeSetCrtc (\(s.legacyReason ?? ""))"
        let dirty = switch s.dirtyFBHonoured { case true?: "DirtyFB flushed"; case false?: "DirtyFB not needed (ENOSYS)"; case nil: "DirtyFB not sent" }
        return "commit:      \(how); \(dirty)"
    }

    func flipLine(_ r: ScanoutSession.FlipResult) -> String {
        let rate = r.flipsPerSecond.map { String(format2: $0) } ?? "-"
        let draw = r.frames > 1 ? ", drawing \(String(format2: r.drawSeconds * 1000 / Double(r.frames - 1))) ms/frame" : ""
        return "frames:      \(r.frames) (\(r.flips) page flips) in \(String(format2: r.seconds)) s: \(rate) flips/s\(draw)"
    }
}
