import Glibc
import SMAF
import SMAFDRM
import SMAFScanout
import SMAFSys
import Testing

/// Scanout on the VM's two emulated displays (virtio-gpu, bochs): the plane
/// fed by every allocator the selection accepts for it, the screen captured
/// from QEMU and compared with the pattern pixel for pixel, the CRTC put
/// back afterwards, stop signals and a missing DRM master handled.
/// Serialized: one display client at a time, or DRM master is contended.
@Suite(.enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason), .serialized)
struct ScanoutTests {
    static let displays = ["virtio_gpu", "bochs-drm"]
    /// The allocators without GBM, which has its own test below.
    static let allocators = ["memfd", "dmaheap", "dumb"]
    static let gbmLoads = KernelTestBed.registry("gbm").plugin(named: "gbm") != nil

    func node(_ driver: String) throws -> String { try KernelTestBed.device(driver: driver).path }

    func options(_ driver: String, allocator: String?, pattern: TestPattern = .smpte) throws -> ScanoutOptions {
        var o = ScanoutOptions()
        o.device = try node(driver)
        o.allocator = allocator
        o.pattern = pattern
        return o
    }

    /// The allocators whose buffers the display can take, as the selection
    /// decides from the probe: each is forced in turn, and a refusal must
    /// come from match() (measured imports), never from a failed import.
    func feeders(_ driver: String, among names: [String], registry: AllocatorRegistry) throws -> [String] {
        var accepted: [String] = []
        for name in names where registry.plugin(named: name) != nil {
            do {
                let session = try ScanoutSession(registry: registry, options: try options(driver, allocator: name))
                #expect(session.allocation.exporter == "drm:\(driver)", "\(driver) takes only its own buffers")
                accepted.append(name)
                try session.close()
            } catch let e as SMAFError where e.kind == .noAllocator {
                #expect(e.message.contains("(measured by the probe)"), "\(driver) refused \(name) for another reason: \(e.message)")
            }
        }
        return accepted
    }

    @Test(arguments: displays)
    func theSelectionKnowsWhoCanFeedThePlane(driver: String) throws {
        let registry = KernelTestBed.registry("memfd", "dmaheap", "dumb")
        #expect(try feeders(driver, among: Self.allocators, registry: registry) == ["dumb"])
        // Unforced, the core skips the higher-ranked allocators the plane cannot import.
        let session = try ScanoutSession(registry: registry, options: try options(driver, allocator: nil))
        #expect(session.allocation.allocator == "dumb")
        #expect(session.plane.formats?.map(\.format.code) == (driver == "bochs-drm" ? ["XR24", "BX24"] : ["XR24"]))
        let verdicts = session.explanation?.entries.map { "\($0.allocator) \($0.outcome.rawValue)" }
        #expect(verdicts == ["dmaheap rejected", "memfd rejected", "dumb chosen"])
    }

    /// Shows `pattern` (flipping through `frames` frames when more than 1),
    /// captures the display until it matches or 20 s pass, and checks the
    /// CRTC is back as found after close.
    func showAndCompare(_ driver: String, allocator: String, pattern: TestPattern, format: FourCC = .xrgb8888, frames: Int = 1,
                        legacy: Bool = false, registry: AllocatorRegistry) throws {
        var o = try options(driver, allocator: allocator, pattern: pattern)
        o.legacy = legacy
        o.format = format
        o.buffers = frames > 1 ? 3 : 1
        let session = try ScanoutSession(registry: registry, options: o)
        // Opened while the session is master: a watcher, not a master.
        let observer = try DRMDevice(path: session.device.path)
        let (w, h) = (Int(session.pipe.mode.width), Int(session.pipe.mode.height))
        let expected = ScreenCapture.expected(pattern, frame: frames - 1, width: w, height: h,
                                              packing: try #require(PixelPacking(o.format)))
        if frames > 1 {
            let run = try session.run(frames: frames)
            #expect(run.flips == frames - 1)
        } else {
            try session.show()
        }
        // Captured until the screen matches, within a bound: how long after
        // the last DirtyFB/flip event the display shows the frame is measured, not assumed.
        let shownAt = monotonicSeconds()
        var attempts: [(requestedMS: Int, tookMS: Int)] = []
        var difference: ScreenCapture.Difference?
        repeat {
            let start = monotonicSeconds()
            let capture = try ScreenCapture.take(device: ScreenCapture.qemuDevice(driver: driver))
            attempts.append((Int((start - shownAt) * 1000), Int((monotonicSeconds() - start) * 1000)))
            try #require(capture.width == w && capture.height == h, "screen is \(capture.width)x\(capture.height), mode \(w)x\(h)")
            difference = capture.compare(with: expected)
        } while difference?.mismatches != 0 && monotonicSeconds() - shownAt < 20
        let what = "\(driver) \(allocator) \(pattern) \(format.code) \(frames) frame(s), \(session.commitPath.rawValue), \(session.framebufferPath.rawValue)"
        #expect(difference?.mismatches == 0, "\(what): \(difference?.description ?? "no capture")")
        let matched = attempts.last.map { "capture \(attempts.count), requested \($0.requestedMS) ms after the frame was shown, took \($0.tookMS) ms" } ?? ""
        print("scanout: \(what): \(difference?.description ?? "") on \(matched)")

        let saved = session.savedCRTC
        try session.close()
        #expect(observer.crtcState(saved.crtcID).framebuffer == saved.framebuffer, "\(what): CRTC not restored")
    }

    @Test(.enabled(if: ScreenCapture.available, ScreenCapture.unavailableReason), arguments: displays)
    func patternsReachTheScreenPixelForPixel(driver: String) throws {
        let registry = KernelTestBed.registry("memfd", "dmaheap", "dumb")
        for allocator in try feeders(driver, among: Self.allocators, registry: registry) {
            for pattern in [TestPattern.smpte, .gradient] {
                try showAndCompare(driver, allocator: allocator, pattern: pattern, registry: registry)
            }
        }
        // The legacy SetCrtc path, as on a driver without atomic.
        try showAndCompare(driver, allocator: "dumb", pattern: .solid(RGB(0x20, 0x80, 0xe0)), legacy: true, registry: registry)
        // bochs' plane also takes BX24 (bytes in the other order): still the same picture.
        if driver == "bochs-drm" {
            try showAndCompare(driver, allocator: "dumb", pattern: .smpte, format: .bgrx8888, registry: registry)
        }
    }

    /// Page flips put the last frame on screen (each frame scrolls the bars),
    /// and many sessions leave no fd behind.
    @Test(.enabled(if: ScreenCapture.available, ScreenCapture.unavailableReason), arguments: displays)
    func pageFlipsShowTheLastFrame(driver: String) throws {
        let registry = KernelTestBed.registry("dumb")
        // The dumb plugin keeps one fd per node from first use.
        try ScanoutSession(registry: registry, options: try options(driver, allocator: "dumb")).close()
        let before = OpenFiles.count()
        try showAndCompare(driver, allocator: "dumb", pattern: .smpte, frames: 12, registry: registry)
        try showAndCompare(driver, allocator: "dumb", pattern: .gradient, frames: 5, legacy: true, registry: registry)
        #expect(OpenFiles.count() == before)
    }

    @Test(.enabled(if: ScreenCapture.available && gbmLoads, "libsmafplugin_gbm.so does not load (or no screendump helper)"),
          arguments: displays)
    func gbmBuffersReachTheScreen(driver: String) throws {
        let registry = KernelTestBed.registry("gbm")
        let accepted = try feeders(driver, among: ["gbm"], registry: registry)
        #expect(accepted == ["gbm"], "GBM (kms_swrast) allocates scanout buffers on \(driver)")
        for allocator in accepted {
            try showAndCompare(driver, allocator: allocator, pattern: .smpte, registry: registry)
        }
    }

    /// `smaf scanout --seconds 30`, stopped by a signal: exit 128+signal after
    /// putting the CRTC back (checked by a watcher fd that stays open, so no
    /// last-close fbdev restore muddies the answer).
    @Test(arguments: [("virtio_gpu", SIGTERM), ("bochs-drm", SIGINT)])
    func aStopSignalRestoresTheCRTC(driver: String, signal: Int32) throws {
        let observer = try DRMDevice(path: try node(driver))
        observer.dropMaster()
        let crtc = try observer.choosePipe().crtcID
        let before = observer.crtcState(crtc).framebuffer
        let smaf = try SmafProcess(["scanout", "--device", observer.path, "--seconds", "30"])
        defer { smaf.kill(SIGKILL) }
        try smaf.waitForOutput("showing", seconds: 120)
        let during = observer.crtcState(crtc).framebuffer
        #expect(during != before && during != 0, "smaf's framebuffer is on CRTC \(crtc)")
        smaf.kill(signal)
        let status = smaf.wait()
        #expect(status == 128 + signal, "stderr: \(smaf.stderr)")
        #expect(smaf.stdout.contains("stopped by \(StopSignals.name(signal))"))
        #expect(observer.crtcState(crtc).framebuffer == before, "CRTC \(crtc) shows fb \(before) again")
    }

    /// Another client holds DRM master: a clear one-line error, no crash, in
    /// the library and in the CLI.
    @Test func withoutDRMMasterTheErrorIsClear() throws {
        let holder = try DRMDevice(path: try node("virtio_gpu"))
        try holder.becomeMaster()
        defer { holder.dropMaster() }
        let expected = "drmSetMaster on \(holder.path) (virtio_gpu) failed: Device or resource busy (EBUSY): another client is DRM master of \(holder.path)"
        let e = #expect(throws: SMAFError.self) {
            try ScanoutSession(registry: KernelTestBed.registry("dumb"), options: try options("virtio_gpu", allocator: nil))
        }
        #expect(e?.message.hasPrefix(expected) == true, "\(e?.message ?? "")")
        let smaf = try SmafProcess(["scanout", "--device", holder.path, "--seconds", "1"])
        #expect(smaf.wait() == 1)
        #expect(smaf.stderr.hasPrefix("smaf: error: \(expected)"), "\(smaf.stderr)")
        #expect(smaf.stderr.split(separator: "\n").count == 1)
    }
}

/// The built smaf executable running in the background, output in files,
/// with only the dumb plugin so its choices are stable.
final class SmafProcess {
    let pid: pid_t
    private let base: String
    private var status: Int32?

    init(_ args: [String]) throws {
        base = "/tmp/smaf-scanout-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var env = currentEnvironment()
        env["SMAF_PLUGIN_PATH"] = "\(KernelTestBed.buildDirectory)/libsmafplugin_dumb.so"
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        let program = "\(KernelTestBed.buildDirectory)/smaf"
        let argv = ([program] + args).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, program, &actions, nil, argv, envp)
        guard rc == 0 else { throw KernelTestBed.TestBedError(message: "cannot run \(program): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    deinit {
        kill(SIGKILL)
        unlink(base + ".out")
        unlink(base + ".err")
    }

    var stdout: String { (try? readTextFile(base + ".out")) ?? "" }
    var stderr: String { (try? readTextFile(base + ".err")) ?? "" }

    func kill(_ signal: Int32) { if status == nil { Glibc.kill(pid, signal) } }

    /// Exit status, or 128+signal if killed.
    @discardableResult
    func wait() -> Int32 {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        let s = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        status = s
        return s
    }

    /// Polls stdout for `text`; fails if the process exits first or time runs out.
    func waitForOutput(_ text: String, seconds: Double) throws {
        let deadline = monotonicSeconds() + seconds
        while !stdout.contains(text) {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                throw KernelTestBed.TestBedError(message: "smaf exited (\(status ?? -1)) before printing '\(text)': \(stderr)")
            }
            guard monotonicSeconds() < deadline else { throw KernelTestBed.TestBedError(message: "smaf printed no '\(text)' within \(seconds) s") }
            usleep(100_000)
        }
    }
}
