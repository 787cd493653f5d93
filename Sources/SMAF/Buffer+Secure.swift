import Glibc
import SMAFSys

/// Secure buffers (SMAF's secure flag): a module decides which devices may
/// reach the memory and whether the CPU may map it.
extension Buffer {
    /// Marks the buffer secure before it has memory, with `module` (a
    /// loaded secure module's name) or the highest ranked one above rank
    /// none. As in SMAF, marking a buffer secure with no secure module
    /// loaded is an error.
    public func markSecure(module name: String? = nil) throws(SMAFError) {
        let module = try registry.secureModule(named: name)
        let session = try SecureSession(module: module, bufferID: id)
        try state.withLock { (s) throws(SMAFError) in
            guard !s.released else { throw SMAFError(.unsupported, "secure: buffer was released") }
            guard s.live == nil else {
                throw SMAFError(.unsupported, "secure: the buffer already has memory; mark it secure before its first use")
            }
            guard s.secure == nil else { throw SMAFError(.unsupported, "secure: the buffer is already secure") }
            s.secure = session
        }
    }

    /// Undoes `markSecure` before the buffer has memory: the module's
    /// context is destroyed (nothing was granted yet). Nothing happens to a
    /// buffer that is not secure.
    public func unmarkSecure() throws(SMAFError) {
        let session: SecureSession? = try state.withLock { (s) throws(SMAFError) in
            guard !s.released else { throw SMAFError(.unsupported, "secure: buffer was released") }
            guard s.live == nil else {
                throw SMAFError(.unsupported, "secure: the buffer already has memory; a secure buffer stays secure")
            }
            return s.secure.take()
        }
        try session?.close { "not secure any more before it had memory: nothing to scrub" }
    }

    var secureSession: SecureSession? { state.withLock { $0.secure } }

    public var isSecure: Bool { secureSession != nil }

    /// Every decision the secure module made for this buffer, in order:
    /// device, byte range, direction and verdict.
    public var securityLog: [String] { secureSession?.log ?? [] }

    /// Would the secure module let the CPU map the buffer for `access`?
    /// nil if yes (or if the buffer is not secure), else the module's reason.
    public func cpuAccessRefusal(_ access: CPUAccess) -> String? {
        secureSession?.cpuRefusal(access.secure)
    }

    /// Zeroes the memory through a writable mapping, after every grant is
    /// gone and before the context is destroyed. Memory smaf cannot write
    /// (a read-only fd) is left to its allocator only when the kernel shows
    /// that nothing else references it any more; otherwise the scrub fails.
    func scrub(_ live: LiveAllocation) throws(SMAFError) -> String {
        let info = live.info
        guard info.cpuMappable else {
            // Memory the CPU cannot map (a TEE carve-out) is its allocator's to clear.
            return "scrub: \(info.allocator) memory is not CPU-mappable; its allocator clears it"
        }
        guard info.readOnly else {
            do { try zeroFill(live) } catch {
                throw SMAFError(.system, "scrub of secure buffer \(id) (\(info.size) bytes of \(info.allocator) memory) failed: \(error)")
            }
            return "scrub: zeroed \(info.size) bytes"
        }
        switch info.isDmaBuf ? DmaBuf.otherReferences(live.fd) : nil {
        case 0?:
            return "scrub: not needed: the memory is read-only to smaf and nothing else references it; \(info.allocator) frees it now"
        case let others?:
            throw SMAFError(.accessDenied, "scrub of secure buffer \(id) impossible: its \(info.allocator) memory is read-only to smaf and \(others) other reference(s) (an exported fd, a mapping, a device's import) still reach it")
        case nil:
            throw SMAFError(.accessDenied, "scrub of secure buffer \(id) impossible: its \(info.allocator) memory is read-only to smaf and not a dma-buf, so who still references it cannot be seen")
        }
    }
}

extension AllocatorRegistry {
    /// The named secure module, or the highest ranked one above rank none
    /// (a module of rank none, like the test module, is used only by name).
    public func secureModule(named name: String?) throws(SMAFError) -> LoadedPlugin {
        if let name {
            guard let m = secureModules.first(where: { $0.name == name }) else {
                let known = secureModules.map(\.name).joined(separator: ", ")
                throw SMAFError(.unknownAllocator, "secure module: none named '\(name)' is loaded (known: \(known.isEmpty ? "none" : known))\(refusal(of: name))")
            }
            return m
        }
        guard let m = secureModules.first(where: { $0.rank != .none }) else {
            let unranked = secureModules.map(\.name)
            let detail = unranked.isEmpty ? "no secure module is loaded"
                : "no secure module above rank none is loaded (\(unranked.joined(separator: ", ")): used only when named)"
            // A module that was refused (a broken rules file) must not leave the request to a weaker one.
            let refused = loadWarnings.isEmpty ? "" : "; refused at load: " + loadWarnings.map(\.description).joined(separator: "; ")
            throw SMAFError(.accessDenied, "secure: \(detail), so no buffer can be marked secure (SMAF_PLUGIN_PATH, smaf list)\(refused)")
        }
        return m
    }

    /// "; it was refused: ..." when the loader refused a plugin of that name.
    private func refusal(of name: String) -> String {
        loadWarnings.first { $0.plugin == name || $0.path.hasSuffix("/libsmafplugin_\(name).so") }.map { "; \($0)" } ?? ""
    }
}
