import Glibc

/// What a plugin written in Swift implements. The kit turns it into the C ABI
/// (`smaf/plugin.h`); export it from the plugin's module with:
///
///     @_cdecl("smaf_plugin_entry")
///     public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
///         PluginExport.entry(MyAllocator.self)
///     }
///
/// One instance is created per open() and may be called from several threads
/// at once unless `serialized` is true.
public protocol AllocatorPlugin: SMAFPlugin {
    /// What it can ever deliver, asked once after init (ABI 1.1). The core
    /// turns away what this rules out before match() runs.
    var capabilities: Capabilities { get }
    /// Pure decision, for what the capabilities cannot say (formats, the
    /// devices, limits): no device memory allocated, no state changed.
    func match(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) -> Verdict
    /// Allocates for inputs match() accepted. Implement this one, or the
    /// variant with the device list when the choice depends on the devices
    /// (which DRM device to allocate on, say).
    func allocate(_ request: PluginRequest, merged: PluginConstraints) throws(PluginError) -> PluginAllocation
    func allocate(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) throws(PluginError) -> PluginAllocation
    /// Closes every fd and frees everything allocate() made for `allocation`.
    func release(_ allocation: PluginAllocation)
}

/// What every plugin, allocator or secure module, has.
public protocol SMAFPlugin: AnyObject, Sendable {
    static var name: String { get }
    static var summary: String { get }
    static var defaultRank: Int32 { get }
    /// Ask the core to serialize every call (for plugins with unlocked state).
    static var serialized: Bool { get }

    init(core: PluginCore) throws(PluginError)

    /// A human readable state report (`smaf list --stats`), if the plugin has one.
    func stats() -> String?
}

extension SMAFPlugin {
    public static var serialized: Bool { false }
    public func stats() -> String? { nil }
}

extension AllocatorPlugin {
    public func allocate(_ request: PluginRequest, merged: PluginConstraints, devices: [PluginConstraints]) throws(PluginError) -> PluginAllocation {
        try allocate(request, merged: merged)
    }

    public func allocate(_ request: PluginRequest, merged: PluginConstraints) throws(PluginError) -> PluginAllocation {
        throw PluginError(errno: ENOSYS, "\(Self.name) implements neither allocate variant")
    }
}
