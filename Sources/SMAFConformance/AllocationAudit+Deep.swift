import CSMAFPlugin
import Glibc
import SMAF
import SMAFSys

/// The deep half of the audit, which `smaf plugin check` can afford and an
/// allocation cannot: the exporter's name against what the devices import,
/// mappings of the whole buffer, and physical contiguity from the page frames.
extension AllocationAudit {
    /// Every broken promise, one phrase each; empty when the allocation holds up.
    static func violations(_ c: CallStructs, _ a: smaf_allocation) -> [String] {
        var v = claims(c, a)
        guard fcntl(a.fd, F_GETFD) >= 0 else { return v }
        let exporterName = withUnsafeBytes(of: a.exporter) { cString($0) }
        let claimsDmaBuf = a.flags & SMAF_ALLOCATION_DMABUF.rawValue != 0
        if claimsDmaBuf && exporterName.isEmpty { v.append("a dma-buf that names no exporter (smaf_allocation.exporter)") }
        for device in devices(c) where device.importable_count > 0 && claimsDmaBuf {
            let names = (0..<Int(device.importable_count)).compactMap { device.importable_from?[$0].map { String(cString: $0) } }
            if !names.contains(exporterName) {
                v.append("device \(device.name.map { String(cString: $0) } ?? "?") imports only from \(names.joined(separator: ", ")), not \(exporterName)")
            }
        }
        let mappable = a.flags & SMAF_ALLOCATION_CPU_MAPPABLE.rawValue != 0
        let readOnly = a.flags & SMAF_ALLOCATION_READ_ONLY.rawValue != 0
        if mappable, let problem = mapProblem(a.fd, size: a.size, writable: !readOnly) { v.append(problem) }
        if readOnly && mapsWritable(a.fd, size: a.size) { v.append("claims read-only, but a writable shared mapping works") }
        if a.flags & SMAF_ALLOCATION_CONTIGUOUS.rawValue != 0 && mappable, let runs = physicalRuns(a.fd, size: a.size), runs > 1 {
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
