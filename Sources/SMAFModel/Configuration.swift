import Glibc
import SMAFSys

/// Where plugins are looked for, how they rank, and their settings. Read
/// from the environment and an optional config file; the environment wins.
///
/// Config file (`SMAF_CONFIG`, else `$XDG_CONFIG_HOME/smaf/smaf.conf`, else
/// `/etc/smaf/smaf.conf`), one `key = value` per line, `#` comments:
///
///     ranks = gbm:primary,dumb:none
///     plugin_path = /opt/vendor/smaf-plugins
///     cma.size = 64M
public struct Configuration: Sendable {
    /// Extra plugin files or folders, searched before the default folders.
    public var pluginPaths: [String] = []
    /// Also search next to the executable and in `<prefix>/lib/smaf/plugins`.
    public var searchDefaultPaths = true
    /// Applied in order: the config file's, then SMAF_RANKS.
    public var rankOverrides: [RankOverrides] = []
    /// Plugin settings by `plugin.key`.
    public var settings: [String: String] = [:]
    public var logLevel: LogLevel = .warning
    /// SMAF_NAME_BUFFERS=1: allocators name each dma-buf (DMA_BUF_SET_NAME),
    /// a debugging aid that costs an ioctl per buffer.
    public var nameBuffers = false
    /// The config file that was read, if any.
    public var configFile: String?

    public init() {}

    /// A configuration for tests and embedders: these plugin paths only.
    public static func only(pluginPaths: [String]) -> Configuration {
        var c = Configuration()
        c.pluginPaths = pluginPaths
        c.searchDefaultPaths = false
        return c
    }

    /// The SMAF_ variables that are smaf's own, not SMAF_<PLUGIN>_<KEY>
    /// settings. Every other SMAF_ variable is a setting; tools around smaf
    /// (the VM test bed's SMAFVM_*) keep out of the namespace.
    static let coreVariables: Set<String> = ["PLUGIN_PATH", "RANKS", "LOG", "CONFIG", "DEFAULT_PLUGINS", "NAME_BUFFERS"]

    /// SMAF_PLUGIN_PATH, SMAF_DEFAULT_PLUGINS=0 (search only that path),
    /// SMAF_RANKS, SMAF_LOG, SMAF_CONFIG and SMAF_<PLUGIN>_<KEY>.
    public static func fromEnvironment(_ env: [String: String] = currentEnvironment()) throws(SMAFError) -> Configuration {
        var c = Configuration()
        let explicit = env["SMAF_CONFIG"]
        let candidates = explicit.map { [$0] } ?? [
            (env["XDG_CONFIG_HOME"] ?? env["HOME"].map { "\($0)/.config" }).map { "\($0)/smaf/smaf.conf" },
            "/etc/smaf/smaf.conf",
        ].compactMap { $0 }
        for path in candidates {
            guard explicit != nil || access(path, R_OK) == 0 else { continue }
            try c.readConfigFile(path)
            break
        }
        if env["SMAF_DEFAULT_PLUGINS"] == "0" { c.searchDefaultPaths = false }
        if env["SMAF_NAME_BUFFERS"] == "1" { c.nameBuffers = true }
        if let paths = env["SMAF_PLUGIN_PATH"] {
            c.pluginPaths = paths.split(separator: ":").map(String.init) + c.pluginPaths
        }
        if let ranks = env["SMAF_RANKS"] {
            c.rankOverrides.append(try RankOverrides(parsing: ranks, source: "SMAF_RANKS"))
        }
        if let level = env["SMAF_LOG"] {
            guard let l = LogLevel(parsing: level) else {
                throw SMAFError(.invalidConfiguration, "SMAF_LOG: '\(DisplayText.escaped(level))' is not one of error, warning, info, debug")
            }
            c.logLevel = l
        }
        var settingSource: [String: String] = [:]
        for (key, value) in env.sorted(by: { $0.key < $1.key }) where key.hasPrefix("SMAF_") {
            // SMAF_CMA_SIZE -> cma.size; the core's own variables are not plugin settings.
            let rest = key.dropFirst(5)
            guard !Self.coreVariables.contains(String(rest)),
                  let underscore = rest.firstIndex(of: "_") else { continue }
            let plugin = rest[..<underscore].lowercased()
            let setting = rest[rest.index(after: underscore)...].lowercased()
            let name = "\(plugin).\(setting)"
            // SMAF_CMA_SIZE and SMAF_cma_size name one setting: which would win
            // depends on the order the environment is walked in, so neither does.
            if let other = settingSource[name] {
                throw SMAFError(.invalidConfiguration, "\(DisplayText.escaped(other)) and \(DisplayText.escaped(key)) both set \(DisplayText.escaped(name)); set it once")
            }
            settingSource[name] = key
            c.settings[name] = value
        }
        return c
    }

    mutating func readConfigFile(_ path: String) throws(SMAFError) {
        let bytes: [UInt8]
        do { bytes = try InputFile.read(path, what: "config file") } catch {
            throw SMAFError(.invalidConfiguration, error.description)
        }
        try parseConfigFile(bytes, source: path)
    }

    /// A configuration from config-file text alone (no environment): what
    /// the fuzz target feeds, and a way to check a file before installing it.
    public static func parsingConfigFile(_ bytes: [UInt8], source: String) throws(SMAFError) -> Configuration {
        var c = Configuration()
        try c.parseConfigFile(bytes, source: source)
        return c
    }

    /// The config file's `key = value` lines. Each key once: a second
    /// `ranks` or `cma.size` is an error naming both lines, not a silent
    /// override, so the file reads the same to smaf and to a person.
    mutating func parseConfigFile(_ bytes: [UInt8], source path: String) throws(SMAFError) {
        let path = DisplayText.escaped(path)
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw SMAFError(.invalidConfiguration, "\(path): not UTF-8 text")
        }
        configFile = path
        var fileSettings: [String: String] = [:]
        var firstLine: [String: Int] = [:]
        // Split on bytes: as Characters, a CRLF is one grapheme and no "\n".
        for (number, lineBytes) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let at = "\(path):\(number + 1)"
            let raw = String(decoding: lineBytes.last == 0x0D ? lineBytes.dropLast() : lineBytes, as: UTF8.self)
            // Tabs are whitespace (and escaped when a line is quoted back); any
            // other control character would reach logs and `smaf list` as is.
            if raw.unicodeScalars.contains(where: { $0 != "\t" && DisplayText.isControl($0) }) {
                throw SMAFError(.invalidConfiguration, "\(at): control characters are not allowed")
            }
            let line = String(raw.prefix { $0 != "#" }).trimmed
            if line.isEmpty { continue }
            let parts = line.split(separator: "=", maxSplits: 1).map { String($0).trimmed }
            guard parts.count == 2, !parts[0].isEmpty else {
                throw SMAFError(.invalidConfiguration, "\(at): expected 'key = value', got '\(DisplayText.escaped(line))'")
            }
            let key = parts[0].lowercased()
            if let first = firstLine[key] {
                throw SMAFError(.invalidConfiguration, "\(at): duplicate key '\(DisplayText.escaped(parts[0]))' (first set on line \(first)); set it once")
            }
            firstLine[key] = number + 1
            switch parts[0] {
            case "ranks": rankOverrides.append(try RankOverrides(parsing: parts[1], source: at))
            case "plugin_path": pluginPaths += parts[1].split(separator: ":").map(String.init)
            case "log":
                guard let l = LogLevel(parsing: parts[1]) else {
                    throw SMAFError(.invalidConfiguration, "\(at): log level '\(DisplayText.escaped(parts[1]))' is not one of error, warning, info, debug")
                }
                logLevel = l
            case let key where key.contains("."): fileSettings[key.lowercased()] = parts[1]
            default:
                throw SMAFError(.invalidConfiguration,
                                "\(at): unknown key '\(DisplayText.escaped(parts[0]))' (ranks, plugin_path, log, or <plugin>.<setting>)")
            }
        }
        settings.merge(fileSettings) { env, _ in env }
    }

    /// The rank a plugin ends up with, and where that rank came from.
    package func rank(for name: String, default defaultRank: Rank) -> (Rank, String) {
        var result = (defaultRank, "default")
        for overrides in rankOverrides {
            if let r = overrides.ranks[name] { result = (r, overrides.source) }
        }
        return result
    }
}

/// The environment smaf reads: nothing in a setuid/setgid/capability-elevated
/// process (AT_SECURE), and a variable defined twice keeps its first value.
public func currentEnvironment() -> [String: String] {
    Environment.variables()
}
