import Glibc
import Synchronization

/// Whether `bytes` more can be allocated now without running the machine,
/// or the process's memory cgroup, into the OOM killer. The kernel does not
/// refuse a dma-heap or udmabuf allocation that does not fit: it reclaims,
/// then kills someone (often the whole VM's worth of processes). Every
/// shipped allocator asks here before its kernel call, and fails with
/// ENOMEM and these figures instead, so the core moves on.
///
/// The limits: the system's MemAvailable, and for each level of the
/// process's cgroup with a memory limit (v2 `memory.max`, v1
/// `memory.limit_in_bytes`) the limit less what is in use. Each keeps a
/// reserve free (1/32 of its total, at most 256 MiB), for the kernel and
/// the rest of the system. Swap is not counted: udmabuf and dma-heap pages
/// are pinned and cannot go there. Linux (6.12) charges memfd and shmem
/// pages to the cgroup but not dma-heap pages: for those the cgroup check
/// is conservative, a process held to its limit.
///
/// Reading the figures costs some 10-40 us (procfs and cgroupfs files);
/// a reading is reused for 10 ms, less what was granted since. A refusal
/// is always made on a fresh reading.
public enum MemoryHeadroom {
    /// One limit on what can be allocated.
    public struct Limit: Sendable, Equatable, CustomStringConvertible {
        /// "MemAvailable" or "cgroup /user.slice/x".
        public var source: String
        /// Bytes it can still give: MemAvailable, or the limit less the usage.
        public var available: UInt64
        /// Bytes kept free out of `available`.
        public var reserve: UInt64
        /// The figures behind `available`, for the message.
        public var detail: String

        public var usable: UInt64 { available > reserve ? available - reserve : 0 }

        public var description: String {
            "\(detail), less \(ByteCount.describe(reserve)) kept free"
        }
    }

    /// A reading is reused this long (nanoseconds).
    static let maxAge: UInt64 = 10_000_000

    private struct Snapshot {
        var taken: UInt64
        var usable: UInt64
    }

    private static let cache = Mutex<Snapshot?>(nil)

    /// nil when `bytes` fit under every limit now; else one line with the
    /// figures: "8 MiB asked, 5 MiB available (MemAvailable 69 MiB, less 64 MiB kept free)".
    public static func shortfall(_ bytes: UInt64) -> String? {
        let now = monotonicNanoseconds()
        let fromCache = cache.withLock { snapshot -> Bool in
            guard let s = snapshot, now &- s.taken < maxAge, s.usable >= bytes else { return false }
            snapshot?.usable = s.usable - bytes
            return true
        }
        if fromCache { return nil }
        let current = limits()
        guard let tightest = current.min(by: { $0.usable < $1.usable }) else { return nil } // nothing to judge by
        let fits = tightest.usable >= bytes
        cache.withLock { $0 = Snapshot(taken: now, usable: fits ? tightest.usable - bytes : tightest.usable) }
        if fits { return nil }
        let figures = current.sorted { $0.usable < $1.usable }.map(\.description).joined(separator: "; ")
        return "\(ByteCount.describe(bytes)) asked, \(ByteCount.describe(tightest.usable)) available (\(figures))"
    }

    /// Every limit that applies to this process now, read fresh.
    public static func limits() -> [Limit] {
        limits(meminfo: try? readTextFile("/proc/meminfo"), cgroups: try? readTextFile("/proc/self/cgroup"))
    }

    /// The limits in a /proc/meminfo text and a /proc/self/cgroup table,
    /// the cgroup files read under `cgroupRoot`.
    public static func limits(meminfo info: String?, cgroups table: String?, cgroupRoot: String = "/sys/fs/cgroup") -> [Limit] {
        var found: [Limit] = []
        if let info, let available = meminfo(info, "MemAvailable"), let total = meminfo(info, "MemTotal") {
            found.append(Limit(source: "MemAvailable", available: available, reserve: reserve(of: total),
                               detail: "MemAvailable \(ByteCount.describe(available))"))
        }
        if let table { found += cgroupLimits(table, root: cgroupRoot) }
        return found
    }

    /// 1/32 of a total, at most 256 MiB.
    static func reserve(of total: UInt64) -> UInt64 { min(total / 32, 256 << 20) }

    /// A "Name:   1234 kB" line of /proc/meminfo, in bytes. Scans bytes and
    /// stops at the line: MemTotal and MemAvailable are among the first.
    static func meminfo(_ text: String, _ key: String) -> UInt64? {
        let wanted = Array(key.utf8) + [UInt8(ascii: ":")]
        var utf8 = text.utf8[...]
        while !utf8.isEmpty {
            let end = utf8.firstIndex(of: UInt8(ascii: "\n")) ?? utf8.endIndex
            let line = utf8[..<end]
            if line.starts(with: wanted) {
                var kib: UInt64 = 0
                var digits = 0
                for byte in line.dropFirst(wanted.count) where byte != UInt8(ascii: " ") {
                    guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { break }
                    guard kib <= (UInt64.max >> 10) / 10 else { return nil }
                    kib = kib * 10 + UInt64(byte - UInt8(ascii: "0"))
                    digits += 1
                }
                return digits > 0 ? kib << 10 : nil
            }
            utf8 = end == utf8.endIndex ? utf8[end...] : utf8[utf8.index(after: end)...]
        }
        return nil
    }

    /// The limited levels of this process's memory cgroup, itself and its
    /// ancestors (any of them can trigger the OOM killer), from the
    /// /proc/self/cgroup table: "0::/path" (v2) or "N:...memory...:/path" (v1).
    static func cgroupLimits(_ table: String, root: String = "/sys/fs/cgroup") -> [Limit] {
        for line in table.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let path = String(parts[2])
            if parts[0] == "0" && parts[1].isEmpty, let found = levels(path, base: root, max: "memory.max", used: "memory.current") {
                return found
            }
            if parts[1].split(separator: ",").contains("memory"),
               let found = levels(path, base: root + "/memory", max: "memory.limit_in_bytes", used: "memory.usage_in_bytes") {
                return found
            }
        }
        return []
    }

    /// The limits along `path` and its parents under `base`; nil when the
    /// hierarchy is not there (not mounted, another version).
    private static func levels(_ path: String, base: String, max maxFile: String, used usedFile: String) -> [Limit]? {
        guard access(base + "/cgroup.procs", F_OK) == 0 else { return nil }
        var limits: [Limit] = []
        var components = path.split(separator: "/").map(String.init)
        while true {
            let level = "/" + components.joined(separator: "/")
            let dir = base + (components.isEmpty ? "" : level)
            // v1 writes "no limit" as a page-rounded LONG_MAX; anything past 2^62 is that.
            if let limitText = try? readTextFile(dir + "/" + maxFile), let limit = UInt64(limitText.trimmed), limit < 1 << 62,
               let usedText = try? readTextFile(dir + "/" + usedFile), let used = UInt64(usedText.trimmed) {
                limits.append(Limit(source: "cgroup \(level)", available: limit > used ? limit - used : 0, reserve: reserve(of: limit),
                                    detail: "cgroup \(level) limit \(ByteCount.describe(limit)), \(ByteCount.describe(used)) in use"))
            }
            if components.isEmpty { break }
            components.removeLast()
        }
        return limits
    }
}

private extension String {
    var trimmed: Substring {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return s
    }
}
