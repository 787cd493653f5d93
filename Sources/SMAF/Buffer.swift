import Glibc
import SMAFSys
import Synchronization

/// A buffer whose memory is chosen late. It holds nothing until the first
/// export, CPU map or `materialize()`, so every attached device has had its
/// say. After that a device may still attach, but only if the memory fits it.
/// Thread-safe; the memory goes back to its allocator when the buffer is
/// released or deinitialized.
public final class Buffer: Sendable {
    public let request: BufferRequest
    let registry: AllocatorRegistry

    private struct State {
        var constraints = MergedConstraints()
        var live: LiveAllocation?
        var explanation: Explanation?
        var secure: SecureSession?
        var released = false
    }
    private let state: Mutex<State>
    /// Names the buffer in secure modules' logs.
    public let id: UInt64

    private static let nextID = Atomic<UInt64>(1)

    init(registry: AllocatorRegistry, request: BufferRequest) {
        self.registry = registry
        self.request = request
        state = Mutex(State())
        id = Buffer.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// A buffer born with memory: what `surrenderMemory()` took from an
    /// earlier buffer, handed out again by a `BufferPool`.
    init(registry: AllocatorRegistry, request: BufferRequest, reusing memory: SurrenderedMemory) {
        self.registry = registry
        self.request = request
        state = Mutex(State(constraints: memory.constraints, live: memory.live, explanation: memory.explanation))
        id = Buffer.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// The memory of a buffer that ended without giving it back, and what a
    /// new buffer needs to carry it on. Still one release path: the
    /// allocation goes back to its plugin when the last holder drops it.
    struct SurrenderedMemory: Sendable {
        let live: LiveAllocation
        let constraints: MergedConstraints
        let explanation: Explanation?
    }

    /// Ends this buffer like `release()` but hands its memory to the caller
    /// (the pool) instead of the allocator. nil, and nothing changes, if the
    /// buffer has no memory, was released or is secure (secure memory goes
    /// back through its module, never to a pool).
    func surrenderMemory() -> SurrenderedMemory? {
        state.withLock { s in
            guard !s.released, s.secure == nil, let live = s.live else { return nil }
            s.released = true
            s.live = nil
            return SurrenderedMemory(live: live, constraints: s.constraints, explanation: s.explanation)
        }
    }

    deinit { release() }

    /// The devices attached so far.
    public var devices: [DeviceConstraints] { state.withLock { $0.constraints.devices } }
    public var constraints: MergedConstraints { state.withLock { $0.constraints } }
    /// Every allocator's verdict, once the buffer has memory (or failed to get it).
    public var explanation: Explanation? { state.withLock { $0.explanation } }
    /// nil until the buffer has memory.
    public var allocation: Allocation? { state.withLock { $0.live?.info } }

    /// Adds a device. Before allocation its constraints join the merge (a
    /// conflict is an error and the device is not added). After allocation
    /// the device is checked against the memory there is and refused with
    /// the reason if it does not fit.
    public func attach(_ device: DeviceConstraints) throws(SMAFError) {
        try state.withLock { (s) throws(SMAFError) in
            guard !s.released else { throw SMAFError(.unsupported, "attach: buffer was released") }
            var next = s.constraints
            do throws(SMAFError) { try next.add(device) } catch {
                throw s.live == nil ? error : SMAFError(.lateAttachRefused, "late attach of \(device.name): \(error.message)")
            }
            if let live = s.live {
                if let reason = LateAttach.misfit(device, live.info) ?? live.plugin.match(
                    CallStructs(request: request, size: live.info.size, modifiers: live.info.modifier.map { [$0] } ?? [], constraints: next)) {
                    throw SMAFError(.lateAttachRefused,
                                    "late attach of \(device.name) refused: the buffer already has \(live.info.allocator) memory and \(reason)")
                }
                try s.secure?.grant(device, length: live.info.size, access: SecureAccess(usage: device.usage))
            }
            s.constraints = next
        }
    }

    /// Chooses the allocator and allocates, if not done yet.
    @discardableResult
    public func materialize() throws(SMAFError) -> Allocation {
        try live().info
    }

    private func live() throws(SMAFError) -> LiveAllocation {
        try state.withLock { (s) throws(SMAFError) -> LiveAllocation in
            guard !s.released else { throw SMAFError(.unsupported, "buffer was released") }
            if let live = s.live { return live }
            var request = self.request
            // A module that denies CPU writes gets fds the kernel keeps read-only.
            if let secure = s.secure, secure.cpuRefusal(.write) != nil { request.readOnly = true }
            let selection = try registry.select(request, s.constraints)
            s.explanation = selection.explanation
            guard let (plugin, raw) = selection.winner else { throw selection.failure() }
            let live = LiveAllocation(plugin: plugin, raw: raw)
            // Every device attached so far must be granted before anyone gets
            // the memory; a refusal rolls the grants back and frees it.
            try s.secure?.grantAll(s.constraints.devices, length: live.info.size)
            s.live = live
            return live
        }
    }

    /// A new fd for the buffer's memory (a dma-buf where the allocator made
    /// one), owned by the caller. Allocates on first use.
    public func exportFD() throws(SMAFError) -> UniqueFD {
        if isSecure {
            throw SMAFError(.accessDenied, "export: a secure buffer is exported to a named device: exportFD(for: DEVICE)")
        }
        return try duplicate(try live())
    }

    /// A new fd for `device` (an attached device's name). A secure buffer
    /// hands one out only to a device its module granted access.
    public func exportFD(for device: String) throws(SMAFError) -> UniqueFD {
        let live = try live()
        guard devices.contains(where: { $0.name == device }) else {
            throw SMAFError(.accessDenied, "export: device \(device) is not attached to this buffer (attached: \(devices.map(\.name).joined(separator: ", ")))")
        }
        if let secure = state.withLock({ $0.secure }), secure.isGranted(device) == nil {
            throw SMAFError(.accessDenied, "export: secure module \(secure.module.name) granted device \(device) no access")
        }
        return try duplicate(live)
    }

    private func duplicate(_ live: LiveAllocation) throws(SMAFError) -> UniqueFD {
        do { return try UniqueFD.duplicate(live.fd, context: "\(live.info.allocator) buffer") }
        catch { throw .system(error, "export") }
    }

    public enum CPUAccess: Sendable {
        case read, write, readWrite
        var secure: SecureAccess {
            switch self { case .read: .read; case .write: .write; case .readWrite: .readWrite }
        }
        var sync: DmaBuf.SyncAccess {
            switch self { case .read: .read; case .write: .write; case .readWrite: .readWrite }
        }
        var writable: Bool { self != .read }
    }

    /// Maps the buffer for the CPU for the duration of `body`, bracketed by
    /// DMA_BUF_IOCTL_SYNC start/end on dma-bufs so caches are coherent.
    /// Allocates on first use (with CPU access joined to the constraints).
    public func withCPUAccess<R>(_ access: CPUAccess, _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        if let secure = state.withLock({ $0.secure }) {
            return try withSecureCPUAccess(secure, access, body)
        }
        if allocation == nil && !constraints.combined.cpuAccess {
            var cpu = DeviceConstraints(name: "cpu", usage: access.writable ? [.cpuRead, .cpuWrite] : [.cpuRead])
            cpu.cpuAccess = true
            try attach(cpu)
        }
        return try mapped(try live(), access, body)
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

    // Lock-taking helpers for Buffer+Secure.swift.
    var secureSession: SecureSession? { state.withLock { $0.secure } }

    func stateMarkSecure(_ session: SecureSession) throws(SMAFError) {
        try state.withLock { (s) throws(SMAFError) in
            guard !s.released else { throw SMAFError(.unsupported, "secure: buffer was released") }
            guard s.live == nil else {
                throw SMAFError(.unsupported, "secure: the buffer already has memory; mark it secure before its first use")
            }
            guard s.secure == nil else { throw SMAFError(.unsupported, "secure: the buffer is already secure") }
            s.secure = session
        }
    }

    func liveAllocation() throws(SMAFError) -> LiveAllocation { try live() }

    func grantLocked(_ secure: SecureSession, _ device: DeviceConstraints, length: UInt64, access: SecureAccess) throws(SMAFError) {
        try state.withLock { (_) throws(SMAFError) in try secure.grant(device, length: length, access: access) }
    }

    func revokeLocked(_ secure: SecureSession, _ device: String) {
        state.withLock { _ in secure.revoke(device) }
    }

    /// Gives the memory back now rather than at deinit. Idempotent.
    public func release() {
        // Taken out under the lock, dropped outside it: the plugin's release
        // runs when the last reference goes, without holding the buffer lock.
        let (live, secure) = state.withLock { s in
            s.released = true
            // The session stays (closed) so its log can still be read.
            return (s.live.take(), s.secure)
        }
        secure?.close { live.map(scrub) ?? "no memory to scrub" }
        withExtendedLifetime(live) {}
    }
}

/// Does an existing allocation suit a device that attached late? Generic
/// checks any allocator's memory can be held to; the plugin's own match()
/// runs after these.
enum LateAttach {
    static func misfit(_ d: DeviceConstraints, _ a: Allocation) -> String? {
        if d.needsKernelImport && !a.isDmaBuf { return "it is not a dma-buf, which \(d.name) must import" }
        if d.needsCPU && !a.cpuMappable { return "it is not CPU-mappable" }
        if d.contiguous && !a.contiguous { return "it is not verified physically contiguous" }
        if d.secure { return "it was not allocated as secure memory" }
        if let bits = d.dmaAddressBits, bits < 64, a.largestContiguous == 0 {
            return "its addresses are not verified below 2^\(bits)"
        }
        if let max = d.maxSize, a.size > max { return "its \(a.size) bytes exceed the max size \(max)" }
        if let max = d.maxWidth, a.width > max { return "its width \(a.width) exceeds the max width \(max)" }
        if let max = d.maxHeight, a.height > max { return "its height \(a.height) exceeds the max height \(max)" }
        for plane in a.planes where plane.stride > 0 {
            if let align = d.pitchAlignment, UInt64(plane.stride) % align != 0 {
                return "its pitch \(plane.stride) is not a multiple of \(align)"
            }
            if let max = d.maxPitch, UInt64(plane.stride) > max { return "its pitch \(plane.stride) exceeds the max pitch \(max)" }
        }
        if let formats = d.formats, let format = a.format {
            guard let f = formats.first(where: { $0.format == format }) else {
                return "its format \(format.code) is not among \(formats.map(\.format.code).joined(separator: ", "))"
            }
            if let m = a.modifier, !f.modifiers.isEmpty, !f.modifiers.contains(m) {
                return "its modifier \(m) is not among \(f.modifiers.map(\.description).joined(separator: ", "))"
            }
        }
        if let importable = d.importableFrom, !importable.contains(a.exporter) {
            return "\(d.name) cannot import dma-bufs from \(a.exporter.isEmpty ? a.allocator : a.exporter) (measured by the probe)"
        }
        return nil
    }
}
