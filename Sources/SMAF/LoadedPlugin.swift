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

    /// The plugin's table and ops as this core reads them: copied from the
    /// plugin's structs up to their struct_size (PluginStruct), so a field a
    /// plugin built for an older minor does not have reads as its default.
    package let table: smaf_plugin
    enum EntryPoints {
        case allocator(smaf_allocator_ops)
        case secure(smaf_secure_ops)
    }
    let entryPoints: EntryPoints
    /// The allocator ops, whose required ones the loader checked are set;
    /// only called on plugins the registry keeps as allocators.
    package var ops: smaf_allocator_ops {
        guard case .allocator(let ops) = entryPoints else { preconditionFailure("\(name) is not an allocator") }
        return ops
    }
    /// What the allocator declared it can deliver (ABI 1.1); nil for a 1.0
    /// plugin, which match() alone decides for, and for secure modules.
    // Set once by the loader, right after open and before the plugin is shared.
    public internal(set) var capabilities: PluginCapabilities?
    package let context: UnsafeMutableRawPointer?
    let core: CoreServices
    private let serialize: Bool
    private let callLock = Mutex(())

    init(name: String, path: String, table: smaf_plugin, entryPoints: EntryPoints,
         context: UnsafeMutableRawPointer?, core: CoreServices, abiMinor: UInt32) {
        self.name = name
        self.path = path
        self.table = table
        self.entryPoints = entryPoints
        if case .secure = entryPoints { kind = .secureModule } else { kind = .allocator }
        self.context = context
        self.core = core
        summary = boundedCString(table.description, limit: PluginStringLimit.description) ?? ""
        defaultRank = Rank(max(0, table.default_rank))
        (rank, rankSource) = core.configuration.rank(for: name, default: defaultRank)
        abiVersion = (table.abi_major, abiMinor)
        serialize = table.flags & SMAF_PLUGIN_FLAG_SERIALIZE.rawValue != 0
    }

    package func serialized<R>(_ body: () -> R) -> R {
        guard serialize else { return body() }
        return callLock.withLock { _ in body() }
    }

    /// Runs the plugin's match(); nil means accepted, else the reason.
    func match(_ c: CallStructs) -> String? {
        var verdict = smaf_verdict()
        verdict.struct_size = UInt32(MemoryLayout<smaf_verdict>.size)
        let code = serialized {
            ops.match!(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount), &verdict)
        }
        if code == 1 && verdict.score != 0 { return Self.scoreSet(verdict.score) }
        return Self.rejection(code) { withUnsafeBytes(of: verdict.reason) { cString($0) } }
    }

    /// smaf_verdict.score has no meaning yet: a plugin that sets it is not taken at its word.
    static func scoreSet(_ score: Int32) -> String {
        "match() set smaf_verdict.score to \(score), which has no meaning yet and must be 0"
    }

    /// nil when match() returned 1; else why not: its reason for a 0, the
    /// broken code for anything else (which is never taken as a yes).
    static func rejection(_ code: Int32, reason: () -> String) -> String? {
        switch code {
        case 1: return nil
        case 0:
            let text = reason()
            return text.isEmpty ? "rejected (the plugin gave no reason)" : text
        default: return PluginStatus.invalidVerdict("match()", code)
        }
    }

    /// Runs allocate(); on failure the errno and the plugin's message.
    func allocate(_ c: CallStructs) -> Result<smaf_allocation, PluginFailure> {
        var allocation = smaf_allocation()
        allocation.struct_size = UInt32(MemoryLayout<smaf_allocation>.size)
        allocation.fd = -1
        var message = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let rc = serialized {
            ops.allocate!(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount), &allocation, &message, message.count)
        }
        switch PluginStatus(rc) {
        case .success where allocation.fd >= 0:
            return .success(allocation)
        case .success:
            // A plugin bug: success without an fd. Release what it may hold.
            release(&allocation)
            return .failure(PluginFailure(errno: EPROTO, message: "allocate() succeeded but returned no fd"))
        case .failure(let errno):
            return .failure(PluginFailure(errno: errno, message: cString(message) ?? "allocate() failed"))
        case .invalid(let code):
            // Whether it allocated is unknown; an fd it set is handed back rather than leaked.
            if allocation.fd >= 0 { release(&allocation) }
            return .failure(PluginFailure(errno: EPROTO, message: PluginStatus.invalidCode("allocate()", code)))
        }
    }

    package func release(_ allocation: inout smaf_allocation) {
        serialized { ops.release!(context, &allocation) }
    }

    /// The plugin's state report, if it has one. A plugin that reports an
    /// impossible length gets a line saying so instead of the allocation.
    public func stats() -> String? {
        switch statsReport() {
        case .absent: return nil
        case .report(let text): return text
        case .invalid(let why): return "(no report: \(why))"
        }
    }

    enum StatsReport: Equatable {
        case absent
        case report(String)
        case invalid(String)
    }

    /// describe_stats() asked for its length, range-checked, then read.
    func statsReport() -> StatsReport {
        let op: (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, Int) -> Int)?
        switch entryPoints {
        case .allocator(let ops): op = ops.describe_stats
        case .secure(let ops): op = ops.describe_stats
        }
        guard let describe = op else { return .absent }
        // size_t arrives as Int: SIZE_MAX reads as -1, 2^63 and up as negative.
        let needed = serialized { describe(context, nil, 0) }
        guard needed > 0 else {
            return needed == 0 ? .absent : .invalid("describe_stats() returned \(UInt(bitPattern: needed)), more than the \(statsReportLimit) bytes a report may take")
        }
        guard needed <= statsReportLimit else {
            return .invalid("describe_stats() returned \(needed), more than the \(statsReportLimit) bytes a report may take")
        }
        var buffer = [CChar](repeating: 0, count: needed + 1)
        _ = serialized { describe(context, &buffer, buffer.count) }
        return .report(cString(buffer) ?? "")
    }

    deinit {
        table.close(context)
    }
}

struct PluginFailure: Error {
    var errno: Int32
    var message: String
}
