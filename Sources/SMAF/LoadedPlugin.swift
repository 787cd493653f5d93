import CSMAFPlugin
import Glibc
import Synchronization

/// A plugin that passed the loader's checks and opened. Owns the plugin
/// context (closed on deinit); buffers hold a reference so no allocation
/// outlives the plugin that must release it.
public final class LoadedPlugin: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init, and the
    // plugin promised thread safety or asked to be serialized (`callLock`).
    public let name: String
    public let summary: String
    public let path: String
    public let defaultRank: Rank
    public let rank: Rank
    /// `default`, `SMAF_RANKS`, or the config file line that set the rank.
    public let rankSource: String
    /// The ABI version both sides agreed on: the plugin's major, min(minors).
    public let abiVersion: (major: UInt32, minor: UInt32)

    public enum Kind: String, Sendable, Codable { case allocator, secureModule = "secure-module" }
    public let kind: Kind

    let table: UnsafePointer<smaf_plugin>
    /// Exactly one of the two is set, as `kind` says; the loader checked it.
    let allocatorOps: UnsafePointer<smaf_allocator_ops>?
    let secureOps: UnsafePointer<smaf_secure_ops>?
    /// The allocator ops; only called on plugins the registry keeps as allocators.
    var ops: UnsafePointer<smaf_allocator_ops> { allocatorOps! }
    let context: UnsafeMutableRawPointer?
    let core: CoreServices
    private let serialize: Bool
    private let callLock = Mutex(())

    init(name: String, path: String, table: UnsafePointer<smaf_plugin>, allocatorOps: UnsafePointer<smaf_allocator_ops>?,
         secureOps: UnsafePointer<smaf_secure_ops>?, context: UnsafeMutableRawPointer?, core: CoreServices, abiMinor: UInt32) {
        self.name = name
        self.path = path
        self.table = table
        self.allocatorOps = allocatorOps
        self.secureOps = secureOps
        kind = secureOps != nil ? .secureModule : .allocator
        self.context = context
        self.core = core
        summary = table.pointee.description.map { String(cString: $0) } ?? ""
        defaultRank = Rank(max(0, table.pointee.default_rank))
        (rank, rankSource) = core.configuration.rank(for: name, default: defaultRank)
        abiVersion = (table.pointee.abi_major, abiMinor)
        serialize = table.pointee.flags & SMAF_PLUGIN_FLAG_SERIALIZE.rawValue != 0
    }

    func serialized<R>(_ body: () -> R) -> R {
        guard serialize else { return body() }
        return callLock.withLock { _ in body() }
    }

    /// Runs the plugin's match(); nil means accepted, else the reason.
    func match(_ c: CallStructs) -> String? {
        var verdict = smaf_verdict()
        verdict.struct_size = UInt32(MemoryLayout<smaf_verdict>.size)
        let accepted = serialized {
            ops.pointee.match(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount), &verdict)
        }
        if accepted == 1 { return nil }
        let reason = withUnsafeBytes(of: verdict.reason) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return reason.isEmpty ? "rejected (the plugin gave no reason)" : reason
    }

    /// Runs allocate(); on failure the errno and the plugin's message.
    func allocate(_ c: CallStructs) -> Result<smaf_allocation, PluginFailure> {
        var allocation = smaf_allocation()
        allocation.struct_size = UInt32(MemoryLayout<smaf_allocation>.size)
        allocation.fd = -1
        var message = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let rc = serialized {
            ops.pointee.allocate(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount), &allocation, &message, message.count)
        }
        if rc == 0 && allocation.fd >= 0 { return .success(allocation) }
        if rc == 0 {
            // A plugin bug: success without an fd. Release what it may hold.
            release(&allocation)
            return .failure(PluginFailure(errno: EPROTO, message: "allocate() succeeded but returned no fd"))
        }
        return .failure(PluginFailure(errno: -rc, message: cString(message) ?? "allocate() failed"))
    }

    func release(_ allocation: inout smaf_allocation) {
        serialized { ops.pointee.release(context, &allocation) }
    }

    /// The plugin's state report, if it has one.
    public func stats() -> String? {
        guard let describe = allocatorOps?.pointee.describe_stats ?? secureOps?.pointee.describe_stats else { return nil }
        let needed = serialized { describe(context, nil, 0) }
        guard needed > 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: needed + 1)
        _ = serialized { describe(context, &buffer, buffer.count) }
        return cString(buffer) ?? ""
    }

    deinit {
        table.pointee.close(context)
    }
}

struct PluginFailure: Error {
    var errno: Int32
    var message: String
}
