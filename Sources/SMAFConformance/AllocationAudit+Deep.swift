import CSMAFPlugin
import Glibc
import SMAF
import SMAFSys

/// The audit as `smaf plugin check` runs it: everything the walk checks,
/// plus what only a checker can afford to measure on every allocation
/// (mapping the memory, the exporter's name, the page frames).
extension AllocationAudit {
    /// Every broken promise of an allocation made for `probe`, one phrase each.
    static func violations(_ probe: ConformanceProbe, _ raw: smaf_allocation, declared: PluginCapabilities?) -> [String] {
        let a = Allocation(plugin: "plugin", raw)
        let merged = (try? MergedConstraints(probe.devices)) ?? MergedConstraints()
        var v = misfits(raw, a, expecting: AllocationFit.Expectation(probe.request, size: probe.size, modifiers: probe.modifiers),
                        under: merged.combined, declared: declared)
        guard fcntl(raw.fd, F_GETFD) >= 0 else { return v }
        if a.isDmaBuf && a.exporter.isEmpty { v.append("a dma-buf that names no exporter (smaf_allocation.exporter)") }
        if a.cpuMappable, let problem = mapProblem(raw.fd, size: a.size, writable: !a.readOnly) { v.append(problem) }
        if a.readOnly && mapsWritable(raw.fd, size: a.size) { v.append("claims read-only, but a writable shared mapping works") }
        if a.contiguous && a.cpuMappable, let runs = physicalRuns(raw.fd, size: a.size), runs > 1 {
            v.append("claims physically contiguous, but /proc/self/pagemap shows \(runs) separate runs")
        }
        return v
    }

    /// Why a shared mapping of the whole allocation fails, nil if it works.
    static func mapProblem(_ fd: CInt, size: UInt64, writable: Bool) -> String? {
        guard size > 0, size <= UInt64(Int.max) else { return "claims CPU-mappable, but \(size) bytes cannot be mapped" }
        do {
            let mapping = try Mapping(fd: fd, length: Int(size), writable: writable)
            _ = mapping.bytes[0] // the first page must really be there
            return nil
        } catch {
            return "claims CPU-mappable, but \(error)"
        }
    }

    static func mapsWritable(_ fd: CInt, size: UInt64) -> Bool {
        guard size > 0, size <= UInt64(Int.max) else { return false }
        do {
            _ = try Mapping(fd: fd, length: Int(size), writable: true)
            return true
        } catch {
            return false
        }
    }

    /// Physically contiguous runs behind a mappable fd, nil when the frames
    /// cannot be read (not root) or the buffer is too big to fault in here.
    static func physicalRuns(_ fd: CInt, size: UInt64) -> Int? {
        guard size > 0, size <= 256 << 20 else { return nil }
        do {
            let mapping = try Mapping(fd: fd, length: Int(size), writable: false)
            let pages = Int(size / Memory.pageSize)
            var sum: UInt8 = 0
            for page in 0..<pages { sum &+= mapping.bytes[page * Int(Memory.pageSize)] } // fault every page in
            _ = sum
            let frames = try Pagemap.frames(of: mapping.base, pages: pages)
            return frames.isVerified ? frames.ranges(consecutive: true).count : nil
        } catch {
            return nil
        }
    }
}
