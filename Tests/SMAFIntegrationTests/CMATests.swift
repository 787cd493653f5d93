import CMARegion
import Glibc
import SMAF
import SMAFDRM
import SMAFSys
import Testing

/// The cma plugin against the VM's real udmabuf, hugetlb and pagemap. Needs
/// 2 MiB huge pages for a 64 MiB region: run with `scripts/vm --hugepages 64`.
/// Offsets are read from the allocation's detail ("... at offset 0x100000 ...").
@Suite(.serialized, .enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason))
struct CMATests {
    static let mib: UInt64 = 1 << 20

    func registry(_ plugins: [String] = ["cma"], ranks: String? = nil, settings: [String: String] = [:]) throws -> AllocatorRegistry {
        var c = Configuration.only(pluginPaths: plugins.map { "\(KernelTestBed.buildDirectory)/libsmafplugin_\($0).so" })
        if let ranks { c.rankOverrides = [try RankOverrides(parsing: ranks, source: "test")] }
        c.settings = settings
        c.logLevel = .error
        return AllocatorRegistry(configuration: c)
    }

    func report(_ registry: AllocatorRegistry) throws -> RegionReport {
        let text = try #require(registry.plugin(named: "cma")?.stats(), "cma did not load: \(registry.loadWarnings)")
        return try #require(RegionReport(parsing: text))
    }

    func offset(_ a: Allocation) -> UInt64? {
        let words = a.detail.split(separator: " ")
        guard let i = words.firstIndex(of: "offset"), i + 1 < words.count else { return nil }
        return UInt64(words[i + 1].dropFirst(2), radix: 16)
    }

    func cma(_ registry: AllocatorRegistry, _ size: UInt64, devices: [DeviceConstraints] = []) throws -> Buffer {
        let buffer = try registry.buffer(.bytes(size, allocator: "cma"), devices: devices)
        try buffer.materialize()
        return buffer
    }

    /// The huge pages a 64 MiB hugetlb region needs must be free.
    func requireHugePages() throws {
        let meminfo = try readTextFile("/proc/meminfo")
        let free = meminfo.split(separator: "\n").first { $0.hasPrefix("HugePages_Free:") }.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        guard free >= 32 else {
            throw KernelTestBed.TestBedError(message: "\(free) free huge pages; a 64 MiB hugetlb region needs 32: run scripts/vm --hugepages 64")
        }
    }

    @Test func hugetlbRegionIsVerifiedInTwoMebibyteRuns() throws {
        try requireHugePages()
        let registry = try registry()
        #expect(try report(registry).backing == "none", "nothing reserved before the first allocation")
        let first = try cma(registry, 4096)
        let r = try report(registry)
        #expect(r.size == 64 * Self.mib)
        #expect(r.backing == "hugetlb" && r.backingDetail == "2 MiB pages")
        #expect(r.contiguity == "verified", "root reads page frame numbers")
        #expect(r.largestRun >= 2 * Self.mib && r.largestRun % (2 * Self.mib) == 0, "\(r.largestRun)")
        print("cma: 64 MiB hugetlb region reserved in \(r.reservedMicroseconds) us; longest run \(ByteCount.describe(r.largestRun))")

        var camera = DeviceConstraints(name: "camera")
        camera.contiguous = true
        camera.needsDmaBuf = true
        camera.dmaAddressBits = 32
        let buffer = try registry.buffer(.bytes(2 * Self.mib), devices: [camera])
        let a = try buffer.materialize()
        #expect(a.allocator == "cma" && a.isDmaBuf && a.exporter == "udmabuf")
        #expect(a.contiguous && a.largestContiguous == 2 * Self.mib)
        #expect(a.detail.hasSuffix("physically contiguous (verified)"), "\(a.detail)")
        let plain = try cma(registry, 4 * Self.mib).materialize()
        #expect(plain.largestContiguous >= 2 * Self.mib, "hugetlb: at least one whole huge page")

        // A contiguous request longer than any measured run fails in allocate with the run's
        // size (match, which must not depend on the region's state, cannot know it).
        let longer = r.largestRun + 2 * Self.mib
        if longer <= 32 * Self.mib {
            let error = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(longer), devices: [camera]).materialize() }
            #expect(error?.message == "no allocator can satisfy the request: cma: match accepted but allocate failed: needs \(ByteCount.describe(longer)) "
                    + "physically contiguous below 2^32; the longest such stretch of the hugetlb region is \(ByteCount.describe(r.largestRun)) (ENOMEM)")
        }
        withExtendedLifetime(first) {}
    }

    /// The region is reserved by the first allocation cma serves, once, and
    /// sealed as udmabuf needs: shrink, grow and seal, never write.
    @Test func theFirstAllocationReservesTheRegionSealed() throws {
        func target(_ link: String) -> String {
            var buffer = [CChar](repeating: 0, count: 4096)
            return readlink(link, &buffer, buffer.count - 1) < 0 ? "" : String(cString: buffer)
        }
        func regionMemfds() throws -> [Int32] {
            try Directory.entries("/proc/self/fd").compactMap { name in
                guard let fd = Int32(name), target("/proc/self/fd/\(name)").hasPrefix("/memfd:smaf-cma") else { return nil }
                return fd
            }
        }
        let before = try regionMemfds()
        let registry = try registry(settings: ["cma.size": "4M", "cma.backing": "shmem"])
        #expect(try regionMemfds() == before, "opening reserves nothing")
        let first = try cma(registry, Self.mib)
        let second = try cma(registry, Self.mib)
        let region = try regionMemfds().filter { !before.contains($0) }
        #expect(region.count == 1, "one region for both buffers")
        let seals = try Memfd.seals(try #require(region.first))
        #expect(seals.isSuperset(of: [.shrink, .grow, .seal]) && !seals.contains(.write))
        let r = try report(registry)
        #expect(r.backing == "shmem" && r.reservedMicroseconds > 0 && r.allocations == 2)
        withExtendedLifetime((first, second)) {}
    }

    @Test func buffersAreUdmabufsAtTheirOffsetAndZeroed() throws {
        let registry = try registry()
        let first = try cma(registry, Self.mib)
        let second = try cma(registry, Self.mib)
        #expect(try offset(first.materialize()) == 0)
        #expect(try offset(second.materialize()) == Self.mib, "first fit, 1 MiB aligned (the 256-page order)")
        let fd = try second.exportFD()
        let info = DmaBuf.fdInfo(fd.rawValue)
        #expect(info["exp_name"] == "udmabuf")
        #expect(info["name"] == nil, "unnamed unless SMAF_NAME_BUFFERS=1 asks")
        #expect(try fd.byteSize() == Self.mib)
        try first.withCPUAccess(.write) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0x11) }
        try second.withCPUAccess(.write) { _ = $0.initializeMemory(as: UInt8.self, repeating: 0x22) }
        #expect(try first.withCPUAccess(.read) { $0.allSatisfy { $0 == 0x11 } }, "two ranges, two sets of pages")

        try first.release()
        let again = try cma(registry, Self.mib)
        #expect(try offset(again.materialize()) == 0, "the freed range is reused")
        #expect(try again.withCPUAccess(.read) { $0.allSatisfy { $0 == 0 } }, "and zero-filled, as the CMA heap does")
        withExtendedLifetime(fd) {}
    }

    /// Real CMA frees pages when the dma-buf's last reference goes: an fd
    /// the application kept, a mapping, a device's import each keep the
    /// range out of the next allocation until they are gone.
    @Test func aRangeStillReferencedIsNotReused() throws {
        let registry = try registry()
        let buffer = try cma(registry, Self.mib)
        let kept = try buffer.exportFD().take()
        try buffer.release()
        #expect(try report(registry).held == 1)
        let next = try cma(registry, Self.mib)
        #expect(try offset(next.materialize()) == Self.mib, "not 0: that range is still referenced")
        close(kept)
        let r = try report(registry)
        #expect(r.held == 0 && r.allocations == 1 && r.used == Self.mib, "closing the fd gave the range back")

        let mapped = try cma(registry, Self.mib)
        #expect(try offset(mapped.materialize()) == 0)
        do {
            let fd = try mapped.exportFD()
            let mapping = try Mapping(fd: fd.rawValue, length: Int(Self.mib), writable: false)
            _ = consume fd
            try mapped.release()
            #expect(try report(registry).held == 1, "no fd left, but a mapping")
            withExtendedLifetime(mapping) {}
        }
        #expect(try report(registry).held == 0, "unmapped")

        let imported = try cma(registry, Self.mib)
        #expect(try offset(imported.materialize()) == 0)
        let vgem = try KernelTestBed.device(driver: "vgem")
        do {
            let fd = try imported.exportFD()
            let handle = try vgem.importDmaBuf(fd.rawValue)
            _ = consume fd
            try imported.release()
            #expect(try report(registry).held == 1, "vgem holds the dma-buf it imported")
            withExtendedLifetime(handle) {}
        }
        #expect(try report(registry).held == 0, "the GEM handle closed")
        withExtendedLifetime(next) {}
    }

    @Test func shmemRegionIsMeasuredNotAssumed() throws {
        let registry = try registry(settings: ["cma.backing": "shmem"])
        let first = try cma(registry, 4096)
        let r = try report(registry)
        #expect(r.backing == "shmem" && r.backingDetail == "cma.backing is shmem")
        #expect(r.contiguity == "verified" && r.largestRun > 0)
        print("cma: 64 MiB shmem region reserved in \(r.reservedMicroseconds) us; longest run \(ByteCount.describe(r.largestRun))")
        // x86 keeps the first MiB of RAM from the page allocator: no region page lies below 2^20.
        var isa = DeviceConstraints(name: "isa-dma")
        isa.dmaAddressBits = 20
        let error = #expect(throws: SMAFError.self) { try registry.buffer(.bytes(4096), devices: [isa]).materialize() }
        #expect(error?.message == "no allocator can satisfy the request: cma: match accepted but allocate failed: "
                + "needs 4 KiB below 2^20; the longest such stretch of the shmem region is 0 B (ENOMEM)")
        var wide = DeviceConstraints(name: "dma40")
        wide.dmaAddressBits = 40
        let a = try registry.buffer(.bytes(Self.mib), devices: [wide]).materialize()
        #expect(a.allocator == "cma" && a.largestContiguous > 0, "below 2^40, verified frame by frame")
        withExtendedLifetime(first) {}
    }

    /// Without CAP_SYS_ADMIN the kernel hides page frames: nothing physical is claimed.
    @Test func withoutCapSysAdminNothingPhysicalIsClaimed() throws {
        let smaf = "\(KernelTestBed.buildDirectory)/smaf"
        let root = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let camera = "/\(root)/examples/devices/camera-isp.json"
        func run(_ args: String) throws -> String {
            try KernelTestBed.run("/bin/sh", ["-c", "SMAF_CMA_SIZE=16M setpriv --bounding-set -sys_admin -- \(smaf) \(args) 2>&1; echo \"exit $?\""])
        }
        let shown = try run("cma --alloc 1M")
        #expect(shown.contains("\nphysical  not verified (/proc/self/pagemap shows no page frame numbers (the kernel shows them only with CAP_SYS_ADMIN))\n"), "\(shown)")
        #expect(shown.contains("  0  1 MiB at offset 0x0 of the 16 MiB "), "\(shown)")
        #expect(shown.hasSuffix("via udmabuf; physical layout not verified\nexit 0\n"), "\(shown)")
        let refused = try run("alloc --size 2M --allocator cma --device \(camera)")
        #expect(refused == "smaf: error: forced allocator cma cannot satisfy the request: cma: cannot verify 2 MiB physically contiguous below 2^32: "
                + "/proc/self/pagemap shows no page frame numbers (the kernel shows them only with CAP_SYS_ADMIN)\nexit 1\n")
    }

    @Test func exhaustionFallsBackToTheNextAllocator() throws {
        let registry = try registry(["cma", "memfd"], ranks: "cma:primary")
        let buffers = try (0..<8).map { _ in try registry.buffer(.bytes(8 * Self.mib)) }
        #expect(try buffers.map { try $0.materialize().allocator } == Array(repeating: "cma", count: 8))
        let ninth = try registry.buffer(.bytes(8 * Self.mib))
        #expect(try ninth.materialize().allocator == "memfd")
        let entries = try #require(ninth.explanation?.entries)
        #expect(entries.map(\.outcome) == [.failed, .chosen])
        #expect(entries.first?.reason == "match accepted but allocate failed: out of memory: region 64 MiB, used 64 MiB, free 0 B, "
                + "largest free block 0 B, request 8 MiB aligned to 1 MiB (ENOMEM)")
    }

    @Test func fragmentationIsVisibleAndHealsAfterFrees() throws {
        let registry = try registry()
        let buffers = try (0..<16).map { _ in try cma(registry, 4 * Self.mib) }
        for i in stride(from: 1, to: 16, by: 2) { try buffers[i].release() }
        let r = try report(registry)
        #expect(r.free == 32 * Self.mib && r.largestFree == 4 * Self.mib)
        #expect(r.map == String(repeating: "####....", count: 8))
        let error = #expect(throws: SMAFError.self) { _ = try cma(registry, 8 * Self.mib) }
        #expect(error?.message == "forced allocator cma cannot satisfy the request: cma: match accepted but allocate failed: "
                + "out of memory (fragmented): region 64 MiB, used 32 MiB, free 32 MiB, largest free block 4 MiB, request 8 MiB aligned to 1 MiB (ENOMEM)")
        try buffers[2].release()
        let big = try cma(registry, 8 * Self.mib)
        #expect(try offset(big.materialize()) == 4 * Self.mib, "4..16 MiB coalesced into one free block")
        #expect(try report(registry).map == "####" + "########" + "...." + String(repeating: "####....", count: 6))
    }

    @Test func alignmentOrdersAreHonoured() throws {
        let registry = try registry()
        var aligned = DeviceConstraints(name: "aligned")
        aligned.addressAlignment = 2 * Self.mib
        let small = try cma(registry, 4096)
        let big = try cma(registry, 4096, devices: [aligned])
        let three = try cma(registry, 3 * 4096)
        #expect(try offset(small.materialize()) == 0)
        #expect(try offset(big.materialize()) == 2 * Self.mib, "the device's 2 MiB alignment")
        #expect(try offset(three.materialize()) == 4 * 4096, "3 pages: order 2, as the CMA heap asks")
        var odd = DeviceConstraints(name: "odd")
        odd.addressAlignment = 3 * 4096
        let error = #expect(throws: SMAFError.self) { _ = try cma(registry, 4096, devices: [odd]) }
        #expect(error?.message == "forced allocator cma cannot satisfy the request: cma: address alignment 12288 is not a power of two; CMA aligns to power-of-two orders of pages")
    }

    @Test func udmabufsSizeLimitAndTheRegionSizeAreRespected() throws {
        let registry = try registry(settings: ["cma.size": "96M", "cma.backing": "shmem"])
        let overLimit = #expect(throws: SMAFError.self) { _ = try cma(registry, 65 * Self.mib) }
        #expect(overLimit?.message == "forced allocator cma cannot satisfy the request: cma: 68157440 bytes exceeds udmabuf's size limit of 67108864 bytes (/sys/module/udmabuf/parameters/size_limit_mb)")
        let overRegion = #expect(throws: SMAFError.self) { _ = try cma(registry, 97 * Self.mib) }
        #expect(overRegion?.message == "forced allocator cma cannot satisfy the request: cma: 97 MiB does not fit the 96 MiB region (cma.size, SMAF_CMA_SIZE)")
        #expect(try cma(registry, 64 * Self.mib).allocation?.size == 64 * Self.mib, "the limit itself is fine")
    }

    @Test func fiveHundredCyclesLeaveNoFdAndNoRange() throws {
        let registry = try registry()
        _ = try cma(registry, 4096) // reserves the region: its memfd stays open while the plugin is
        let before = OpenFiles.count()
        let clock = ContinuousClock()
        var elapsed: [UInt64: (total: Duration, count: Int)] = [:]
        for i in 0..<500 {
            let size = [4096, Self.mib, 8 * Self.mib][i % 3]
            let start = clock.now
            let buffer = try cma(registry, size)
            elapsed[size, default: (.zero, 0)].total += clock.now - start
            elapsed[size, default: (.zero, 0)].count += 1
            let fd = try buffer.exportFD()
            if i % 2 == 0 { try buffer.release() }
            withExtendedLifetime(fd) {}
        }
        let r = try report(registry)
        #expect(r.allocations == 0 && r.held == 0 && r.used == 0)
        #expect(r.largestFree == 64 * Self.mib, "everything coalesced back")
        #expect(OpenFiles.count() == before)
        for (size, t) in elapsed.sorted(by: { $0.key < $1.key }) {
            let each = t.total / t.count
            let ms = Double(each.components.seconds) * 1000 + Double(each.components.attoseconds) / 1e15
            print("cma: allocate+zero+export \(ByteCount.describe(size)): \((ms * 10).rounded() / 10) ms per buffer over \(t.count) (\(r.backing))")
        }
    }

    @Test func cmaCommandShowsAHole() throws {
        let out = try KernelTestBed.run("/bin/sh", ["-c", "SMAF_CMA_SIZE=16M \(KernelTestBed.buildDirectory)/smaf cma --alloc 8M,1M,4M --free 1"])
        #expect(out.contains("\nused      12 MiB in 2 allocations\n"), "\(out)")
        // 256 KiB a character: 8 MiB, a 1 MiB hole, 4 MiB at 9 MiB (1 MiB aligned), 3 MiB free.
        #expect(out.contains("\n  0 |" + String(repeating: "#", count: 32) + "...." + String(repeating: "#", count: 16)
                             + String(repeating: ".", count: 12) + "| 16 MiB\n"), "\(out)")
        #expect(out.contains("\n  0  8 MiB at offset 0x0 of the 16 MiB "))
        #expect(out.contains("\n  2  4 MiB at offset 0x900000 of the 16 MiB "))
    }
}
