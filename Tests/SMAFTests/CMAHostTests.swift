import CMARegion
import Foundation
import SMAF
import SMAFSys
import Testing

/// The cma plugin where the host lets it run: the region is reserved,
/// sealed and reported; settings are checked; without /dev/udmabuf it
/// refuses every request with the reason. Exports, zero-fill, pagemap checks
/// under hugetlb and fallbacks run in the VM (SMAFIntegrationTests/CMATests).
@Suite struct CMAHostTests {
    static let hasUdmabuf = access(Udmabuf.devicePath, R_OK | W_OK) == 0

    func registry(_ settings: [String: String] = [:], ranks: String? = nil, memfd: Bool = false) throws -> AllocatorRegistry {
        try TestSupport.registry([TestSupport.shippedPlugin("cma")] + (memfd ? [TestSupport.shippedPlugin("memfd")] : []),
                                 ranks: ranks, settings: settings)
    }

    func report(_ registry: AllocatorRegistry) throws -> RegionReport {
        let text = try #require(registry.plugin(named: "cma")?.stats())
        return try #require(RegionReport(parsing: text), "unparsable report:\n\(text)")
    }

    /// Free 2 MiB huge pages on this machine, from /proc/meminfo.
    static var freeHugePages: Int {
        let info = (try? readTextFile("/proc/meminfo")) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("HugePages_Free:") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    /// The memfds of a cma region open in this process.
    static func regionMemfds() throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { name in
            guard let fd = Int32(name), let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
                  target.hasPrefix("/memfd:smaf-cma") else { return nil }
            return fd
        }
    }

    /// Loading smaf costs no memory: the region is reserved on the first
    /// allocation cma serves, and the report says it is not there yet.
    @Test func openReservesNothingAndSaysSo() throws {
        let registry = try registry(["cma.size": "6M"])
        let r = try report(registry)
        #expect(try Self.regionMemfds().isEmpty, "no region memfd before an allocation")
        #expect(r.size == 6 << 20)
        #expect(r.backing == "none")
        #expect(r.backingDetail == "not reserved yet: reserved on the first allocation cma serves; cma.backing is auto")
        #expect(r.reservedMicroseconds == 0)
        #expect(r.used == 0 && r.free == 6 << 20 && r.largestFree == 6 << 20)
        #expect(r.allocations == 0 && r.held == 0)
        #expect(r.map == String(repeating: ".", count: 64))
        #expect(r.cell * 64 == 6 << 20)
        // Whether frames are visible is known without a region (root: yes).
        #expect(["not measured", "not verified"].contains(r.contiguity))
        #expect(r.largestRun == 0)
        withExtendedLifetime(registry) {}
    }

    /// Shmem in use on the machine (/proc/meminfo), where memfd pages count.
    static var shmemBytes: UInt64 {
        let info = (try? readTextFile("/proc/meminfo")) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("Shmem:") }
        return (line.flatMap { UInt64($0.split(separator: " ").dropFirst().first ?? "") } ?? 0) << 10
    }

    /// Twenty contexts (twenty smaf_open() in one process, or twenty CLI
    /// starts) used to cost twenty 64 MiB cma regions and twenty 32 MiB
    /// carve-outs: now nothing until one of them serves an allocation.
    @Test func twentyContextsReserveNothing() throws {
        let before = Self.shmemBytes
        let registries = try (0..<20).map { _ in
            try TestSupport.registry([TestSupport.shippedPlugin("cma"), TestSupport.shippedPlugin("carveout")],
                                     settings: ["cma.size": "64M", "carveout.size": "32M"])
        }
        #expect(registries.allSatisfy { $0.plugins.count == 2 }, "\(registries.first?.warningLines ?? [])")
        let grown = Int64(Self.shmemBytes) - Int64(before)
        #expect(grown < 64 << 20, "shmem grew by \(grown) bytes for 20 contexts (1.9 GiB if each reserved)")
        #expect(try Self.regionMemfds().isEmpty)
        let reserves = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)"))?.hasPrefix("/memfd:smaf-carveout-reserve") == true
        }
        #expect(reserves.isEmpty, "no carve-out committed")
        for r in registries {
            #expect(r.plugin(named: "carveout")?.stats()?.hasPrefix("budget 33554432 bytes, not committed yet (on the first allocation)") == true)
        }
        // The first allocation commits carveout's budget, once.
        let buffer = try registries[0].buffer(.bytes(1 << 20, allocator: "carveout"))
        try buffer.materialize()
        #expect(registries[0].plugin(named: "carveout")?.stats()?.hasPrefix("budget 33554432 bytes committed; 1048576 in 1 buffers") == true)
        withExtendedLifetime(registries) {}
    }

    @Test func sizeRoundsUpToTwoMebibytesLikeCmaEquals() throws {
        #expect(try report(try registry(["cma.size": "5M"])).size == 6 << 20)
        #expect(try report(try registry(["cma.size": "1"])).size == 2 << 20)
        #expect(try report(try registry(["cma.size": "0x400000"])).size == 4 << 20)
        #expect(try report(try registry()).size == 64 << 20, "the documented default")
    }

    @Test func theBackingSettingIsReportedBeforeTheRegionExists() throws {
        let r = try report(try registry(["cma.size": "2M", "cma.backing": "shmem"]))
        #expect(r.backing == "none")
        #expect(r.backingDetail.hasSuffix("cma.backing is shmem"))
    }

    @Test(arguments: [
        (["cma.size": "lots"], "cma.size: 'lots' is not a size like the kernel's cma= (64M, 256M, 1G)"),
        (["cma.size": "0"], "cma.size: '0' is not a size like the kernel's cma= (64M, 256M, 1G)"),
        (["cma.size": "16E"], "cma.size: '16E' is not a size like the kernel's cma= (64M, 256M, 1G)"),
        (["cma.size": "15E"], "cma.size: 15 EiB is more than half the RAM"),
        (["cma.backing": "ram"], "cma.backing: 'ram' is not auto, hugetlb or shmem"),
    ])
    func badSettingsRefuseThePlugin(settings: [String: String], reason: String) throws {
        let r = try registry(settings)
        #expect(r.plugins.isEmpty)
        #expect(r.warningLines.count == 1)
        let warning = try #require(r.warningLines.first)
        #expect(warning.contains("libsmafplugin_cma.so: 'cma' open failed ("), "\(warning)")
        #expect(warning.contains("): \(reason)"), "\(warning)")
    }

    @Test(.enabled(if: !hasUdmabuf, "this host has /dev/udmabuf: the VM tests cover allocation"))
    func withoutUdmabufEveryRequestIsRefusedWithTheReason() throws {
        let reason = "its buffers are udmabuf dma-bufs over ranges of one region, and /dev/udmabuf is unavailable (open on /dev/udmabuf failed: No such file or directory (ENOENT))"
        let forced = try registry(["cma.size": "2M"]).buffer(.bytes(4096, allocator: "cma"))
        let error = #expect(throws: SMAFError.self) { try forced.materialize() }
        #expect(error?.message == "forced allocator cma cannot satisfy the request: cma: \(reason)")

        let ranked = try registry(["cma.size": "2M"], ranks: "cma:primary", memfd: true)
        let buffer = try ranked.buffer(.bytes(4096))
        #expect(try buffer.materialize().allocator == "memfd")
        let entries = try #require(buffer.explanation?.entries)
        #expect(entries.map(\.allocator) == ["cma", "memfd"])
        #expect(entries.first?.outcome == .rejected)
        #expect(entries.first?.reason == reason)
    }

    func smaf(_ args: String..., env: [String: String] = [:], via wrapper: [String] = []) throws -> TestSupport.RunResult {
        var environment = ProcessInfo.processInfo.environment
        environment["SMAF_PLUGIN_PATH"] = nil
        environment["SMAF_RANKS"] = nil
        environment["SMAF_CMA_SIZE"] = "4M"
        for (k, v) in env { environment[k] = v }
        let command = wrapper + [TestSupport.smafExecutable] + args
        return try TestSupport.run(command[0], Array(command.dropFirst()), environment: environment)
    }

    /// The kernel shows page frame numbers only with CAP_SYS_ADMIN: without
    /// it (setpriv drops it for the child) the region claims nothing.
    @Test(.enabled(if: getuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0, "needs root and setpriv"))
    func withoutCapSysAdminContiguityIsNotVerified() throws {
        let run = try smaf("cma", "--json", via: ["/usr/bin/setpriv", "--bounding-set", "-sys_admin", "--"])
        #expect(run.status == 0, "\(run.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let region = object?["region"] as? [String: Any]
        #expect(region?["contiguity"] as? String == "not verified")
        #expect(region?["contiguity_detail"] as? String == "/proc/self/pagemap shows no page frame numbers (the kernel shows them only with CAP_SYS_ADMIN)")
        #expect(region?["largest_run"] as? Int == 0)
    }

    @Test func cmaCommandShowsTheRegion() throws {
        let text = try smaf("cma")
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.hasPrefix("cma region of this process (each process that uses cma reserves its own)\n"
                                      + "region    4 MiB, not reserved yet: reserved on the first allocation cma serves; cma.backing is auto\n"), "\(text.stdout)")
        #expect(text.stdout.contains("\nused      0 B in 0 allocations\n"))
        #expect(text.stdout.contains("\nfree      4 MiB, largest free block 4 MiB\n"))
        #expect(text.stdout.hasSuffix("\n  0 |\(String(repeating: ".", count: 64))| 4 MiB\n"))

        let json = try smaf("cma", "--json")
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let region = object?["region"] as? [String: Any]
        #expect(region?["size"] as? Int == 4 << 20)
        #expect(region?["largest_free"] as? Int == 4 << 20)
        #expect(region?["map"] as? String == String(repeating: ".", count: 64))
        #expect((object?["buffers"] as? [Any])?.isEmpty == true)
    }

    @Test func cmaCommandErrorsSayWhatWasWrong() throws {
        let badSize = try smaf("cma", "--alloc", "1M,8Q")
        #expect(badSize.status == 1)
        #expect(badSize.stderr == "smaf: error: alloc: '8Q' is not a size (examples: 4096, 64K, 8M, 1G)\n")
        let badIndex = try smaf("cma", "--alloc", "1M", "--free", "1")
        #expect(badIndex.stderr == "smaf: error: free: '1' is not the position of a buffer in --alloc (0 to 0)\n")
        let badSetting = try smaf("cma", env: ["SMAF_CMA_SIZE": "lots"])
        #expect(badSetting.status == 1)
        let lines = badSetting.stderr.split(separator: "\n")
        #expect(lines.count == 2, "the loader's warning, then the error")
        #expect(lines.first?.hasSuffix("libsmafplugin_cma.so: 'cma' open failed (Invalid argument): cma.size: 'lots' is not a size like the kernel's cma= (64M, 256M, 1G)") == true)
        #expect(lines.last == "smaf: error: the cma allocator is not loaded (it was refused: smaf list says why)")
        if !Self.hasUdmabuf {
            let noUdmabuf = try smaf("cma", "--alloc", "1M")
            #expect(noUdmabuf.status == 1)
            #expect(noUdmabuf.stderr.hasPrefix("smaf: error: alloc: buffer 0 (1 MiB): forced allocator cma cannot satisfy the request: cma: its buffers are udmabuf dma-bufs"))
        }
    }
}
