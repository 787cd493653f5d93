import Glibc

extension PluginRequest {
    /// The machine's RAM in bytes (0 if unknown). A layout larger than this
    /// can never be allocated, and a kernel allocator asked for it anyway
    /// would take pages until the OOM killer stops it.
    public static let physicalRAM = UInt64(max(sysconf(Int32(_SC_PHYS_PAGES)), 0)) &* UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 0))

    /// The linear layout this request needs under `merged`'s alignment and
    /// pitch limits: an image's planes, or one plane of `size` bytes. Its
    /// size is the real one (pitch padding, rows padded, every plane), and
    /// more than the machine's RAM is refused here: the core's own check
    /// sees only the tightly packed size (1 pixel wide rows take 64 bytes
    /// each at memfd's alignment, 16 times what the core counted).
    /// Shared by every allocator that lays out memory itself (memfd, cma).
    public func linearLayout(merged: PluginConstraints, defaultPitchAlignment: UInt64) -> Result<ImageLayout, ImageLayout.Failure> {
        laidOut(merged: merged, defaultPitchAlignment: defaultPitchAlignment).flatMap { layout in
            let ram = Self.physicalRAM
            return ram > 0 && layout.size > ram ? .failure(.exceedsRAM(size: layout.size, ram: ram)) : .success(layout)
        }
    }

    private func laidOut(merged: PluginConstraints, defaultPitchAlignment: UInt64) -> Result<ImageLayout, ImageLayout.Failure> {
        guard let format, isImage else {
            if size == 0 { return .failure(.zeroDimension(width: 0, height: 0)) }
            if merged.maxSize > 0 && size > merged.maxSize { return .failure(.exceedsMaxSize(size: size, max: merged.maxSize)) }
            return .success(.bytes(size))
        }
        for (name, value, max) in [("width", width, merged.maxWidth), ("height", height, merged.maxHeight)] where max > 0 && value > max {
            return .failure(.exceedsMaxDimension(name: name, value: value, max: max))
        }
        let pitchAlignment = leastCommonMultiple(merged.pitchAlignment, defaultPitchAlignment) ?? 0
        guard pitchAlignment > 0 else { return .failure(.overflow("pitch alignment")) }
        do {
            var layout = try ImageLayout.linear(width: width, height: height, format: format,
                                                pitchAlignment: pitchAlignment,
                                                heightAlignment: max(merged.heightAlignment, 1),
                                                maxPitch: merged.maxPitch, maxSize: merged.maxSize)
            layout.size = max(layout.size, size)
            return .success(layout)
        } catch {
            return .failure(error)
        }
    }
}

extension PluginAllocation {
    /// Fills the image description (format, size, planes) from a layout.
    public mutating func describe(request: PluginRequest, layout: ImageLayout, modifier: Modifier) {
        format = request.format
        width = request.width
        height = request.height
        self.modifier = modifier
        planes = layout.planes.map { Plane(offset: $0.offset, stride: UInt32(clamping: $0.pitch)) }
    }
}
