import SMAFFormats

/// Whether memory fits what was asked and who will touch it: the checks on
/// values alone (no fd, no plugin) that the core's audit runs after every
/// allocation and at every late attach. One phrase per misfit.
public enum AllocationFit {
    /// What the request asked for, as the allocator was told it.
    public struct Expectation: Sendable {
        public var size: UInt64
        public var image: (width: UInt32, height: UInt32, format: FourCC)?
        /// The negotiated modifiers; empty: any.
        public var modifiers: [Modifier]
        public var readOnly: Bool

        public init(_ request: BufferRequest, size: UInt64, modifiers: [Modifier]) {
            self.size = size
            if case let .image(width, height, format, _) = request.shape { image = (width, height, format) }
            self.modifiers = modifiers
            readOnly = request.readOnly
        }
    }

    // MARK: what it was asked for

    public static func requestMisfits(_ a: Allocation, _ e: Expectation) -> [String] {
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
    public static func deviceMisfits(_ a: Allocation, _ d: DeviceConstraints) -> [String] {
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
