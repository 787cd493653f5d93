import CSMAFPlugin
import CSMAFSys
import SMAFSys
import Glibc

/// A plugin file the loader refused, and why: one per file, never the process.
public struct LoadWarning: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    /// The name the plugin claimed, when it got that far.
    public let plugin: String?
    /// Where the loader stopped: the file checks, the entry and table, the ops, open().
    public let stage: PluginRefusal.Stage
    public let reason: String
    public var description: String { "skipping plugin \(path): \(reason)" }
}

/// Finds plugin files, dlopen()s them and refuses what it cannot trust: a
/// file others could have written (PluginFile), a missing entry symbol,
/// another ABI major, a table too small for ABI 1, a missing op, a bad name
/// or one already taken, an open() that fails or returns nonsense. A refused
/// plugin costs one warning naming the file and the reason, never the process.
package struct PluginLoader {
    let core: CoreServices

    package init(core: CoreServices) { self.core = core }

    /// Shipped plugins are named libsmafplugin_<name>.so so they can sit in
    /// a folder with other libraries (SwiftPM's build folder, an exe's dir).
    static let shippedPrefix = "libsmafplugin_"

    package typealias Warning = LoadWarning

    /// The files to try, in order: libsmafplugin_*.so next to the
    /// executable, <prefix>/lib/smaf/plugins (and beside libsmafapi.so),
    /// then SMAF_PLUGIN_PATH / configured paths (a file, or every *.so in a
    /// folder). The default folders come first so that a plugin on the path
    /// can add to the shipped ones but never take the name of one (see
    /// loadAll). Duplicates (same real path) are dropped silently.
    func candidateFiles() -> [String] {
        var files: [String] = []
        if core.configuration.searchDefaultPaths, let exeDir = executableDirectory() {
            files += sharedObjects(in: exeDir, prefix: Self.shippedPrefix)
            files += sharedObjects(in: exeDir + "/../lib/smaf/plugins", prefix: nil)
            // Linked into a shared library (the C API's libsmafapi.so), the
            // plugins sit beside that library: <libdir>/smaf/plugins.
            if let libDir = libraryDirectory(), libDir != exeDir {
                files += sharedObjects(in: libDir + "/smaf/plugins", prefix: nil)
            }
        }
        for entry in core.configuration.pluginPaths where !entry.isEmpty {
            files += isDirectory(entry) ? sharedObjects(in: entry, prefix: nil) : [entry]
        }
        var seen = Set<String>()
        return files.filter { seen.insert(realPath($0) ?? $0).inserted }
    }

    /// Loads every candidate; returns the plugins that opened and the warnings.
    /// A name belongs to the first file that claims it: a later plugin of
    /// the same name, allocator or secure module, is refused before its
    /// open() runs, naming both files. So a `policy` on SMAF_PLUGIN_PATH
    /// never replaces the shipped secure module.
    package func loadAll() -> (plugins: [LoadedPlugin], warnings: [Warning]) {
        var plugins: [LoadedPlugin] = []
        var warnings: [Warning] = []
        var owners: [String: String] = [:]
        for path in candidateFiles() {
            switch load(path, taken: owners) {
            case .success(let plugin):
                owners[plugin.name] = plugin.path
                plugins.append(plugin)
            case .failure(let warning):
                warnings.append(warning)
            }
        }
        for w in warnings { core.log(.warning, w.description) }
        for p in plugins {
            core.log(.info, "loaded \(p.name) from \(p.path), rank \(p.rank) (\(p.rankSource)), ABI \(p.abiVersion.major).\(p.abiVersion.minor)")
        }
        return (plugins, warnings)
    }

    /// Loads one file. `taken` maps the names already loaded to their files.
    func load(_ path: String, taken: [String: String] = [:]) -> Result<LoadedPlugin, Warning> {
        var claimedName: String?
        func refuse(_ reason: String, _ stage: PluginRefusal.Stage = .entry) -> Result<LoadedPlugin, Warning> {
            .failure(Warning(path: path, plugin: claimedName, stage: stage, reason: reason))
        }
        let file: PluginFile
        switch PluginFile.open(path) {
        case .success(let f): file = f
        case .failure(let refusal): return refuse(refusal.reason, refusal.stage)
        }
        // RTLD_NODELETE: a refused Swift plugin registered type metadata with
        // the runtime on load; unmapping it could leave the runtime dangling.
        let handle: UnsafeMutableRawPointer
        switch file.dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) {
        case .success(let h): handle = h
        case .failure(let refusal): return refuse(refusal.reason, refusal.stage)
        }
        guard let symbol = dlsym(handle, SMAF_PLUGIN_ENTRY_NAME) else {
            dlclose(handle)
            return refuse("no entry symbol '\(SMAF_PLUGIN_ENTRY_NAME)' (is it a smaf plugin?)")
        }
        let entry = unsafeBitCast(symbol, to: smaf_plugin_entry_fn.self)
        guard let table = entry(core.table) else {
            return refuse("\(SMAF_PLUGIN_ENTRY_NAME)() returned NULL")
        }
        let plugin = PluginStruct(table)
        let major = UInt32(SMAF_PLUGIN_ABI_MAJOR), minor = UInt32(SMAF_PLUGIN_ABI_MINOR)
        guard plugin.size >= ABI1_0.plugin else {
            return refuse("struct smaf_plugin is \(plugin.size) bytes, ABI \(major) needs \(ABI1_0.plugin)")
        }
        // Only the bytes the plugin has, read into a struct of this core's own.
        let p = plugin.copied()
        guard p.abi_major == major else {
            return refuse("built for ABI \(p.abi_major).\(p.abi_minor), this smaf speaks ABI \(major).\(minor)")
        }
        guard p.abi_minor_required <= minor else {
            return refuse("needs ABI \(major).\(p.abi_minor_required) or newer, this smaf speaks ABI \(major).\(minor)")
        }
        // Read with a bound: a name without its NUL is refused, not followed through memory.
        let claimed = boundedCString(p.name, limit: PluginStringLimit.name)
        guard let name = claimed, Self.isValidName(name) else {
            return refuse("plugin name '\(claimed ?? "(null)")' is not [a-z0-9_-]{1,63}")
        }
        claimedName = name
        if let owner = taken[name] {
            return refuse("duplicate plugin name '\(name)' (already loaded from \(owner))")
        }
        if let field = plugin.firstNonZero(("reserved0", \.reserved0), ("reserved", \.reserved)) {
            return refuse("'\(name)' sets smaf_plugin.\(field), which has no meaning yet and must be 0")
        }
        guard p.open != nil, p.close != nil else { return refuse("'\(name)' lacks open or close", .ops) }
        let entryPoints: LoadedPlugin.EntryPoints
        switch p.kind {
        case SMAF_PLUGIN_KIND_ALLOCATOR.rawValue:
            guard let table = p.allocator else { return refuse("'\(name)' is an allocator without allocator ops", .ops) }
            let opsStruct = PluginStruct(table)
            guard opsStruct.size >= ABI1_0.allocatorOps else {
                return refuse("'\(name)': struct smaf_allocator_ops is \(opsStruct.size) bytes, ABI \(major) needs \(ABI1_0.allocatorOps)", .ops)
            }
            let ops = opsStruct.copied()
            let missing = [("match", ops.match == nil), ("allocate", ops.allocate == nil),
                           ("release", ops.release == nil)].filter(\.1).map(\.0)
            guard missing.isEmpty else { return refuse("'\(name)' lacks required op \(missing.joined(separator: ", "))", .ops) }
            if let field = opsStruct.firstNonZero(("reserved0", \.reserved0), ("reserved", \.reserved)) {
                return refuse("'\(name)' sets smaf_allocator_ops.\(field), which has no meaning yet and must be 0", .ops)
            }
            entryPoints = .allocator(ops)
        case SMAF_PLUGIN_KIND_SECURE.rawValue:
            guard let table = p.secure else { return refuse("'\(name)' is a secure module without secure ops", .ops) }
            let opsStruct = PluginStruct(table)
            guard opsStruct.size >= ABI1_0.secureOps else {
                return refuse("'\(name)': struct smaf_secure_ops is \(opsStruct.size) bytes, ABI \(major) needs \(ABI1_0.secureOps)", .ops)
            }
            let ops = opsStruct.copied()
            // SMAF v8: every secure op is mandatory; a module that cannot revoke cannot be trusted.
            let missing = [("create_context", ops.create_context == nil), ("destroy_context", ops.destroy_context == nil),
                           ("grant_access", ops.grant_access == nil), ("revoke_access", ops.revoke_access == nil),
                           ("allow_cpu_access", ops.allow_cpu_access == nil)].filter(\.1).map(\.0)
            guard missing.isEmpty else { return refuse("'\(name)' lacks required op \(missing.joined(separator: ", "))", .ops) }
            if let field = opsStruct.firstNonZero(("reserved0", \.reserved0), ("reserved", \.reserved)) {
                return refuse("'\(name)' sets smaf_secure_ops.\(field), which has no meaning yet and must be 0", .ops)
            }
            entryPoints = .secure(ops)
        default:
            return refuse("'\(name)' is of kind \(p.kind), which this smaf does not load")
        }

        var context: UnsafeMutableRawPointer?
        var message = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let rc = p.open(core.table, &context, &message, message.count)
        switch PluginStatus(rc) {
        case .success:
            let loaded = LoadedPlugin(name: name, path: path, table: p, entryPoints: entryPoints,
                                      context: context, core: core, abiMinor: min(p.abi_minor, minor))
            if let refusal = loaded.loadCapabilities() { return refuse("'\(name)' \(refusal)", .open) }
            return .success(loaded)
        case .failure(let errno):
            return refuse("'\(name)' open failed (\(String(cString: strerror(errno)))): \(cString(message) ?? "no reason given")", .open)
        case .invalid(let code):
            // Whether a context exists is unknown: close() is not called on what may be garbage.
            return refuse("'\(name)' open failed: \(PluginStatus.invalidCode("open()", code))", .open)
        }
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count < Int(SMAF_NAME_MAX)
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2d }
    }
}

package func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

func realPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

/// The *.so files in a folder, sorted so load order never depends on readdir.
func sharedObjects(in dir: String, prefix: String?) -> [String] {
    ((try? Directory.entries(dir)) ?? [])
        .filter { $0.hasSuffix(".so") && (prefix.map($0.hasPrefix) ?? true) }
        .map { "\(dir)/\($0)" }
}

/// The folder of the image (executable or shared library) this code is in.
func libraryDirectory() -> String? {
    guard let name = csmaf_image_path(#dsohandle), let path = realPath(String(cString: name)) else { return nil }
    return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
}

func executableDirectory() -> String? {
    guard let exe = realPath("/proc/self/exe") else { return nil }
    return String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)])
}
