import Glibc
import SMAF
import SMAFSys
import Testing

/// Large allocations in a loop against the VM's real dma-heap and udmabuf,
/// and in a memory cgroup: the loop ends with an ENOMEM naming the figures,
/// never with the OOM killer (which took the test process, or the whole
/// VM's worth of processes, before the check).
@Suite(.serialized, .enabled(if: KernelTestBed.testBed, KernelTestBed.testBedSkipReason))
struct MemoryHeadroomVMTests {
    static let mib: UInt64 = 1 << 20

    /// Allocates `size`-byte buffers from `plugin`, keeping them, until one is
    /// refused; returns how many were made and the refusal.
    func fill(_ plugin: String, _ size: UInt64, atMost: Int = 64) throws -> (count: Int, refusal: SMAFError?) {
        let registry = KernelTestBed.registry(plugin)
        var kept: [Buffer] = []
        defer { kept.forEach { try? $0.release() } } // not secure: nothing to scrub
        for _ in 0..<atMost {
            let buffer = try registry.buffer(.bytes(size))
            do { try buffer.materialize() } catch { return (kept.count, error) }
            kept.append(buffer)
        }
        return (kept.count, nil)
    }

    /// 2 GiB of RAM, buffers of `size`: the refusal comes before the RAM is
    /// gone and says how much was asked and what was left.
    @Test(arguments: [("dmaheap", 64 * mib), ("memfd", 32 * mib)])
    func aLoopOfLargeBuffersEndsInOneClearRefusal(plugin: String, size: UInt64) throws {
        let (count, refusal) = try fill(plugin, size)
        let error = try #require(refusal, "\(count) buffers of \(ByteCount.describe(size)) and no refusal")
        #expect(error.message.hasPrefix("not enough memory: \(ByteCount.describe(size)) asked, "), "\(error.message)")
        #expect(error.message.contains(" available (MemAvailable "), "\(error.message)")
        #expect(error.systemError?.errno == .noMemory)
        #expect(count >= 8, "most of the VM's 2 GiB went to buffers first: \(count)")
        print("headroom: \(plugin) gave \(count) buffers of \(ByteCount.describe(size)), then: \(error.message)")
        // Everything was given back: the next buffer is there again.
        let again = KernelTestBed.registry(plugin)
        #expect(try again.buffer(.bytes(size)).materialize().size >= size)
    }

    /// A memory cgroup's limit counts like the machine's: a udmabuf buffer
    /// over it is refused with the cgroup's figures (its memfd pages are
    /// charged to the cgroup, whose OOM killer ended the process before).
    @Test func aCgroupLimitIsHonoured() throws {
        let root = "/sys/fs/cgroup"
        let group = "\(root)/smaf-headroom-\(getpid())"
        guard access("\(root)/cgroup.subtree_control", W_OK) == 0 else {
            throw KernelTestBed.TestBedError(message: "no writable cgroup v2 hierarchy at \(root)")
        }
        _ = try KernelTestBed.run("/bin/sh", ["-c", "echo +memory > \(root)/cgroup.subtree_control; mkdir -p \(group) && echo 32M > \(group)/memory.max"])
        defer { rmdir(group) }
        let smaf = "\(KernelTestBed.buildDirectory)/smaf"
        let out = try KernelTestBed.run("/bin/sh", ["-c", "echo $$ > \(group)/cgroup.procs && SMAF_DEFAULT_PLUGINS=0 "
                                                      + "SMAF_PLUGIN_PATH=\(KernelTestBed.buildDirectory)/libsmafplugin_memfd.so "
                                                      + "\(smaf) alloc --size 48M 2>&1; echo \"exit $?\""])
        let name = String(group.dropFirst(root.count))
        #expect(out.hasPrefix("smaf: error: not enough memory: 48 MiB asked, "), "\(out)")
        #expect(out.contains("cgroup \(name) limit 32 MiB, "), "\(out)")
        #expect(out.hasSuffix("exit 1\n"), "\(out)")
    }
}
