import CSMAFPlugin
import Glibc
import SMAFFormats

/// The C view of one request and its devices, as match() and allocate()
/// receive it. Built once per selection and shared by every plugin call in
/// it; owns all the memory its pointers point to and frees it on deinit.
final class CallStructs {
    let request: UnsafeMutablePointer<smaf_request>
    let merged: UnsafeMutablePointer<smaf_constraints>
    let devicePointers: UnsafeMutablePointer<UnsafePointer<smaf_constraints>?>
    let deviceCount: Int
    private var frees: [UnsafeMutableRawPointer] = []

    init(request: BufferRequest, size: UInt64, modifiers: [Modifier], constraints: MergedConstraints) {
        self.request = .allocate(capacity: 1)
        self.request.initialize(to: smaf_request())
        merged = .allocate(capacity: 1)
        deviceCount = constraints.devices.count
        devicePointers = .allocate(capacity: max(deviceCount, 1))

        var r = smaf_request()
        r.struct_size = UInt32(MemoryLayout<smaf_request>.size)
        r.size = size
        if request.readOnly { r.flags |= SMAF_REQUEST_READ_ONLY.rawValue }
        if case let .image(width, height, format, _) = request.shape {
            r.width = width
            r.height = height
            r.fourcc = format.rawValue
            r.modifier_count = UInt32(modifiers.count)
            r.modifiers = UnsafePointer(copy(modifiers.map(\.rawValue)))
        }
        self.request.pointee = r
        merged.initialize(to: convert(constraints.combined, importNode: constraints.importNodes.count == 1 ? constraints.importNodes[0] : nil))
        for (i, device) in constraints.devices.enumerated() {
            devicePointers[i] = UnsafePointer(copy([convert(device, importNode: device.importNode)]))
        }
    }

    /// Only the device structs, for calls about devices without a request
    /// (a secure module's grants).
    init(devices: [DeviceConstraints]) {
        request = .allocate(capacity: 1)
        request.initialize(to: smaf_request())
        merged = .allocate(capacity: 1)
        merged.initialize(to: smaf_constraints())
        deviceCount = devices.count
        devicePointers = .allocate(capacity: max(deviceCount, 1))
        for (i, device) in devices.enumerated() {
            devicePointers[i] = UnsafePointer(copy([convert(device, importNode: device.importNode)]))
        }
    }

    private func convert(_ d: DeviceConstraints, importNode: String?) -> smaf_constraints {
        var c = smaf_constraints()
        c.struct_size = UInt32(MemoryLayout<smaf_constraints>.size)
        c.usage = d.usage.rawValue
        var flags: UInt32 = 0
        if d.contiguous { flags |= SMAF_CONSTRAINT_CONTIGUOUS.rawValue }
        if d.needsCPU { flags |= SMAF_CONSTRAINT_CPU_ACCESS.rawValue }
        if d.secure { flags |= SMAF_CONSTRAINT_SECURE.rawValue }
        if d.needsKernelImport { flags |= SMAF_CONSTRAINT_DMABUF.rawValue }
        c.flags = flags
        c.dma_address_bits = d.dmaAddressBits ?? 0
        c.name = UnsafePointer(string(d.name))
        c.import_node = importNode.map { UnsafePointer(string($0)) }
        c.address_alignment = d.addressAlignment ?? 0
        c.pitch_alignment = d.pitchAlignment ?? 0
        c.height_alignment = d.heightAlignment ?? 0
        c.max_pitch = d.maxPitch ?? 0
        c.max_size = d.maxSize ?? 0
        c.max_width = d.maxWidth ?? 0
        c.max_height = d.maxHeight ?? 0
        c.max_segments = d.maxSegments ?? 0
        if let formats = d.formats {
            let list = formats.map { f in
                smaf_format(fourcc: f.format.rawValue, modifier_count: UInt32(f.modifiers.count),
                            modifiers: UnsafePointer(copy(f.modifiers.map(\.rawValue))))
            }
            c.format_count = UInt32(list.count)
            c.formats = UnsafePointer(copy(list))
        }
        if let importable = d.importableFrom {
            let names: [UnsafePointer<CChar>?] = importable.map { UnsafePointer(string($0)) }
            c.importable_count = UInt32(names.count)
            c.importable_from = UnsafePointer(copy(names))
        }
        return c
    }

    private func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        frees.append(UnsafeMutableRawPointer(p))
        return p
    }

    private func copy<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        // malloc, not allocate(), so one free() list releases strings and arrays alike.
        let raw = malloc(MemoryLayout<T>.stride * values.count)!
        frees.append(raw)
        let p = raw.bindMemory(to: T.self, capacity: values.count)
        p.initialize(from: values, count: values.count)
        return p
    }

    deinit {
        // Every allocation above holds trivial types, so freeing is enough.
        for p in frees { free(p) }
        request.deallocate()
        merged.deallocate()
        devicePointers.deallocate()
    }
}
