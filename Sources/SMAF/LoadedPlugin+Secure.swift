import CSMAFPlugin
import Glibc

/// Calls into a secure module's ops (`kind == .secureModule` only).
extension LoadedPlugin {
    /// The secure ops, whose every op the loader checked is set.
    private var secure: smaf_secure_ops {
        guard case .secure(let ops) = entryPoints else { preconditionFailure("\(name) is not a secure module") }
        return ops
    }

    func createSecureContext(_ info: inout smaf_buffer_info) -> Result<UnsafeMutableRawPointer?, PluginFailure> {
        var ctx: UnsafeMutableRawPointer?
        var message = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let rc = serialized { secure.create_context!(context, &info, &ctx, &message, message.count) }
        switch PluginStatus(rc) {
        case .success: return .success(ctx)
        case .failure(let errno): return .failure(PluginFailure(errno: errno, message: cString(message) ?? "create_context failed"))
        case .invalid(let code):
            // Fail closed: a context the module may have made is never used (nor destroyed: it may be garbage).
            return .failure(PluginFailure(errno: EPROTO, message: PluginStatus.invalidCode("create_context()", code)))
        }
    }

    func destroySecureContext(_ buffer: UnsafeMutableRawPointer?) {
        serialized { secure.destroy_context!(context, buffer) }
    }

    /// nil when granted, else the module's reason.
    func grantAccess(_ buffer: UnsafeMutableRawPointer?, _ device: UnsafePointer<smaf_constraints>,
                     _ offset: UInt64, _ length: UInt64, _ access: UInt32) -> String? {
        var reason = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let rc = serialized { secure.grant_access!(context, buffer, device, offset, length, access, &reason, reason.count) }
        switch PluginStatus(rc) {
        case .success: return nil
        case .failure(let errno): return cString(reason) ?? "denied (\(errnoName(errno)))"
        // Fail closed: anything but 0 is a refusal.
        case .invalid(let code): return PluginStatus.invalidCode("grant_access()", code)
        }
    }

    func revokeAccess(_ buffer: UnsafeMutableRawPointer?, _ device: UnsafePointer<smaf_constraints>,
                      _ offset: UInt64, _ length: UInt64, _ access: UInt32) {
        serialized { secure.revoke_access!(context, buffer, device, offset, length, access) }
    }

    /// nil when the CPU may map, else the module's reason.
    func allowCPUAccess(_ buffer: UnsafeMutableRawPointer?, _ access: UInt32) -> String? {
        var reason = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let answer = serialized { secure.allow_cpu_access!(context, buffer, access, &reason, reason.count) }
        switch answer {
        case 1: return nil
        case 0: return cString(reason) ?? "denied"
        default: return PluginStatus.invalidVerdict("allow_cpu_access()", answer)
        }
    }
}
