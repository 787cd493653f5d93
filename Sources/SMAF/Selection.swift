import CSMAFPlugin
import Glibc
import SMAFSys
import SystemPackage

/// Choosing without allocating, and the verdict slots plugins write into;
/// the choice itself is made once per request and devices (PreparedRequest).
extension AllocatorRegistry {
    /// Which allocator would get a buffer for `request` and `devices`, and
    /// why: match() in rank order, the first that accepts wins. Nothing is
    /// allocated, so an allocator whose allocate() would fail still wins
    /// here (a real buffer would then move on to the next one). Throws for a
    /// malformed request, devices that conflict, or an unknown forced
    /// allocator; "nobody accepts" is an explanation with no `chosen`.
    public func choose(_ request: BufferRequest, devices: [DeviceConstraints] = []) throws(SMAFError) -> Explanation {
        try choose(request, constraints: try MergedConstraints(devices))
    }

    /// The same for devices already merged, as a buffer holds them once they
    /// are attached (`Buffer.constraints`).
    public func choose(_ request: BufferRequest, constraints: MergedConstraints) throws(SMAFError) -> Explanation {
        try prepared(request, constraints).explanation
    }

    static func detail(of a: smaf_allocation) -> String {
        withUnsafeBytes(of: a.detail) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

/// The verdicts of one walk's match() calls, one slot per allocator, in a
/// single allocation the plugins write into directly. Written only during
/// the walk, read-only after; explanations hold it through `VerdictRef`.
final class Verdicts: ManagedBuffer<Int, smaf_verdict> {
    static func make(count: Int) -> Verdicts {
        let buffer = Verdicts.create(minimumCapacity: max(count, 1)) { _ in count }
        return unsafeDowncast(buffer, to: Verdicts.self)
    }

    /// Slot `i`, cleared and ready for match() to fill.
    func slot(_ i: Int) -> UnsafeMutablePointer<smaf_verdict> {
        withUnsafeMutablePointerToElements { base in
            var v = smaf_verdict()
            v.struct_size = UInt32(MemoryLayout<smaf_verdict>.size)
            (base + i).initialize(to: v)
            return base + i
        }
    }

    /// The reason in slot `i`, as text.
    func reason(_ i: Int) -> String {
        withUnsafeMutablePointerToElements { base in
            withUnsafeBytes(of: &base[i].reason) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
    }
}

/// One verdict of a finished walk. @unchecked Sendable: the slot is never
/// written again once the walk that filled it has returned.
struct VerdictRef: @unchecked Sendable {
    let verdicts: Verdicts
    let index: Int
    var reason: String { verdicts.reason(index) }
}

extension LoadedPlugin {
    /// Runs the plugin's match() with its verdict written to `verdict` and
    /// returns what it returned: 1 accepts, 0 rejects, anything else is a
    /// broken plugin the walk treats as a rejection. (`match(_:)` is the
    /// same call, returning text.)
    func match(_ c: CallStructs, verdict: UnsafeMutablePointer<smaf_verdict>) -> Int32 {
        serialized {
            ops.match!(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount), verdict)
        }
    }
}
