import CSMAFPlugin
import SMAF
import SMAFSys

/// One line of a conformance run: what was checked, how it went, and why.
public struct ConformanceCheck: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable {
        case pass, fail
        /// Could not be checked: the plugin did not load, or accepted nothing to check with.
        case skip
    }

    public var name: String
    public var outcome: Outcome
    public var reason: String

    public init(_ name: String, _ outcome: Outcome, _ reason: String) {
        self.name = name
        self.outcome = outcome
        self.reason = reason
    }
}

/// The result of `Conformance.run`: the plugin as it loaded, and every check.
public struct ConformanceReport: Sendable, Codable {
    public var path: String
    /// The plugin's name, if it loaded.
    public var plugin: String?
    /// The negotiated ABI, "1.0", if it loaded.
    public var abi: String?
    public var checks: [ConformanceCheck]
    /// The requests the plugin accepted and allocated, which the allocation checks examined.
    public var allocated: [String] = []

    /// No check failed (skipped ones do not count against the plugin).
    public var passed: Bool { !checks.contains { $0.outcome == .fail } }

    public func check(_ name: String) -> ConformanceCheck? { checks.first { $0.name == name } }
}

/// `smaf plugin check`: loads one plugin file through the same loader the
/// registry uses and holds it to the ABI's promises (docs/PLUGINS.md,
/// "Conformance"). Every check is a fact measured on this machine: what the
/// loader said, what the ops returned, what the kernel says the fds are.
public enum Conformance {
    /// The checks in the order they run, with what each verifies.
    public static let checks: [(name: String, verifies: String)] = [
        ("entry-and-abi", "the entry symbol returns a table with this core's ABI major, a minor it can negotiate, a valid name and kind"),
        ("required-ops", "open, close, match, allocate and release are present and the ops table is at least the ABI's size"),
        ("open", "open() succeeds (a refusal names its reason)"),
        ("describe-stats", "describe_stats, if present, asks for at most 64 KiB, the same length twice, and writes within the size it is given"),
        ("match-deterministic", "the same request gives the same verdict three times; verdicts are 1, or 0 with a reason"),
        ("match-side-effect-free", "match() opens or closes no fd and leaves the plugin's state report unchanged"),
        ("bad-requests", "0 and huge sizes, an unknown format and conflicting constraints are refused with a reason"),
        ("allocation-honours-match", "what match accepted is allocated as promised: size (and the fd's real size), pitch, planes, modifier, dma-buf or not, CPU mapping, contiguity, close-on-exec"),
        ("release-closes-fds", "after a warm-up, allocate/release cycles leave the open fds and the state report as they were"),
        ("concurrent-calls", "4 threads at once get the single-thread verdicts, distinct fds and sound allocations, and leak nothing"),
        ("open-close-repeated", "the plugin opens and closes 8 times in a row, each open succeeding, without leaking fds"),
    ]

    /// Runs every check against the plugin file at `path`. `progress` sees
    /// each result as it is decided. `isolated` (the default) runs the
    /// plugin's code in a forked child: a plugin that crashes or hangs
    /// fails the check it was in, with the signal, instead of taking the
    /// checker down; the checks after it are skipped.
    public static func run(path: String, logLevel: LogLevel = .error, isolated: Bool = true,
                           progress: (ConformanceCheck) -> Void = { _ in }) -> ConformanceReport {
        var report = ConformanceReport(path: path, checks: [])
        func receive(_ event: ConformanceEvent) {
            switch event {
            case let .loaded(plugin, abi): (report.plugin, report.abi) = (plugin, abi)
            case .check(let check): report.checks.append(check); progress(check)
            case .allocated(let labels): report.allocated = labels
            }
        }
        if isDirectory(path) {
            // A folder on a plugin path loads every .so in it: which one would be checked is anyone's guess.
            receive(.check(ConformanceCheck(checks[0].name, .fail, "\(path) is a folder; the checks take one plugin file")))
            checks.dropFirst().forEach { receive(.check(ConformanceCheck($0.name, .skip, "the plugin did not load"))) }
            return report
        }
        guard isolated else {
            runChecks(path: path, logLevel: logLevel, emit: receive)
            return report
        }
        let end = ConformanceIsolation.run({ emit in runChecks(path: path, logLevel: logLevel, emit: emit) }, receive: receive)
        if let death = end, let cut = checks.firstIndex(where: { report.check($0.name) == nil }) {
            let name = checks[cut].name
            receive(.check(ConformanceCheck(name, .fail, "the plugin \(death) during this check")))
            for (later, _) in checks.dropFirst(cut + 1) {
                receive(.check(ConformanceCheck(later, .skip, "not run: the plugin \(death) during \(name)")))
            }
        }
        return report
    }

    /// What a run reports as it goes, in the process that runs the plugin.
    enum ConformanceEvent: Codable {
        case loaded(plugin: String?, abi: String?)
        case check(ConformanceCheck)
        case allocated([String])
    }

    /// The whole run, in this process, each result emitted as it is decided.
    private static func runChecks(path: String, logLevel: LogLevel, emit: (ConformanceEvent) -> Void) {
        var report = ConformanceReport(path: path, checks: [])
        var configuration = Configuration.only(pluginPaths: [path])
        configuration.logLevel = logLevel
        func record(_ check: ConformanceCheck) {
            report.checks.append(check)
            emit(.check(check))
        }
        let probe = checkLoaded(configuration, path: path, record: record) { plugin, abi in
            (report.plugin, report.abi) = (plugin, abi)
            emit(.loaded(plugin: plugin, abi: abi))
        } allocated: { emit(.allocated($0)) }
        // After the plugin above is closed, so the cycles open it alone, as a process would.
        if report.plugin != nil && report.check("open-close-repeated") == nil {
            record(openCloseRepeated(configuration, probe: probe))
        }
        for (name, _) in checks where report.check(name) == nil {
            record(ConformanceCheck(name, .skip, "the plugin did not load"))
        }
    }

    /// Loads the plugin once and runs every check that needs it open.
    /// Returns a request for the open/close cycles to serve, if any was accepted.
    private static func checkLoaded(_ configuration: Configuration, path: String, record: (ConformanceCheck) -> Void,
                                    loaded: (String?, String?) -> Void, allocated: ([String]) -> Void) -> ConformanceProbe? {
        let plugin: LoadedPlugin
        switch openOnce(configuration, path: path) {
        case .success(let p): plugin = p
        case .failure(let refusal):
            loaded(refusal.secureModule, nil)
            refusal.checks.forEach(record)
            return nil
        }
        loaded(plugin.name, "\(plugin.abiVersion.major).\(plugin.abiVersion.minor)")
        loadChecks(plugin).forEach(record)
        // Probes are built before any fd is counted: DRM nodes are opened, probed and closed here.
        let calls = ConformanceCalls(plugin: plugin, plausible: ConformanceProbe.plausibleSet(displays: ConformanceProbe.displays()),
                                     bad: ConformanceProbe.badSet)
        record(calls.describeStats())
        let (deterministic, verdicts) = calls.matchDeterministic()
        record(deterministic)
        record(calls.matchSideEffectFree())
        record(calls.badRequests())
        let (honours, allocatedProbes) = calls.allocationsHonourMatch()
        allocated(allocatedProbes.map(\.label))
        record(honours)
        record(calls.releaseClosesFds(allocatedProbes))
        record(calls.concurrent(verdicts, allocatedProbes))
        return allocatedProbes.first ?? calls.plausible.first
    }

    /// A refusal mapped onto the load checks: the loader's steps run in
    /// order, so every check before the failing step passed.
    struct Refusal: Error {
        var checks: [ConformanceCheck]
        /// Set when the file is a secure module, which these checks are not for.
        var secureModule: String?
    }

    private static func openOnce(_ configuration: Configuration, path: String) -> Result<LoadedPlugin, Refusal> {
        // The loader itself, not a registry: its refusals say at which step they stopped.
        let (plugins, warnings) = PluginLoader(core: CoreServices(configuration: configuration)).loadAll()
        if let plugin = plugins.first(where: { $0.kind == .allocator }) { return .success(plugin) }
        if let module = plugins.first {
            let why = "'\(module.name)' is a secure module (docs/SECURE.md); these checks are for allocators"
            let loaded = "loaded and opened as a secure module, ABI \(module.abiVersion.major).\(module.abiVersion.minor)"
            return .failure(Refusal(checks: checks.prefix(3).map { ConformanceCheck($0.name, .pass, loaded) }
                                    + checks.dropFirst(3).map { ConformanceCheck($0.name, .skip, why) }, secureModule: module.name))
        }
        let warning = warnings.first
        let step = switch warning?.stage ?? .entry {
        case .file, .entry: 0
        case .ops: 1
        case .open: 2
        }
        let names = ["entry-and-abi", "required-ops", "open"]
        var result = (0..<step).map { ConformanceCheck(names[$0], .pass, "the loader got past this step") }
        result.append(ConformanceCheck(names[step], .fail, warning?.reason ?? "not loaded, no reason given"))
        return .failure(Refusal(checks: result))
    }

    private static func loadChecks(_ p: LoadedPlugin) -> [ConformanceCheck] {
        let core = (UInt32(SMAF_PLUGIN_ABI_MAJOR), UInt32(SMAF_PLUGIN_ABI_MINOR))
        let declared = p.declaredABI
        let newer = declared.minor > core.1 ? "; it runs at \(p.abiVersion.major).\(p.abiVersion.minor), what this core speaks" : ""
        return [
            ConformanceCheck("entry-and-abi", .pass,
                             "\(SMAF_PLUGIN_ENTRY_NAME) returns '\(p.name)', built for ABI \(p.abiVersion.major).\(declared.minor), needs \(p.abiVersion.major).\(declared.required) or newer; this core speaks \(core.0).\(core.1)\(newer); default rank \(p.defaultRank)"),
            ConformanceCheck("required-ops", .pass,
                             "open, close, match, allocate, release present; describe_stats \(p.hasStats ? "present" : "absent (optional)")\(p.isSerialized ? "; asks for serialized calls" : "")"),
            ConformanceCheck("open", .pass, "open() returned 0"),
        ]
    }

    /// Opens and closes the plugin `cycles` times, asking one match (and
    /// making one allocation) each time; after the first cycle, the process's
    /// open fds must not move.
    private static func openCloseRepeated(_ configuration: Configuration, probe: ConformanceProbe?, cycles: Int = 8) -> ConformanceCheck {
        var afterFirst = 0
        for cycle in 1...cycles {
            do {
                // Each registry opens the plugin once; it closes when the registry goes, at the end of this scope.
                let registry = AllocatorRegistry(configuration: configuration)
                guard let plugin = registry.plugins.first else {
                    let why = registry.loadWarnings.first?.description ?? "it did not load"
                    return ConformanceCheck("open-close-repeated", .fail, "open #\(cycle) failed: \(why)")
                }
                if let probe {
                    let c = probe.call()
                    if plugin.rawMatch(probe, c).accepted {
                        var result = plugin.rawAllocate(c)
                        if result.code == 0 && result.allocation.fd >= 0 { plugin.release(&result.allocation) }
                    }
                }
            }
            if cycle == 1 { afterFirst = OpenFiles.count() }
        }
        let after = OpenFiles.count()
        guard after == afterFirst else {
            return ConformanceCheck("open-close-repeated", .fail,
                                    "\(cycles - 1) open/close cycles changed the open fds from \(afterFirst) to \(after) (close() leaves something open)")
        }
        return ConformanceCheck("open-close-repeated", .pass,
                                "\(cycles) open/close cycles, each open succeeding\(probe == nil ? "" : " and serving a request"): open fds \(afterFirst) after the first and after the last")
    }
}
