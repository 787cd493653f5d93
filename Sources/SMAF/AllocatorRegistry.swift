import CSMAFPlugin
import SMAFFormats
import SMAFSys
import Synchronization
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
    /// The choices made so far, by request and devices (PreparedRequest).
    let preparedRequests = Mutex<[PreparedKey: PreparedChoice]>([:])

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
}

package func errnoName(_ e: Int32) -> String {
    Errno(rawValue: e).symbolicName
}
