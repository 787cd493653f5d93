import Glibc
import SMAFSys
import Synchronization

/// A buffer whose memory is chosen late. It holds nothing until the first
/// export, CPU map or `materialize()`, so every attached device has had its
/// say. After that a device may still attach, but only if the memory fits it.
/// Thread-safe; the memory goes back to its allocator when the buffer is
/// released or deinitialized.
///
/// One lock guards everything below, and it is a lock with a condition:
/// a release waits for every CPU access in flight to end before it revokes,
/// scrubs and frees, and once a release has started nothing new may map,
/// export or attach.
public final class Buffer: Sendable {
    let registry: AllocatorRegistry

    struct State {
        /// What the buffer is asked to be; its forced allocator may change until it has memory.
        var request: BufferRequest
        var constraints = MergedConstraints()
        var live: LiveAllocation?
        /// What the selection did (the explanation is built from it when read).
        var record: SelectionRecord?
        var secure: SecureSession?
        /// Set once, when a release (or a pool's recycle) starts.
        var released = false
        /// The threads inside `withCPUAccess` on this buffer now.
        var cpuAccessors: [pthread_t] = []
        /// release() was called from inside a CPU access on this buffer: the
        /// last accessor to leave finishes it (waiting would deadlock).
        var releaseDeferred = false
        /// An fd for this memory left smaf's hands (export): a pool must not
        /// hand the memory to anyone else while such an fd may still reach it.
        var exported = false

        var accessedByThisThread: Bool { cpuAccessors.contains { pthread_equal($0, pthread_self()) != 0 } }
    }
    let state: ConditionMutex<State>
    /// Names the buffer in secure modules' logs.
    public let id: UInt64

    private static let nextID = Atomic<UInt64>(1)

    init(registry: AllocatorRegistry, request: BufferRequest) {
        self.registry = registry
        state = ConditionMutex(State(request: request))
        id = Buffer.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// A buffer born with memory: what `surrenderMemory()` took from an
    /// earlier buffer, handed out again by a `BufferPool`.
    package init(registry: AllocatorRegistry, request: BufferRequest, reusing memory: SurrenderedMemory) {
        self.registry = registry
        state = ConditionMutex(State(request: request, constraints: memory.constraints, live: memory.live, record: memory.record))
        id = Buffer.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// A buffer born with memory a prepared choice just allocated.
    init(registry: AllocatorRegistry, request: BufferRequest, constraints: MergedConstraints, live: LiveAllocation, outcome: SelectionRecord) {
        self.registry = registry
        state = ConditionMutex(State(request: request, constraints: constraints, live: live, record: outcome))
        id = Buffer.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    deinit {
        // Nobody holds the buffer any more, so no access is in flight.
        do { try release() } catch { registry.core.log(.error, "buffer \(id): \(error.message)") }
    }

    /// What the buffer was asked to be, with the allocator forced so far.
    public var request: BufferRequest { state.withLock { $0.request } }
    /// The devices attached so far.
    public var devices: [DeviceConstraints] { state.withLock { $0.constraints.devices } }
    public var constraints: MergedConstraints { state.withLock { $0.constraints } }
    /// Every allocator's verdict, once the buffer has memory (or failed to get it).
    public var explanation: Explanation? { state.withLock { $0.record }?.explanation }
    /// nil until the buffer has memory.
    public var allocation: Allocation? { state.withLock { $0.live?.info } }

    /// The inode behind the memory's fd, nil without memory: tells one
    /// allocation from another (a pool's reuse) without exporting an fd.
    var memoryInode: UInt64? {
        state.withLock { s in
            var st = stat()
            guard let live = s.live, fstat(live.fd, &st) == 0 else { return nil }
            return UInt64(st.st_ino)
        }
    }

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
                if let reason = AllocationFit.deviceMisfits(live.info, device).first ?? live.plugin.match(
                    CallStructs(request: s.request, size: live.info.size, modifiers: live.info.modifier.map { [$0] } ?? [], constraints: next)) {
                    throw SMAFError(.lateAttachRefused,
                                    "late attach of \(device.name) refused: the buffer already has \(live.info.allocator) memory and \(reason)")
                }
                _ = try s.secure?.grant(device, length: live.info.size, access: SecureAccess(usage: device.usage))
            }
            s.constraints = next
        }
    }

    /// Forces the allocator named `name` on the buffer (nil: the core
    /// chooses again), as `BufferRequest.allocator` would have: the forced
    /// allocator is a property of the request until the buffer has memory.
    /// Throws for a name no loaded allocator has, and once the buffer has
    /// memory or was released.
    public func force(allocator name: String?) throws(SMAFError) {
        if let name { _ = try registry.forcedPlugin(name) }
        try state.withLock { (s) throws(SMAFError) in
            guard !s.released else { throw SMAFError(.unsupported, "allocator: buffer was released") }
            if let live = s.live {
                throw SMAFError(.unsupported, "allocator: the buffer already has \(live.info.allocator) memory; force an allocator before its first use")
            }
            s.request.allocator = name
        }
    }

    /// Chooses the allocator and allocates, if not done yet.
    @discardableResult
    public func materialize() throws(SMAFError) -> Allocation {
        try state.withLock { (s) throws(SMAFError) in try live(&s).info }
    }

    /// The memory, allocated now if the buffer has none yet. Lock held.
    func live(_ s: inout State) throws(SMAFError) -> LiveAllocation {
        guard !s.released else { throw SMAFError(.unsupported, "buffer was released") }
        if let live = s.live { return live }
        var request = s.request
        // A module that denies CPU writes gets fds the kernel keeps read-only.
        if let secure = s.secure, secure.cpuRefusal(.write) != nil { request.readOnly = true }
        let prepared = try registry.prepared(request, s.constraints)
        try prepared.requireHeadroom()
        let (selected, record) = prepared.allocateLive()
        s.record = record
        guard let live = selected else { throw record.failure() }
        // Every device attached so far must be granted before anyone gets
        // the memory; a refusal rolls the grants back and frees it.
        try s.secure?.grantAll(s.constraints.devices, length: live.info.size)
        s.live = live
        return live
    }

    /// A new fd for the buffer's memory (a dma-buf where the allocator made
    /// one), owned by the caller. Allocates on first use.
    public func exportFD() throws(SMAFError) -> UniqueFD {
        try state.withLock { (s) throws(SMAFError) -> UniqueFD in
            if s.secure != nil {
                throw SMAFError(.accessDenied, "export: a secure buffer is exported to a named device: exportFD(for: DEVICE)")
            }
            return try export(&s)
        }
    }

    /// A new fd for `device` (an attached device's name). A secure buffer
    /// hands one out only to a device its module granted access.
    public func exportFD(for device: String) throws(SMAFError) -> UniqueFD {
        try state.withLock { (s) throws(SMAFError) -> UniqueFD in
            _ = try live(&s)
            guard s.constraints.devices.contains(where: { $0.name == device }) else {
                throw SMAFError(.accessDenied, "export: device \(device) is not attached to this buffer (attached: \(s.constraints.devices.map(\.name).joined(separator: ", ")))")
            }
            if let secure = s.secure, !secure.isGranted(device) {
                throw SMAFError(.accessDenied, "export: secure module \(secure.module.name) granted device \(device) no access")
            }
            return try export(&s)
        }
    }

    /// The dup happens under the lock, so a release or recycle that starts
    /// after it knows an fd is out.
    private func export(_ s: inout State) throws(SMAFError) -> UniqueFD {
        let live = try live(&s)
        s.exported = true
        do { return try UniqueFD.duplicate(live.fd, context: "\(live.info.allocator) buffer") }
        catch { throw .system(error, "export") }
    }

    /// Gives the memory back now rather than at deinit. Waits for CPU
    /// accesses in flight on other threads; from inside one on this thread,
    /// the release happens when that access ends. For a secure buffer every
    /// grant is revoked and the memory scrubbed before its allocator gets it
    /// back; a scrub that fails is thrown (the memory is freed regardless).
    /// Idempotent.
    public func release() throws(SMAFError) {
        let proceed: Bool = state.withLock { s in
            guard !s.released else { return false }
            s.released = true
            if s.accessedByThisThread {
                s.releaseDeferred = true
                return false
            }
            return true
        }
        guard proceed else { return }
        let ending = state.withLock(when: { $0.cpuAccessors.isEmpty }) { Ending(&$0) }
        try ending.finish(self)
    }

    /// What a release takes out of the state under the lock and finishes
    /// outside it: nobody can reach either once `released` is set and no
    /// CPU access is left.
    struct Ending: ~Copyable {
        let live: LiveAllocation?
        let secure: SecureSession?

        init(_ s: inout State) {
            live = s.live.take()
            // The session stays (closed) so its log can still be read.
            secure = s.secure
        }

        /// Revokes, scrubs, destroys the secure context; then the memory goes
        /// back to its plugin when `live` is dropped.
        consuming func finish(_ buffer: Buffer) throws(SMAFError) {
            guard let secure else { return }
            let live = self.live
            try secure.close { () throws(SMAFError) -> String in
                guard let live else { return "no memory to scrub" }
                return try buffer.scrub(live)
            }
        }
    }

    /// The memory of a buffer that ended without giving it back, and what a
    /// new buffer needs to carry it on. Still one release path: the
    /// allocation goes back to its plugin when the last holder drops it.
    package struct SurrenderedMemory: Sendable {
        let live: LiveAllocation
        let constraints: MergedConstraints
        let record: SelectionRecord?
        /// An fd was exported from it: reuse only once nothing else references it.
        package let exported: Bool

        package var info: Allocation { live.info }
        /// The allocator's fd; borrow it only while this value lives.
        package var fd: Int32 { live.fd }
    }

    /// Ends this buffer like `release()` but hands its memory to the caller
    /// (the pool) instead of the allocator, once every CPU access in flight
    /// has ended. nil, and nothing changes, if the buffer has no memory, was
    /// released, is secure (secure memory goes back through its module,
    /// never to a pool) or is being accessed by this very thread.
    package func surrenderMemory() -> SurrenderedMemory? {
        let proceed: Bool = state.withLock { s in
            guard !s.released, s.secure == nil, s.live != nil, !s.accessedByThisThread else { return false }
            s.released = true
            return true
        }
        guard proceed else { return nil }
        return state.withLock(when: { $0.cpuAccessors.isEmpty }) { s in
            s.live.take().map { SurrenderedMemory(live: $0, constraints: s.constraints, record: s.record, exported: s.exported) }
        }
    }
}
