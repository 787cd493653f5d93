/// Does an existing allocation suit a device that attached late? Generic
/// checks any allocator's memory can be held to; the plugin's own match()
/// runs after these.
enum LateAttach {
    static func misfit(_ d: DeviceConstraints, _ a: Allocation) -> String? {
        if d.needsKernelImport && !a.isDmaBuf { return "it is not a dma-buf, which \(d.name) must import" }
        if d.needsCPU && !a.cpuMappable { return "it is not CPU-mappable" }
        if d.contiguous && !a.contiguous { return "it is not verified physically contiguous" }
        if d.secure { return "it was not allocated as secure memory" }
        if let bits = d.dmaAddressBits, bits < 64, a.largestContiguous == 0 {
            return "its addresses are not verified below 2^\(bits)"
        }
        if let max = d.maxSize, a.size > max { return "its \(a.size) bytes exceed the max size \(max)" }
        if let max = d.maxWidth, a.width > max { return "its width \(a.width) exceeds the max width \(max)" }
        if let max = d.maxHeight, a.height > max { return "its height \(a.height) exceeds the max height \(max)" }
        for plane in a.planes where plane.stride > 0 {
            if let align = d.pitchAlignment, UInt64(plane.stride) % align != 0 {
                return "its pitch \(plane.stride) is not a multiple of \(align)"
            }
            if let max = d.maxPitch, UInt64(plane.stride) > max { return "its pitch \(plane.stride) exceeds the max pitch \(max)" }
        }
        if let formats = d.formats, let format = a.format {
            guard let f = formats.first(where: { $0.format == format }) else {
                return "its format \(format.code) is not among \(formats.map(\.format.code).joined(separator: ", "))"
            }
            if let m = a.modifier, !f.modifiers.isEmpty, !f.modifiers.contains(m) {
                return "its modifier \(m) is not among \(f.modifiers.map(\.description).joined(separator: ", "))"
            }
        }
        if let importable = d.importableFrom, !importable.contains(a.exporter) {
            return "\(d.name) cannot import dma-bufs from \(a.exporter.isEmpty ? a.allocator : a.exporter) (measured by the probe)"
        }
        return nil
    }
}
