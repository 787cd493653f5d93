import ArgumentParser
import CMARegion
import SMAF
import SMAFCommandLine
import SMAFSys

struct CMACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cma",
        abstract: "Show the cma allocator's region: size, backing, use, free runs and a map.",
        discussion: """
        The cma allocator emulates the kernel's Contiguous Memory Allocator: one \
        region (like cma=) reserved on the first allocation cma serves and kept while \
        the process runs, buffers carved out of it first fit with power-of-two \
        alignment and exported as udmabuf dma-bufs. Running out and fragmentation \
        behave as on real CMA, and smaf falls back to the next allocator.

        Each process that uses cma reserves its own region, so on its own this command \
        shows one not reserved yet. --alloc carves buffers out of it first, --free \
        gives some back:
          smaf cma --alloc 8M,1M,4M --free 1
            (a 1 MiB hole between two buffers)
          smaf cma --alloc 16M,16M,16M,16M --free 0,2
            (32 MiB free, but no free block over 16 MiB)

        Settings (environment, or cma.size / cma.backing in the config file):
          SMAF_CMA_SIZE     region size like cma= (default 64M, rounded up to 2M)
          SMAF_CMA_BACKING  auto (hugetlb when huge pages are free, else shmem),
                            hugetlb or shmem

        Physical contiguity is verified from /proc/self/pagemap, which shows page \
        frame numbers only to root (CAP_SYS_ADMIN); otherwise the report says "not \
        verified".
        """
    )

    @OptionGroup var options: RegistryOptions
    @Option(help: "First allocate buffers of these sizes from the region, comma separated: 8M,1M,4M.")
    var alloc: String?
    @Option(help: "Then release some of them again, by position in --alloc counting from 0: 1 or 0,2.")
    var free: String?

    struct BufferJSON: Encodable {
        var index: Int
        var allocation: Allocation
    }

    struct CMAJSON: Encodable {
        var region: RegionReport
        var buffers: [BufferJSON]
    }

    func run() throws {
        let sizes = try (alloc?.split(separator: ",") ?? []).map { text in
            guard let size = parseSize(String(text)) else {
                throw CommandFailure(message: "alloc: '\(text)' is not a size (examples: 4096, 64K, 8M, 1G)")
            }
            return size
        }
        let freed = try Set((free?.split(separator: ",") ?? []).map { text in
            guard let i = Int(text), sizes.indices.contains(i) else {
                throw CommandFailure(message: "free: '\(text)' is not the position of a buffer in --alloc (0 to \(sizes.count - 1))")
            }
            return i
        })
        let registry = try options.registry()
        guard let cma = registry.plugin(named: "cma") else {
            // A refusal was logged as a warning already (smaf list repeats it).
            let refused = registry.loadWarnings.contains { $0.plugin == "cma" || $0.path.hasSuffix("libsmafplugin_cma.so") }
            throw CommandFailure(message: "the cma allocator is not loaded"
                                 + (refused ? " (it was refused: smaf list says why)" : " (no libsmafplugin_cma.so found)"))
        }
        var buffers: [Buffer] = []
        for (i, size) in sizes.enumerated() {
            let buffer = try registry.buffer(.bytes(size, allocator: "cma"))
            do { try buffer.materialize() } catch {
                throw CommandFailure(message: "alloc: buffer \(i) (\(formatBytes(size))): \(error.message)")
            }
            buffers.append(buffer)
        }
        for i in freed.sorted() { try buffers[i].release() }
        guard let text = cma.stats(), let report = RegionReport(parsing: text) else {
            throw CommandFailure(message: "the cma allocator gave no region report")
        }
        let kept = buffers.enumerated().compactMap { i, b in b.allocation.map { BufferJSON(index: i, allocation: $0) } }
        if options.json {
            try printJSON(CMAJSON(region: report, buffers: kept))
            return
        }
        print(describe(report))
        if !kept.isEmpty {
            print("\nbuffers:")
            for b in kept { print("  \(b.index)  \(b.allocation.detail)") }
        }
    }

    func describe(_ r: RegionReport) -> String {
        let physical = r.contiguity == "verified"
            ? "verified: longest physically contiguous run \(formatBytes(r.largestRun)) (\(r.contiguityDetail))"
            : "\(r.contiguity) (\(r.contiguityDetail))"
        var lines = table([
            ["region", r.isReserved
                ? "\(formatBytes(r.size)) of \(r.backing) (\(r.backingDetail)), reserved in \((Double(r.reservedMicroseconds) / 100).rounded() / 10) ms"
                : "\(formatBytes(r.size)), \(r.backingDetail)"],
            ["used", "\(formatBytes(r.used)) in \(r.allocations) allocation\(r.allocations == 1 ? "" : "s")"
                + (r.held > 0 ? ", \(r.held) of them released but still referenced (an fd, a mapping, an import)" : "")],
            ["free", "\(formatBytes(r.free)), largest free block \(formatBytes(r.largestFree))"],
            ["physical", physical],
            ["map", "\(formatBytes(r.cell)) per character: # used, + partly used, . free"],
        ])
        lines.insert("cma region of this process (each process that uses cma reserves its own)", at: 0)
        lines.append("  0 |\(r.map)| \(formatBytes(r.size))")
        return lines.joined(separator: "\n")
    }
}
