import CSMAFPlugin
import Glibc
import Synchronization

/// One buffer's relation with its secure module: the context, the grants
/// in force, and the log of every decision. Thread-safe on its own (one
/// lock around every module call), so a log read or a CPU check never races
/// a grant. Its one release path is `close(scrub:)`: revoke every grant,
/// scrub, destroy the context, in that order; after it nothing is granted.
final class SecureSession: Sendable {
    /// One grant, so the thread that made it revokes exactly it (two CPU
    /// accesses in flight hold two grants).
    struct GrantID: Hashable, Sendable { fileprivate let value: UInt64 }

    struct Grant: Sendable {
        let id: GrantID
        let device: DeviceConstraints
        let length: UInt64
        let access: SecureAccess
    }

    private struct State: ~Copyable {
        var grants: [Grant] = []
        var log: [String] = []
        var closed = false
        var nextGrant: UInt64 = 1
    }

    let module: LoadedPlugin
    /// The module's per-buffer context; an opaque pointer it owns.
    private nonisolated(unsafe) let context: UnsafeMutableRawPointer?
    private let state = Mutex(State())

    init(module: LoadedPlugin, bufferID: UInt64) throws(SMAFError) {
        self.module = module
        var info = smaf_buffer_info()
        info.struct_size = UInt32(MemoryLayout<smaf_buffer_info>.size)
        info.id = bufferID
        switch module.createSecureContext(&info) {
        case .success(let ctx): context = ctx
        case .failure(let f):
            throw SMAFError(.accessDenied, "secure module \(module.name): create_context failed: \(withErrno(f.message, f.errno))")
        }
        state.withLock { note(&$0, "buffer \(bufferID): secure context created by \(module.name)") }
    }

    private func note(_ s: inout State, _ line: String) {
        s.log.append(line)
        module.core.log(.info, line, plugin: module.name)
    }

    var log: [String] { state.withLock { $0.log } }

    /// Why the CPU may not map for `access`, or nil if it may.
    func cpuRefusal(_ access: SecureAccess) -> String? {
        state.withLock { s in
            guard !s.closed else { return "the buffer was released" }
            let refusal = module.allowCPUAccess(context, access.rawValue)
            note(&s, "cpu \(access): \(refusal.map { "denied: \($0)" } ?? "allowed")")
            return refusal
        }
    }

    /// Grants `device` the whole buffer, or throws naming the device.
    @discardableResult
    func grant(_ device: DeviceConstraints, length: UInt64, access: SecureAccess) throws(SMAFError) -> GrantID {
        try state.withLock { (s) throws(SMAFError) in try grant(&s, device, length: length, access: access) }
    }

    private func grant(_ s: inout State, _ device: DeviceConstraints, length: UInt64, access: SecureAccess) throws(SMAFError) -> GrantID {
        let range = "bytes 0..<\(length)"
        guard !s.closed else {
            throw SMAFError(.accessDenied, "secure module \(module.name): no grant for \(device.name): the buffer was released")
        }
        let c = CallStructs(devices: [device])
        if let refusal = module.grantAccess(context, c.devicePointers[0]!, 0, length, access.rawValue) {
            note(&s, "grant \(device.name) \(range) \(access): denied: \(refusal)")
            throw SMAFError(.accessDenied, "secure module \(module.name) denies device \(device.name) \(access) access to \(range): \(refusal)")
        }
        note(&s, "grant \(device.name) \(range) \(access): granted")
        let id = GrantID(value: s.nextGrant)
        s.nextGrant += 1
        s.grants.append(Grant(id: id, device: device, length: length, access: access))
        return id
    }

    /// Grants every device in order; if one is refused, the grants already
    /// made by this call are revoked before the error is thrown.
    func grantAll(_ devices: [DeviceConstraints], length: UInt64) throws(SMAFError) {
        try state.withLock { (s) throws(SMAFError) in
            let before = s.grants.count
            do throws(SMAFError) {
                for d in devices { _ = try grant(&s, d, length: length, access: SecureAccess(usage: d.usage)) }
            } catch {
                while s.grants.count > before { revoke(&s, s.grants.removeLast()) }
                throw error
            }
        }
    }

    func isGranted(_ name: String) -> Bool { state.withLock { s in s.grants.contains { $0.device.name == name } } }

    /// Revokes one grant made by `grant`; nothing if it is gone already.
    func revoke(_ id: GrantID) {
        state.withLock { s in
            guard let i = s.grants.firstIndex(where: { $0.id == id }) else { return }
            revoke(&s, s.grants.remove(at: i))
        }
    }

    private func revoke(_ s: inout State, _ g: Grant) {
        let c = CallStructs(devices: [g.device])
        module.revokeAccess(context, c.devicePointers[0]!, 0, g.length, g.access.rawValue)
        note(&s, "revoke \(g.device.name) bytes 0..<\(g.length) \(g.access)")
    }

    /// Revokes everything (newest first), runs `scrub` with no device able
    /// to reach the memory, then destroys the context, whatever the scrub
    /// did. A scrub that throws is logged and rethrown. Idempotent.
    func close(scrub: () throws(SMAFError) -> String) throws(SMAFError) {
        try state.withLock { (s) throws(SMAFError) in
            guard !s.closed else { return }
            s.closed = true
            while let g = s.grants.popLast() { revoke(&s, g) }
            defer {
                module.destroySecureContext(context)
                note(&s, "secure context destroyed")
            }
            do throws(SMAFError) {
                note(&s, try scrub())
            } catch {
                note(&s, "scrub failed: \(error.message)")
                throw error
            }
        }
    }

    deinit {
        try? close { "no memory to scrub" }
    }
}
