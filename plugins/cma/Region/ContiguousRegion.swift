import SMAFSys

/// A fixed region of pages handed out the way the kernel's Contiguous Memory
/// Allocator does (mm/cma.c, `cma_alloc(count, align)`): the lowest free
/// range whose first page is aligned to 2^order pages wins (first fit), and a
/// released range is coalesced with its free neighbours. Pure bookkeeping,
/// no memory and no syscalls: the cma plugin keeps one under a Mutex next to
/// the memory it describes, and tests drive it directly.
public struct ContiguousRegion: Sendable, Equatable {
    public let pageCount: Int
    public let pageSize: UInt64
    /// Free page ranges, sorted, never empty and never touching (coalesced).
    public private(set) var freeRanges: [Range<Int>]
    /// Live allocations: first page -> page count.
    public private(set) var allocations: [Int: Int] = [:]

    /// The kernel's CONFIG_CMA_ALIGNMENT default: the CMA dma-heap aligns a
    /// buffer to its own size's order, but never beyond order 8 (1 MiB with
    /// 4 KiB pages).
    public static let maxNaturalOrder = 8

    public init(pageCount: Int, pageSize: UInt64) {
        self.pageCount = max(0, pageCount)
        self.pageSize = pageSize
        freeRanges = self.pageCount > 0 ? [0..<self.pageCount] : []
    }

    /// The order the CMA dma-heap asks for (`get_order(size)` capped at
    /// CONFIG_CMA_ALIGNMENT): the smallest order with 2^order >= pages.
    public static func naturalOrder(pages: Int, cap: Int = maxNaturalOrder) -> Int {
        guard pages > 1 else { return 0 }
        return min(Int.bitWidth - (pages - 1).leadingZeroBitCount, cap)
    }

    /// Carves `pages` pages whose first page is a multiple of 2^`alignOrder`:
    /// the lowest such range that is free and, when `eligible` is given,
    /// lies inside one of those ranges (a physically contiguous run, the
    /// pages below a DMA limit). Never traps, whatever the numbers.
    public mutating func allocate(pages: Int, alignOrder: Int, within eligible: [Range<Int>]? = nil) -> Result<Range<Int>, Failure> {
        guard pages > 0, let start = firstFit(pages: pages, alignOrder: alignOrder, within: eligible) else {
            return .failure(failure(pages: pages, alignOrder: alignOrder, within: eligible))
        }
        let taken = start..<(start + pages)
        guard let index = freeRanges.firstIndex(where: { $0.contains(start) }) else {
            return .failure(failure(pages: pages, alignOrder: alignOrder, within: eligible))
        }
        let hole = freeRanges[index]
        var pieces: [Range<Int>] = []
        if hole.lowerBound < taken.lowerBound { pieces.append(hole.lowerBound..<taken.lowerBound) }
        if taken.upperBound < hole.upperBound { pieces.append(taken.upperBound..<hole.upperBound) }
        freeRanges.replaceSubrange(index...index, with: pieces)
        allocations[start] = pages
        return .success(taken)
    }

    /// Gives the allocation starting at `start` back, merging it with free
    /// neighbours. Returns its range, or nil if no allocation starts there.
    @discardableResult
    public mutating func release(start: Int) -> Range<Int>? {
        guard let count = allocations.removeValue(forKey: start) else { return nil }
        let released = start..<(start + count)
        var range = released
        var index = freeRanges.firstIndex { $0.lowerBound > start } ?? freeRanges.endIndex
        if index > freeRanges.startIndex, freeRanges[index - 1].upperBound == range.lowerBound {
            index -= 1
            range = freeRanges.remove(at: index).lowerBound..<range.upperBound
        }
        if index < freeRanges.endIndex, freeRanges[index].lowerBound == range.upperBound {
            range = range.lowerBound..<freeRanges.remove(at: index).upperBound
        }
        freeRanges.insert(range, at: index)
        return released
    }

    public var usedPages: Int { allocations.values.reduce(0, +) }
    public var freePages: Int { pageCount - usedPages }
    public var largestFreePages: Int { freeRanges.map(\.count).max() ?? 0 }

    /// The first page of the first fit, or nil.
    private func firstFit(pages: Int, alignOrder: Int, within eligible: [Range<Int>]?) -> Int? {
        guard pages <= pageCount else { return nil }
        // 2^62 pages is beyond any region, so larger orders mean "page 0 only".
        let align = 1 << min(max(alignOrder, 0), Int.bitWidth - 2)
        for candidate in candidates(within: eligible) {
            let misalignment = candidate.lowerBound % align
            let (start, overflow) = candidate.lowerBound.addingReportingOverflow(misalignment == 0 ? 0 : align - misalignment)
            if !overflow, start <= candidate.upperBound - pages { return start }
        }
        return nil
    }

    /// The free ranges, cut down to `eligible` when given (both sorted, low to high).
    private func candidates(within eligible: [Range<Int>]?) -> [Range<Int>] {
        guard let eligible else { return freeRanges }
        var result: [Range<Int>] = []
        for e in eligible.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            for f in freeRanges where f.overlaps(e) {
                result.append(max(f.lowerBound, e.lowerBound)..<min(f.upperBound, e.upperBound))
            }
        }
        return result.sorted { $0.lowerBound < $1.lowerBound }
    }

    private func failure(pages: Int, alignOrder: Int, within eligible: [Range<Int>]?) -> Failure {
        func bytes(_ pages: Int) -> UInt64 {
            let (b, overflow) = UInt64(max(pages, 0)).multipliedReportingOverflow(by: pageSize)
            return overflow ? .max : b
        }
        let (alignment, overflow) = (UInt64(1) << UInt64(min(max(alignOrder, 0), 63))).multipliedReportingOverflow(by: pageSize)
        return Failure(requested: bytes(pages), alignment: overflow ? .max : alignment, regionSize: bytes(pageCount),
                       used: bytes(usedPages), free: bytes(freePages), largestFree: bytes(largestFreePages),
                       largestEligibleFree: eligible.map { _ in bytes(candidates(within: eligible).map(\.count).max() ?? 0) })
    }

    /// Why an allocation failed, with the numbers a user needs to see it:
    /// exhaustion (not enough free) or fragmentation (enough free, no run).
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var requested: UInt64
        public var alignment: UInt64
        public var regionSize: UInt64
        public var used: UInt64
        public var free: UInt64
        public var largestFree: UInt64
        /// With an eligibility restriction: the largest free block inside it.
        public var largestEligibleFree: UInt64?

        public var isFragmentation: Bool { requested <= free }

        public var description: String {
            let b = ByteCount.describe
            if requested == 0 { return "invalid request: 0 pages" }
            if requested > regionSize { return "request of \(b(requested)) exceeds the \(b(regionSize)) region" }
            let what = isFragmentation ? "out of memory (fragmented)" : "out of memory"
            return "\(what): region \(b(regionSize)), used \(b(used)), free \(b(free)), largest free block \(b(largestFree)), "
                + "request \(b(requested)) aligned to \(alignment == .max ? "more than 2^63 bytes" : b(alignment))"
                + (largestEligibleFree.map { "; largest eligible free block \(b($0))" } ?? "")
        }
    }

    /// A text picture of the region, one character per cell of
    /// `pagesPerCell(cells:)` pages: `#` used, `+` partly used, `.` free.
    public func map(cells: Int = 64) -> String {
        let perCell = pagesPerCell(cells: cells)
        let count = pageCount == 0 ? 0 : (pageCount + perCell - 1) / perCell
        var free = [Int](repeating: 0, count: count)
        for r in freeRanges {
            var cell = r.lowerBound / perCell
            while cell < count, cell * perCell < r.upperBound {
                free[cell] += min(r.upperBound, (cell + 1) * perCell) - max(r.lowerBound, cell * perCell)
                cell += 1
            }
        }
        return String(free.enumerated().map { cell, freePages -> Character in
            let size = min(perCell, pageCount - cell * perCell)
            return freePages == size ? "." : freePages == 0 ? "#" : "+"
        })
    }

    /// Pages one map character stands for.
    public func pagesPerCell(cells: Int = 64) -> Int {
        max(1, (pageCount + max(cells, 1) - 1) / max(cells, 1))
    }
}

/// The state report of a CMA-like region: what the cma plugin's stats()
/// returns (`smaf list --stats`) and `smaf cma` shows. The text is one
/// `key: value (note)` line per field, readable as is and parsed back by
/// `init?(parsing:)`, so plugin and CLI share one format.
public struct RegionReport: Sendable, Equatable, Codable {
    public var size: UInt64 = 0
    /// "hugetlb" or "shmem", and why (page size, or why not hugetlb).
    public var backing = ""
    public var backingDetail = ""
    /// How long creating, filling and mapping the region took at open.
    public var reservedMicroseconds: UInt64 = 0
    public var used: UInt64 = 0
    public var free: UInt64 = 0
    public var largestFree: UInt64 = 0
    public var allocations = 0
    /// Ranges smaf released whose dma-buf something still references.
    public var held = 0
    /// "verified" or "not verified", and the evidence or its absence.
    public var contiguity = ""
    public var contiguityDetail = ""
    /// Longest run of consecutive page frames in bytes; 0 when not verified.
    public var largestRun: UInt64 = 0
    /// Bytes one map character stands for.
    public var cell: UInt64 = 0
    /// `#` used, `+` partly used, `.` free, lowest address first.
    public var map = ""

    public init() {}

    /// `backing` of a region not reserved yet: the cma plugin reserves on
    /// its first allocation, so its report before that has no memory.
    public static let notReserved = "none"

    public var isReserved: Bool { backing != Self.notReserved }

    enum CodingKeys: String, CodingKey {
        case size, backing, used, free, allocations, held, contiguity, cell, map
        case backingDetail = "backing_detail", reservedMicroseconds = "reserved_us", largestFree = "largest_free"
        case contiguityDetail = "contiguity_detail", largestRun = "largest_run"
    }

    public var text: String {
        func bytes(_ n: UInt64) -> String { "\(n) (\(ByteCount.describe(n)))" }
        return [
            "size: \(bytes(size))",
            "backing: \(backing) (\(backingDetail))",
            "reserved_us: \(reservedMicroseconds) (filled and mapped on first use, like a boot-time reservation)",
            "used: \(bytes(used))",
            "free: \(bytes(free))",
            "largest_free: \(bytes(largestFree))",
            "allocations: \(allocations)",
            "held: \(held) (released by smaf, still referenced: an fd, a mapping or a device import)",
            "contiguity: \(contiguity) (\(contiguityDetail))",
            "largest_run: \(bytes(largestRun))",
            "cell: \(cell) (\(ByteCount.describe(cell)) per map character; # used, + partly used, . free)",
            "map: \(map)",
        ].joined(separator: "\n")
    }

    /// Reads `text` back; nil if a field is missing or malformed.
    public init?(parsing text: String) {
        var fields: [String: (value: String, note: String)] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            var value = Substring(line[line.index(after: colon)...].drop { $0 == " " })
            var note = Substring("")
            if value.hasSuffix(")"), let open = value.indices.first(where: { value[$0...].hasPrefix(" (") }) {
                note = value[value.index(open, offsetBy: 2)..<value.index(before: value.endIndex)]
                value = value[..<open]
            }
            fields[String(line[..<colon])] = (String(value), String(note))
        }
        func number(_ key: String) -> UInt64? { fields[key].flatMap { UInt64($0.value) } }
        guard let size = number("size"), let backing = fields["backing"], let reserved = number("reserved_us"),
              let used = number("used"), let free = number("free"), let largestFree = number("largest_free"),
              let allocations = number("allocations"), let held = number("held"), let contiguity = fields["contiguity"],
              let largestRun = number("largest_run"), let cell = number("cell"), let map = fields["map"],
              allocations <= UInt64(Int.max), held <= UInt64(Int.max) else { return nil }
        self.size = size
        (self.backing, backingDetail) = backing
        reservedMicroseconds = reserved
        self.used = used
        self.free = free
        self.largestFree = largestFree
        self.allocations = Int(allocations)
        self.held = Int(held)
        (self.contiguity, contiguityDetail) = contiguity
        self.largestRun = largestRun
        self.cell = cell
        self.map = map.value
    }
}
