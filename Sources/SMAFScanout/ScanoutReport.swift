import SMAF
import SMAFDRM
import SMAFFormats

/// What a scanout session did, for `smaf scanout --json` and for tests:
/// where, with which allocator and why, and which paths the kernel took.
public struct ScanoutReport: Sendable, Encodable {
    public struct Mode: Sendable, Encodable {
        public var width: UInt32, height: UInt32
        public var refresh: Double
        public var preferred: Bool
    }
    public struct Plane: Sendable, Encodable {
        public var id: UInt32
        /// The plane's formats and modifiers (IN_FORMATS), as the descriptor has them.
        public var formats: [DeviceConstraints.FormatModifiers]
        /// Exporters whose dma-bufs the device imports (measured by the probe).
        public var importableFrom: [String]

        enum CodingKeys: String, CodingKey { case id, formats, importableFrom = "importable_from" }
    }
    public struct Framebuffer: Sendable, Encodable {
        public var path: FramebufferPath
        public var fallbacks: [String]
    }
    public struct Commit: Sendable, Encodable {
        public var path: CommitPath
        public var legacyReason: String?
        /// DirtyFB after the mode set: true flushed, false not needed (ENOSYS).
        public var dirtyFB: Bool?

        enum CodingKeys: String, CodingKey { case path, legacyReason = "legacy_reason", dirtyFB = "dirty_fb" }
    }
    public struct Restore: Sendable, Encodable {
        public var crtc: UInt32
        /// The framebuffer put back; 0: the CRTC was off and was turned off again.
        public var framebuffer: UInt32
        public var ok: Bool
        public var error: String?
    }

    public var device: String
    public var driver: String
    public var connector: String
    public var mode: Mode
    public var crtc: UInt32
    public var plane: Plane
    public var pattern: String
    public var allocation: Allocation
    public var explanation: Explanation?
    public var buffers: Int
    public var framebuffer: Framebuffer
    public var commit: Commit
    public var run: ScanoutSession.FlipResult?
    public var restore: Restore?
    public var notes: [String]
}

extension ScanoutSession {
    /// The report so far; pass the run's result and the restore outcome once known.
    public func report(run: FlipResult? = nil, restoreError: SMAFError? = nil, restored: Bool = false) -> ScanoutReport {
        ScanoutReport(
            device: device.path, driver: device.driver, connector: pipe.connector.name,
            mode: .init(width: pipe.mode.width, height: pipe.mode.height, refresh: (pipe.mode.refresh * 100).rounded() / 100,
                        preferred: pipe.mode.preferred),
            crtc: pipe.crtcID,
            plane: .init(id: pipe.planeID, formats: plane.formats ?? [], importableFrom: plane.importableFrom ?? []),
            pattern: options.pattern.description, allocation: allocation, explanation: explanation, buffers: bufferCount,
            framebuffer: .init(path: framebufferPath, fallbacks: framebufferFallbacks),
            commit: .init(path: commitPath, legacyReason: legacyReason, dirtyFB: dirtyFBHonoured),
            run: run,
            restore: restored || restoreError != nil
                ? .init(crtc: savedCRTC.crtcID, framebuffer: savedCRTC.framebuffer, ok: restoreError == nil, error: restoreError?.message)
                : nil,
            notes: notes)
    }
}
