import CSMAFPlugin
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
        ("match-deterministic", "the same request gives the same verdict three times; verdicts are 1, or 0 with a reason"),
        ("match-side-effect-free", "match() opens or closes no fd and leaves the plugin's state report unchanged"),
        ("bad-requests", "0 and huge sizes, an unknown format and conflicting constraints are refused with a reason"),
        ("allocation-honours-match", "what match accepted is allocated as promised: size (and the fd's real size), pitch, planes, modifier, dma-buf or not, CPU mapping, contiguity, close-on-exec"),
        ("release-closes-fds", "after a warm-up, allocate/release cycles leave the open fds and the state report as they were"),
        ("concurrent-calls", "4 threads at once get the single-thread verdicts, distinct fds and sound allocations, and leak nothing"),
        ("open-close-repeated", "the plugin opens and closes 8 times in a row, each open succeeding, without leaking fds"),
    ]

    /// Runs every check against the plugin file at `path`. `progress` sees
    /// each result as it is decided (a crashing plugin still leaves a trail).
    public static func run(path: String, logLevel: LogLevel = .error,
                           progress: (ConformanceCheck) -> Void = { _ in }) -> ConformanceReport {
        var report = ConformanceReport(path: path, checks: [])
        var configuration = Configuration.only(pluginPaths: [path])
        configuration.logLevel = logLevel
        let probe = checkLoaded(configuration, into: &report, progress)
        // After the plugin above is closed, so the cycles open it alone, as a process would.
        if report.plugin != nil && report.check("open-close-repeated") == nil {
            let cycles = openCloseRepeated(configuration, probe: probe)
            report.checks.append(cycles)
            progress(cycles)
        }
        for (name, _) in checks where report.check(name) == nil {
            let skipped = ConformanceCheck(name, .skip, "the plugin did not load")
            report.checks.append(skipped)
            progress(skipped)
        }
        return report
    }

    /// Loads the plugin once and runs every check that needs it open.
    /// Returns a request for the open/close cycles to serve, if any was accepted.
    private static func checkLoaded(_ configuration: Configuration, into report: inout ConformanceReport,
                                    _ progress: (ConformanceCheck) -> Void) -> ConformanceProbe? {
        func record(_ check: ConformanceCheck) {
            report.checks.append(check)
            progress(check)
        }
        let plugin: LoadedPlugin
        switch openOnce(configuration, path: report.path) {
        case .success(let p): plugin = p
        case .failure(let refusal):
            report.plugin = refusal.secureModule
            refusal.checks.forEach(record)
            return nil
        }
        report.plugin = plugin.name
        report.abi = "\(plugin.abiVersion.major).\(plugin.abiVersion.minor)"
        loadChecks(plugin).forEach(record)
        // Probes are built before any fd is counted: DRM nodes are opened, probed and closed here.
        let calls = ConformanceCalls(plugin: plugin, plausible: ConformanceProbe.plausibleSet(displays: ConformanceProbe.displays()),
                                     bad: ConformanceProbe.badSet)
        let (deterministic, verdicts) = calls.matchDeterministic()
        record(deterministic)
        record(calls.matchSideEffectFree())
        record(calls.badRequests())
        let (honours, allocated) = calls.allocationsHonourMatch()
        report.allocated = allocated.map(\.label)
        record(honours)
        record(calls.releaseClosesFds(allocated))
        record(calls.concurrent(verdicts, allocated))
        return allocated.first ?? calls.plausible.first
    }

    /// A refusal mapped onto the load checks: the loader's steps run in
    /// order, so every check before the failing step passed.
    struct Refusal: Error {
        var checks: [ConformanceCheck]
        /// Set when the file is a secure module, which these checks are not for.
        var secureModule: String?
    }

    private static func openOnce(_ configuration: Configuration, path: String) -> Result<LoadedPlugin, Refusal> {
        let registry = AllocatorRegistry(configuration: configuration)
        if let plugin = registry.plugins.first { return .success(plugin) }
        if let module = registry.secureModules.first {
            let why = "'\(module.name)' is a secure module (docs/SECURE.md); these checks are for allocators"
            let loaded = "loaded and opened as a secure module, ABI \(module.abiVersion.major).\(module.abiVersion.minor)"
            return .failure(Refusal(checks: checks.prefix(3).map { ConformanceCheck($0.name, .pass, loaded) }
                                    + checks.dropFirst(3).map { ConformanceCheck($0.name, .skip, why) }, secureModule: module.name))
        }
        let warning = registry.loadWarnings.first ?? "skipping plugin \(path): not loaded, no reason given"
        let prefix = "skipping plugin \(path): "
        let reason = warning.hasPrefix(prefix) ? String(warning.dropFirst(prefix.count)) : warning
        let step = reason.contains("open failed") ? 2 : (reason.contains(" lacks ") || reason.contains(" ops")) ? 1 : 0
        let names = ["entry-and-abi", "required-ops", "open"]
        var result = (0..<step).map { ConformanceCheck(names[$0], .pass, "the loader got past this step") }
        result.append(ConformanceCheck(names[step], .fail, reason))
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
                    let why = registry.loadWarnings.first ?? "it did not load"
                    return ConformanceCheck("open-close-repeated", .fail, "open #\(cycle) failed: \(why)")
                }
                if let probe {
                    let c = probe.call()
                    if plugin.rawMatch(c).accepted {
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
