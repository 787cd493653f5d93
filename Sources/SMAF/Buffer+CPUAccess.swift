import Glibc
import SMAFSys

/// CPU access: the buffer mapped for the duration of a closure. Each access
/// is registered under the buffer's lock before the mapping exists and
/// unregistered after it is gone, so a release can wait for it (and a
/// secure buffer's CPU grant is revoked before the release scrubs).
extension Buffer {
    public enum CPUAccess: Sendable {
        case read, write, readWrite
        var secure: SecureAccess {
            switch self { case .read: .read; case .write: .write; case .readWrite: .readWrite }
        }
        var sync: DmaBuf.SyncAccess {
            switch self { case .read: .read; case .write: .write; case .readWrite: .readWrite }
        }
        var writable: Bool { self != .read }

        /// The CPU as a device, as a secure module sees it and as the merge does.
        var device: DeviceConstraints {
            var cpu = DeviceConstraints(name: "cpu", usage: writable ? [.cpuRead, .cpuWrite] : [.cpuRead])
            cpu.cpuAccess = true
            return cpu
        }
    }

    /// Maps the buffer for the CPU for the duration of `body`, bracketed by
    /// DMA_BUF_IOCTL_SYNC start/end on dma-bufs so caches are coherent.
    /// Allocates on first use (with CPU access joined to the constraints).
    /// A secure buffer is mapped only if its module allows the CPU `access`,
    /// and the CPU holds a grant only while `body` runs.
    public func withCPUAccess<R>(_ access: CPUAccess, _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        let (live, grant) = try beginCPUAccess(access)
        defer { endCPUAccess(grant) }
        return try mapped(live, access, body)
    }

    /// Registers this thread as an accessor, with the memory (allocated if
    /// needed) and, for a secure buffer, the CPU's grant.
    private func beginCPUAccess(_ access: CPUAccess) throws(SMAFError) -> (LiveAllocation, SecureSession.GrantID?) {
        try state.withLock { (s) throws(SMAFError) in
            guard !s.released else { throw SMAFError(.unsupported, "map: buffer was released") }
            var grant: SecureSession.GrantID?
            if let secure = s.secure {
                if let refusal = secure.cpuRefusal(access.secure) {
                    throw SMAFError(.accessDenied, "map: secure module \(secure.module.name) denies CPU \(access.secure) access: \(refusal)")
                }
                let live = try live(&s)
                grant = try secure.grant(access.device, length: live.info.size, access: access.secure)
            } else if s.live == nil && !s.constraints.combined.cpuAccess {
                var next = s.constraints
                try next.add(access.device)
                s.constraints = next
            }
            let live = try live(&s)
            s.cpuAccessors.append(pthread_self())
            return (live, grant)
        }
    }

    /// Unregisters this thread's access (revoking its CPU grant first) and,
    /// when a release was deferred to the last accessor, finishes it.
    private func endCPUAccess(_ grant: SecureSession.GrantID?) {
        let ending: Ending? = state.withLock { s in
            if let grant { s.secure?.revoke(grant) }
            if let i = s.cpuAccessors.lastIndex(where: { pthread_equal($0, pthread_self()) != 0 }) { s.cpuAccessors.remove(at: i) }
            guard s.releaseDeferred, s.cpuAccessors.isEmpty else { return nil }
            s.releaseDeferred = false
            return Ending(&s)
        }
        guard let ending else { return }
        do { try ending.finish(self) } catch { registry.core.log(.error, "buffer \(id): \(error.message)") }
    }

    /// Maps, syncs for the CPU, runs `body`, syncs back and unmaps.
    func mapped<R>(_ live: LiveAllocation, _ access: CPUAccess, _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        guard live.info.cpuMappable else {
            throw SMAFError(.unsupported, "map: \(live.info.allocator) memory is not CPU-mappable")
        }
        let mapping = try Mapping(fd: live.fd, length: Int(live.info.size), writable: access.writable,
                                  context: "\(live.info.allocator) buffer")
        if live.info.isDmaBuf { try DmaBuf.beginCPUAccess(live.fd, access.sync) }
        defer { if live.info.isDmaBuf { try? DmaBuf.endCPUAccess(live.fd, access.sync) } }
        return try body(mapping.bytes)
    }

    /// Zeroes the buffer's memory, if it has any: a pooled buffer's scrub
    /// before it is handed out again.
    package func zeroFill() throws {
        guard let live = state.withLock({ $0.live }) else { return }
        try zeroFill(live)
    }

    /// Zeroes all of `live`'s memory through a writable mapping, bracketed by
    /// DMA_BUF_IOCTL_SYNC: the scrub of secure buffers on release and of
    /// pooled buffers before they are handed out again.
    func zeroFill(_ live: LiveAllocation) throws {
        try mapped(live, .write) { bytes in
            if let base = bytes.baseAddress { memset(base, 0, bytes.count) }
        }
    }
}
