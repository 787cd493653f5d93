import CSMAFPlugin
import Glibc
import Synchronization

/// The `smaf_core` table handed to every plugin: logging and settings. It
/// lives as long as any plugin opened with it (plugins keep a reference).
package final class CoreServices: @unchecked Sendable {
    let configuration: Configuration
    let log: Logger
    /// Stable C copies of settings handed out; smaf_core.config promises the
    /// strings live as long as the core.
    private let strings = Mutex<[String: UnsafeMutablePointer<CChar>]>([:])
    let table: UnsafeMutablePointer<smaf_core>

    package init(configuration: Configuration) {
        self.configuration = configuration
        log = Logger(level: configuration.logLevel)
        table = .allocate(capacity: 1)
        table.initialize(to: smaf_core())
        table.pointee.struct_size = UInt32(MemoryLayout<smaf_core>.size)
        table.pointee.abi_major = UInt32(SMAF_PLUGIN_ABI_MAJOR)
        table.pointee.abi_minor = UInt32(SMAF_PLUGIN_ABI_MINOR)
        table.pointee.log = { data, level, plugin, message in
            guard let data, let message else { return }
            let core = Unmanaged<CoreServices>.fromOpaque(data).takeUnretainedValue()
            // Read with a bound: a plugin's line may lack its NUL.
            core.log(LogLevel(rawValue: Int(level)) ?? .debug, boundedCString(message, limit: PluginStringLimit.logLine) ?? "",
                     plugin: boundedCString(plugin, limit: PluginStringLimit.name))
        }
        table.pointee.config = { data, plugin, key in
            guard let data, let plugin, let key else { return nil }
            let core = Unmanaged<CoreServices>.fromOpaque(data).takeUnretainedValue()
            guard let name = boundedCString(plugin, limit: PluginStringLimit.name),
                  let setting = boundedCString(key, limit: PluginStringLimit.name) else { return nil }
            return core.setting(name, setting)
        }
        table.pointee.core_data = Unmanaged.passUnretained(self).toOpaque()
    }

    private func setting(_ plugin: String, _ key: String) -> UnsafePointer<CChar>? {
        let name = "\(plugin).\(key)".lowercased()
        guard let value = configuration.settings[name] else { return nil }
        return strings.withLock { cache in
            if let s = cache[name] { return UnsafePointer(s) }
            // A failed strdup of a setting is out of memory: no setting rather than a trap.
            guard let s = strdup(value) else { return nil }
            cache[name] = s
            return UnsafePointer(s)
        }
    }

    deinit {
        for (_, s) in strings.withLock({ $0 }) { free(s) }
        table.deallocate()
    }
}
