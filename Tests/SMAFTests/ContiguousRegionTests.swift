import CMARegion
import Glibc
import SMAFSys
import Synchronization
import Testing

/// The cma plugin's page allocator on its own: CMA's first fit, alignment
/// orders, coalescing, and the numbers its errors and map show.
@Suite struct ContiguousRegionTests {
    static let mib = 256 // 4 KiB pages per MiB
    func region(_ pages: Int) -> ContiguousRegion { ContiguousRegion(pageCount: pages, pageSize: 4096) }

    func take(_ r: inout ContiguousRegion, _ pages: Int, order: Int = 0, within: [Range<Int>]? = nil) -> Range<Int>? {
        if case .success(let range) = r.allocate(pages: pages, alignOrder: order, within: within) { return range }
        return nil
    }

    @Test func firstFitTakesTheLowestHoleThatFits() {
        var r = region(16)
        #expect(take(&r, 4) == 0..<4)
        #expect(take(&r, 4) == 4..<8)
        #expect(r.release(start: 0) == 0..<4)
        #expect(take(&r, 2) == 0..<2, "the lowest hole, not the best-fitting one")
        #expect(take(&r, 3) == 8..<11, "the 2-page hole at 2 is too small")
        #expect(take(&r, 2) == 2..<4)
        #expect(r.freeRanges == [11..<16])
        #expect(r.allocations == [0: 2, 2: 2, 4: 4, 8: 3])
    }

    @Test func alignmentOrdersAreHonoured() {
        var r = region(64)
        #expect(take(&r, 1) == 0..<1)
        #expect(take(&r, 1, order: 3) == 8..<9)
        #expect(take(&r, 8, order: 3) == 16..<24, "9 is free but not a multiple of 8")
        #expect(take(&r, 1, order: 0) == 1..<2)
        #expect(take(&r, 16, order: 5) == 32..<48)
        #expect(take(&r, 1, order: 6) == nil, "64 pages: only page 0 is 2^6-aligned, and it is taken")
        // The CMA dma-heap's own alignment: get_order(size), capped at CONFIG_CMA_ALIGNMENT (8).
        #expect([1, 2, 3, 4, 5, 256, 257, 2048].map { ContiguousRegion.naturalOrder(pages: $0) } == [0, 1, 2, 2, 3, 8, 8, 8])
        #expect(ContiguousRegion.naturalOrder(pages: 2048, cap: 12) == 11)
    }

    /// 64 MiB full of 2 MiB blocks, two given back apart from each other.
    func sixtyOfSixtyFour() -> ContiguousRegion {
        var r = region(64 * Self.mib)
        for _ in 0..<32 { _ = take(&r, 2 * Self.mib) }
        r.release(start: 5 * 2 * Self.mib)
        r.release(start: 20 * 2 * Self.mib)
        return r
    }

    @Test func exhaustionSaysTotalUsedAndLargestFreeBlock() {
        var r = sixtyOfSixtyFour()
        guard case .failure(let f) = r.allocate(pages: 8 * Self.mib, alignOrder: 8) else { Issue.record("8 MiB fit"); return }
        #expect(f.description == "out of memory: region 64 MiB, used 60 MiB, free 4 MiB, largest free block 2 MiB, request 8 MiB aligned to 1 MiB")
        #expect(!f.isFragmentation)
        #expect(f.regionSize == 64 << 20 && f.used == 60 << 20 && f.largestFree == 2 << 20)
        guard case .failure(let g) = r.allocate(pages: 4 * Self.mib, alignOrder: 8) else { Issue.record("4 MiB fit"); return }
        #expect(g.description == "out of memory (fragmented): region 64 MiB, used 60 MiB, free 4 MiB, largest free block 2 MiB, request 4 MiB aligned to 1 MiB")
        #expect(take(&r, 2 * Self.mib, order: 8) == 10 * Self.mib..<12 * Self.mib, "a block that fits still goes")
    }

    @Test func fragmentationRefusesThenAcceptsAfterFrees() {
        var r = region(64)
        let blocks = (0..<8).compactMap { _ in take(&r, 8) }
        #expect(blocks.count == 8)
        for b in [1, 3, 5] { r.release(start: blocks[b].lowerBound) }
        #expect(r.freePages == 24)
        #expect(r.largestFreePages == 8)
        #expect(take(&r, 16) == nil, "24 pages free, but no run of 16")
        r.release(start: blocks[2].lowerBound)
        #expect(r.largestFreePages == 24, "8..<32 coalesced")
        #expect(take(&r, 16) == 8..<24)
    }

    @Test func releasedRangesCoalesceInAnyOrder() {
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
            var r = region(40)
            let blocks = [take(&r, 10), take(&r, 10), take(&r, 10), take(&r, 10)].compactMap { $0 }
            for i in order {
                #expect(r.release(start: blocks[i].lowerBound) != nil)
                let touching = zip(r.freeRanges, r.freeRanges.dropFirst()).contains { $0.upperBound >= $1.lowerBound }
                #expect(!touching, "free ranges stay sorted and apart: \(r.freeRanges)")
            }
            #expect(r.freeRanges == [0..<40])
            #expect(r.allocations.isEmpty)
        }
        var r = region(8)
        _ = take(&r, 2)
        #expect(r.release(start: 1) == nil, "no allocation starts at 1")
        #expect(r.release(start: 0) == 0..<2)
        #expect(r.release(start: 0) == nil, "a second release is refused")
    }

    @Test func eligibleRangesConfinePlacement() {
        var r = region(32)
        _ = take(&r, 2)
        #expect(take(&r, 4, within: [0..<5, 8..<12]) == 8..<12, "2..<5 is free but only 3 pages")
        #expect(take(&r, 4, within: [20..<30]) == 20..<24)
        guard case .failure(let f) = r.allocate(pages: 8, alignOrder: 0, within: [24..<30]) else { Issue.record("fit"); return }
        #expect(f.largestEligibleFree == 6 * 4096)
        #expect(f.description.hasSuffix("; largest eligible free block 24 KiB"))
    }

    @Test func textMapShowsUsedPartlyUsedAndFree() {
        var r = region(16)
        #expect(r.map(cells: 16) == "................")
        let a = take(&r, 4), _ = take(&r, 2)
        #expect(r.map(cells: 16) == "######..........")
        r.release(start: a?.lowerBound ?? -1)
        #expect(r.map(cells: 16) == "....##..........")
        #expect(r.map(cells: 4) == ".+..", "4 pages a cell; cell 1 is half used")
        #expect(r.pagesPerCell(cells: 4) == 4)
        var odd = region(10)
        _ = take(&odd, 8)
        #expect(odd.map(cells: 4) == "##+.", "3 pages a cell, the last cell a single free page")
    }

    @Test func concurrentAllocationsNeverOverlap() async {
        struct Shared {
            var region = ContiguousRegion(pageCount: 1024, pageSize: 4096)
            var owner = [Int](repeating: -1, count: 1024)
            var overlaps = 0
        }
        final class Box: Sendable { let state = Mutex(Shared()) }
        let box = Box()
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var mine: [Range<Int>] = []
                    for i in 0..<400 {
                        let pages = 1 + (task * 7 + i * 13) % 40
                        box.state.withLock { s in
                            guard case .success(let r) = s.region.allocate(pages: pages, alignOrder: i % 4) else { return }
                            for p in r { if s.owner[p] != -1 { s.overlaps += 1 }; s.owner[p] = task }
                            mine.append(r)
                        }
                        if i % 3 == 0, !mine.isEmpty {
                            let r = mine.removeFirst()
                            box.state.withLock { s in
                                for p in r { s.owner[p] = -1 }
                                s.region.release(start: r.lowerBound)
                            }
                        }
                    }
                    for r in mine {
                        box.state.withLock { s in
                            for p in r { s.owner[p] = -1 }
                            s.region.release(start: r.lowerBound)
                        }
                    }
                }
            }
        }
        box.state.withLock { s in
            #expect(s.overlaps == 0)
            #expect(s.region.freeRanges == [0..<1024])
            #expect(s.region.allocations.isEmpty)
        }
    }

    @Test func absurdRequestsFailWithoutTrapping() {
        var r = region(64)
        for (pages, order) in [(Int.max, 0), (Int.min, 0), (0, 0), (-1, 3), (65, 0)] {
            #expect((try? r.allocate(pages: pages, alignOrder: order).get()) == nil, "\(pages) pages at order \(order)")
        }
        for order in [Int.max, Int.min, 1000, -3] {
            #expect((try? r.allocate(pages: 1, alignOrder: order).get()) == 0..<1, "order \(order): page 0 is aligned to anything")
            r.release(start: 0)
        }
        guard case .failure(let f) = r.allocate(pages: Int.max, alignOrder: 0) else { return }
        #expect(f.description == "request of 16 EiB exceeds the 256 KiB region")
        #expect(ContiguousRegion(pageCount: -5, pageSize: 4096).freeRanges.isEmpty)
        #expect(ContiguousRegion(pageCount: 0, pageSize: 4096).map() == "")
    }

    @Test func sizesLikeTheKernelsMemparse() {
        #expect(ByteCount.parseKernelSize("64M") == 64 << 20)
        #expect(ByteCount.parseKernelSize("256m") == 256 << 20)
        #expect(ByteCount.parseKernelSize("1G") == 1 << 30)
        #expect(ByteCount.parseKernelSize("0x1000") == 4096)
        #expect(ByteCount.parseKernelSize("010") == 8, "a leading 0 is octal, as in the kernel")
        #expect(ByteCount.parseKernelSize("15E") == 15 << 60)
        for bad in ["", "M", "64MB", "16E", "-1", "lots", "0x", "99999999999999999999"] {
            #expect(ByteCount.parseKernelSize(bad) == nil, "\(bad)")
        }
        #expect([0, 100, 4096, 1_572_864, 64 << 20, 1_288_490_189, UInt64.max].map(ByteCount.describe)
                == ["0 B", "100 B", "4 KiB", "1.5 MiB", "64 MiB", "1.2 GiB", "16 EiB"])
    }

    @Test func reportTextReadsBack() {
        var report = RegionReport()
        report.size = 64 << 20
        report.backing = "shmem"
        report.backingDetail = "no huge pages: fallocate(67108864) on hugetlb memfd failed: No space left on device (ENOSPC)"
        report.reservedMicroseconds = 35_000
        report.used = 13 << 20
        report.free = 51 << 20
        report.largestFree = 48 << 20
        report.allocations = 2
        report.held = 1
        report.contiguity = "not verified"
        report.contiguityDetail = "/proc/self/pagemap shows no page frame numbers (the kernel shows them only with CAP_SYS_ADMIN)"
        report.cell = 1 << 20
        report.map = "########+####" + String(repeating: ".", count: 51)
        #expect(RegionReport(parsing: report.text) == report)
        #expect(report.text.contains("\nused: 13631488 (13 MiB)\n"))
        #expect(RegionReport(parsing: "size: 12\nmap: ...") == nil)
        #expect(RegionReport(parsing: report.text.replacing("used: 13631488", with: "used: lots")) == nil)
    }
}

/// Page frame numbers and what they prove.
@Suite struct PhysicalFramesTests {
    @Test func runsAndLimitsFromFrameNumbers() {
        let frames = PhysicalFrames([10, 11, 12, 20, 21, 0, 30])
        #expect(!frames.isVerified, "one frame is unknown")
        #expect(frames.runs == [0..<3, 3..<5, 6..<7])
        #expect(frames.longestRun == 3)
        #expect(frames.ranges(consecutive: true, belowFrame: 21) == [0..<3, 3..<4])
        #expect(frames.ranges(consecutive: false, belowFrame: 25) == [0..<5])
        #expect(frames.ranges(consecutive: false) == [0..<5, 6..<7])
        #expect(PhysicalFrames([7, 8, 9]).isVerified)
        #expect(PhysicalFrames([0, 0]).runs.isEmpty, "no evidence, no runs")
        #expect(PhysicalFrames.limitFrame(dmaAddressBits: 32) == (1 << 32) / Memory.pageSize)
        #expect(PhysicalFrames.limitFrame(dmaAddressBits: 0) == nil)
        #expect(PhysicalFrames.limitFrame(dmaAddressBits: 64) == nil)
        var updated = frames
        updated.update(from: 5, with: PhysicalFrames([22, 23, 99]))
        #expect(updated.frames == [10, 11, 12, 20, 21, 22, 23])
        #expect(updated.runs == [0..<3, 3..<7])
        #expect(frames[1..<3].frames == [11, 12])
    }

    /// The real file: frames of touched memory, or zeros without CAP_SYS_ADMIN.
    @Test func pagemapReadsThisProcessesFrames() throws {
        let length = 64 * Int(Memory.pageSize)
        let p = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(p, length) }
        for i in stride(from: 0, to: length, by: Int(Memory.pageSize)) { p.storeBytes(of: 1, toByteOffset: i, as: UInt8.self) }
        let frames = try Pagemap.frames(of: p, pages: 64)
        #expect(frames.frames.count == 64)
        if frames.isVerified {
            #expect(frames.runs.map(\.count).reduce(0, +) == 64, "every page is in exactly one run")
            #expect(Set(frames.frames).count == 64, "distinct pages have distinct frames")
        } else {
            #expect(frames.frames.allSatisfy { $0 == 0 }, "without CAP_SYS_ADMIN every frame reads as 0")
        }
    }
}
