import CSMAFPlugin

// The model's values (SMAFModel) as the core reads them from what plugins
// wrote: an Allocation from struct smaf_allocation, an explanation's reason
// from the verdict slot match() filled.

extension Allocation {
    /// What a plugin's struct says, read within its bounds (planes up to SMAF_MAX_PLANES).
    package init(plugin: String, _ a: smaf_allocation) {
        let count = min(Int(a.plane_count), Int(SMAF_MAX_PLANES))
        self.init(
            allocator: plugin, size: a.size, isDmaBuf: a.flags & SMAF_ALLOCATION_DMABUF.rawValue != 0,
            format: a.fourcc == 0 ? nil : FourCC(rawValue: a.fourcc), width: a.width, height: a.height,
            modifier: a.fourcc == 0 ? nil : Modifier(rawValue: a.modifier),
            planes: withUnsafeBytes(of: a.planes) { raw in
                raw.bindMemory(to: smaf_plane.self).prefix(count).map { Plane(offset: $0.offset, stride: $0.stride) }
            },
            contiguous: a.flags & SMAF_ALLOCATION_CONTIGUOUS.rawValue != 0,
            cpuMappable: a.flags & SMAF_ALLOCATION_CPU_MAPPABLE.rawValue != 0,
            coherent: a.flags & SMAF_ALLOCATION_COHERENT.rawValue != 0,
            readOnly: a.flags & SMAF_ALLOCATION_READ_ONLY.rawValue != 0,
            largestContiguous: a.largest_contiguous,
            detail: withUnsafeBytes(of: a.detail) { cString($0) },
            exporter: withUnsafeBytes(of: a.exporter) { cString($0) })
    }
}

extension VerdictRef: DeferredReason {}
