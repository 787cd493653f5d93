import SMAF
import SMAFSys
import Synchronization

/// Recycles buffers, the role a swapchain plays in a compositor: a buffer
/// handed back with `recycle` keeps its memory, and the next `acquire` for
/// the same request and devices gets that memory again instead of a fresh
/// allocation (allocation costs page allocation and zeroing; reuse costs a
/// lookup, plus a scrub unless the caller opts out).
///
/// Buffers are matched by their request (shape, forced allocator,
/// read-only) and their devices. Selection is deterministic for a given
/// registry, so equal keys mean the same allocator, size, format and
/// modifier; the allocation each pooled buffer holds is in `contents`.
///
/// Bounded by count and bytes (the oldest pooled buffer goes first) and by
/// idle time: a buffer unused for `idleExpiry` goes back to its allocator at
/// the next pool call or `trim()`. Secure buffers are never pooled, nor is
/// memory the CPU cannot write (it could not be scrubbed).
///
/// Exported memory: an fd the first user kept would read and write the next
/// user's data, so memory whose fd was exported is handed out again only
/// once the kernel shows nothing else references it (a dma-buf's file
/// count: no kept fd, mapping or device import is left). Memory that is not
/// a dma-buf cannot be counted, so once exported it is never pooled.
public final class BufferPool: Sendable {
    public struct Limits: Sendable {
        public var maxCount: Int
        public var maxBytes: UInt64
        public var idleExpiry: Duration

        /// A swapchain's worth and then some: 16 buffers, 256 MiB, 1 s idle
        /// (the BO caches of vc4 and freedreno expire on the order of a second).
        public init(maxCount: Int = 16, maxBytes: UInt64 = 256 << 20, idleExpiry: Duration = .seconds(1)) {
            self.maxCount = maxCount
            self.maxBytes = maxBytes
            self.idleExpiry = idleExpiry
        }
    }

    public struct Statistics: Sendable, Codable, Equatable {
        /// acquire() calls served from the pool, and those that allocated.
        public var hits = 0, misses = 0
        /// Hits that were zeroed before being handed out, and their bytes.
        public var scrubs = 0, scrubbedBytes: UInt64 = 0
        /// recycle() calls that pooled the buffer, and those that released
        /// it instead (secure, not CPU-writable, already released, or
        /// exported memory that is not a dma-buf).
        public var recycled = 0, refused = 0
        /// Pooled buffers an acquire passed over because an fd exported
        /// from them (or a mapping, or an import) still reached the memory.
        public var stillReferenced = 0
        /// Pooled buffers released for the limits, and for idling too long.
        public var evicted = 0, expired = 0
        /// What the pool holds now.
        public var pooledCount = 0, pooledBytes: UInt64 = 0
    }

    public let registry: AllocatorRegistry
    public let limits: Limits
    private let log: Logger

    private struct Key: Hashable {
        var request: BufferRequest
        var devices: [DeviceConstraints]
    }

    private struct Parked {
        var key: Key
        var memory: Buffer.SurrenderedMemory
        var since: ContinuousClock.Instant
        var bytes: UInt64 { memory.info.size }

        /// Nobody but the pool reaches the memory: never exported, or
        /// exported and every other reference is gone.
        var isPrivate: Bool { !memory.exported || DmaBuf.otherReferences(memory.fd) == 0 }
    }

    private struct State {
        /// Oldest recycle first, so eviction and expiry take from the front.
        var parked: [Parked] = []
        var statistics = Statistics()
    }

    private let state = Mutex(State())

    public init(registry: AllocatorRegistry, limits: Limits = Limits()) {
        self.registry = registry
        self.limits = limits
        log = Logger(level: registry.configuration.logLevel)
    }

    /// A buffer with memory for `request` and `devices`: a pooled one if
    /// there is one (zeroed first when `scrub` is true), else a fresh one
    /// allocated now. Pass `scrub: false` only for buffers whose previous
    /// contents may be seen by the next user.
    public func acquire(_ request: BufferRequest, devices: [DeviceConstraints] = [], scrub: Bool = true) throws(SMAFError) -> Buffer {
        let key = Key(request: request, devices: devices)
        var expired: [Parked] = []
        let hit: Parked? = state.withLock { s in
            expired = Self.takeExpired(&s, before: .now - limits.idleExpiry)
            var candidates = s.parked.indices.reversed().filter { s.parked[$0].key == key }.makeIterator()
            var found: Int?
            while found == nil, let i = candidates.next() {
                if s.parked[i].isPrivate { found = i } else { s.statistics.stillReferenced += 1 }
            }
            guard let i = found else {
                s.statistics.misses += 1
                return nil
            }
            let p = s.parked.remove(at: i)
            s.statistics.hits += 1
            s.statistics.pooledCount -= 1
            s.statistics.pooledBytes -= p.bytes
            return p
        }
        withExtendedLifetime(expired) {} // released here, outside the lock
        if let hit {
            let buffer = Buffer(registry: registry, request: request, reusing: hit.memory)
            guard scrub else { return buffer }
            do {
                try buffer.zeroFill()
                state.withLock {
                    $0.statistics.scrubs += 1
                    $0.statistics.scrubbedBytes += hit.bytes
                }
                return buffer
            } catch {
                // Memory that cannot be zeroed is not handed out: drop it, allocate afresh.
                // (Not secure, so releasing it has no scrub that could fail.)
                try? buffer.release()
            }
        }
        let buffer = try registry.buffer(request, devices: devices)
        try buffer.materialize()
        return buffer
    }

    /// Takes `buffer` back: its memory waits in the pool for the next
    /// acquire() of the same request and devices, and the `buffer` object
    /// itself is over (as after `release()`: every later use throws), so a
    /// stale reference cannot reach memory someone else now holds. A
    /// buffer that cannot be pooled is released.
    public func recycle(_ buffer: Buffer) {
        let key = Key(request: buffer.request, devices: buffer.devices)
        guard let info = buffer.allocation, info.cpuMappable, !info.readOnly,
              let memory = buffer.surrenderMemory(), !memory.exported || info.isDmaBuf else {
            // A secure buffer's release scrubs; a failure there was logged by the buffer's own path.
            do { try buffer.release() } catch { log(.error, "pool: \(error.message)") }
            state.withLock { $0.statistics.refused += 1 }
            return
        }
        let now = ContinuousClock.now
        let dropped: [Parked] = state.withLock { s in
            var dropped = Self.takeExpired(&s, before: now - limits.idleExpiry)
            s.parked.append(Parked(key: key, memory: memory, since: now))
            s.statistics.recycled += 1
            s.statistics.pooledCount += 1
            s.statistics.pooledBytes += memory.info.size
            while !s.parked.isEmpty && (s.parked.count > limits.maxCount || s.statistics.pooledBytes > limits.maxBytes) {
                let p = s.parked.removeFirst()
                s.statistics.evicted += 1
                s.statistics.pooledCount -= 1
                s.statistics.pooledBytes -= p.bytes
                dropped.append(p)
            }
            return dropped
        }
        withExtendedLifetime(dropped) {}
    }

    /// Releases the pooled buffers idle longer than `limits.idleExpiry`.
    public func trim() {
        let expired = state.withLock { Self.takeExpired(&$0, before: .now - limits.idleExpiry) }
        withExtendedLifetime(expired) {}
    }

    /// Releases every pooled buffer.
    public func drain() {
        let all: [Parked] = state.withLock { s in
            defer {
                s.parked = []
                s.statistics.pooledCount = 0
                s.statistics.pooledBytes = 0
            }
            return s.parked
        }
        withExtendedLifetime(all) {}
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// What the pool holds, oldest first.
    public var contents: [Allocation] { state.withLock { $0.parked.map(\.memory.info) } }

    /// Removes the entries recycled before `cutoff` (they are in order).
    private static func takeExpired(_ s: inout State, before cutoff: ContinuousClock.Instant) -> [Parked] {
        let n = s.parked.prefix { $0.since < cutoff }.count
        guard n > 0 else { return [] }
        let expired = Array(s.parked.prefix(n))
        s.parked.removeFirst(n)
        s.statistics.expired += n
        s.statistics.pooledCount -= n
        s.statistics.pooledBytes -= expired.reduce(0) { $0 + $1.bytes }
        return expired
    }
}
