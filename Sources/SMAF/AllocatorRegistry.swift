import CSMAFPlugin
import SMAFFormats
import SMAFSys
import SystemPackage

/// The loaded allocators in rank order and the rule that picks one: the
/// forced allocator if the request names one, else the first (highest rank,
/// then name) whose match() accepts all attached devices and whose
/// allocate() succeeds. Immutable once loaded, so shared freely.
public final class AllocatorRegistry: Sendable {
    /// Allocators, higher rank first, ties by name: SMAF's and GStreamer's order.
    public let plugins: [LoadedPlugin]
    /// Secure modules, in the same order; the first is the default.
    public let secureModules: [LoadedPlugin]
    /// Plugin files the loader refused, each with its reason.
    public let loadWarnings: [LoadWarning]
    public let configuration: Configuration
    let core: CoreServices

    public init(configuration: Configuration) {
        self.configuration = configuration
        core = CoreServices(configuration: configuration)
        let (loaded, warnings) = PluginLoader(core: core).loadAll()
        let ordered = loaded.sorted { $0.rank != $1.rank ? $0.rank > $1.rank : $0.name < $1.name }
        plugins = ordered.filter { $0.kind == .allocator }
        secureModules = ordered.filter { $0.kind == .secureModule }
        loadWarnings = warnings
    }

    /// The registry for this process's environment (SMAF_PLUGIN_PATH, SMAF_RANKS...).
    public static func load() throws(SMAFError) -> AllocatorRegistry {
        AllocatorRegistry(configuration: try Configuration.fromEnvironment())
    }

    public func plugin(named name: String) -> LoadedPlugin? { plugins.first { $0.name == name } }

    /// A deferred buffer: no memory until first export, map or materialize().
    public func buffer(_ request: BufferRequest, devices: [DeviceConstraints] = []) throws(SMAFError) -> Buffer {
        if let forced = request.allocator { _ = try forcedPlugin(forced) }
        _ = try request.minimumSize()
        let buffer = Buffer(registry: self, request: request)
        for d in devices { try buffer.attach(d) }
        return buffer
    }

    func forcedPlugin(_ name: String) throws(SMAFError) -> LoadedPlugin {
        guard let p = plugin(named: name) else {
            let known = plugins.map(\.name).joined(separator: ", ")
            throw SMAFError(.unknownAllocator, "allocator: no allocator named '\(name)' is loaded (known: \(known.isEmpty ? "none" : known))")
        }
        return p
    }

    struct Selection {
        /// The memory of the allocator that won, nil if none did.
        let winner: LiveAllocation?
        let explanation: Explanation

        /// The error when nobody won: every allocator's reason, in rank order.
        func failure() -> SMAFError {
            let forced = explanation.forcedAllocator
            let verdicts = explanation.entries.filter { $0.outcome != .skipped || forced == nil }
                .map { "\($0.allocator): \($0.reason)" }.joined(separator: "; ")
            let what = forced.map { "forced allocator \($0) cannot satisfy the request" } ?? "no allocator can satisfy the request"
            return SMAFError(.noAllocator, "\(what): \(verdicts.isEmpty ? "no allocators loaded" : verdicts)")
        }
    }

    /// Chooses and allocates for `request` under `constraints` (the walk in
    /// Selection.swift): the first allocator whose match() accepts and whose
    /// allocate() delivers what it promised wins. What a plugin hands back is
    /// audited against the request and the fd itself before anyone sees it;
    /// a lie is released and counts as a failed allocation. Every verdict
    /// lands in the explanation, whether or not one wins; only a malformed
    /// request throws.
    func select(_ request: BufferRequest, _ constraints: MergedConstraints) throws(SMAFError) -> Selection {
        try requireHeadroom(request)
        var won: LiveAllocation?
        let walk = try walk(request, constraints) { plugin, call, expectation in
            switch plugin.allocate(call) {
            case .success(var allocation):
                let info = Allocation(plugin: plugin.name, allocation)
                let broken = AllocationAudit.misfits(allocation, info, expecting: expectation, under: constraints.combined,
                                                     declared: plugin.capabilities)
                guard broken.isEmpty else {
                    plugin.release(&allocation)
                    return .failed("allocate() succeeded but broke its promises: \(broken.joined(separator: "; ")); released it")
                }
                won = LiveAllocation(plugin: plugin, raw: allocation, info: info)
                return .accepted("accepted; \(Self.detail(of: allocation))")
            case .failure(let failure):
                return .failed("match accepted but allocate failed: \(withErrno(failure.message, failure.errno))")
            }
        }
        return Selection(winner: won, explanation: walk.explanation)
    }
}

package func errnoName(_ e: Int32) -> String {
    Errno(rawValue: e).symbolicName
}
