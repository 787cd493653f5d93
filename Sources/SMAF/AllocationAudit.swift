import CSMAFPlugin
import CSMAFSys
import Glibc
import SMAFFormats
import SMAFSys

/// What the core holds every allocation to, in one place, whoever asks: the
/// walk right after allocate() (the request, the merged constraints, the
/// fd's own facts, the allocator's declaration), a late attach (the new
/// device), and `smaf plugin check` (all of it, plus what only a checker
/// can afford to measure: AllocationAudit+Deep.swift). Each finding is one
/// phrase; an allocation with any is never handed out.
package enum AllocationAudit {
    /// Everything the walk checks of a fresh allocation, in order of cost;
    /// empty when it may be handed out.
    package static func misfits(_ raw: smaf_allocation, _ a: Allocation, expecting e: AllocationFit.Expectation,
                        under merged: DeviceConstraints, declared: PluginCapabilities?) -> [String] {
        var v = abiFields(raw)
        guard v.isEmpty else { return v }
        v += fdFacts(a, fd: raw.fd)
        v += AllocationFit.requestMisfits(a, e)
        v += AllocationFit.deviceMisfits(a, merged)
        if let declared { v += declared.breaches(a) }
        return v
    }

    // MARK: what the plugin wrote

    /// The struct itself: counts in range, fields with no meaning yet left
    /// at zero, planes in the allocation's fd (ABI 1.1 has no plane fds).
    static func abiFields(_ raw: smaf_allocation) -> [String] {
        var v: [String] = []
        if raw.plane_count > UInt32(SMAF_MAX_PLANES) { return ["plane_count \(raw.plane_count) is not 0...\(SMAF_MAX_PLANES)"] }
        let planes = withUnsafeBytes(of: raw.planes) { Array($0.bindMemory(to: smaf_plane.self).prefix(Int(raw.plane_count))) }
        for (i, p) in planes.enumerated() where p.fd != -1 {
            v.append("plane \(i) names fd \(p.fd); planes must lie in the allocation's fd (-1)")
        }
        if raw.reserved0 != 0 || withUnsafeBytes(of: raw.reserved, { $0.contains { $0 != 0 } }) {
            v.append("it set smaf_allocation.reserved, which has no meaning yet and must be 0")
        }
        return v
    }

    // MARK: what the fd really is (a few syscalls, no mapping)

    static func fdFacts(_ a: Allocation, fd: CInt) -> [String] {
        let fdFlags = fcntl(fd, F_GETFD), statusFlags = fcntl(fd, F_GETFL)
        guard fdFlags >= 0, statusFlags >= 0 else { return ["fd \(fd) is not an open descriptor"] }
        var v: [String] = []
        if fdFlags & FD_CLOEXEC == 0 { v.append("fd \(fd) is not close-on-exec (it would leak into programs the application runs)") }
        if a.size == 0 { v.append("handed out a buffer of 0 bytes") }
        switch fdSize(fd) {
        case let actual? where actual < a.size: v.append("the fd holds \(actual) bytes, not the \(a.size) the allocation reports")
        case nil: v.append("the size of the fd cannot be read (fstat and lseek fail), so its \(a.size) bytes cannot be verified")
        default: break
        }
        if a.isDmaBuf && !DmaBuf.isDmaBuf(fd) { v.append("claims to be a dma-buf, but the kernel does not call the fd one") }
        if a.readOnly && !refusesWritableMappings(fd, statusFlags) {
            v.append("claims read-only, but the fd is open for writing (and no write seal stops a writable mapping)")
        }
        return v
    }

    /// A read-only fd, or a memfd sealed against writes: the kernel refuses a writable shared mapping.
    static func refusesWritableMappings(_ fd: CInt, _ statusFlags: CInt) -> Bool {
        if statusFlags & O_ACCMODE == O_RDONLY { return true }
        let seals = csmaf_get_seals(fd)
        let futureWrite: CInt = 0x0010 // F_SEAL_FUTURE_WRITE (Linux 5.1)
        return seals >= 0 && seals & (CInt(CSMAF_F_SEAL_WRITE) | futureWrite) != 0
    }

    /// Bytes behind an fd someone else owns: fstat, else lseek (dma-bufs).
    package static func fdSize(_ fd: CInt) -> UInt64? {
        var st = stat()
        if fstat(fd, &st) == 0 && st.st_size > 0 { return UInt64(st.st_size) }
        // dma-bufs report their size at SEEK_END (and refuse SEEK_CUR); the
        // offset goes back where it was, or to 0, where a dma-buf's always is.
        let here = lseek(fd, 0, SEEK_CUR)
        let end = lseek(fd, 0, SEEK_END)
        _ = lseek(fd, max(here, 0), SEEK_SET)
        return end >= 0 ? UInt64(end) : nil
    }
}
