import CSMAFPlugin
import Glibc
import SMAFSys
import SystemPackage

/// The rule that picks an allocator, in one place: the walk over the
/// allocators in rank order that both `select` (allocating, for buffers)
/// and `choose` (match only, for callers and benchmarks that want to know
/// the winner without memory) run.
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
    /// are attached (`Buffer.constraints`): the walk alone, what choosing
    /// costs when a buffer gets its memory.
    public func choose(_ request: BufferRequest, constraints: MergedConstraints) throws(SMAFError) -> Explanation {
        try walk(request, constraints) { _, _, _ in .accepted("accepted by match(); nothing allocated") }.explanation
    }

    /// What happened when the walk asked an allocator that matched to deliver.
    enum Attempt {
        /// It won; the reason for the explanation ("accepted; memfd pages via udmabuf").
        case accepted(String)
        /// match() accepted but the allocator could not deliver; the walk goes on.
        case failed(String)
    }

    /// The walk's result: the winner (nil if none) and every verdict.
    struct Walk {
        let chosen: LoadedPlugin?
        let explanation: Explanation
    }

    /// Walks the allocators for `request` under `constraints`: skips those
    /// not asked (forced allocator, rank none), runs match() on the others
    /// until one accepts and `attempt` says it delivered. Every verdict lands
    /// in the explanation; only a malformed request throws.
    ///
    /// The hot path of every allocation: one block of C structs for all the
    /// match() calls, rejections kept as the plugins wrote them (text is
    /// made only when someone reads a reason), the debug log built only
    /// when it is on.
    func walk(_ request: BufferRequest, _ constraints: MergedConstraints,
              attempt: (LoadedPlugin, CallStructs, AllocationFit.Expectation) -> Attempt) throws(SMAFError) -> Walk {
        let size = try request.minimumSize()
        let modifiers = try request.negotiate(with: constraints)
        var forced: LoadedPlugin?
        if let name = request.allocator { forced = try forcedPlugin(name) }
        let call = CallStructs(request: request, size: size, modifiers: modifiers, constraints: constraints,
                               nameBuffers: core.configuration.nameBuffers)
        let isImage = if case .image = request.shape { true } else { false }
        let expectation = AllocationFit.Expectation(request, size: size, modifiers: modifiers)
        var explanation = Explanation(forcedAllocator: request.allocator, devices: constraints.devices.map(\.name))
        explanation.entries.reserveCapacity(plugins.count)
        let logging = core.log.level >= .debug
        var verdicts: Verdicts?

        var winner: LoadedPlugin?
        // Reasons shared by every skipped allocator, built once per walk.
        let forcedReason = forced.map { "not asked: \($0.name) was forced" } ?? ""
        var chosenFirst = ""
        for (index, plugin) in plugins.enumerated() {
            func note(_ outcome: Explanation.Outcome, _ reason: Explanation.Entry.Reason) {
                explanation.entries.append(Explanation.Entry(allocator: plugin.name, rank: plugin.rank, outcome: outcome, storage: reason))
                if logging { core.log(.debug, "\(outcome.rawValue): \(explanation.entries[explanation.entries.count - 1].reason)", plugin: plugin.name) }
            }
            func note(_ outcome: Explanation.Outcome, _ reason: String) { note(outcome, .text(reason)) }
            if winner != nil { note(.skipped, chosenFirst); continue }
            if let forced, forced !== plugin { note(.skipped, forcedReason); continue }
            if plugin.rank == .none && forced == nil {
                note(.skipped, "rank none: used only when forced by name"); continue
            }
            // What the allocator declared rules out, the core turns away itself: same words for every allocator.
            if let refusal = plugin.capabilities?.refusal(isImage: isImage, readOnly: request.readOnly, modifiers: modifiers, constraints) {
                note(.rejected, refusal); continue
            }
            let store = verdicts ?? Verdicts.make(count: plugins.count)
            verdicts = store
            let slot = store.slot(index)
            switch plugin.match(call, verdict: slot) {
            case 1 where slot.pointee.score != 0: note(.rejected, LoadedPlugin.scoreSet(slot.pointee.score)); continue
            case 1: break
            case 0: note(.rejected, .verdict(VerdictRef(verdicts: store, index: index))); continue
            case let code: note(.rejected, PluginStatus.invalidVerdict("match()", code)); continue
            }
            switch attempt(plugin, call, expectation) {
            case .accepted(let reason):
                note(.chosen, reason)
                winner = plugin
                chosenFirst = "not asked: \(plugin.name) was chosen first"
            case .failed(let reason):
                note(.failed, reason)
            }
        }
        return Walk(chosen: winner, explanation: explanation)
    }

    /// Before any allocator is asked to allocate: the request's least size
    /// (MemoryHeadroom) must fit in the memory the machine and the
    /// process's cgroup have now. Each allocator checks its own real size
    /// again before its kernel call; this one spares the walk when nothing
    /// could succeed, and says why in one line.
    func requireHeadroom(_ request: BufferRequest) throws(SMAFError) {
        let size = try request.minimumSize()
        if let why = MemoryHeadroom.shortfall(size) {
            throw SMAFError(.system, "not enough memory: \(why)", systemError: SystemError("memory check", Errno(rawValue: ENOMEM)))
        }
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
