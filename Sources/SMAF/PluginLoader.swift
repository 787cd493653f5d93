import CSMAFPlugin
import CSMAFSys
import SMAFSys
import Glibc

/// The struct sizes of ABI 1.0, the oldest plugins this core loads. They
/// stay fixed as the structs grow (a newer core reads only the fields that
/// lie inside a plugin's struct_size); Tests/Fixtures/abi-v1 keeps the
/// header they come from and a test builds a plugin against it.
enum ABI1 {
    static let plugin: UInt32 = 144
    static let allocatorOps: UInt32 = 104
    static let secureOps: UInt32 = 120
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

    package struct Warning: Error, Sendable, CustomStringConvertible {
        package var path: String
        package var reason: String
        /// Where the loader stopped: the file checks, the entry and table, the ops, open().
        package var stage: PluginRefusal.Stage = .entry
        package var description: String { "skipping plugin \(path): \(reason)" }
    }

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
        func refuse(_ reason: String, _ stage: PluginRefusal.Stage = .entry) -> Result<LoadedPlugin, Warning> {
            .failure(Warning(path: path, reason: reason, stage: stage))
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
        let p = table.pointee
        let major = UInt32(SMAF_PLUGIN_ABI_MAJOR), minor = UInt32(SMAF_PLUGIN_ABI_MINOR)
        guard p.struct_size >= ABI1.plugin else {
            return refuse("struct smaf_plugin is \(p.struct_size) bytes, ABI \(major) needs \(ABI1.plugin)")
        }
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
        if let owner = taken[name] {
            return refuse("duplicate plugin name '\(name)' (already loaded from \(owner))")
        }
        guard p.open != nil, p.close != nil else { return refuse("'\(name)' lacks open or close", .ops) }
        var allocatorOps: UnsafePointer<smaf_allocator_ops>?
        var secureOps: UnsafePointer<smaf_secure_ops>?
        switch p.kind {
        case SMAF_PLUGIN_KIND_ALLOCATOR.rawValue:
            guard let ops = p.allocator else { return refuse("'\(name)' is an allocator without allocator ops", .ops) }
            guard ops.pointee.struct_size >= ABI1.allocatorOps else {
                return refuse("'\(name)': struct smaf_allocator_ops is \(ops.pointee.struct_size) bytes, ABI \(major) needs \(ABI1.allocatorOps)", .ops)
            }
            let missing = [("match", ops.pointee.match == nil), ("allocate", ops.pointee.allocate == nil),
                           ("release", ops.pointee.release == nil)].filter(\.1).map(\.0)
            guard missing.isEmpty else { return refuse("'\(name)' lacks required op \(missing.joined(separator: ", "))", .ops) }
            allocatorOps = ops
        case SMAF_PLUGIN_KIND_SECURE.rawValue:
            guard let ops = p.secure else { return refuse("'\(name)' is a secure module without secure ops", .ops) }
            guard ops.pointee.struct_size >= ABI1.secureOps else {
                return refuse("'\(name)': struct smaf_secure_ops is \(ops.pointee.struct_size) bytes, ABI \(major) needs \(ABI1.secureOps)", .ops)
            }
            // SMAF v8: every secure op is mandatory; a module that cannot revoke cannot be trusted.
            let missing = [("create_context", ops.pointee.create_context == nil), ("destroy_context", ops.pointee.destroy_context == nil),
                           ("grant_access", ops.pointee.grant_access == nil), ("revoke_access", ops.pointee.revoke_access == nil),
                           ("allow_cpu_access", ops.pointee.allow_cpu_access == nil)].filter(\.1).map(\.0)
            guard missing.isEmpty else { return refuse("'\(name)' lacks required op \(missing.joined(separator: ", "))", .ops) }
            secureOps = ops
        default:
            return refuse("'\(name)' is of kind \(p.kind), which this smaf does not load")
        }

        var context: UnsafeMutableRawPointer?
        var message = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let rc = p.open(core.table, &context, &message, message.count)
        switch PluginStatus(rc) {
        case .success:
            return .success(LoadedPlugin(name: name, path: path, table: table, allocatorOps: allocatorOps, secureOps: secureOps,
                                         context: context, core: core, abiMinor: min(p.abi_minor, minor)))
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
