import Glibc
import SMAFPluginKit
import SMAFSys

/// The region's memory: one sealed memfd, every page allocated at once like
/// the kernel's boot-time `cma=` reservation (on the plugin's first
/// allocation, not at open), and kept mapped so allocate() can zero-fill
/// ranges and read their page frames.
struct Reservation: ~Copyable, Sendable {
    enum Backing: String, Sendable {
        case hugetlb, shmem
    }

    /// Which backing to use: the `backing` setting (SMAF_CMA_BACKING).
    enum Preference: String, Sendable {
        /// hugetlb when huge pages are free, else shmem.
        case auto, hugetlb, shmem
    }

    let memfd: UniqueFD
    let mapping: Mapping
    let size: UInt64
    let backing: Backing
    /// Why this backing ("2 MiB pages", or why hugetlb was not used).
    let backingDetail: String
    /// Page frames measured right after the reservation; all 0 when the
    /// process may not read them.
    let frames: PhysicalFrames
    /// Why `frames` proves nothing, nil when it is evidence.
    let framesUnknownReason: String?
    let microseconds: UInt64

    var pageCount: Int { Int(size / Memory.pageSize) }

    /// The kernel rounds a `cma=` size up to CMA_MIN_ALIGNMENT_BYTES (a
    /// pageblock: 2 MiB on x86-64 with 4 KiB pages); so does the emulation,
    /// which also keeps the size a whole number of 2 MiB huge pages.
    static let granule: UInt64 = 2 << 20

    /// The region size for a `cma.size` of `requested`: rounded up to the
    /// granule, refused above half the RAM (a reservation that large would
    /// only end in the OOM killer). Checked at open, where a bad setting belongs.
    static func checkedSize(_ requested: UInt64) throws(PluginError) -> UInt64 {
        let ram = Memory.physicalRAM
        guard requested <= ram / 2, let size = alignUp(requested, granule) else {
            throw PluginError(errno: ENOMEM, "cma.size: \(ByteCount.describe(requested)) is more than half the RAM (\(ByteCount.describe(ram)))")
        }
        return size
    }

    /// Why /proc/self/pagemap shows this process no page frames, nil if it
    /// does: read for one page of its own, which costs no reservation.
    static func framesHidden() -> String? {
        let page = UnsafeMutableRawPointer.allocate(byteCount: Int(Memory.pageSize), alignment: Int(Memory.pageSize))
        defer { page.deallocate() }
        page.storeBytes(of: 1, as: UInt8.self) // present, so a frame exists to be shown
        do {
            return try Pagemap.frames(of: page, pages: 1).isVerified ? nil
                : "\(Pagemap.path) shows no page frame numbers (the kernel shows them only with CAP_SYS_ADMIN)"
        } catch {
            return error.description
        }
    }

    /// Reserves `size` bytes (a checkedSize) now.
    init(size: UInt64, preference: Preference, log: (String) -> Void) throws(PluginError) {
        let start = monotonicNanoseconds()
        let made = try Self.reserve(size: size, preference: preference, log: log)
        self.size = size
        backing = made.hugePageSize == nil ? .shmem : .hugetlb
        switch (made.hugePageSize, preference, made.hugetlbFailure) {
        case (let page?, _, _): backingDetail = "\(ByteCount.describe(page)) pages"
        case (nil, .shmem, _): backingDetail = "cma.backing is shmem"
        case (nil, _, let why?): backingDetail = "no huge pages: \(why)"
        case (nil, _, nil): backingDetail = "4 KiB pages"
        }
        do {
            frames = try Pagemap.frames(of: made.mapping.base, pages: Int(size / Memory.pageSize))
            framesUnknownReason = frames.isVerified ? nil
                : "\(Pagemap.path) shows no page frame numbers (the kernel shows them only with CAP_SYS_ADMIN)"
        } catch {
            frames = PhysicalFrames([UInt64](repeating: 0, count: Int(size / Memory.pageSize)))
            framesUnknownReason = error.description
        }
        memfd = made.memfd
        mapping = made.mapping
        microseconds = (monotonicNanoseconds() - start) / 1000
    }

    private struct Made: ~Copyable {
        var memfd: UniqueFD
        var mapping: Mapping
        var hugePageSize: UInt64?
        var hugetlbFailure: String?
    }

    /// hugetlb first (unless told shmem), shmem when that fails (unless told hugetlb).
    private static func reserve(size: UInt64, preference: Preference, log: (String) -> Void) throws(PluginError) -> Made {
        var hugetlbFailure: String?
        if preference != .shmem {
            do { return try make(size: size, hugetlb: true) } catch {
                if preference == .hugetlb { throw PluginError(errno: error.errno.rawValue, "cma.backing is hugetlb but \(error)") }
                log("no hugetlb region (\(error)): using shmem, whose pages are rarely physically contiguous")
                hugetlbFailure = error.description
            }
        }
        // shmem pages come out of the system's memory (hugetlb ones out of
        // their own pool, which fails cleanly): what is not there is refused.
        if let why = MemoryHeadroom.shortfall(size) {
            throw PluginError(errno: ENOMEM, "reserving a \(ByteCount.describe(size)) region: not enough memory: \(why)")
        }
        do {
            var made = try make(size: size, hugetlb: false)
            made.hugetlbFailure = hugetlbFailure
            return made
        } catch {
            throw PluginError(errno: error.errno.rawValue, "reserving a \(ByteCount.describe(size)) region: \(error)")
        }
    }

    /// One attempt: memfd, every page allocated now, sealed for udmabuf, mapped.
    private static func make(size: UInt64, hugetlb: Bool) throws(SystemError) -> Made {
        let fd = try Memfd.create(name: "smaf-cma", size: size, hugetlb: hugetlb)
        // fallocate takes the pages now and fails cleanly (ENOSPC when the
        // huge page pool is short) where touching them would be a SIGBUS.
        // (posix_fallocate: Swift's Glibc lacks fallocate; it returns the errno.)
        var rc: Int32
        repeat { rc = posix_fallocate(fd.rawValue, 0, off_t(size)) } while rc == EINTR
        if rc != 0 {
            errno = rc
            throw SystemError.current("fallocate(\(size))", context: hugetlb ? "hugetlb memfd" : "memfd")
        }
        try Memfd.addSeals(fd.rawValue, UdmabufExporter.requiredSeals)
        var st = Glibc.stat()
        _ = try retryingSyscall("fstat") { fstat(fd.rawValue, &st) }
        let mapping = try Mapping(fd: fd.rawValue, length: Int(size), writable: true, context: "cma region")
        populate(mapping)
        // hugetlbfs reports its page size as the block size.
        return Made(memfd: fd, mapping: mapping, hugePageSize: hugetlb ? UInt64(st.st_blksize) : nil)
    }

    /// Fills the page tables, so pagemap sees every frame and no later
    /// access faults: MADV_POPULATE_WRITE (Linux 5.14), else one write per
    /// page (the pages exist already, so this cannot fail).
    private static func populate(_ mapping: borrowing Mapping) {
        let madvPopulateWrite: Int32 = 23
        if madvise(mapping.base, mapping.length, madvPopulateWrite) == 0 { return }
        for offset in stride(from: 0, to: mapping.length, by: Int(Memory.pageSize)) {
            mapping.base.storeBytes(of: 0, toByteOffset: offset, as: UInt8.self)
        }
    }
}
