import CSMAFPlugin

/// The memory behind a materialized buffer. Its one release path is deinit,
/// which hands the allocation back to the plugin that made it.
final class LiveAllocation: @unchecked Sendable {
    // @unchecked: `raw` is written once in init; the plugin is Sendable.
    let plugin: LoadedPlugin
    private var raw: smaf_allocation
    let info: Allocation

    init(plugin: LoadedPlugin, raw: smaf_allocation, info: Allocation) {
        self.plugin = plugin
        self.raw = raw
        self.info = info
    }

    /// The plugin-owned fd; borrow only while this object lives.
    var fd: Int32 { raw.fd }

    deinit { plugin.release(&raw) }
}
