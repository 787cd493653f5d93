import Glibc
import SMAFDRM
import SMAFPluginKit
import SMAFSys
import Synchronization

/// DRM dumb buffers: linear, CPU-mappable memory any KMS driver can scan
/// out, created on a DRM device's primary node and exported with PRIME.
/// The buffer belongs to that device, so on virtual hardware that imports
/// only its own memory (virtio-gpu, bochs) this is what a display can use.
final class DumbAllocator: AllocatorPlugin {
    static let name = "dumb"
    static let summary = "DRM dumb buffers (linear, scanout + CPU) exported with PRIME from a device's primary node"
    /// Below memfd: a plain buffer should not take a DRM device's memory;
    /// dumb wins when the devices need a buffer of a DRM device's own.
    static let defaultRank: Int32 = Int32(SMAF_RANK_SECONDARY) - 16

    private let core: PluginCore
    /// `/dev/dri/card*` as it was at open: listing the folder on every
    /// request cost two directory scans per buffer (hotplug is not followed).
    private let primaryNodes: [String]
    /// dumb.zero_fill: auto (per driver, DumbZeroing), always or never.
    private let zeroFillSetting: DumbZeroing.Setting
    /// A node opened on first use, with why it cannot host dumb buffers (nil
    /// if it can) and whether its buffers need zeroing, decided once: the
    /// checks may create test buffers.
    private struct Node: Sendable {
        let device: DRMDevice?
        let unusable: String?
        var zeroFill = true
        var zeroFillWhy = ""
    }

    /// One fd per node, never shared with other code: GEM handles are per
    /// open file and not reference counted.
    private let nodes = Mutex<[String: Node]>([:])

    init(core: PluginCore) throws(PluginError) {
        self.core = core
        let text = core.config("zero_fill") ?? "auto"
        guard let setting = DumbZeroing.Setting(rawValue: text) else {
            throw PluginError(errno: EINVAL, "dumb.zero_fill: '\(text)' is not one of \(DumbZeroing.Setting.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        zeroFillSetting = setting
        primaryNodes = DRMDevice.primaryNodes()
    }

    /// Single-plane formats with whole-byte pixels: what CREATE_DUMB's bpp
    /// can express. No YUV (the kernel knows nothing of chroma planes here).
    static func bitsPerPixel(_ format: FourCC) -> UInt32? {
        guard let info = FormatInfo.lookup(format), info.planeCount == 1, !info.isYUV else { return nil }
        return info.bitsPerPixel
    }

    private func node(_ path: String) -> Node {
        if let n = nodes.withLock({ $0[path] }) { return n }
        let n: Node
        do {
            let d = try DRMDevice(path: path)
            var node = Node(device: d, unusable: Self.unusable(d))
            if node.unusable == nil { (node.zeroFill, node.zeroFillWhy) = DumbZeroing.decide(d, zeroFillSetting) }
            n = node
        } catch {
            n = Node(device: nil, unusable: "\(error)")
        }
        return nodes.withLock { cache in
            if let raced = cache[path] { return raced }
            cache[path] = n
            return n
        }
    }

    private static func unusable(_ d: DRMDevice) -> String? {
        if d.isRenderNode { return "\(d.path) is a render node; dumb buffers need a primary node" }
        if !d.supportsDumbBuffers { return "\(d.driver) (\(d.path)) has no dumb buffers" }
        if !d.canExportPRIME { return "\(d.driver) (\(d.path)) cannot export dma-bufs (no DRM_PRIME_CAP_EXPORT)" }
        return nil
    }

    /// The node to allocate on: the first candidate every importing device
    /// can take buffers from, with the reason when there is none.
    private func home(_ devices: [PluginConstraints]) -> Result<(DRMDevice, zeroFill: Bool), PluginError> {
        let candidates: [String]
        switch devices.drmNodeChoice(configured: core.config("device")) {
        case .nodes(let nodes): candidates = nodes
        case .any: candidates = primaryNodes
        }
        guard !candidates.isEmpty else { return .failure(PluginError(errno: ENODEV, "no DRM device (/dev/dri/card*)")) }
        var reasons: [String] = []
        for path in candidates {
            let n = node(path)
            guard let d = n.device, n.unusable == nil else { reasons.append(n.unusable ?? path); continue }
            let exporter = "drm:\(d.driver)"
            if let refuser = devices.first(where: { $0.needsDmaBuf && !$0.canImport(from: exporter) }) {
                reasons.append("\(refuser.name) cannot import \(d.driver) buffers (measured by the probe)")
                continue
            }
            return .success((d, n.zeroFill))
        }
        return .failure(PluginError(errno: ENODEV, reasons.joined(separator: "; ")))
    }

    /// Linear images on a DRM device, exported with PRIME: CPU-mappable
    /// dma-bufs, read-only on request (PRIME without DRM_RDWR). Their
    /// exporter is the device's driver, which match() picks.
    var capabilities: Capabilities {
        Capabilities([.dmaBuf, .cpuMappable, .readOnly, .images], modifiers: [.linear, .invalid])
    }

    func match(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) -> Verdict {
        guard let format = request.format, Self.bitsPerPixel(format) != nil else {
            return .reject("dumb buffers take single-plane RGB formats only, not \(request.format?.code ?? "none")")
        }
        // The kernel lays the buffer out; packed tightly is the least it takes (and more than RAM is refused).
        if case .failure(let failure) = request.linearLayout(merged: merged, defaultPitchAlignment: 1) {
            return .reject("\(failure.description), even packed tightly")
        }
        let onlyRender = merged.usage & (SMAF_USAGE_RENDER.rawValue | SMAF_USAGE_TEXTURE.rawValue) != 0
            && merged.usage & (SMAF_USAGE_SCANOUT.rawValue | SMAF_USAGE_CPU_READ.rawValue | SMAF_USAGE_CPU_WRITE.rawValue) == 0
        if onlyRender { return .reject("dumb buffers are for scanout and CPU access, not GPU rendering") }
        if case .failure(let e) = home(devices) { return .reject(e.message) }
        return .accept
    }

    func allocate(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) throws(PluginError) -> PluginAllocation {
        guard let format = request.format, let bpp = Self.bitsPerPixel(format) else {
            throw PluginError(errno: EINVAL, "dumb: not a single-plane RGB image")
        }
        let (d, zeroFill) = try home(devices).get()
        if case .success(let least) = request.linearLayout(merged: merged, defaultPitchAlignment: 1),
           let why = MemoryHeadroom.shortfall(least.size) {
            throw PluginError(errno: ENOMEM, "not enough memory: \(why)")
        }

        let height = UInt32(clamping: alignUp(UInt64(request.height), max(merged.heightAlignment, 1)) ?? UInt64.max)
        do {
            let dumb = try d.createDumbBuffer(width: request.width, height: height, bitsPerPixel: bpp)
            let pitch = dumb.pitch, size = dumb.size
            // Checked against what the kernel returned, never a recomputed pitch.
            if merged.pitchAlignment > 1 && UInt64(pitch) % merged.pitchAlignment != 0 {
                throw PluginError(errno: EINVAL, "dumb: \(d.driver) chose pitch \(pitch), not a multiple of \(merged.pitchAlignment)")
            }
            if merged.maxPitch > 0 && UInt64(pitch) > merged.maxPitch {
                throw PluginError(errno: EINVAL, "dumb: \(d.driver) chose pitch \(pitch), over the max pitch \(merged.maxPitch)")
            }
            // Only where freed memory comes back as it was (VRAM): shmem pages arrive zeroed.
            if zeroFill { try d.zeroFill(dumb.handle, size: size) }
            // Without DRM_RDWR the kernel refuses writable mappings of the fd.
            let fd = try d.exportDmaBuf(dumb.handle, readOnly: request.readOnly)
            // The dma-buf now holds the object; the handle closes here, once.
            var a = PluginAllocation(fd: fd.take(), size: size,
                                     guarantees: request.readOnly ? [.dmaBuf, .cpuMappable, .readOnly] : [.dmaBuf, .cpuMappable])
            a.describe(request: request, layout: ImageLayout(planes: [.init(offset: 0, pitch: UInt64(pitch))], size: size),
                       modifier: .linear)
            a.exporter = "drm:\(d.driver)"
            a.detail = "dumb buffer on \(d.path) (\(d.driver)), pitch \(pitch)"
            return a
        } catch let e as PluginError {
            throw e
        } catch let e as SystemError {
            throw PluginError(errno: e.errno.rawValue, "dumb: \(e)")
        } catch {
            throw PluginError(errno: EIO, "dumb: \(error)")
        }
    }

    func release(_ allocation: PluginAllocation) {
        _ = Glibc.close(allocation.fd)
    }

    /// `smaf list --stats`: each node used so far and whether its buffers are zeroed here.
    func stats() -> String? {
        let used = nodes.withLock { $0 }.sorted { $0.key < $1.key }
        guard !used.isEmpty else { return "no node used yet (zero_fill \(zeroFillSetting.rawValue))" }
        return used.map { path, n in
            "\(path): " + (n.unusable ?? (n.zeroFill ? "zero-filled here (\(n.zeroFillWhy))" : "not zero-filled here (\(n.zeroFillWhy))"))
        }.joined(separator: "\n")
    }
}

@_cdecl("smaf_plugin_entry")
public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
    PluginExport.entry(DumbAllocator.self)
}
