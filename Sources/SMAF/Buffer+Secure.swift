import Glibc
import SMAFSys

/// Secure buffers (SMAF's secure flag): a module decides which devices may
/// reach the memory and whether the CPU may map it.
extension Buffer {
    /// Marks the buffer secure before it has memory, with `module` (a
    /// loaded secure module's name) or the highest ranked one. As in SMAF,
    /// marking a buffer secure with no secure module loaded is an error.
    public func markSecure(module name: String? = nil) throws(SMAFError) {
        let module = try registry.secureModule(named: name)
        try stateMarkSecure(SecureSession(module: module, bufferID: id))
    }

    public var isSecure: Bool { secureSession != nil }

    /// Every decision the secure module made for this buffer, in order:
    /// device, byte range, direction and verdict.
    public var securityLog: [String] { secureSession?.log ?? [] }

    /// Would the secure module let the CPU map the buffer for `access`?
    /// nil if yes (or if the buffer is not secure), else the module's reason.
    public func cpuAccessRefusal(_ access: CPUAccess) -> String? {
        secureSession?.cpuRefusal(access.secure)
    }

    /// CPU access to a secure buffer: the module must allow it, and the CPU
    /// holds a grant (a device named "cpu") only while `body` runs.
    func withSecureCPUAccess<R>(_ secure: SecureSession, _ access: CPUAccess,
                                _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        if let refusal = secure.cpuRefusal(access.secure) {
            throw SMAFError(.accessDenied, "map: secure module \(secure.module.name) denies CPU \(access.secure) access: \(refusal)")
        }
        let live = try liveAllocation()
        var cpu = DeviceConstraints(name: "cpu", usage: access.writable ? [.cpuRead, .cpuWrite] : [.cpuRead])
        cpu.cpuAccess = true
        try grantLocked(secure, cpu, length: live.info.size, access: access.secure)
        defer { revokeLocked(secure, cpu.name) }
        return try mapped(live, access, body)
    }

    /// Zeroes the memory through a writable mapping, after every grant is
    /// gone and before the context is destroyed. A read-only allocation
    /// cannot be written here; its allocator zeroes memory when it hands it
    /// out again (dma-heaps and dumb buffers both do).
    func scrub(_ live: LiveAllocation) -> String {
        guard live.info.cpuMappable, !live.info.readOnly else {
            return "scrub: \(live.info.allocator) memory is \(live.info.readOnly ? "read-only to smaf" : "not CPU-mappable"); its allocator zero-fills on allocation"
        }
        do {
            try zeroFill(live)
            return "scrub: zeroed \(live.info.size) bytes"
        } catch {
            return "scrub failed: \(error)"
        }
    }
}

extension Buffer {
    /// Zeroes all of `live`'s memory through a writable mapping, bracketed by
    /// DMA_BUF_IOCTL_SYNC: the scrub of secure buffers on release and of
    /// pooled buffers before they are handed out again.
    func zeroFill(_ live: LiveAllocation) throws {
        try mapped(live, .write) { bytes in
            if let base = bytes.baseAddress { memset(base, 0, bytes.count) }
        }
    }
}

extension AllocatorRegistry {
    /// The named secure module, or the highest ranked one.
    public func secureModule(named name: String?) throws(SMAFError) -> LoadedPlugin {
        if let name {
            guard let m = secureModules.first(where: { $0.name == name }) else {
                let known = secureModules.map(\.name).joined(separator: ", ")
                throw SMAFError(.unknownAllocator, "secure module: none named '\(name)' is loaded (known: \(known.isEmpty ? "none" : known))\(refusal(of: name))")
            }
            return m
        }
        guard let m = secureModules.first else {
            throw SMAFError(.accessDenied, "secure: no secure module is loaded, so no buffer can be marked secure (SMAF_PLUGIN_PATH, smaf list)")
        }
        return m
    }

    /// "; it was refused: ..." when the loader refused a plugin of that name.
    private func refusal(of name: String) -> String {
        loadWarnings.first { $0.contains("/libsmafplugin_\(name).so:") || $0.contains("'\(name)'") }.map { "; \($0)" } ?? ""
    }
}
