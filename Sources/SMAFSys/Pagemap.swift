import Glibc
import SystemPackage

/// Physical page frames behind this process's memory, read from
/// /proc/self/pagemap (Documentation/admin-guide/mm/pagemap.rst): one 64-bit
/// entry per virtual page, bit 63 "present", bits 0-54 the page frame number.
/// The kernel reports frame numbers only to readers with CAP_SYS_ADMIN and
/// 0 to everyone else, so a 0 here means "not known", never "frame 0".
public enum Pagemap {
    public static let path = "/proc/self/pagemap"

    /// The frames of `pages` pages mapped from `address` (page aligned).
    /// Pages not present read as 0 (unknown).
    public static func frames(of address: UnsafeRawPointer, pages: Int) throws(SystemError) -> PhysicalFrames {
        guard pages > 0 else { return PhysicalFrames([]) }
        let fd = try UniqueFD.open(path, O_RDONLY)
        var entries = [UInt64](repeating: 0, count: pages)
        let first = UInt64(UInt(bitPattern: address)) / Memory.pageSize
        let byteCount = pages * MemoryLayout<UInt64>.size
        // withUnsafeMutableBytes rethrows untyped errors: carry ours out as a value.
        let failure = entries.withUnsafeMutableBytes { raw -> SystemError? in
            var done = 0
            while done < byteCount {
                let offset = off_t(first * 8) + off_t(done)
                let n = pread(fd.rawValue, raw.baseAddress! + done, byteCount - done, offset)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { return .current("pread", context: path) }
                if n == 0 { return SystemError("pread", .ioError, context: "\(path) (short read)") }
                done += n
            }
            return nil
        }
        if let failure { throw failure }
        let present: UInt64 = 1 << 63, frameMask: UInt64 = (1 << 55) - 1
        return PhysicalFrames(entries.map { $0 & present != 0 ? $0 & frameMask : 0 })
    }
}

/// Page frame numbers of consecutive virtual pages (0 = unknown), and the
/// physical layout they prove: runs of consecutive frames are physically
/// contiguous memory, a frame's number times the page size is its address.
public struct PhysicalFrames: Sendable, Equatable {
    public private(set) var frames: [UInt64]

    public init(_ frames: [UInt64]) { self.frames = frames }

    /// Every frame is known: the layout below is evidence, not a guess.
    public var isVerified: Bool { !frames.isEmpty && !frames.contains(0) }

    /// Maximal page ranges of known frames, each inside the pages whose
    /// frame is below `belowFrame` (when given) and, with `consecutive`,
    /// each one physically contiguous run. Unknown frames are in none.
    public func ranges(consecutive: Bool, belowFrame: UInt64? = nil) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start: Int?
        for (i, frame) in frames.enumerated() {
            let eligible = frame != 0 && (belowFrame.map { frame < $0 } ?? true)
            if let s = start, !eligible || (consecutive && frame != frames[i - 1] &+ 1) {
                result.append(s..<i)
                start = nil
            }
            if eligible && start == nil { start = i }
        }
        if let s = start { result.append(s..<frames.count) }
        return result
    }

    /// Runs of physically consecutive frames.
    public var runs: [Range<Int>] { ranges(consecutive: true) }

    /// The longest run in pages; 0 when nothing is known.
    public var longestRun: Int { runs.map(\.count).max() ?? 0 }

    /// The frame 2^bits bytes start at, nil when `bits` puts no limit below 2^64.
    public static func limitFrame(dmaAddressBits bits: UInt32) -> UInt64? {
        guard bits > 0 && bits < 64 else { return nil }
        return (UInt64(1) << UInt64(bits)) / Memory.pageSize
    }

    public subscript(pages: Range<Int>) -> PhysicalFrames {
        PhysicalFrames(Array(frames[pages.clamped(to: frames.indices)]))
    }

    /// Replaces the frames from page `start` with newer ones (pages move:
    /// compaction migrates shmem pages until something pins them).
    public mutating func update(from start: Int, with newer: PhysicalFrames) {
        for (i, frame) in newer.frames.enumerated() where frames.indices.contains(start + i) {
            frames[start + i] = frame
        }
    }
}
