import Glibc
import Synchronization

/// Builds the static `smaf_plugin` table for a Swift plugin type. Each plugin
/// .so links its own copy of this kit, so the one registered type below is
/// that plugin's.
public enum PluginExport {
    private final class Registration: @unchecked Sendable {
        let type: any SMAFPlugin.Type
        let table: UnsafeMutablePointer<smaf_plugin>
        init(type: any SMAFPlugin.Type, table: UnsafeMutablePointer<smaf_plugin>) {
            self.type = type
            self.table = table
        }
    }

    private static let registration = Mutex<Registration?>(nil)

    /// The pointer to return from `smaf_plugin_entry`. Built once; the
    /// strings and tables it points to live as long as the process.
    public static func entry(_ type: any AllocatorPlugin.Type) -> UnsafeRawPointer? {
        entry(type, kind: SMAF_PLUGIN_KIND_ALLOCATOR) { table in
            let ops = UnsafeMutablePointer<smaf_allocator_ops>.allocate(capacity: 1)
            ops.initialize(to: smaf_allocator_ops())
            ops.pointee.struct_size = UInt32(MemoryLayout<smaf_allocator_ops>.size)
            ops.pointee.match = matchThunk
            ops.pointee.allocate = allocateThunk
            ops.pointee.release = releaseThunk
            ops.pointee.describe_stats = statsThunk
            ops.pointee.capabilities = capabilitiesThunk
            table.pointee.allocator = UnsafePointer(ops)
        }
    }

    /// The pointer to return from `smaf_plugin_entry` for a secure module.
    public static func entry(_ type: any SecureModule.Type) -> UnsafeRawPointer? {
        entry(type, kind: SMAF_PLUGIN_KIND_SECURE) { $0.pointee.secure = SecureExport.ops() }
    }

    private static func entry(_ type: any SMAFPlugin.Type, kind: smaf_plugin_kind,
                              ops: (UnsafeMutablePointer<smaf_plugin>) -> Void) -> UnsafeRawPointer? {
        registration.withLock { reg in
            if let reg { return UnsafeRawPointer(reg.table) }

            let table = UnsafeMutablePointer<smaf_plugin>.allocate(capacity: 1)
            table.initialize(to: smaf_plugin())
            table.pointee.struct_size = UInt32(MemoryLayout<smaf_plugin>.size)
            table.pointee.abi_major = UInt32(SMAF_PLUGIN_ABI_MAJOR)
            table.pointee.abi_minor = UInt32(SMAF_PLUGIN_ABI_MINOR)
            // Allocators leave to the core what their capabilities rule out: a 1.0 core would not.
            table.pointee.abi_minor_required = 1
            table.pointee.kind = kind.rawValue
            table.pointee.flags = type.serialized ? SMAF_PLUGIN_FLAG_SERIALIZE.rawValue : 0
            table.pointee.name = UnsafePointer(strdup(type.name))
            table.pointee.description = UnsafePointer(strdup(type.summary))
            table.pointee.default_rank = type.defaultRank
            table.pointee.open = openThunk
            table.pointee.close = closeThunk
            ops(table)
            reg = Registration(type: type, table: table)
            return UnsafeRawPointer(table)
        }
    }

    /// The per-open context handed to the core as `void *`. It keeps the
    /// plugin typed as an allocator too, so no call pays for a cast, and
    /// the declared modifier list, which the core may read until close().
    private final class Context {
        let plugin: any SMAFPlugin
        let allocator: (any AllocatorPlugin)?
        var declaredModifiers: UnsafeMutablePointer<UInt64>?

        init(_ plugin: any SMAFPlugin) {
            self.plugin = plugin
            allocator = plugin as? any AllocatorPlugin
        }

        deinit { declaredModifiers?.deallocate() }
    }

    static func plugin(_ raw: UnsafeMutableRawPointer?) -> any SMAFPlugin {
        Unmanaged<Context>.fromOpaque(raw!).takeUnretainedValue().plugin
    }

    private static func context(_ raw: UnsafeMutableRawPointer?) -> any AllocatorPlugin {
        // The kind was fixed when the table was built: only allocators get these ops.
        Unmanaged<Context>.fromOpaque(raw!).takeUnretainedValue().allocator!
    }

    private static let capabilitiesThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafeMutablePointer<smaf_capabilities>?
    ) -> Int32 = { ctx, caps in
        guard let ctx, let caps else { return -EINVAL }
        let context = Unmanaged<Context>.fromOpaque(ctx).takeUnretainedValue()
        guard let allocator = context.allocator else { return -EINVAL }
        let declared = allocator.capabilities
        if context.declaredModifiers == nil && !declared.modifiers.isEmpty {
            let list = UnsafeMutablePointer<UInt64>.allocate(capacity: declared.modifiers.count)
            list.initialize(from: declared.modifiers.map(\.rawValue), count: declared.modifiers.count)
            context.declaredModifiers = list
        }
        declared.write(to: caps, storage: context.declaredModifiers)
        return 0
    }

    private static let openThunk: @convention(c) (
        UnsafePointer<smaf_core>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<CChar>?, Int
    ) -> Int32 = { core, out, errorBuffer, errorSize in
        guard let core, let out, let type = registration.withLock({ $0?.type }) else { return -EINVAL }
        do throws(PluginError) {
            let plugin = try type.init(core: PluginCore(raw: core, pluginName: type.name))
            out.pointee = Unmanaged.passRetained(Context(plugin)).toOpaque()
            return 0
        } catch {
            copyMessage(error.message, into: errorBuffer, errorSize)
            return error.errno > 0 ? -error.errno : -EINVAL
        }
    }

    private static let closeThunk: @convention(c) (UnsafeMutableRawPointer?) -> Void = { ctx in
        guard let ctx else { return }
        Unmanaged<Context>.fromOpaque(ctx).release()
    }

    private static let matchThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<smaf_request>?, UnsafePointer<smaf_constraints>?,
        UnsafePointer<UnsafePointer<smaf_constraints>?>?, UInt32, UnsafeMutablePointer<smaf_verdict>?
    ) -> Int32 = { ctx, request, merged, devices, count, verdict in
        guard let request, let merged else { return 0 }
        switch context(ctx).match(PluginRequest(raw: request), merged: PluginConstraints(raw: merged), devices: views(devices, count)) {
        case .accept:
            return 1
        case .reject(let reason):
            if let verdict {
                withUnsafeMutableBytes(of: &verdict.pointee.reason) { buf in
                    copyMessage(reason, into: buf.baseAddress!.assumingMemoryBound(to: CChar.self), buf.count)
                }
            }
            return 0
        }
    }

    private static let allocateThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<smaf_request>?, UnsafePointer<smaf_constraints>?,
        UnsafePointer<UnsafePointer<smaf_constraints>?>?, UInt32,
        UnsafeMutablePointer<smaf_allocation>?, UnsafeMutablePointer<CChar>?, Int
    ) -> Int32 = { ctx, request, merged, devices, count, out, errorBuffer, errorSize in
        guard let request, let merged, let out else { return -EINVAL }
        do throws(PluginError) {
            let a = try context(ctx).allocate(PluginRequest(raw: request), merged: PluginConstraints(raw: merged),
                                              devices: views(devices, count))
            write(a, to: out)
            return 0
        } catch {
            copyMessage(error.message, into: errorBuffer, errorSize)
            return error.errno > 0 ? -error.errno : -EIO
        }
    }

    private static let releaseThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafeMutablePointer<smaf_allocation>?
    ) -> Void = { ctx, allocation in
        guard let allocation else { return }
        context(ctx).release(read(allocation))
    }

    static let statsThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, Int
    ) -> Int = { ctx, buffer, size in
        guard let text = plugin(ctx).stats() else { return 0 }
        copyMessage(text, into: buffer, size)
        return text.utf8.count + 1
    }

    private static func views(_ devices: UnsafePointer<UnsafePointer<smaf_constraints>?>?, _ count: UInt32) -> [PluginConstraints] {
        (0..<Int(count)).compactMap { devices?[$0].map(PluginConstraints.init(raw:)) }
    }

    static func write(_ a: PluginAllocation, to out: UnsafeMutablePointer<smaf_allocation>) {
        out.pointee.flags = a.guarantees.rawValue
        out.pointee.fd = a.fd
        out.pointee.size = a.size
        out.pointee.fourcc = a.format?.rawValue ?? 0
        out.pointee.width = a.width
        out.pointee.height = a.height
        out.pointee.modifier = a.modifier.rawValue
        out.pointee.plane_count = UInt32(min(a.planes.count, Int(SMAF_MAX_PLANES)))
        withUnsafeMutableBytes(of: &out.pointee.planes) { raw in
            let planes = raw.bindMemory(to: smaf_plane.self)
            for (i, p) in a.planes.prefix(planes.count).enumerated() {
                planes[i] = smaf_plane(fd: -1, stride: p.stride, offset: p.offset)
            }
        }
        out.pointee.largest_contiguous = a.largestContiguous
        out.pointee.plugin_data = UnsafeMutableRawPointer(bitPattern: a.token)
        withUnsafeMutableBytes(of: &out.pointee.detail) { buf in
            copyMessage(a.detail, into: buf.baseAddress!.assumingMemoryBound(to: CChar.self), buf.count)
        }
        withUnsafeMutableBytes(of: &out.pointee.exporter) { buf in
            copyMessage(a.exporter, into: buf.baseAddress!.assumingMemoryBound(to: CChar.self), buf.count)
        }
    }

    static func read(_ p: UnsafePointer<smaf_allocation>) -> PluginAllocation {
        var a = PluginAllocation(fd: p.pointee.fd, size: p.pointee.size,
                                 guarantees: .init(rawValue: p.pointee.flags))
        a.format = p.pointee.fourcc == 0 ? nil : FourCC(rawValue: p.pointee.fourcc)
        a.width = p.pointee.width
        a.height = p.pointee.height
        a.modifier = Modifier(rawValue: p.pointee.modifier)
        a.largestContiguous = p.pointee.largest_contiguous
        a.token = UInt(bitPattern: p.pointee.plugin_data)
        return a
    }
}

/// Copies `text` into a C buffer of `size` bytes, always NUL-terminated.
func copyMessage(_ text: String, into buffer: UnsafeMutablePointer<CChar>?, _ size: Int) {
    guard let buffer, size > 0 else { return }
    let bytes = Array(text.utf8.prefix(size - 1))
    for (i, b) in bytes.enumerated() { buffer[i] = CChar(bitPattern: b) }
    buffer[bytes.count] = 0
}
