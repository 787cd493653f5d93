import CSMAFPlugin
import CSMAFSys
import Glibc
import SMAFFormats
import SMAFSys

/// Does an allocation keep what the plugin promised by accepting the request?
/// Checked against the C structs the plugin saw and against the fd itself
/// (its size, whether the kernel calls it a dma-buf, its access mode),
/// never against the plugin's own description alone.
///
/// Two depths: `claims` is what the core checks of every allocation before
/// anyone sees it (a few syscalls, no mapping: a lie there is a failed
/// allocation); `violations` (SMAFConformance) adds what `smaf plugin
/// check` can afford to measure (mappings, the exporter's name, page frames).
package enum AllocationAudit {
    /// The broken promises the core can see cheaply, one phrase each.
    package static func claims(_ c: CallStructs, _ a: smaf_allocation) -> [String] {
        let r = c.request.pointee, m = c.merged.pointee
        var v: [String] = []
        let fdFlags = fcntl(a.fd, F_GETFD), statusFlags = fcntl(a.fd, F_GETFL)
        guard fdFlags >= 0, statusFlags >= 0 else { return ["fd \(a.fd) is not an open descriptor"] }
        if fdFlags & FD_CLOEXEC == 0 { v.append("fd \(a.fd) is not close-on-exec (it would leak into programs the application runs)") }

        if a.size == 0 { v.append("handed out a buffer of 0 bytes") }
        if a.size < r.size { v.append("size \(a.size) is smaller than the \(r.size) bytes asked for") }
        if let actual = fdSize(a.fd), actual < a.size {
            v.append("the fd holds \(actual) bytes, not the \(a.size) the allocation reports")
        } else if fdSize(a.fd) == nil {
            v.append("the size of the fd cannot be read (fstat and lseek fail), so its \(a.size) bytes cannot be verified")
        }
        if m.max_size > 0 && a.size > m.max_size { v.append("size \(a.size) exceeds the max size \(m.max_size)") }

        let claimsDmaBuf = a.flags & SMAF_ALLOCATION_DMABUF.rawValue != 0
        if claimsDmaBuf && !DmaBuf.isDmaBuf(a.fd) { v.append("claims to be a dma-buf, but the kernel does not call the fd one") }
        if needsDmaBuf(c) && !claimsDmaBuf { v.append("a device must import a dma-buf, but the allocation is not one") }

        let mappable = a.flags & SMAF_ALLOCATION_CPU_MAPPABLE.rawValue != 0
        let readOnly = a.flags & SMAF_ALLOCATION_READ_ONLY.rawValue != 0
        if readOnly && !refusesWritableMappings(a.fd, statusFlags) {
            v.append("claims read-only, but the fd is open for writing (and no write seal stops a writable mapping)")
        }
        if r.flags & SMAF_REQUEST_READ_ONLY.rawValue != 0 && !readOnly {
            v.append("accepted a read-only request but handed out a writable fd")
        }
        if m.flags & SMAF_CONSTRAINT_CPU_ACCESS.rawValue != 0 && !mappable { v.append("the CPU must map it, but it is not CPU-mappable") }
        if m.flags & SMAF_CONSTRAINT_SECURE.rawValue != 0 && mappable { v.append("a secure request got CPU-mappable memory") }
        if m.flags & SMAF_CONSTRAINT_CONTIGUOUS.rawValue != 0 && a.flags & SMAF_ALLOCATION_CONTIGUOUS.rawValue == 0 {
            v.append("a device needs physically contiguous memory, but the allocation does not claim it")
        }
        if r.width != 0 { v += imageViolations(r, m, a, modifiers: requestModifiers(c)) }
        else if a.plane_count > UInt32(SMAF_MAX_PLANES) { v.append("plane_count \(a.plane_count) is not 0...\(SMAF_MAX_PLANES)") }
        return v
    }

    /// A read-only fd, or a memfd sealed against writes: the kernel refuses a writable shared mapping.
    static func refusesWritableMappings(_ fd: CInt, _ statusFlags: CInt) -> Bool {
        if statusFlags & O_ACCMODE == O_RDONLY { return true }
        let seals = csmaf_get_seals(fd)
        let futureWrite: CInt = 0x0010 // F_SEAL_FUTURE_WRITE (Linux 5.1)
        return seals >= 0 && seals & (CInt(CSMAF_F_SEAL_WRITE) | futureWrite) != 0
    }

    private static func imageViolations(_ r: smaf_request, _ m: smaf_constraints, _ a: smaf_allocation,
                                        modifiers: [UInt64]) -> [String] {
        var v: [String] = []
        if a.fourcc != r.fourcc || a.width != r.width || a.height != r.height {
            v.append("describes a \(a.width)x\(a.height) \(FourCC(rawValue: a.fourcc).code) image, not the \(r.width)x\(r.height) \(FourCC(rawValue: r.fourcc).code) asked for")
        }
        if m.max_width > 0 && a.width > m.max_width { v.append("width \(a.width) exceeds the max width \(m.max_width)") }
        if m.max_height > 0 && a.height > m.max_height { v.append("height \(a.height) exceeds the max height \(m.max_height)") }
        if !modifiers.isEmpty && !modifiers.contains(a.modifier) {
            v.append("modifier \(Modifier(rawValue: a.modifier)) is not among those the devices accept (\(modifiers.map { Modifier(rawValue: $0).description }.joined(separator: ", ")))")
        }
        let count = Int(a.plane_count)
        let info = FormatInfo.lookup(FourCC(rawValue: r.fourcc))
        guard count >= 1 && count <= Int(SMAF_MAX_PLANES) else { return v + ["plane_count \(count) is not 1...\(SMAF_MAX_PLANES)"] }
        if let info, count != info.planeCount { v.append("\(count) planes, \(info.name) has \(info.planeCount)") }
        let planes = withUnsafeBytes(of: a.planes) { Array($0.bindMemory(to: smaf_plane.self).prefix(count)) }
        let minimal = info.flatMap { try? ImageLayout.linear(width: r.width, height: r.height, format: $0.fourcc) }
        for (i, p) in planes.enumerated() {
            let stride = UInt64(p.stride)
            if m.pitch_alignment > 1 && stride % m.pitch_alignment != 0 {
                v.append("plane \(i) pitch \(stride) is not a multiple of the pitch alignment \(m.pitch_alignment)")
            }
            if m.max_pitch > 0 && stride > m.max_pitch { v.append("plane \(i) pitch \(stride) exceeds the max pitch \(m.max_pitch)") }
            guard p.fd == -1 else {
                // ABI 1.0 planes live in the allocation's fd; a plane fd would be dropped on export.
                v.append("plane \(i) names fd \(p.fd); planes must lie in the allocation's fd (-1)")
                continue
            }
            if p.offset >= a.size { v.append("plane \(i) starts at \(p.offset), past the \(a.size) bytes"); continue }
            guard a.modifier == Modifier.linear.rawValue, let info, let minimal, i < minimal.planes.count else { continue }
            if stride < minimal.planes[i].pitch {
                v.append("plane \(i) pitch \(stride) is below the \(minimal.planes[i].pitch) bytes a row of \(r.width) pixels needs")
            }
            let rows = i == 0 ? UInt64(r.height) : (UInt64(r.height) + UInt64(info.vsub) - 1) / UInt64(info.vsub)
            let (span, overflow) = stride.multipliedReportingOverflow(by: rows)
            if overflow || p.offset > a.size || span > a.size - p.offset {
                v.append("plane \(i) (offset \(p.offset), \(rows) rows of \(stride) bytes) runs past the \(a.size) bytes")
            }
        }
        return v
    }

    // MARK: what the call asked for

    package static func devices(_ c: CallStructs) -> [smaf_constraints] {
        (0..<c.deviceCount).compactMap { c.devicePointers[$0]?.pointee }
    }

    static func needsDmaBuf(_ c: CallStructs) -> Bool {
        let dmabuf = SMAF_CONSTRAINT_DMABUF.rawValue
        return c.merged.pointee.flags & dmabuf != 0 || c.merged.pointee.import_node != nil
            || devices(c).contains { $0.flags & dmabuf != 0 || $0.import_node != nil }
    }

    static func requestModifiers(_ c: CallStructs) -> [UInt64] {
        let r = c.request.pointee
        guard let list = r.modifiers else { return [] }
        return Array(UnsafeBufferPointer(start: list, count: Int(r.modifier_count)))
    }

    // MARK: what the fd really is

    /// Bytes behind an fd someone else owns: fstat, else lseek (dma-bufs).
    static func fdSize(_ fd: CInt) -> UInt64? {
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
