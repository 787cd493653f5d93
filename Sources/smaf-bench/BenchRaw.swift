import CSMAFBaseline
import Glibc
import SMAF
import SMAFDRM
import SMAFSys

/// The raw side of the A/B comparison: the same backend the framework's
/// allocator used, driven through CSMAFBaseline's plain syscalls with its own
/// fds (opened once here, outside the timed cycles).
final class RawBackend {
    enum Kind {
        /// memfd + udmabuf; fd -1: the plain sealed memfd (no /dev/udmabuf).
        case udmabuf(Int32)
        case heap(Int32)
        case dumb(DRMDevice)
        case gbm(DRMDevice, UnsafeMutableRawPointer)
    }

    /// The allocators with a raw path here.
    static let kinds = ["memfd", "dmaheap", "dumb", "gbm"]

    let kind: Kind
    /// What this backend is, for reports ("udmabuf", "dma-heap:system", "drm:vgem").
    let label: String

    private init(kind: Kind, label: String) {
        self.kind = kind
        self.label = label
    }

    deinit {
        switch kind {
        case .udmabuf(let fd) where fd >= 0, .heap(let fd): _ = Glibc.close(fd)
        case .gbm(_, let device): csmaf_baseline_gbm_close(device)
        default: break
        }
    }

    /// The raw equivalent of what `allocator` handed out (`a`), or why
    /// there is none. The backend follows the allocation's exporter, so the
    /// raw path runs on the very device or heap the framework chose. What
    /// Mesa's loader says opening a GBM device goes to `log` at debug level,
    /// as the gbm plugin's does, not to the user's stderr.
    static func matching(allocator: String, _ a: Allocation, log: Logger) -> Result<RawBackend, BenchSkip> {
        func skip(_ why: String) -> Result<RawBackend, BenchSkip> { .failure(BenchSkip("\(allocator): no raw baseline: \(why)")) }
        switch allocator {
        case "memfd":
            guard a.isDmaBuf else { return .success(RawBackend(kind: .udmabuf(-1), label: "memfd")) }
            let fd = open(Udmabuf.devicePath, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { return skip("open \(Udmabuf.devicePath): \(errnoText(errno))") }
            return .success(RawBackend(kind: .udmabuf(fd), label: "udmabuf"))
        case "dmaheap":
            guard a.exporter.hasPrefix("dma-heap:") else { return skip("exporter '\(a.exporter)' is not a dma-heap") }
            let path = DmaHeap.path(String(a.exporter.dropFirst("dma-heap:".count)))
            let fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { return skip("open \(path): \(errnoText(errno))") }
            return .success(RawBackend(kind: .heap(fd), label: a.exporter))
        case "dumb", "gbm":
            guard a.exporter.hasPrefix("drm:") else { return skip("exporter '\(a.exporter)' is not a DRM device") }
            let driver = String(a.exporter.dropFirst(4))
            guard let device = DRMDevice.primaryNodes().lazy.compactMap({ try? DRMDevice(path: $0) }).first(where: { $0.driver == driver }) else {
                return skip("no primary node driven by \(driver)")
            }
            if allocator == "dumb" { return .success(RawBackend(kind: .dumb(device), label: a.exporter)) }
            let fd = device.rawFD
            let (opened, said) = StandardErrorCapture.capturing { csmaf_baseline_gbm_open(fd) }
            StandardErrorCapture.forward(said.smafs)
            for line in said.call { log(.debug, "Mesa, opening \(device.path) for the raw gbm baseline: \(line)") }
            guard let gbm = opened else { return skip("gbm_create_device on \(device.path) failed") }
            return .success(RawBackend(kind: .gbm(device, gbm), label: a.exporter))
        default:
            return skip("CSMAFBaseline has raw paths for memfd (udmabuf), dmaheap, dumb and gbm only")
        }
    }

    /// One raw cycle for `shape`, touching and importing as asked.
    func cycle(_ shape: BenchShape, touch: Bool, importInto devices: [DRMDevice]) throws(BenchFailure) -> PhaseTimes {
        var run = csmaf_baseline_run()
        run.size = shape.bytes
        run.width = shape.width
        run.height = shape.height
        run.fourcc = shape.format.rawValue
        run.bits_per_pixel = shape.bitsPerPixel
        // What the gbm plugin asks for a buffer the CPU maps: LINEAR.
        run.gbm_flags = csmaf_baseline_gbm_flags(0, 0, 1)
        run.touch = touch ? 1 : 0
        let fds = devices.map(\.rawFD)
        let rc = fds.withUnsafeBufferPointer { p in
            run.import_fds = p.baseAddress
            run.import_count = UInt32(p.count)
            switch kind {
            case .udmabuf(let fd): return csmaf_baseline_udmabuf(fd, &run)
            case .heap(let fd): return csmaf_baseline_dma_heap(fd, &run)
            case .dumb(let d): return csmaf_baseline_dumb(d.rawFD, &run)
            case .gbm(_, let g): return csmaf_baseline_gbm(g, &run)
            }
        }
        if rc != 0 {
            let step = run.failed_step.map { String(cString: $0) } ?? "?"
            throw BenchFailure("raw \(label): \(step) failed: \(errnoText(-rc))")
        }
        var t = PhaseTimes()
        withUnsafeBytes(of: run.ns) { raw in
            for (i, v) in raw.bindMemory(to: UInt64.self).enumerated() where i < t.ns.count { t.ns[i] = v }
        }
        return t
    }
}

/// An allocator or comparison left out, with the reason (printed and in the JSON).
struct BenchSkip: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A cycle that failed: one line naming the step, the call and the errno.
struct BenchFailure: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// "No such file or directory (errno 2)".
func errnoText(_ e: Int32) -> String { "\(String(cString: strerror(e))) (errno \(e))" }
