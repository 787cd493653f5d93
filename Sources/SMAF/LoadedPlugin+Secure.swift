import CSMAFPlugin

/// Calls into a secure module's ops (`kind == .secureModule` only).
extension LoadedPlugin {
    private var secure: smaf_secure_ops { secureOps!.pointee }

    func createSecureContext(_ info: inout smaf_buffer_info) -> Result<UnsafeMutableRawPointer?, PluginFailure> {
        var ctx: UnsafeMutableRawPointer?
        var message = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let rc = serialized { secure.create_context(context, &info, &ctx, &message, message.count) }
        return rc == 0 ? .success(ctx) : .failure(PluginFailure(errno: -rc, message: cString(message) ?? "create_context failed"))
    }

    func destroySecureContext(_ buffer: UnsafeMutableRawPointer?) {
        serialized { secure.destroy_context(context, buffer) }
    }

    /// nil when granted, else the module's reason.
    func grantAccess(_ buffer: UnsafeMutableRawPointer?, _ device: UnsafePointer<smaf_constraints>,
                     _ offset: UInt64, _ length: UInt64, _ access: UInt32) -> String? {
        var reason = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let rc = serialized { secure.grant_access(context, buffer, device, offset, length, access, &reason, reason.count) }
        return rc == 0 ? nil : (cString(reason) ?? "denied (\(errnoName(-rc)))")
    }

    func revokeAccess(_ buffer: UnsafeMutableRawPointer?, _ device: UnsafePointer<smaf_constraints>,
                      _ offset: UInt64, _ length: UInt64, _ access: UInt32) {
        serialized { secure.revoke_access(context, buffer, device, offset, length, access) }
    }

    /// nil when the CPU may map, else the module's reason.
    func allowCPUAccess(_ buffer: UnsafeMutableRawPointer?, _ access: UInt32) -> String? {
        var reason = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let ok = serialized { secure.allow_cpu_access(context, buffer, access, &reason, reason.count) }
        return ok == 1 ? nil : (cString(reason) ?? "denied")
    }
}

/// A NUL-terminated C buffer as a String, nil when empty.
func cString(_ buffer: [CChar]) -> String? {
    let s = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return s.isEmpty ? nil : s
}
