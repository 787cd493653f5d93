import Glibc
import SMAFPluginKit
import SMAFSys
import Synchronization

/// POSIX shared memory: each buffer is a file in /dev/shm, created with
/// shm_open and unlinked at once, so only the fd names it.
///
/// What it guarantees: memory any process holding the fd can mmap shared,
/// with every page reserved at allocation (posix_fallocate), so a full
/// /dev/shm fails the allocation (ENOSPC, the core moves on) instead of
/// killing the first writer with SIGBUS. Buffers count against /dev/shm's
/// size= cap like any POSIX shared memory, which is why a system would pick
/// this over memfd: the administrator's limit applies.
///
/// What it does not: it is not a dma-buf (no device can import it), not
/// physically contiguous, and not sealed: tmpfs files other than memfds
/// cannot be sealed, so a holder could truncate it under another. Where
/// that matters, memfd's sealed memory is the answer. Rank marginal.
final class ShmAllocator: AllocatorPlugin {
    static let name = "shm"
    static let summary = "POSIX shared memory in /dev/shm (CPU-mappable, not a dma-buf), pages reserved at allocation"
    static let defaultRank = Int32(SMAF_RANK_MARGINAL)
    static let directory = "/dev/shm"
    /// Rows start on cache lines, as memfd's do.
    static let defaultPitchAlignment: UInt64 = 64

    /// /dev/shm's size when the plugin opened: match compares against this
    /// fixed number, never the free space, so its verdicts do not drift.
    private let capacity: UInt64
    private let sequence = Atomic<UInt64>(0)
    private let usage = Mutex<(buffers: Int, bytes: UInt64)>((0, 0))

    init(core: PluginCore) throws(PluginError) {
        var fs = statvfs()
        guard statvfs(Self.directory, &fs) == 0 else {
            let e = errno
            throw PluginError(errno: e, "statvfs(\(Self.directory)) failed: \(String(cString: strerror(e))); is /dev/shm mounted?")
        }
        capacity = UInt64(fs.f_blocks) * UInt64(fs.f_frsize)
    }

    /// POSIX shared memory files: mappable, linear, page aligned, never
    /// dma-bufs. The core turns away devices that need more.
    var capabilities: Capabilities { Capabilities([.cpuMappable, .bytes, .images]) }

    func match(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) -> Verdict {
        if request.size == 0 { return .reject("a buffer of 0 bytes") }
        switch size(request, merged) {
        case .failure(let e): return .reject(e.message)
        case .success: return .accept
        }
    }

    /// The page-rounded size the request needs, or why there is none.
    private func size(_ request: PluginRequest, _ merged: PluginConstraints) -> Result<(ImageLayout, UInt64), PluginError> {
        let layout: ImageLayout
        switch request.linearLayout(merged: merged, defaultPitchAlignment: Self.defaultPitchAlignment) {
        case .success(let l): layout = l
        case .failure(let f): return .failure(PluginError(errno: EINVAL, f.description))
        }
        guard let size = Memory.pageRounded(layout.size), size <= UInt64(Int64.max) else {
            return .failure(PluginError(errno: EOVERFLOW, "\(layout.size) bytes is more than a file can hold"))
        }
        guard size <= capacity else {
            return .failure(PluginError(errno: ENOSPC, "\(size) bytes is more than \(Self.directory) holds (\(capacity) bytes)"))
        }
        return .success((layout, size))
    }

    func allocate(_ request: PluginRequest, merged: PluginConstraints) throws(PluginError) -> PluginAllocation {
        let (layout, size) = try self.size(request, merged).get()
        if let why = MemoryHeadroom.shortfall(size) { throw PluginError(errno: ENOMEM, "not enough memory: \(why)") }
        let fd = try createFile()
        // posix_fallocate returns the error instead of setting errno.
        let rc = posix_fallocate(fd.rawValue, 0, off_t(size))
        guard rc == 0 else {
            throw PluginError(errno: rc, "posix_fallocate(\(size)) in \(Self.directory) failed: \(String(cString: strerror(rc)))")
        }
        usage.withLock { $0.buffers += 1; $0.bytes += size }
        var allocation = PluginAllocation(fd: fd.take(), size: size, guarantees: [.cpuMappable])
        allocation.describe(request: request, layout: layout, modifier: .linear)
        allocation.detail = "shm file in \(Self.directory), \(size / Memory.pageSize) pages reserved"
        return allocation
    }

    /// An unnamed file in /dev/shm: shm_open a fresh name, unlink it at once.
    private func createFile() throws(PluginError) -> UniqueFD {
        for _ in 0..<8 {
            let name = "/smaf-shm-\(getpid())-\(sequence.add(1, ordering: .relaxed).newValue)"
            // shm_open adds O_CLOEXEC itself; O_EXCL so a stale file of a dead process is never shared.
            let fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0o600)
            let e = errno
            if fd >= 0 {
                shm_unlink(name)
                return UniqueFD(adopting: fd)
            }
            if e != EEXIST { throw PluginError(errno: e, "shm_open(\(name)) failed: \(String(cString: strerror(e)))") }
        }
        throw PluginError(errno: EEXIST, "shm_open: 8 fresh names in \(Self.directory) were all taken")
    }

    func release(_ allocation: PluginAllocation) {
        _ = Glibc.close(allocation.fd)
        usage.withLock { $0.buffers -= 1; $0.bytes -= allocation.size }
    }

    func stats() -> String? {
        let (buffers, bytes) = usage.withLock { ($0.buffers, $0.bytes) }
        return "\(buffers) buffers, \(bytes) bytes in \(Self.directory) (capacity \(capacity) bytes at open)"
    }
}

@_cdecl("smaf_plugin_entry")
public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
    PluginExport.entry(ShmAllocator.self)
}
