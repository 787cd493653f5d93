import CMARegion
import Glibc
import SMAFPluginKit
import SMAFSys

/// Giving ranges back (when nothing references their dma-buf any more) and
/// the region's report.
extension CMAAllocator {
    func release(_ allocation: PluginAllocation) {
        let held = Held(fd: allocation.fd, start: Int(allocation.token))
        if Self.otherReferences(held.fd) > 0 {
            state.withLock { $0.held.append(held) }
        } else {
            giveBack(held)
        }
    }

    /// Real CMA gets a buffer's pages back when the last reference to its
    /// dma-buf goes, not when the allocator is told: an fd the application
    /// kept (here or in another process), a mapping, a device's import each
    /// hold one. The kernel counts them ("count" in fdinfo, less its own
    /// temporary reference); the plugin's fd is one, the rest are others'.
    /// A range with others is held and reclaimed once they are gone.
    static func otherReferences(_ fd: CInt) -> Int {
        max((DmaBuf.fdInfo(fd)["count"].flatMap { Int($0) } ?? 1) - 1, 0)
    }

    func giveBack(_ held: Held) {
        _ = Glibc.close(held.fd)
        state.withLock { _ = $0.region.release(start: held.start) }
    }

    /// Frees the held ranges nobody references any more.
    func reclaimHeld() {
        let held = state.withLock { $0.held }
        guard !held.isEmpty else { return }
        let unreferenced = held.filter { Self.otherReferences($0.fd) == 0 }
        let reclaimed = state.withLock { s in
            let mine = s.held.filter(unreferenced.contains)
            s.held.removeAll(where: mine.contains)
            return mine
        }
        reclaimed.forEach(giveBack)
    }

    func stats() -> String? {
        reclaimHeld()
        return state.withLock { s in
            var r = RegionReport()
            let page = Memory.pageSize
            r.size = size
            if let made = s.reserved {
                r.backing = made.reservation.backing.rawValue
                r.backingDetail = made.reservation.backingDetail
                r.reservedMicroseconds = made.reservation.microseconds
            } else {
                r.backing = RegionReport.notReserved
                r.backingDetail = "not reserved yet: reserved on the first allocation cma serves; cma.backing is \(preference.rawValue)"
            }
            r.used = UInt64(s.region.usedPages) * page
            r.free = UInt64(s.region.freePages) * page
            r.largestFree = UInt64(s.region.largestFreePages) * page
            r.allocations = s.region.allocations.count
            r.held = s.held.count
            if let why = s.reserved?.reservation.framesUnknownReason ?? framesHidden {
                (r.contiguity, r.contiguityDetail) = ("not verified", why)
            } else if s.reserved == nil {
                (r.contiguity, r.contiguityDetail) = ("not measured", "no region yet; /proc/self/pagemap shows page frames to this process")
            } else {
                let runs = s.frames.runs
                (r.contiguity, r.contiguityDetail) = ("verified", "\(runs.count) runs of consecutive page frames in /proc/self/pagemap")
                r.largestRun = UInt64(runs.map(\.count).max() ?? 0) * page
            }
            r.cell = UInt64(s.region.pagesPerCell()) * page
            r.map = s.region.map()
            return r
        }.text
    }
}
