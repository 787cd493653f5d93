import Foundation
import SMAF
import SMAFSys
import Testing

/// Requests the machine cannot serve, through the CLI in a child process:
/// refused with one line before any memory is taken.
@Suite struct ResourceLimitTests {
    /// MemAvailable from /proc/meminfo, in bytes.
    static var memAvailable: UInt64? {
        let info = (try? readTextFile("/proc/meminfo")) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("MemAvailable:") }
        return line.flatMap { UInt64($0.split(separator: " ").dropFirst().first ?? "") }.map { $0 << 10 }
    }

    /// More than the machine can spare now, though less than its RAM: one
    /// line with the figures, exit 1 (it used to be a sparse memfd that the
    /// first writer would find out about, or on a dma-heap the OOM killer).
    @Test func theCoreRefusesWhatTheMachineCannotSpare() throws {
        // MemAvailable is at least what the check counts as usable (it keeps a reserve back).
        let usable = try #require(Self.memAvailable)
        let ram = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let size = usable + (ram - usable) / 2
        try #require(size < ram && size > usable)
        var env = ProcessInfo.processInfo.environment
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        env["SMAF_PLUGIN_PATH"] = TestSupport.shippedPlugin("memfd")
        let r = try TestSupport.run(TestSupport.smafExecutable, ["alloc", "--size", "\(size)"], environment: env)
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("smaf: error: not enough memory: \(ByteCount.describe(size)) asked, "), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    /// The real size after layout counts, not the tightly packed one: rows of
    /// one XR24 pixel are padded to 64 bytes, 16 times what the core counts.
    @Test(arguments: ["memfd", "shm"])
    func aLayoutLargerThanRAMIsRefusedByThePlugin(plugin: String) throws {
        let ram = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let height = ram / 32 // packed: RAM/8, which fits; laid out: 2 x RAM
        try #require(height <= UInt64(UInt32.max))
        var env = ProcessInfo.processInfo.environment
        env["SMAF_DEFAULT_PLUGINS"] = "0"
        env["SMAF_PLUGIN_PATH"] = TestSupport.shippedPlugin(plugin)
        let r = try TestSupport.run(TestSupport.smafExecutable, ["alloc", "--width", "1", "--height", "\(height)", "--format", "XR24",
                                                                "--allocator", plugin], environment: env)
        #expect(r.status == 1, "\(r.stdout)")
        #expect(r.stderr == "smaf: error: forced allocator \(plugin) cannot satisfy the request: \(plugin): "
                + "\(height * 64) bytes once laid out is more than this machine's \(ram) bytes of RAM\n")
    }
}
