import CSMAFPlugin
import Glibc
import SMAFFormats

/// The C view of one request and its devices, as match() and allocate()
/// receive it. Built once per selection and shared by every plugin call in
/// it. Everything its pointers point to (the structs, strings, format and
/// modifier lists) lives in one block sized up front: one malloc per
/// selection, freed on deinit.
package final class CallStructs {
    package let request: UnsafeMutablePointer<smaf_request>
    package let merged: UnsafeMutablePointer<smaf_constraints>
    package let devicePointers: UnsafeMutablePointer<UnsafePointer<smaf_constraints>?>
    package let deviceCount: Int
    private var arena: Arena

    package init(request: BufferRequest, size: UInt64, modifiers: [Modifier], constraints: MergedConstraints, nameBuffers: Bool = false) {
        let mergedNode = constraints.importNodes.count == 1 ? constraints.importNodes[0] : nil
        deviceCount = constraints.devices.count
        var bytes = Arena.headerBytes(devices: deviceCount) + Arena.bytes(modifiers.count, UInt64.self)
        bytes += Arena.bytes(of: constraints.combined, importNode: mergedNode)
        for d in constraints.devices { bytes += Arena.bytes(of: d, importNode: d.importNode) }
        arena = Arena(capacity: bytes)
        (self.request, merged, devicePointers) = arena.header(devices: deviceCount)

        var r = smaf_request()
        r.struct_size = UInt32(MemoryLayout<smaf_request>.size)
        r.size = size
        if request.readOnly { r.flags |= SMAF_REQUEST_READ_ONLY.rawValue }
        if nameBuffers { r.flags |= SMAF_REQUEST_NAME_BUFFER.rawValue }
        if case let .image(width, height, format, _) = request.shape {
            r.width = width
            r.height = height
            r.fourcc = format.rawValue
            r.modifier_count = UInt32(modifiers.count)
            r.modifiers = UnsafePointer(arena.copy(modifiers.count) { modifiers[$0].rawValue })
        }
        self.request.pointee = r
        merged.pointee = arena.convert(constraints.combined, importNode: mergedNode)
        for (i, device) in constraints.devices.enumerated() {
            let p = arena.take(1, smaf_constraints.self)
            p.initialize(to: arena.convert(device, importNode: device.importNode))
            devicePointers[i] = UnsafePointer(p)
        }
    }

    /// Only the device structs, for calls about devices without a request
    /// (a secure module's grants).
    init(devices: [DeviceConstraints]) {
        deviceCount = devices.count
        var bytes = Arena.headerBytes(devices: deviceCount)
        for d in devices { bytes += Arena.bytes(of: d, importNode: d.importNode) }
        arena = Arena(capacity: bytes)
        (request, merged, devicePointers) = arena.header(devices: deviceCount)
        request.pointee = smaf_request()
        merged.pointee = smaf_constraints()
        for (i, device) in devices.enumerated() {
            let p = arena.take(1, smaf_constraints.self)
            p.initialize(to: arena.convert(device, importNode: device.importNode))
            devicePointers[i] = UnsafePointer(p)
        }
    }

    deinit {
        // Every struct in the block holds trivial types, so freeing is enough.
        free(arena.base)
    }
}

/// One malloc'd block carved front to back, each piece aligned to 16 bytes.
private struct Arena {
    let base: UnsafeMutableRawPointer
    private let capacity: Int
    private var used = 0

    static let alignment = 16

    init(capacity: Int) {
        self.capacity = capacity
        // A failed malloc of a few KiB is not something to recover from.
        guard let p = malloc(max(capacity, 1)) else { fatalError("smaf: out of memory for \(capacity) bytes of call structs") }
        base = p
    }

    static func bytes<T>(_ count: Int, _: T.Type) -> Int {
        count == 0 ? 0 : (MemoryLayout<T>.stride * count + alignment - 1) / alignment * alignment
    }

    static func bytes(_ s: String) -> Int { bytes(s.utf8.count + 1, CChar.self) }

    static func headerBytes(devices: Int) -> Int {
        bytes(1, smaf_request.self) + bytes(1, smaf_constraints.self) + bytes(max(devices, 1), UnsafePointer<smaf_constraints>?.self)
    }

    /// What `convert` will take for `d`, its own struct included.
    static func bytes(of d: DeviceConstraints, importNode: String?) -> Int {
        var n = bytes(1, smaf_constraints.self) + bytes(d.name) + (importNode.map(bytes) ?? 0)
        if let formats = d.formats {
            n += bytes(formats.count, smaf_format.self)
            for f in formats { n += bytes(f.modifiers.count, UInt64.self) }
        }
        if let importable = d.importableFrom {
            n += bytes(importable.count, UnsafePointer<CChar>?.self)
            for s in importable { n += bytes(s) }
        }
        return n
    }

    mutating func take<T>(_ count: Int, _: T.Type) -> UnsafeMutablePointer<T> {
        let n = Arena.bytes(count, T.self)
        precondition(used + n <= capacity, "CallStructs sized its block wrong") // a bug here, never input
        let p = (base + used).bindMemory(to: T.self, capacity: count)
        used += n
        return p
    }

    mutating func header(devices: Int) -> (UnsafeMutablePointer<smaf_request>, UnsafeMutablePointer<smaf_constraints>,
                                           UnsafeMutablePointer<UnsafePointer<smaf_constraints>?>) {
        let r = take(1, smaf_request.self)
        r.initialize(to: smaf_request())
        let m = take(1, smaf_constraints.self)
        m.initialize(to: smaf_constraints())
        let d = take(max(devices, 1), UnsafePointer<smaf_constraints>?.self)
        d.initialize(repeating: nil, count: max(devices, 1))
        return (r, m, d)
    }

    /// `count` values from `value(i)`, or nil for none.
    mutating func copy<T>(_ count: Int, _ value: (Int) -> T) -> UnsafeMutablePointer<T>? {
        guard count > 0 else { return nil }
        let p = take(count, T.self)
        for i in 0..<count { (p + i).initialize(to: value(i)) }
        return p
    }

    mutating func string(_ s: String) -> UnsafePointer<CChar> {
        var s = s
        let n = s.utf8.count
        let p = take(n + 1, CChar.self)
        s.withUTF8 { utf8 in
            if let src = utf8.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: src, byteCount: n) }
        }
        p[n] = 0
        return UnsafePointer(p)
    }

    mutating func convert(_ d: DeviceConstraints, importNode: String?) -> smaf_constraints {
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
        c.name = string(d.name)
        c.import_node = importNode.map { string($0) }
        c.address_alignment = d.addressAlignment ?? 0
        c.pitch_alignment = d.pitchAlignment ?? 0
        c.height_alignment = d.heightAlignment ?? 0
        c.max_pitch = d.maxPitch ?? 0
        c.max_size = d.maxSize ?? 0
        c.max_width = d.maxWidth ?? 0
        c.max_height = d.maxHeight ?? 0
        c.max_segments = d.maxSegments ?? 0
        if let formats = d.formats {
            let list = copy(formats.count) { _ in smaf_format() }
            for (i, f) in formats.enumerated() {
                list?[i] = smaf_format(fourcc: f.format.rawValue, modifier_count: UInt32(f.modifiers.count),
                                       modifiers: UnsafePointer(copy(f.modifiers.count) { f.modifiers[$0].rawValue }))
            }
            c.format_count = UInt32(formats.count)
            c.formats = UnsafePointer(list)
        }
        if let importable = d.importableFrom {
            let names = copy(importable.count) { _ in UnsafePointer<CChar>?.none }
            for (i, s) in importable.enumerated() { names?[i] = string(s) }
            c.importable_count = UInt32(importable.count)
            c.importable_from = UnsafePointer(names)
        }
        return c
    }
}
