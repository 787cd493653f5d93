import Glibc

/// The C thunks for secure modules; the table is built by PluginExport.
enum SecureExport {
    static func ops() -> UnsafePointer<smaf_secure_ops> {
        let ops = UnsafeMutablePointer<smaf_secure_ops>.allocate(capacity: 1)
        ops.initialize(to: smaf_secure_ops())
        ops.pointee.struct_size = UInt32(MemoryLayout<smaf_secure_ops>.size)
        ops.pointee.create_context = createThunk
        ops.pointee.destroy_context = destroyThunk
        ops.pointee.grant_access = grantThunk
        ops.pointee.revoke_access = revokeThunk
        ops.pointee.allow_cpu_access = allowCPUThunk
        ops.pointee.describe_stats = PluginExport.statsThunk
        return UnsafePointer(ops)
    }

    private static func module(_ raw: UnsafeMutableRawPointer?) -> any SecureModule {
        // The kind was fixed when the table was built: only secure modules get these ops.
        PluginExport.plugin(raw) as! any SecureModule
    }

    private static func buffer(_ raw: UnsafeMutableRawPointer?) -> AnyObject {
        Unmanaged<AnyObject>.fromOpaque(raw!).takeUnretainedValue()
    }

    private static let createThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<smaf_buffer_info>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
        UnsafeMutablePointer<CChar>?, Int
    ) -> Int32 = { ctx, info, out, errorBuffer, errorSize in
        guard let info, let out else { return -EINVAL }
        let i = SecureBufferInfo(id: info.pointee.id, size: info.pointee.size,
                                 allocator: info.pointee.allocator.map { String(cString: $0) })
        do throws(PluginError) {
            let context = try module(ctx).createContext(buffer: i)
            out.pointee = Unmanaged<AnyObject>.passRetained(context).toOpaque()
            return 0
        } catch {
            copyMessage(error.message, into: errorBuffer, errorSize)
            return error.errno > 0 ? -error.errno : -EACCES
        }
    }

    private static let destroyThunk: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { ctx, buf in
        guard let buf else { return }
        module(ctx).destroyContext(buffer(buf))
        Unmanaged<AnyObject>.fromOpaque(buf).release()
    }

    private static let grantThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafePointer<smaf_constraints>?,
        UInt64, UInt64, UInt32, UnsafeMutablePointer<CChar>?, Int
    ) -> Int32 = { ctx, buf, device, offset, length, access, reason, reasonSize in
        guard let device else { return -EINVAL }
        switch module(ctx).grant(buffer(buf), device: PluginConstraints(raw: device), offset: offset, length: length,
                                 access: Access(rawValue: access)) {
        case .accept: return 0
        case .reject(let why):
            copyMessage(why, into: reason, reasonSize)
            return -EACCES
        }
    }

    private static let revokeThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafePointer<smaf_constraints>?, UInt64, UInt64, UInt32
    ) -> Void = { ctx, buf, device, offset, length, access in
        guard let device else { return }
        module(ctx).revoke(buffer(buf), device: PluginConstraints(raw: device), offset: offset, length: length,
                           access: Access(rawValue: access))
    }

    private static let allowCPUThunk: @convention(c) (
        UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UInt32, UnsafeMutablePointer<CChar>?, Int
    ) -> Int32 = { ctx, buf, access, reason, reasonSize in
        switch module(ctx).allowCPUAccess(buffer(buf), access: Access(rawValue: access)) {
        case .accept: return 1
        case .reject(let why):
            copyMessage(why, into: reason, reasonSize)
            return 0
        }
    }
}
