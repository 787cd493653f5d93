import CSMAFPlugin
import Glibc
import SMAFSys
import Synchronization
import SystemPackage

/// The choice for one request and one set of devices, made once: the merge,
/// the negotiated size and modifiers, the C structs plugins read, and every
/// allocator's verdict (its capabilities, then match()). match() is pure by
/// the ABI, so the choice holds for the registry's life: each allocation
/// from it is one plugin call, the audit, and one buffer object.
public struct PreparedRequest: Sendable {
    public let registry: AllocatorRegistry
    let choice: PreparedChoice
    public var request: BufferRequest { choice.request }
    public var constraints: MergedConstraints { choice.constraints }

    /// A buffer with memory from the first candidate that delivers what it
    /// promised. Every allocator's verdict is in its explanation; none
    /// delivering is the error with every reason.
    public func allocate() throws(SMAFError) -> Buffer {
        try choice.requireHeadroom()
        let outcome = choice.allocateLive()
        guard let live = outcome.live else { throw outcome.record.failure() }
        return Buffer(registry: registry, request: request, constraints: constraints, live: live, outcome: outcome.record)
    }
}

/// What a PreparedRequest holds and the registry keeps (`prepared(_:_:)`),
/// so every Buffer, pool and C API caller asking again gets the choice
/// without the walk. It holds no reference to the registry: the registry
/// keeps it, and a cycle would keep plugin contexts (and their device
/// fds, DRM master included) open for the process's life.
/// Immutable, shared across threads.
final class PreparedChoice: @unchecked Sendable {
    // @unchecked: `call` and `verdicts` are written only in init; plugins read the structs through const pointers.
    let request: BufferRequest
    let constraints: MergedConstraints
    let call: CallStructs
    let expectation: AllocationFit.Expectation
    /// Every allocator's verdict in rank order; a candidate's entry is
    /// filled per allocation (chosen, failed, or not asked).
    let entries: [Explanation.Entry]
    /// Indices into `entries` of the allocators that accepted, in rank order.
    let candidates: [(index: Int, plugin: LoadedPlugin)]
    /// Keeps the verdict slots plugins wrote alive for the entries that refer to them.
    private let verdicts: Verdicts?

    init(registry: AllocatorRegistry, request: BufferRequest, constraints: MergedConstraints) throws(SMAFError) {
        let size = try request.minimumSize()
        let modifiers = try request.negotiate(with: constraints)
        var forced: LoadedPlugin?
        if let name = request.allocator { forced = try registry.forcedPlugin(name) }
        self.request = request
        self.constraints = constraints
        let plugins = registry.plugins
        call = CallStructs(request: request, size: size, modifiers: modifiers, constraints: constraints,
                           nameBuffers: registry.configuration.nameBuffers)
        expectation = AllocationFit.Expectation(request, size: size, modifiers: modifiers)
        let isImage = if case .image = request.shape { true } else { false }
        let store = plugins.isEmpty ? nil : Verdicts.make(count: plugins.count)
        var entries: [Explanation.Entry] = []
        var candidates: [(Int, LoadedPlugin)] = []
        entries.reserveCapacity(plugins.count)
        for (index, plugin) in plugins.enumerated() {
            func note(_ outcome: Explanation.Outcome, _ reason: Explanation.Entry.Reason) {
                entries.append(Explanation.Entry(allocator: plugin.name, rank: plugin.rank, outcome: outcome, storage: reason))
            }
            if let forced, forced !== plugin { note(.skipped, .text("not asked: \(forced.name) was forced")); continue }
            if plugin.rank == .none && forced == nil { note(.skipped, .text("rank none: used only when forced by name")); continue }
            // What the allocator declared rules out, the core turns away itself: same words for every allocator.
            if let refusal = plugin.capabilities?.refusal(isImage: isImage, readOnly: request.readOnly, modifiers: modifiers, constraints) {
                note(.rejected, .text(refusal)); continue
            }
            let slot = store!.slot(index)
            switch plugin.match(call, verdict: slot) {
            case 1 where slot.pointee.score != 0: note(.rejected, .text(LoadedPlugin.scoreSet(slot.pointee.score)))
            case 1:
                candidates.append((entries.count, plugin))
                note(.chosen, .text("accepted by match()"))
            case 0: note(.rejected, .verdict(VerdictRef(verdicts: store!, index: index)))
            case let code: note(.rejected, .text(PluginStatus.invalidVerdict("match()", code)))
            }
        }
        self.entries = entries
        self.candidates = candidates
        verdicts = store
        if registry.core.log.level >= .debug {
            for e in entries where e.outcome != .chosen { registry.core.log(.debug, "\(e.outcome.rawValue): \(e.reason)", plugin: e.allocator) }
        }
    }

    /// The memory and what happened, for Buffer and the pool.
    func allocateLive() -> (live: LiveAllocation?, record: SelectionRecord) {
        var failures: [(index: Int, reason: String)] = []
        for (index, plugin) in candidates {
            switch plugin.allocate(call) {
            case .success(var raw):
                let info = Allocation(plugin: plugin.name, raw)
                let broken = AllocationAudit.misfits(raw, info, expecting: expectation, under: constraints.combined,
                                                     declared: plugin.capabilities)
                guard broken.isEmpty else {
                    plugin.release(&raw)
                    failures.append((index, "allocate() succeeded but broke its promises: \(broken.joined(separator: "; ")); released it"))
                    continue
                }
                return (LiveAllocation(plugin: plugin, raw: raw, info: info),
                        SelectionRecord(prepared: self, chosen: index, detail: info.detail, failures: failures))
            case .failure(let failure):
                failures.append((index, "match accepted but allocate failed: \(withErrno(failure.message, failure.errno))"))
            }
        }
        return (nil, SelectionRecord(prepared: self, chosen: nil, detail: "", failures: failures))
    }

    /// Before any allocator is asked: the request's least size must fit in
    /// the memory the machine and the process's cgroup have now
    /// (MemoryHeadroom, a cached reading). Each allocator checks its own
    /// real size again before its kernel call; this spares the attempts when
    /// nothing could succeed, and says why in one line.
    func requireHeadroom() throws(SMAFError) {
        if let why = MemoryHeadroom.shortfall(expectation.size) {
            throw SMAFError(.system, "not enough memory: \(why)", systemError: SystemError("memory check", Errno(rawValue: ENOMEM)))
        }
    }

    /// The explanation of a choice without memory (`choose`): the first candidate wins.
    var explanation: Explanation {
        SelectionRecord(prepared: self, chosen: candidates.first?.index, detail: nil, failures: []).explanation
    }
}

/// What one selection did with a prepared choice: which candidate won and
/// why the ones before it failed. The explanation is built from it only
/// when someone reads it.
struct SelectionRecord: Sendable {
    let prepared: PreparedChoice
    let chosen: Int?
    /// The winner's own words; nil when nothing was allocated (a choice).
    let detail: String?
    let failures: [(index: Int, reason: String)]

    var explanation: Explanation {
        var e = Explanation(forcedAllocator: prepared.request.allocator, devices: prepared.constraints.devices.map(\.name),
                            entries: prepared.entries)
        let winner = chosen.map { e.entries[$0].allocator }
        for (i, entry) in e.entries.enumerated() {
            if let winner, let chosen, i > chosen {
                e.entries[i].outcome = .skipped
                e.entries[i].storage = .text("not asked: \(winner) was chosen first")
            } else if i == chosen {
                e.entries[i].storage = .text(detail.map { "accepted; \($0)" } ?? "accepted by match(); nothing allocated")
            } else if let failure = failures.first(where: { $0.index == i }) {
                e.entries[i].outcome = .failed
                e.entries[i].storage = .text(failure.reason)
            } else if entry.outcome == .chosen {
                // A candidate nobody reached: only when nothing was allocated and none won.
                e.entries[i].outcome = .skipped
                e.entries[i].storage = .text("not asked")
            }
        }
        return e
    }

    /// The error when nobody won: every allocator's reason, in rank order.
    func failure() -> SMAFError {
        let e = explanation
        let forced = e.forcedAllocator
        let verdicts = e.entries.filter { $0.outcome != .skipped || forced == nil }
            .map { "\($0.allocator): \($0.reason)" }.joined(separator: "; ")
        let what = forced.map { "forced allocator \($0) cannot satisfy the request" } ?? "no allocator can satisfy the request"
        return SMAFError(.noAllocator, "\(what): \(verdicts.isEmpty ? "no allocators loaded" : verdicts)")
    }
}

extension AllocatorRegistry {
    /// The choice for `request` and `devices`, made once and kept: asking
    /// again is a lookup. Throws for a malformed request, devices that
    /// conflict, or an unknown forced allocator.
    public func prepare(_ request: BufferRequest, devices: [DeviceConstraints] = []) throws(SMAFError) -> PreparedRequest {
        PreparedRequest(registry: self, choice: try prepared(request, try MergedConstraints(devices)))
    }

    func prepared(_ request: BufferRequest, _ constraints: MergedConstraints) throws(SMAFError) -> PreparedChoice {
        let key = PreparedKey(request: request, devices: constraints.devices)
        if let known = preparedRequests.withLock({ $0[key] }) { return known }
        let fresh = try PreparedChoice(registry: self, request: request, constraints: constraints)
        return preparedRequests.withLock { cache in
            if let raced = cache[key] { return raced }
            // Bounded: a program cycling through many shapes keeps the most recent ones.
            if cache.count >= Self.preparedLimit { cache.removeAll(keepingCapacity: true) }
            cache[key] = fresh
            return fresh
        }
    }

    /// How many choices the registry keeps.
    static let preparedLimit = 256
}

struct PreparedKey: Hashable {
    let request: BufferRequest
    let devices: [DeviceConstraints]
}
