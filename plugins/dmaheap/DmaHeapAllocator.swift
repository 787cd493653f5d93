import Glibc
import SMAFPluginKit
import SMAFSys

/// dma-buf heaps (/dev/dma_heap/*): the kernel's own dma-buf allocator, so
/// every buffer is a first-class dma-buf with no memfd behind it. "system"
/// serves ordinary requests; a CMA heap serves physically contiguous ones.
/// Ranked just above memfd, which needs udmabuf to get the same result.
final class DmaHeapAllocator: AllocatorPlugin {
    static let name = "dmaheap"
    static let summary = "dma-bufs from the kernel's dma-buf heaps (/dev/dma_heap: system, CMA)"
    static let defaultRank: Int32 = Int32(SMAF_RANK_SECONDARY) + 16

    /// Same default as memfd: 64-byte rows stay cache-line aligned.
    static let defaultPitchAlignment: UInt64 = 64

    /// The CMA heap's device name differs per kernel and boot command line.
    static let cmaHeapNames = ["linux,cma", "reserved", "default_cma_region"]

    /// One heap device, opened once at plugin open.
    struct Heap: Sendable {
        enum Kind: Sendable { case system, cma, other }
        let name: String
        let kind: Kind
        /// The open heap device, nil if opening it failed (`openError` says why).
        let fd: CInt?
        let openError: String?

        var exporter: String { "dma-heap:\(name)" }
        var path: String { DmaHeap.path(name) }
    }

    private let heaps: [Heap]
    /// `dmaheap.heap` (SMAF_DMAHEAP_HEAP): use this heap and no other.
    private let forcedHeap: String?

    init(core: PluginCore) throws(PluginError) {
        heaps = DmaHeap.heapNames().map { name in
            let kind: Heap.Kind = name == "system" ? .system
                : (Self.cmaHeapNames.contains(name) || name.contains("cma")) ? .cma : .other
            do throws(SystemError) {
                return Heap(name: name, kind: kind, fd: try UniqueFD.open(DmaHeap.path(name), O_RDWR).take(), openError: nil)
            } catch {
                return Heap(name: name, kind: kind, fd: nil, openError: error.description)
            }
        }
        forcedHeap = core.config("heap").flatMap { $0.isEmpty ? nil : $0 }
        core.log(SMAF_LOG_INFO, heaps.isEmpty ? "no dma-heaps" : "heaps: \(heapList)")
    }

    deinit {
        for heap in heaps { if let fd = heap.fd { _ = Glibc.close(fd) } }
    }

    private var heapList: String { heaps.map(\.name).joined(separator: ", ") }

    /// The heap for this request, or why there is none. The CMA names are
    /// tried in `cmaHeapNames` order, then any other name containing "cma".
    private func heap(contiguous: Bool) -> Result<Heap, PluginError> {
        func fail(_ reason: String) -> Result<Heap, PluginError> { .failure(PluginError(errno: ENODEV, reason)) }
        if heaps.isEmpty { return fail("no dma-heaps (\(DmaHeap.directory) is missing or empty)") }
        let chosen: Heap
        if let forcedHeap {
            guard let h = heaps.first(where: { $0.name == forcedHeap }) else {
                return fail("dmaheap.heap is '\(forcedHeap)', which \(DmaHeap.directory) does not have (heaps: \(heapList))")
            }
            if contiguous && h.kind != .cma {
                return fail("dmaheap.heap forces heap \(h.name), which is not a CMA heap; the buffer must be physically contiguous")
            }
            chosen = h
        } else if contiguous {
            let cma = Self.cmaHeapNames.compactMap { n in heaps.first { $0.name == n } } + heaps.filter { $0.kind == .cma }
            guard let h = cma.first else {
                return fail("no CMA heap for a physically contiguous buffer (heaps: \(heapList))")
            }
            chosen = h
        } else {
            // CMA memory is scarce: only when there is no system heap.
            guard let h = heaps.first(where: { $0.kind == .system }) ?? heaps.first(where: { $0.kind == .cma }) else {
                return fail("no system or CMA heap (heaps: \(heapList)); set dmaheap.heap to use another")
            }
            chosen = h
        }
        if let error = chosen.openError { return fail("heap \(chosen.name) cannot be opened: \(error)") }
        return .success(chosen)
    }

    /// Real dma-bufs, read-only on request (allocated without O_RDWR),
    /// linear; contiguous only where a CMA heap exists. Which heap serves a
    /// buffer (and so its exporter and alignment) depends on the request:
    /// match() checks those.
    var capabilities: Capabilities {
        let usable = heaps.filter { $0.fd != nil }
        var flags: Capabilities.Flags = [.dmaBuf, .readOnly, .bytes, .images]
        if usable.contains(where: { $0.kind != .other }) { flags.insert(.cpuMappable) }
        let cma = usable.contains { $0.kind == .cma }
        if cma { flags.insert(.contiguous) }
        return Capabilities(flags, addressAlignment: cma ? 4 * Memory.pageSize : 0)
    }

    func match(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) -> Verdict {
        let heap: Heap
        switch self.heap(contiguous: merged.needsContiguous) {
        case .success(let h): heap = h
        case .failure(let f): return .reject(f.message)
        }
        if heap.kind == .other && merged.needsCPUAccess {
            return .reject("heap \(heap.name) is not known to be CPU-mappable (only system and CMA heaps are)")
        }
        if let device = devices.first(where: { $0.needsDmaBuf && !$0.canImport(from: heap.exporter) }) {
            return .reject("device \(device.name) cannot import \(heap.exporter) dma-bufs (measured by the probe)")
        }
        let size: UInt64
        switch request.linearLayout(merged: merged, defaultPitchAlignment: Self.defaultPitchAlignment) {
        case .success(let layout): size = layout.size
        case .failure(let failure): return .reject(failure.description)
        }
        let pages = (Memory.pageRounded(size) ?? size) / Memory.pageSize
        let alignment = Self.promisedAlignment(heap, pages: pages)
        if merged.addressAlignment > alignment {
            return .reject("heap \(heap.name) aligns this buffer to \(alignment) bytes, not \(merged.addressAlignment)")
        }
        // The system heap may hand out single pages: one segment each, worst case.
        if heap.kind != .cma && merged.maxSegments > 0 && pages > UInt64(merged.maxSegments) {
            return .reject("heap \(heap.name) needs up to \(pages) segments; a device takes \(merged.maxSegments)")
        }
        return .accept
    }

    /// Physical alignment the heap guarantees for a buffer of `pages` pages.
    /// The CMA heap aligns to the buffer's order, capped at
    /// CONFIG_CMA_ALIGNMENT, which Kconfig keeps >= 2: so up to 4 pages.
    /// Other heaps promise a page.
    static func promisedAlignment(_ heap: Heap, pages: UInt64) -> UInt64 {
        guard heap.kind == .cma else { return Memory.pageSize }
        return Memory.pageSize * (pages <= 1 ? 1 : pages <= 2 ? 2 : 4)
    }

    func allocate(_ request: PluginRequest, merged: PluginConstraints) throws(PluginError) -> PluginAllocation {
        let heap = try self.heap(contiguous: merged.needsContiguous).get()
        guard let heapFD = heap.fd else { throw PluginError(errno: ENODEV, "heap \(heap.name) is not open") }
        let layout: ImageLayout
        switch request.linearLayout(merged: merged, defaultPitchAlignment: Self.defaultPitchAlignment) {
        case .success(let l): layout = l
        case .failure(let f): throw PluginError(errno: EINVAL, f.description)
        }
        guard let size = Memory.pageRounded(layout.size) else { throw PluginError(errno: EOVERFLOW, "size overflows") }
        // No check for size 0 here: the kernel refuses it (EINVAL) and that
        // error, naming the ioctl and the heap, is the one to report.
        // The heap allocates page by page until it has them all or the OOM
        // killer steps in: what does not fit now is refused before the ioctl.
        if let why = MemoryHeadroom.shortfall(size) { throw PluginError(errno: ENOMEM, "not enough memory: \(why)") }
        let dmabuf: UniqueFD
        do {
            // Without O_RDWR the kernel refuses writable mappings of the fd.
            dmabuf = try DmaHeap.allocate(heap: heapFD, size: size, readOnly: request.readOnly, context: heap.path)
        } catch {
            throw PluginError(errno: error.errno.rawValue, error.description)
        }
        // A name is a debugging aid; a kernel without DMA_BUF_SET_NAME still gets its buffer.
        if request.wantsName { try? DmaBuf.setName(dmabuf.rawValue, "smaf:dmaheap") }

        var guarantees: PluginAllocation.Guarantees = [.dmaBuf]
        if heap.kind != .other { guarantees.insert(.cpuMappable) }
        if request.readOnly { guarantees.insert(.readOnly) }
        // Physical contiguity is what the CMA heap is for (cma_alloc of one run).
        if heap.kind == .cma { guarantees.insert(.contiguous) }
        var allocation = PluginAllocation(fd: dmabuf.take(), size: size, guarantees: guarantees)
        allocation.largestContiguous = heap.kind == .cma ? size : 0
        allocation.exporter = heap.exporter
        allocation.detail = heap.kind == .cma ? "dma-heap \(heap.name) (CMA, physically contiguous)" : "dma-heap \(heap.name)"
        allocation.describe(request: request, layout: layout, modifier: .linear)
        return allocation
    }

    func release(_ allocation: PluginAllocation) {
        _ = Glibc.close(allocation.fd)
    }

    /// `smaf list --stats`: the heaps found and whether they opened.
    func stats() -> String? {
        if heaps.isEmpty { return "no dma-heaps (\(DmaHeap.directory) is missing or empty)" }
        var lines = heaps.map { "\($0.name): \($0.openError ?? "open")" }
        if let forcedHeap { lines.append("dmaheap.heap = \(forcedHeap)") }
        return lines.joined(separator: "\n")
    }
}

@_cdecl("smaf_plugin_entry")
public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
    PluginExport.entry(DmaHeapAllocator.self)
}
