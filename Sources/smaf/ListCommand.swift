import ArgumentParser
import SMAF
import SMAFCommandLine
import SMAFSys

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the allocator plugins found, in the order they are tried.",
        discussion: """
        Higher rank is tried first; ties go by name. Rank 'none' (0) is used only \
        when a request forces the allocator by name. Plugins the loader refused are \
        listed with the reason. Change ranks without rebuilding:
          SMAF_RANKS=memfd:primary,dumb:none smaf list
        """
    )

    @OptionGroup var options: RegistryOptions
    @Flag(name: .long, help: "Also print each plugin's state report (regions, usage), where it has one.")
    var stats = false

    struct PluginJSON: Encodable {
        var name, kind, description, path, rankSource, abi: String
        var rank, defaultRank: Int32
        var stats: String?
        /// What the allocator declared it can deliver (ABI 1.1); nil for 1.0 plugins and secure modules.
        var capabilities: [String]?
        enum CodingKeys: String, CodingKey {
            case name, kind, description, path, abi, rank, stats, capabilities
            case rankSource = "rank_source", defaultRank = "default_rank"
        }
    }

    struct ListJSON: Encodable {
        var plugins: [PluginJSON]
        var refused: [String]
    }

    func run() throws {
        let registry = try options.registry()
        let plugins = (registry.plugins + registry.secureModules).map { p in
            PluginJSON(name: p.name, kind: p.kind.rawValue, description: p.summary, path: p.path, rankSource: p.rankSource,
                       abi: "\(p.abiVersion.major).\(p.abiVersion.minor)", rank: p.rank.value,
                       defaultRank: p.defaultRank.value, stats: stats ? p.stats() : nil, capabilities: p.capabilities?.flags.names)
        }
        if options.json {
            try printJSON(ListJSON(plugins: plugins, refused: registry.loadWarnings.map(\.description)))
            return
        }
        print(pluginTable(registry))
        if stats {
            for p in registry.plugins + registry.secureModules {
                print("\n\(p.name):\n\(p.stats().map(DisplayText.escapedLines) ?? "  (no state report)")")
            }
        }
        for w in registry.loadWarnings { print("refused: \(DisplayText.escaped(w.description))") }
    }
}

/// The plugin table `list` and `demo` print.
func pluginTable(_ registry: AllocatorRegistry) -> String {
    guard !registry.plugins.isEmpty else {
        return "no allocator plugins found (searched SMAF_PLUGIN_PATH, the executable's folder, <prefix>/lib/smaf/plugins)"
    }
    var rows = [["ALLOCATOR", "RANK", "FROM", "ABI", "FILE"]]
    for p in registry.plugins {
        rows.append([p.name, p.rank.description, p.rankSource, "\(p.abiVersion.major).\(p.abiVersion.minor)", p.path])
    }
    var lines = table(rows)
    for p in registry.plugins { lines.append("  \(p.name): \(DisplayText.escaped(p.summary))") }
    if !registry.secureModules.isEmpty {
        lines.append("secure modules (the first above rank none is the default for --secure):")
        for m in registry.secureModules { lines.append("  \(m.name) (rank \(m.rank), \(m.rankSource)): \(DisplayText.escaped(m.summary))") }
    }
    return lines.joined(separator: "\n")
}
