import CLibGBM
import Glibc
import SMAFDRM
import SMAFPluginKit
import SMAFSys
import Synchronization

/// Mesa GBM buffer objects, allocated on the DRM device the buffer is for
/// and exported as dma-bufs. On real hardware GBM knows the driver's tiling
/// and scanout rules best, hence rank primary. Where Mesa has no driver of
/// its own (vgem, bochs, virtio-gpu without 3D) kms_swrast serves, with
/// linear dumb buffers (GBMNode.swift).
final class GBMAllocator: AllocatorPlugin {
    static let name = "gbm"
    static let summary = "Mesa GBM buffer objects on the devices' DRM node, exported as dma-bufs"
    static let defaultRank: Int32 = Int32(SMAF_RANK_PRIMARY)

    static let bytesReason = "gbm allocates images; ask memfd or dmaheap for bytes"

    private let core: PluginCore
    /// gbm.device (SMAF_GBM_DEVICE): the node to use when no device names one.
    private let configuredNode: String?
    /// `/dev/dri/card*` as it was at open (hotplug is not followed): no directory scan per buffer.
    private let primaryNodes: [String]
    /// Nodes opened by this context, failures included so verdicts stay stable.
    private let nodes = Mutex<[String: Result<GBMNode, PluginError>]>([:])
    /// Live allocations by token (the gbm_bo's address).
    private let live = Mutex<[UInt: GBMBuffer]>([:])

    init(core: PluginCore) throws(PluginError) {
        self.core = core
        configuredNode = core.config("device")
        primaryNodes = DRMDevice.primaryNodes()
    }

    /// Images in the layouts the device's driver offers, exported with
    /// PRIME (read-only on request), page aligned. Not secure: measured,
    /// kms_swrast accepts GBM_BO_USE_PROTECTED and hands out ordinary,
    /// CPU-readable memory. Mappable only when linear, which match() checks.
    var capabilities: Capabilities {
        Capabilities([.dmaBuf, .cpuMappable, .readOnly, .images, .anyModifier])
    }

    func match(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) -> Verdict {
        guard let format = request.format else { return .reject(Self.bytesReason) }
        if merged.needsCPUAccess && !Self.implicitAccepted(request) && !request.accepts(.linear) {
            return .reject("the CPU maps the buffer, which needs a linear layout; the devices accept only \(Self.list(request.modifiers))")
        }
        // GBM takes no pitch or size limit; a tightly packed layout is the least any BO needs.
        if case .failure(let failure) = request.linearLayout(merged: merged, defaultPitchAlignment: 1) {
            return .reject("\(failure.description), even packed tightly")
        }
        let node: GBMNode
        switch home(devices) {
        case .success(let n): node = n
        case .failure(let error): return .reject(error.message)
        }
        let flags = Self.flags(request, merged)
        guard node.isSupported(format, flags: flags) else {
            return .reject("gbm on \(node.label) does not support \(format) with \(Self.describe(flags))")
        }
        let explicit = Self.explicitModifiers(request, merged)
        if !request.modifiers.isEmpty && !Self.implicitAccepted(request) && !request.accepts(.linear)
            && !explicit.contains(where: { node.knowsModifier(format, $0) }) {
            return .reject("gbm on \(node.label) supports none of the modifiers \(Self.list(request.modifiers)) for \(format)")
        }
        return .accept
    }

    func allocate(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) throws(PluginError) -> PluginAllocation {
        guard request.isImage, let format = request.format else { throw PluginError(errno: EINVAL, Self.bytesReason) }
        let node = try home(devices).get()
        // The driver lays the BO out; packed tightly is the least it takes.
        if case .success(let least) = request.linearLayout(merged: merged, defaultPitchAlignment: 1),
           let why = MemoryHeadroom.shortfall(least.size) {
            throw PluginError(errno: ENOMEM, "not enough memory: \(why)")
        }
        let created = try create(on: node, request, merged, format)
        // From here `buffer` owns the BO and its dma-buf: any throw below releases both.
        let buffer: GBMBuffer
        do { buffer = GBMBuffer(node: node, bo: created.bo, dmabuf: try node.export(created.bo, readOnly: request.readOnly)) } catch {
            node.destroy(created.bo)
            throw error
        }
        let layout = node.layout(created.bo)
        let modifier: Modifier
        if request.accepts(layout.modifier) { modifier = layout.modifier }
        else if layout.modifier == .invalid && created.forcedLinear { modifier = .linear } // GBM_BO_USE_LINEAR's promise
        else if Self.implicitAccepted(request) { modifier = .invalid } // the driver's own layout, taken implicitly
        else {
            throw PluginError(errno: EINVAL, "gbm on \(node.label) gave modifier \(layout.modifier), not among \(Self.list(request.modifiers))")
        }
        let size: UInt64
        do { size = try buffer.dmabuf.byteSize() } catch { throw PluginError(errno: error.errno.rawValue, error.description) }
        if let misfit = Self.misfit(layout.planes, size: size, request, merged, format) {
            throw PluginError(errno: ERANGE, "the BO gbm made on \(node.label) does not fit: \(misfit)")
        }
        // Whether BOs like this one map is learnt once per node, flags and format; whether this
        // one maps writable is its dma-buf's access mode (the kernel refuses PROT_WRITE without
        // O_RDWR). CPU-mappable only for a linear layout.
        let readable = node.mapsBOs(flags: created.flags, format: format)
        let writable = readable && fcntl(buffer.dmabuf.rawValue, F_GETFL) & O_ACCMODE == O_RDWR
        let linear = modifier == .linear || (modifier == .invalid && created.flags & GBM_BO_USE_LINEAR.rawValue != 0)
        if request.readOnly && writable {
            throw PluginError(errno: EPERM, "the dma-buf of the BO on \(node.label) takes writable mappings; read-only was asked for")
        }
        if (merged.needsCPUAccess && !(linear && readable)) || (merged.usage & SMAF_USAGE_CPU_WRITE.rawValue != 0 && !writable) {
            let why = !linear ? "modifier \(modifier) is not linear" : readable ? "its dma-buf refuses writable mappings" : "mmap of its dma-buf failed"
            throw PluginError(errno: EOPNOTSUPP, "the BO gbm made on \(node.label) is not CPU-mappable as asked: \(why)")
        }
        var guarantees: PluginAllocation.Guarantees = [.dmaBuf]
        if linear && readable { guarantees.insert(.cpuMappable) }
        if !writable && (readable || request.readOnly) { guarantees.insert(.readOnly) }
        var allocation = PluginAllocation(fd: buffer.dmabuf.rawValue, size: size, guarantees: guarantees)
        allocation.format = format
        allocation.width = request.width
        allocation.height = request.height
        allocation.modifier = modifier
        allocation.planes = layout.planes
        allocation.exporter = node.exporter
        allocation.detail = "\(created.call)(\(Self.describe(created.flags))) on \(node.label), modifier \(modifier)"
        allocation.token = created.bo
        live.withLock { $0[created.bo] = buffer }
        return allocation
    }

    func release(_ allocation: PluginAllocation) {
        // Taking the buffer out of `live` makes this happen once; dropping it
        // closes the dma-buf fd and destroys the BO.
        guard let buffer = live.withLock({ $0.removeValue(forKey: allocation.token) }) else {
            core.log(SMAF_LOG_WARNING, "release of an allocation this context did not make (fd \(allocation.fd)): ignored")
            return
        }
        if buffer.dmabuf.rawValue != allocation.fd {
            core.log(SMAF_LOG_WARNING, "release: fd \(allocation.fd) is not the BO's fd \(buffer.dmabuf.rawValue); closing the BO's")
        }
    }

    func stats() -> String? {
        let opened = nodes.withLock { $0.values.compactMap { try? $0.get().label } }.sorted()
        let counts = live.withLock { $0.values.reduce(into: [String: Int]()) { $0[$1.node.label, default: 0] += 1 } }
        let bos = counts.sorted { $0.key < $1.key }.map { "\($0.value) on \($0.key)" }
        return "GBM devices open: \(opened.isEmpty ? "none" : opened.joined(separator: ", ")); live BOs: \(bos.isEmpty ? "none" : bos.joined(separator: ", "))"
    }

    // MARK: - Where and how

    /// This context's node for `path`, opened on first use.
    private func node(_ path: String) -> Result<GBMNode, PluginError> {
        nodes.withLock { cache in
            if let known = cache[path] { return known }
            let result: Result<GBMNode, PluginError>
            let core = core
            do throws(PluginError) {
                result = .success(try GBMNode(path: path) { core.log(SMAF_LOG_DEBUG, "Mesa, opening \(path): \($0)") })
            } catch {
                result = .failure(error)
            }
            if case .success(let n) = result { core.log(SMAF_LOG_INFO, "GBM device opened on \(n.label)") }
            cache[path] = result
            return result
        }
    }

    /// The first candidate node where GBM works and whose buffers every
    /// device that imports (other than those living on it) can import.
    private func home(_ devices: [PluginConstraints]) -> Result<GBMNode, PluginError> {
        let candidates: [String]
        switch devices.drmNodeChoice(configured: configuredNode) {
        case .nodes(let paths): candidates = paths
        case .any: candidates = primaryNodes
        }
        if candidates.isEmpty { return .failure(PluginError(errno: ENODEV, "no DRM device: /dev/dri has no primary node (card*)")) }
        var reasons: [String] = []
        for path in candidates {
            switch node(path) {
            case .failure(let error): reasons.append(error.message)
            case .success(let n):
                guard let d = devices.first(where: { $0.needsDmaBuf && $0.importNode != path && !$0.canImport(from: n.exporter) }) else {
                    return .success(n)
                }
                reasons.append("device \(d.name) cannot import \(n.exporter) dma-bufs (measured by the probe)")
            }
        }
        return .failure(PluginError(errno: ENODEV, reasons.joined(separator: "; ")))
    }

    private struct Created {
        var bo: UInt
        var call: String
        var flags: UInt32
        var forcedLinear: Bool
    }

    /// gbm_bo_create_with_modifiers2 with the devices' explicit modifiers,
    /// then plain gbm_bo_create if an implicit layout is acceptable, or a
    /// LINEAR-flagged one if LINEAR is (kms_swrast answers every modifier
    /// call with ENOSYS, measured).
    private func create(on node: GBMNode, _ request: PluginRequest, _ merged: PluginConstraints,
                        _ format: FourCC) throws(PluginError) -> Created {
        let flags = Self.flags(request, merged)
        let linearFlag = GBM_BO_USE_LINEAR.rawValue
        let explicit = Self.explicitModifiers(request, merged)
        var failure = ""
        if !explicit.isEmpty {
            // Mesa refuses modifiers together with GBM_BO_USE_LINEAR (EINVAL); LINEAR in the list says it.
            do {
                let bo = try node.createBO(width: request.width, height: request.height, format: format,
                                           flags: flags & ~linearFlag, modifiers: explicit)
                return Created(bo: bo, call: "gbm_bo_create_with_modifiers2", flags: flags & ~linearFlag, forcedLinear: false)
            } catch {
                failure = "\(error.message); "
            }
        }
        let implicit = Self.implicitAccepted(request)
        guard implicit || request.accepts(.linear) else {
            throw PluginError(errno: EINVAL, "\(failure)the devices take no implicit or LINEAR layout to fall back to")
        }
        let plainFlags = implicit ? flags : flags | linearFlag
        do {
            let bo = try node.createBO(width: request.width, height: request.height, format: format, flags: plainFlags, modifiers: [])
            return Created(bo: bo, call: "gbm_bo_create", flags: plainFlags, forcedLinear: !implicit)
        } catch {
            throw PluginError(errno: error.errno, failure + error.message)
        }
    }

    // MARK: - Pure helpers

    /// GBM usage flags from the merged usage; LINEAR when the CPU maps the
    /// buffer (tiled layouts are useless to it, and gbm_bo_map needs LINEAR on
    /// many drivers) or when LINEAR is the one modifier the devices take.
    private static func flags(_ request: PluginRequest, _ merged: PluginConstraints) -> UInt32 {
        var flags: UInt32 = 0
        if merged.usage & SMAF_USAGE_SCANOUT.rawValue != 0 { flags |= GBM_BO_USE_SCANOUT.rawValue }
        if merged.usage & SMAF_USAGE_RENDER.rawValue != 0 { flags |= GBM_BO_USE_RENDERING.rawValue }
        if merged.needsCPUAccess || Array(request.modifiers) == [Modifier.linear.rawValue] { flags |= GBM_BO_USE_LINEAR.rawValue }
        return flags
    }

    /// The modifiers to name to gbm_bo_create_with_modifiers2: the devices'
    /// list without INVALID (plain gbm_bo_create is the implicit layout), and
    /// only LINEAR when the CPU maps the buffer. Empty: plain create.
    private static func explicitModifiers(_ request: PluginRequest, _ merged: PluginConstraints) -> [UInt64] {
        request.modifiers.filter { $0 != Modifier.invalid.rawValue && (!merged.needsCPUAccess || $0 == Modifier.linear.rawValue) }
    }

    private static func implicitAccepted(_ request: PluginRequest) -> Bool {
        request.modifiers.isEmpty || request.accepts(.invalid)
    }

    /// GBM takes no pitch, height or size constraint, so the BO it chose is
    /// checked against them afterwards; a misfit fails allocate() and the core
    /// tries the next allocator.
    private static func misfit(_ planes: [PluginAllocation.Plane], size: UInt64, _ request: PluginRequest,
                               _ merged: PluginConstraints, _ format: FourCC) -> String? {
        if merged.maxSize > 0 && size > merged.maxSize { return "\(size) bytes exceeds the max size \(merged.maxSize)" }
        let rows = alignUp(UInt64(request.height), max(merged.heightAlignment, 1)) ?? UInt64.max
        let vsub = UInt64(FormatInfo.lookup(format)?.vsub ?? 1)
        for (i, plane) in planes.enumerated() {
            let pitch = UInt64(plane.stride)
            if merged.pitchAlignment > 1 && pitch % merged.pitchAlignment != 0 {
                return "plane \(i) pitch \(pitch) is not a multiple of \(merged.pitchAlignment)"
            }
            if merged.maxPitch > 0 && pitch > merged.maxPitch { return "plane \(i) pitch \(pitch) exceeds the max pitch \(merged.maxPitch)" }
            guard merged.heightAlignment > 1 else { continue }
            let end = planes.map(\.offset).filter { $0 > plane.offset }.min() ?? size
            let planeRows = i == 0 ? rows : (rows + vsub - 1) / vsub
            let (needed, overflow) = pitch.multipliedReportingOverflow(by: planeRows)
            if overflow || end < plane.offset || end - plane.offset < needed {
                return "plane \(i) has room for fewer than \(planeRows) rows (height aligned to \(merged.heightAlignment))"
            }
        }
        return nil
    }

    private static func describe(_ flags: UInt32) -> String {
        let names = [(GBM_BO_USE_SCANOUT, "SCANOUT"), (GBM_BO_USE_RENDERING, "RENDERING"), (GBM_BO_USE_LINEAR, "LINEAR")]
            .filter { flags & $0.0.rawValue != 0 }.map(\.1)
        return names.isEmpty ? "no usage flags" : names.joined(separator: "|")
    }

    private static func list(_ modifiers: UnsafeBufferPointer<UInt64>) -> String {
        modifiers.map { Modifier(rawValue: $0).description }.joined(separator: ", ")
    }
}

@_cdecl("smaf_plugin_entry")
public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
    PluginExport.entry(GBMAllocator.self)
}
