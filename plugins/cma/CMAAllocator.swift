import CMARegion
import Glibc
import SMAFPluginKit
import SMAFSys
import Synchronization

/// cma: the kernel's Contiguous Memory Allocator, emulated in userspace so
/// code for devices without an IOMMU meets CMA's behaviour (alignment,
/// exhaustion, fragmentation) on a machine with no CMA heap. On the first
/// allocation it serves it reserves one region like `cma=` (see
/// Reservation), kept until the plugin closes; buffers are carved out of it
/// first fit with power-of-two alignment (ContiguousRegion), zeroed, and
/// exported as udmabuf dma-bufs over their offset in the region. Loading
/// smaf costs no memory: only a process that uses cma pays for the region.
///
/// It claims physical facts only with evidence: page frame numbers from
/// /proc/self/pagemap, which the kernel shows only with CAP_SYS_ADMIN. A
/// buffer is "contiguous" when its frames are consecutive after udmabuf has
/// pinned them; without frame numbers it says "not verified".
final class CMAAllocator: AllocatorPlugin {
    static let name = "cma"
    static let summary = "a CMA-like region (one pre-faulted memfd, hugetlb when available, reserved on first use) carved into udmabuf dma-bufs; contiguity verified through pagemap"
    /// Contiguous memory is precious: used when a device needs it or when forced.
    static let defaultRank = Int32(SMAF_RANK_MARGINAL)
    /// The documented default region size (cma.size / SMAF_CMA_SIZE).
    static let defaultSize: UInt64 = 64 << 20
    static let defaultPitchAlignment: UInt64 = 64

    private let core: PluginCore
    private let udmabuf: UdmabufExporter
    /// The region's size: cma.size rounded up to the 2 MiB granule, fixed at open.
    let size: UInt64
    let preference: Reservation.Preference
    /// Why /proc/self/pagemap shows no page frames to this process (nil: it
    /// does), probed at open on a page of its own: what match may promise.
    let framesHidden: String?
    let state: Mutex<State>

    struct State {
        /// The memory, once the first allocation reserved it.
        var reserved: Reserved?
        var region: ContiguousRegion
        /// The region's page frames (0 = unknown), refreshed for every range allocate() checks.
        var frames: PhysicalFrames
        /// Released ranges whose dma-buf something still references (see otherReferences).
        var held: [Held] = []
    }

    /// The reservation, shared by reference once made and never dropped
    /// before the plugin closes, so allocate() can use its mapping unlocked.
    final class Reserved: Sendable {
        let reservation: Reservation
        init(_ reservation: consuming Reservation) { self.reservation = reservation }
    }

    struct Held: Equatable {
        var fd: CInt
        var start: Int
    }

    init(core: PluginCore) throws(PluginError) {
        self.core = core
        var size = Self.defaultSize
        if let text = core.config("size") {
            guard let parsed = ByteCount.parseKernelSize(text), parsed > 0 else {
                throw PluginError(errno: EINVAL, "cma.size: '\(text)' is not a size like the kernel's cma= (64M, 256M, 1G)")
            }
            size = parsed
        }
        let backing = core.config("backing") ?? "auto"
        guard let preference = Reservation.Preference(rawValue: backing.lowercased()) else {
            throw PluginError(errno: EINVAL, "cma.backing: '\(backing)' is not auto, hugetlb or shmem")
        }
        udmabuf = UdmabufExporter()
        self.size = try Reservation.checkedSize(size)
        self.preference = preference
        framesHidden = Reservation.framesHidden()
        let pages = Int(self.size / Memory.pageSize)
        state = Mutex(State(region: ContiguousRegion(pageCount: pages, pageSize: Memory.pageSize),
                            frames: PhysicalFrames([UInt64](repeating: 0, count: pages))))
    }

    /// The region, reserved now if this is the first allocation. A failure
    /// (no memory to spare, a hugetlb pool too small) fails this allocation
    /// only: the next one tries again.
    private func reserved() throws(PluginError) -> Reserved {
        try state.withLock { s throws(PluginError) -> Reserved in
            if let r = s.reserved { return r }
            let r = Reserved(try Reservation(size: size, preference: preference) { core.log(SMAF_LOG_INFO, $0) })
            s.reserved = r
            s.frames = r.reservation.frames
            core.log(SMAF_LOG_INFO, "reserved \(ByteCount.describe(r.reservation.size)) of \(r.reservation.backing.rawValue) in \(r.reservation.microseconds) us; "
                     + (r.reservation.framesUnknownReason.map { "contiguity not verified: \($0)" }
                        ?? "longest physically contiguous run \(ByteCount.describe(UInt64(r.reservation.frames.longestRun) * Memory.pageSize))"))
            return r
        }
    }

    deinit {
        for h in state.withLock({ $0.held }) { _ = Glibc.close(h.fd) }
    }

    /// What a request needs from the region; worked out alike by match and allocate.
    private struct Plan {
        var layout: ImageLayout
        var bytes: UInt64
        var pages: Int
        var order: Int
        var contiguous: Bool
        var dmaAddressBits: UInt32?
        var maxSegments: Int?
        var belowFrame: UInt64? { dmaAddressBits.flatMap { PhysicalFrames.limitFrame(dmaAddressBits: $0) } }
        /// Needs page frame numbers to be honoured.
        var needsFrames: Bool { contiguous || belowFrame != nil || maxSegments != nil }
        var placed: Bool { contiguous || belowFrame != nil }

        var physicalNeed: String {
            [contiguous ? "\(ByteCount.describe(bytes)) physically contiguous" : "\(ByteCount.describe(bytes))",
             dmaAddressBits.map { "below 2^\($0)" }, maxSegments.map { "in at most \($0) segments" }]
                .compactMap { $0 }.joined(separator: " ")
        }
    }

    private struct Refusal: Error {
        var reason: String
    }

    private func plan(_ request: PluginRequest, _ merged: PluginConstraints) -> Result<Plan, Refusal> {
        let layout: ImageLayout
        switch request.linearLayout(merged: merged, defaultPitchAlignment: Self.defaultPitchAlignment) {
        case .success(let l): layout = l
        case .failure(let f): return .failure(Refusal(reason: f.description))
        }
        guard let bytes = Memory.pageRounded(layout.size) else { return .failure(Refusal(reason: "size overflows")) }
        if bytes > size {
            return .failure(Refusal(reason: "\(ByteCount.describe(bytes)) does not fit the \(ByteCount.describe(size)) region (cma.size, SMAF_CMA_SIZE)"))
        }
        if let limit = udmabuf.sizeLimit, bytes > limit {
            return .failure(Refusal(reason: "\(bytes) bytes exceeds udmabuf's size limit of \(limit) bytes (\(Udmabuf.sizeLimitPath))"))
        }
        let alignment = merged.addressAlignment
        if alignment & (alignment &- 1) != 0 {
            return .failure(Refusal(reason: "address alignment \(alignment) is not a power of two; CMA aligns to power-of-two orders of pages"))
        }
        let pages = Int(bytes / Memory.pageSize)
        // The CMA dma-heap aligns a buffer to its size's order (capped at
        // CONFIG_CMA_ALIGNMENT); a device may ask for more. Alignment is of
        // the offset in the region, the emulation's bus address; with
        // hugetlb it is physical too, up to the 2 MiB page.
        let deviceOrder = alignment > Memory.pageSize ? (alignment / Memory.pageSize).trailingZeroBitCount : 0
        let segments = Int(merged.maxSegments)
        let bits = merged.dmaAddressBits
        return .success(Plan(layout: layout, bytes: bytes, pages: pages,
                             order: max(deviceOrder, ContiguousRegion.naturalOrder(pages: pages)),
                             contiguous: merged.needsContiguous || segments == 1,
                             dmaAddressBits: bits > 0 && bits < 64 ? bits : nil,
                             maxSegments: segments > 1 && pages > segments ? segments : nil))
    }

    /// udmabuf dma-bufs over ranges of one region: mappable, linear, never
    /// read-only (udmabuf exports O_RDWR), contiguous and below an address
    /// limit when pagemap shows it (match() checks what this process can see).
    var capabilities: Capabilities {
        // Carved like cma_alloc, at any power-of-two order the region holds: match() checks the fit.
        Capabilities([.dmaBuf, .cpuMappable, .contiguous, .addressLimits, .bytes, .images],
                     addressAlignment: 1 << 62, exporter: "udmabuf")
    }

    func match(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) -> Verdict {
        if let reason = udmabuf.unavailableReason {
            return .reject("its buffers are udmabuf dma-bufs over ranges of one region, and /dev/udmabuf is unavailable (\(reason))")
        }
        switch plan(request, merged) {
        case .failure(let refusal): return .reject(refusal.reason)
        case .success(let plan): return whyUnverifiable(plan).map { .reject($0) } ?? .accept
        }
    }

    /// nil when this process can verify the physical checks `plan` asks for
    /// (contiguity, DMA limit, segments), else why not: pagemap shows page
    /// frames or it does not, which open() found out. Whether the region has
    /// a long enough stretch is allocate's to say (stretches are measured
    /// once the region exists, and move as it is used), like its free space:
    /// either failing moves the core on, as on real CMA.
    private func whyUnverifiable(_ plan: Plan) -> String? {
        guard plan.needsFrames, let why = framesHidden else { return nil }
        return "cannot verify \(plan.physicalNeed): \(why)"
    }

    /// nil when the reserved region has a stretch `plan` can be placed in, else why not.
    private func whyNoStretch(_ plan: Plan, _ region: Reserved) -> String? {
        if let why = region.reservation.framesUnknownReason, plan.needsFrames { return "cannot verify \(plan.physicalNeed): \(why)" }
        guard plan.placed else { return nil }
        let longest = state.withLock { $0.frames.ranges(consecutive: plan.contiguous, belowFrame: plan.belowFrame) }.map(\.count).max() ?? 0
        guard longest < plan.pages else { return nil }
        return "needs \(plan.physicalNeed); the longest such stretch of the \(region.reservation.backing.rawValue) region is "
            + "\(ByteCount.describe(UInt64(longest) * Memory.pageSize))"
            + (plan.contiguous && region.reservation.backing == .shmem ? " (huge pages give 2 MiB runs: reserve some, see cma.backing)" : "")
    }

    func allocate(_ request: PluginRequest, merged: PluginConstraints) throws(PluginError) -> PluginAllocation {
        let plan: Plan
        switch self.plan(request, merged) {
        case .success(let p): plan = p
        case .failure(let refusal): throw PluginError(errno: EINVAL, refusal.reason)
        }
        if let reason = whyUnverifiable(plan) { throw PluginError(errno: EINVAL, reason) }
        let region = try reserved()
        if let reason = whyNoStretch(plan, region) { throw PluginError(errno: ENOMEM, reason) }
        reclaimHeld()
        let carved = state.withLock { s in
            s.region.allocate(pages: plan.pages, alignOrder: plan.order,
                              within: plan.placed ? s.frames.ranges(consecutive: plan.contiguous, belowFrame: plan.belowFrame) : nil)
        }
        let range: Range<Int>
        switch carved {
        case .success(let r): range = r
        case .failure(let failure):
            let eligible = [plan.contiguous ? "inside one physically contiguous run" : nil, plan.dmaAddressBits.map { "below 2^\($0)" }]
            throw PluginError(errno: ENOMEM, failure.description
                              + (plan.placed ? " (eligible: \(eligible.compactMap { $0 }.joined(separator: ", ")))" : ""))
        }
        var handedOut = false
        defer { if !handedOut { state.withLock { _ = $0.region.release(start: range.lowerBound) } } }

        let offset = UInt64(range.lowerBound) * Memory.pageSize
        // The CMA dma-heap clears every page it hands out; so does the emulation.
        memset(region.reservation.mapping.base + Int(offset), 0, Int(plan.bytes))
        let dmabuf: UniqueFD
        do {
            dmabuf = try udmabuf.export(memfd: region.reservation.memfd.rawValue, offset: offset, size: plan.bytes, name: request.wantsName ? "smaf:cma" : nil)
        } catch {
            throw PluginError(errno: error.errno.rawValue, error.description)
        }
        // Measured after UDMABUF_CREATE pinned the pages: now they cannot move.
        let frames = measure(range, in: region)
        if let reason = violation(of: plan, frames, offset: offset) { throw PluginError(errno: EBUSY, reason) }

        var guarantees: PluginAllocation.Guarantees = [.dmaBuf, .cpuMappable]
        let runs = frames?.runs ?? []
        if frames != nil && runs.count == 1 { guarantees.insert(.contiguous) }
        var allocation = PluginAllocation(fd: dmabuf.take(), size: plan.bytes, guarantees: guarantees)
        allocation.largestContiguous = UInt64(runs.map(\.count).max() ?? 0) * Memory.pageSize
        allocation.token = UInt(range.lowerBound)
        allocation.exporter = "udmabuf"
        allocation.detail = "\(ByteCount.describe(plan.bytes)) at offset 0x\(String(offset, radix: 16)) of the "
            + "\(ByteCount.describe(size)) \(region.reservation.backing.rawValue) region via udmabuf; "
            + (frames == nil ? "physical layout not verified"
               : runs.count == 1 ? "physically contiguous (verified)"
               : "\(runs.count) physical runs, longest \(ByteCount.describe(allocation.largestContiguous)) (verified)")
        allocation.describe(request: request, layout: plan.layout, modifier: .linear)
        handedOut = true
        return allocation
    }

    /// The frames of `range` now, nil when they cannot be known.
    private func measure(_ range: Range<Int>, in region: Reserved) -> PhysicalFrames? {
        guard region.reservation.framesUnknownReason == nil,
              let frames = try? Pagemap.frames(of: region.reservation.mapping.base + range.lowerBound * Int(Memory.pageSize), pages: range.count),
              frames.isVerified else { return nil }
        state.withLock { $0.frames.update(from: range.lowerBound, with: frames) }
        return frames
    }

    /// Why a carved range fails the plan once pinned (its pages moved since
    /// they were measured), like cma_alloc's EBUSY when a range will not go
    /// contiguous; nil when it passes.
    private func violation(of plan: Plan, _ frames: PhysicalFrames?, offset: UInt64) -> String? {
        guard plan.needsFrames else { return nil }
        guard let frames else { return "could not read the page frames of the range at offset 0x\(String(offset, radix: 16))" }
        let runs = frames.runs.count
        if plan.contiguous && runs != 1 || plan.maxSegments.map({ runs > $0 }) == true {
            return "the range at offset 0x\(String(offset, radix: 16)) spans \(runs) physical runs once pinned; needs \(plan.physicalNeed)"
        }
        if let limit = plan.belowFrame, let highest = frames.frames.max(), highest >= limit {
            return "the range at offset 0x\(String(offset, radix: 16)) reaches frame 0x\(String(highest, radix: 16)) once pinned; needs \(plan.physicalNeed)"
        }
        return nil
    }
}

@_cdecl("smaf_plugin_entry")
public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
    PluginExport.entry(CMAAllocator.self)
}
