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
enum AllocationAudit {
    /// What the request asked for, as the allocator was told it.
    struct Expectation {
        var size: UInt64
        var image: (width: UInt32, height: UInt32, format: FourCC)?
        /// The negotiated modifiers; empty: any.
        var modifiers: [Modifier]
        var readOnly: Bool

        init(_ request: BufferRequest, size: UInt64, modifiers: [Modifier]) {
            self.size = size
            if case let .image(width, height, format, _) = request.shape { image = (width, height, format) }
            self.modifiers = modifiers
            readOnly = request.readOnly
        }
    }

    /// Everything the walk checks of a fresh allocation, in order of cost;
    /// empty when it may be handed out.
    static func misfits(_ raw: smaf_allocation, _ a: Allocation, expecting e: Expectation,
                        under merged: DeviceConstraints, declared: PluginCapabilities?) -> [String] {
        var v = abiFields(raw)
        guard v.isEmpty else { return v }
        v += fdFacts(a, fd: raw.fd)
        v += requestMisfits(a, e)
        v += deviceMisfits(a, merged)
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

    // MARK: what it was asked for

    static func requestMisfits(_ a: Allocation, _ e: Expectation) -> [String] {
        var v: [String] = []
        if a.size < e.size { v.append("size \(a.size) is smaller than the \(e.size) bytes asked for") }
        if e.readOnly && !a.readOnly { v.append("accepted a read-only request but handed out a writable fd") }
        guard let image = e.image else { return v }
        if a.format != image.format || a.width != image.width || a.height != image.height {
            v.append("describes a \(a.width)x\(a.height) \(a.format?.code ?? "bytes") image, not the \(image.width)x\(image.height) \(image.format.code) asked for")
        }
        if let m = a.modifier, !e.modifiers.isEmpty, !e.modifiers.contains(m) {
            v.append("modifier \(m) is not among those the devices accept (\(e.modifiers.map(\.description).joined(separator: ", ")))")
        }
        return v + planeMisfits(a, image)
    }

    /// Planes inside the memory, and for a linear layout rows long enough
    /// for the pixels and no longer than the memory.
    static func planeMisfits(_ a: Allocation, _ image: (width: UInt32, height: UInt32, format: FourCC)) -> [String] {
        guard let info = FormatInfo.lookup(image.format) else { return [] }
        var v: [String] = []
        if a.planes.count != info.planeCount { v.append("\(a.planes.count) planes, \(info.name) has \(info.planeCount)") }
        let minimal = try? ImageLayout.linear(width: image.width, height: image.height, format: image.format)
        for (i, p) in a.planes.enumerated() {
            if p.offset >= a.size { v.append("plane \(i) starts at \(p.offset), past the \(a.size) bytes"); continue }
            guard a.modifier == .linear, let minimal, i < minimal.planes.count else { continue }
            let stride = UInt64(p.stride)
            if stride < minimal.planes[i].pitch {
                v.append("plane \(i) pitch \(stride) is below the \(minimal.planes[i].pitch) bytes a row of \(image.width) pixels needs")
            }
            let rows = i == 0 ? UInt64(image.height) : (UInt64(image.height) + UInt64(info.vsub) - 1) / UInt64(info.vsub)
            let (span, overflow) = stride.multipliedReportingOverflow(by: rows)
            if overflow || span > a.size - p.offset {
                v.append("plane \(i) (offset \(p.offset), \(rows) rows of \(stride) bytes) runs past the \(a.size) bytes")
            }
        }
        return v
    }

    // MARK: what a device needs

    /// Does the memory suit device `d` (one device, or the merge of all)?
    /// What a late attach is held to before the allocator's own match().
    static func deviceMisfits(_ a: Allocation, _ d: DeviceConstraints) -> [String] {
        var v: [String] = []
        if d.needsKernelImport && !a.isDmaBuf { v.append("it is not a dma-buf, which \(d.name) must import") }
        if d.needsCPU && !a.cpuMappable { v.append("it is not CPU-mappable") }
        if d.contiguous && !a.contiguous { v.append("it is not verified physically contiguous") }
        if d.secure && a.cpuMappable { v.append("the CPU can map it, which a secure device forbids") }
        if let bits = d.dmaAddressBits, bits < 64, a.largestContiguous == 0 {
            v.append("its addresses are not verified below 2^\(bits)")
        }
        if let max = d.maxSize, a.size > max { v.append("its \(a.size) bytes exceed the max size \(max)") }
        if let max = d.maxWidth, a.width > max { v.append("its width \(a.width) exceeds the max width \(max)") }
        if let max = d.maxHeight, a.height > max { v.append("its height \(a.height) exceeds the max height \(max)") }
        for plane in a.planes where plane.stride > 0 {
            if let align = d.pitchAlignment, UInt64(plane.stride) % align != 0 {
                v.append("its pitch \(plane.stride) is not a multiple of \(align)")
            }
            if let max = d.maxPitch, UInt64(plane.stride) > max { v.append("its pitch \(plane.stride) exceeds the max pitch \(max)") }
        }
        if let formats = d.formats, let format = a.format {
            if let f = formats.first(where: { $0.format == format }) {
                if let m = a.modifier, !f.modifiers.isEmpty, !f.modifiers.contains(m) {
                    v.append("its modifier \(m) is not among \(f.modifiers.map(\.description).joined(separator: ", "))")
                }
            } else {
                v.append("its format \(format.code) is not among \(formats.map(\.format.code).joined(separator: ", "))")
            }
        }
        if a.isDmaBuf, let importable = d.importableFrom, !importable.contains(a.exporter) {
            v.append("\(d.name) cannot import dma-bufs from \(a.exporter.isEmpty ? a.allocator : a.exporter) (measured by the probe)")
        }
        return v
    }
}
