import CSMAFAPI
import Glibc
import SMAF
import SMAFProbe
import SMAFSys

// The C API (include/smaf/smaf.h) over the Swift library. Handles are
// retained Swift objects; every failure sets smaf_last_error() to one line.

final class ContextHandle {
    let registry: AllocatorRegistry
    /// C copies of the allocator names, freed with the context.
    let names: [UnsafeMutablePointer<CChar>]

    init(registry: AllocatorRegistry) {
        self.registry = registry
        names = registry.plugins.map { strdup($0.name)! }
    }

    deinit { names.forEach { free($0) } }
}

/// A smaf_buffer is a Swift Buffer from its creation: deferred already (no
/// memory until the first export), with devices, forced allocator and
/// secure flag set on it directly. The handle adds only the C copy of the
/// allocator's name that smaf_buffer_allocator() hands out.
final class BufferHandle {
    let buffer: Buffer
    private var allocatorName: UnsafeMutablePointer<CChar>?

    init(_ buffer: Buffer) { self.buffer = buffer }

    /// The chosen allocator's name as a C string that lives as long as the handle; nil before memory.
    func allocatorCString() -> UnsafePointer<CChar>? {
        if allocatorName == nil, let a = buffer.allocation { allocatorName = strdup(a.allocator) }
        return allocatorName.map { UnsafePointer($0) }
    }

    // The Buffer releases its memory when the last reference goes.
    deinit { free(allocatorName) }
}

/// smaf_last_error() is one line a C program may print as is: escaped.
private func fail(_ message: String) { DisplayText.escaped(message).withCString { smaf_set_last_error($0) } }

private func context(_ p: OpaquePointer?) -> ContextHandle? {
    p.map { Unmanaged<ContextHandle>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

private func buffer(_ p: OpaquePointer?) -> BufferHandle? {
    p.map { Unmanaged<BufferHandle>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
}

/// Runs `body` for a buffer handle, turning errors into -1 + last error.
private func withBuffer(_ p: OpaquePointer?, _ call: String, _ body: (BufferHandle) throws -> Int32) -> Int32 {
    guard let b = buffer(p) else { fail("\(call): buffer is NULL"); return -1 }
    do {
        smaf_set_last_error(nil)
        return try body(b)
    } catch let e as SMAFError {
        fail(e.message)
    } catch {
        fail("\(call): \(error)")
    }
    return -1
}

@_cdecl("smaf_open")
public func smaf_open() -> OpaquePointer? {
    do {
        let registry = try AllocatorRegistry.load()
        smaf_set_last_error(nil)
        return OpaquePointer(Unmanaged.passRetained(ContextHandle(registry: registry)).toOpaque())
    } catch {
        fail(error.message)
        return nil
    }
}

@_cdecl("smaf_close")
public func smaf_close(_ ctx: OpaquePointer?) {
    guard let ctx else { return }
    Unmanaged<ContextHandle>.fromOpaque(UnsafeRawPointer(ctx)).release()
}

@_cdecl("smaf_allocator_count")
public func smaf_allocator_count(_ ctx: OpaquePointer?) -> Int32 {
    guard let c = context(ctx) else { fail("smaf_allocator_count: context is NULL"); return -1 }
    return Int32(c.names.count)
}

@_cdecl("smaf_allocator_name")
public func smaf_allocator_name(_ ctx: OpaquePointer?, _ index: Int32) -> UnsafePointer<CChar>? {
    guard let c = context(ctx) else { fail("smaf_allocator_name: context is NULL"); return nil }
    guard index >= 0, Int(index) < c.names.count else {
        fail("smaf_allocator_name: index \(index) is not in 0..<\(c.names.count)")
        return nil
    }
    return UnsafePointer(c.names[Int(index)])
}

/// Limits on what a caller passes: more is a mistake, never a need.
enum CLimits {
    /// Modifiers in one request (a display plane lists a few dozen).
    static let modifiers: UInt32 = 256
    /// A JSON descriptor, as for a descriptor file.
    static let json = InputFile.maximumSize
    /// Allocator and device names.
    static let name = 4096
    /// The flags smaf_buffer_create*() know; any other bit is refused, not
    /// ignored, so a flag from a newer header cannot be silently dropped.
    static let knownFlags = UInt32(SMAF_BUFFER_SECURE)
}

/// A caller's C string, read no further than `limit` bytes (strnlen).
private func text(_ p: UnsafePointer<CChar>?, _ call: String, _ what: String, limit: Int) throws(SMAFError) -> String {
    guard let p else { throw SMAFError(.invalidRequest, "\(call): \(what) is NULL") }
    let length = strnlen(p, limit + 1)
    guard length <= limit else { throw SMAFError(.invalidRequest, "\(call): \(what) is longer than \(limit) bytes") }
    return String(decoding: UnsafeRawBufferPointer(start: p, count: length), as: UTF8.self)
}

private func makeBuffer(_ ctx: OpaquePointer?, _ request: BufferRequest, _ flags: UInt32, _ call: String) -> OpaquePointer? {
    guard let c = context(ctx) else { fail("\(call): context is NULL"); return nil }
    do throws(SMAFError) {
        if flags & ~CLimits.knownFlags != 0 {
            throw SMAFError(.invalidRequest, "\(call): unknown flags 0x\(String(flags & ~CLimits.knownFlags, radix: 16)) (known: SMAF_BUFFER_SECURE)")
        }
        let b = BufferHandle(try c.registry.buffer(request))
        if flags & UInt32(SMAF_BUFFER_SECURE) != 0 { try b.buffer.markSecure() }
        smaf_set_last_error(nil)
        return OpaquePointer(Unmanaged.passRetained(b).toOpaque())
    } catch {
        fail(error.message)
        return nil
    }
}

@_cdecl("smaf_buffer_create")
public func smaf_buffer_create(_ ctx: OpaquePointer?, _ size: UInt64, _ flags: UInt32) -> OpaquePointer? {
    makeBuffer(ctx, .bytes(size), flags, "smaf_buffer_create")
}

@_cdecl("smaf_buffer_create_image")
public func smaf_buffer_create_image(_ ctx: OpaquePointer?, _ width: UInt32, _ height: UInt32, _ fourcc: UInt32,
                                     _ modifiers: UnsafePointer<UInt64>?, _ count: UInt32, _ flags: UInt32) -> OpaquePointer? {
    let call = "smaf_buffer_create_image"
    guard count <= CLimits.modifiers else {
        fail("\(call): modifier_count \(count) is more than \(CLimits.modifiers)")
        return nil
    }
    guard count == 0 || modifiers != nil else {
        fail("\(call): modifiers is NULL but modifier_count is \(count)")
        return nil
    }
    let mods = (0..<Int(count)).map { Modifier(rawValue: modifiers![$0]) }
    return makeBuffer(ctx, .image(width: width, height: height, format: FourCC(rawValue: fourcc), modifiers: mods), flags, call)
}

@_cdecl("smaf_buffer_destroy")
public func smaf_buffer_destroy(_ buf: OpaquePointer?) -> Int32 {
    guard let buf else { return 0 }
    let handle = Unmanaged<BufferHandle>.fromOpaque(UnsafeRawPointer(buf)).takeRetainedValue()
    do {
        try handle.buffer.release()
        smaf_set_last_error(nil)
        return 0
    } catch {
        fail(error.message)
        return -1
    }
}

@_cdecl("smaf_buffer_attach_drm")
public func smaf_buffer_attach_drm(_ buf: OpaquePointer?, _ fd: Int32) -> Int32 {
    withBuffer(buf, "smaf_buffer_attach_drm") { b in
        // The node behind the fd, so the probe opens its own (GEM handles are
        // per open file). The fd must be a DRM device itself, and the path
        // must still name that same device when it is looked up.
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SMAFError(.invalidDescriptor, "smaf_buffer_attach_drm: fd \(fd) is not open") }
        if let reason = DeviceNode.refusal(st, major: DeviceNode.drmMajor, kind: "DRM device") {
            throw SMAFError(.invalidDescriptor, "smaf_buffer_attach_drm: fd \(fd): \(reason)")
        }
        var path = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(fd)", &path, path.count - 1)
        guard n > 0 else { throw SMAFError(.invalidDescriptor, "smaf_buffer_attach_drm: fd \(fd) has no path") }
        let node = String(decoding: path[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var named = stat()
        guard stat(node, &named) == 0, named.st_rdev == st.st_rdev else {
            throw SMAFError(.invalidDescriptor, "smaf_buffer_attach_drm: fd \(fd)'s node \(DisplayText.escaped(node)) is gone or is another device now")
        }
        try b.buffer.attach(try DeviceConstraints.probe(node: node))
        return 0
    }
}

@_cdecl("smaf_buffer_attach_json")
public func smaf_buffer_attach_json(_ buf: OpaquePointer?, _ json: UnsafePointer<CChar>?) -> Int32 {
    withBuffer(buf, "smaf_buffer_attach_json") { b in
        let text = try text(json, "smaf_buffer_attach_json", "json", limit: CLimits.json)
        try b.buffer.attach(try DeviceConstraints.fromJSON(Array(text.utf8), source: "descriptor"))
        return 0
    }
}

@_cdecl("smaf_buffer_force_allocator")
public func smaf_buffer_force_allocator(_ buf: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> Int32 {
    withBuffer(buf, "smaf_buffer_force_allocator") { b in
        let n = try name.map { (p) throws(SMAFError) in try text(p, "smaf_buffer_force_allocator", "name", limit: CLimits.name) }
        try b.buffer.force(allocator: n)
        return 0
    }
}

@_cdecl("smaf_buffer_set_secure")
public func smaf_buffer_set_secure(_ buf: OpaquePointer?, _ secure: Int32) -> Int32 {
    withBuffer(buf, "smaf_buffer_set_secure") { b in
        switch (secure != 0, b.buffer.isSecure) {
        case (true, false): try b.buffer.markSecure()
        case (false, true): try b.buffer.unmarkSecure()
        default:
            // Already as asked: still a change the header allows only before memory.
            if b.buffer.allocation != nil {
                throw SMAFError(.unsupported, "smaf_buffer_set_secure: the buffer already has memory (set it before the first export)")
            }
        }
        return 0
    }
}

@_cdecl("smaf_buffer_get_secure")
public func smaf_buffer_get_secure(_ buf: OpaquePointer?) -> Int32 {
    buffer(buf).map { $0.buffer.isSecure ? 1 : 0 } ?? 0
}

@_cdecl("smaf_buffer_export")
public func smaf_buffer_export(_ buf: OpaquePointer?) -> Int32 {
    withBuffer(buf, "smaf_buffer_export") { b in try b.buffer.exportFD().take() }
}

@_cdecl("smaf_buffer_export_for")
public func smaf_buffer_export_for(_ buf: OpaquePointer?, _ device: UnsafePointer<CChar>?) -> Int32 {
    withBuffer(buf, "smaf_buffer_export_for") { b in
        let name = try text(device, "smaf_buffer_export_for", "device", limit: CLimits.name)
        return try b.buffer.exportFD(for: name).take()
    }
}

@_cdecl("smaf_buffer_allocator")
public func smaf_buffer_allocator(_ buf: OpaquePointer?) -> UnsafePointer<CChar>? {
    buffer(buf)?.allocatorCString()
}

@_cdecl("smaf_buffer_size")
public func smaf_buffer_size(_ buf: OpaquePointer?) -> UInt64 {
    buffer(buf)?.buffer.allocation?.size ?? 0
}

@_cdecl("smaf_buffer_stride")
public func smaf_buffer_stride(_ buf: OpaquePointer?) -> UInt32 {
    buffer(buf)?.buffer.allocation?.planes.first?.stride ?? 0
}
