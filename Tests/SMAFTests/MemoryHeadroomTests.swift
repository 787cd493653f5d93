import Foundation
import SMAF
import SMAFSys
import Testing

/// The memory check every allocator makes before its kernel call, on
/// figures it is handed (a meminfo text, a cgroup tree in a temporary
/// folder), and once on this machine's own.
@Suite struct MemoryHeadroomTests {
    static let mib: UInt64 = 1 << 20

    static let meminfo = """
        MemTotal:        2097152 kB
        MemFree:          100000 kB
        MemAvailable:     131072 kB
        Buffers:            1000 kB
        """

    @Test func memAvailableLessAReserveOfOneThirtySecondOfTheRAM() {
        let limits = MemoryHeadroom.limits(meminfo: Self.meminfo, cgroups: nil)
        #expect(limits.count == 1)
        #expect(limits.first?.available == 128 * Self.mib)
        #expect(limits.first?.reserve == 64 * Self.mib, "2 GiB / 32")
        #expect(limits.first?.usable == 64 * Self.mib)
        #expect(limits.first?.description == "MemAvailable 128 MiB, less 64 MiB kept free")
        // The reserve stops at 256 MiB on big machines.
        let big = MemoryHeadroom.limits(meminfo: "MemTotal: 67108864 kB\nMemAvailable: 33554432 kB\n", cgroups: nil)
        #expect(big.first?.reserve == 256 * Self.mib)
    }

    /// A cgroup tree as the kernel lays it out: every level with a limit counts.
    @Test(arguments: [("v2", "0::/a/b", "", "memory.max", "memory.current", "max"),
                      ("v1", "4:memory:/a/b\n1:cpu:/", "/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "9223372036854771712")])
    func cgroupLevelsWithALimitCount(version: String, table: String, sub: String, maxFile: String, usedFile: String, unlimited: String) throws {
        let root = NSTemporaryDirectory() + "smaf-cgroup-\(version)-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let base = root + sub
        func write(_ path: String, _ text: String) throws {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: false, encoding: .utf8)
        }
        try write("\(base)/cgroup.procs", "")
        try write("\(base)/a/\(maxFile)", "\(512 * Self.mib)\n")
        try write("\(base)/a/\(usedFile)", "\(100 * Self.mib)\n")
        try write("\(base)/a/b/\(maxFile)", unlimited + "\n")
        try write("\(base)/a/b/\(usedFile)", "\(90 * Self.mib)\n")
        let limits = MemoryHeadroom.limits(meminfo: nil, cgroups: table, cgroupRoot: root)
        #expect(limits.map(\.source) == ["cgroup /a"], "b has no limit; a does")
        #expect(limits.first?.available == 412 * Self.mib)
        #expect(limits.first?.reserve == 16 * Self.mib)
        #expect(limits.first?.detail == "cgroup /a limit 512 MiB, 100 MiB in use")
        #expect(MemoryHeadroom.limits(meminfo: nil, cgroups: table, cgroupRoot: root + "/nowhere").isEmpty, "no hierarchy mounted: no limit")
    }

    @Test func aShortfallNamesTheFigures() throws {
        let why = try #require(MemoryHeadroom.shortfall(1 << 60))
        #expect(why.hasPrefix("1 EiB asked, "), "\(why)")
        #expect(why.contains(" available (MemAvailable "), "\(why)")
        #expect(MemoryHeadroom.shortfall(4096) == nil)
    }
}
