import Glibc
import SMAFPluginKit
import Synchronization

/// The secure module the test suite drives: it records every call (read back
/// through `smaf list --stats` / LoadedPlugin.stats()) and denies what its
/// settings say. Rank none: it is used only when named.
///   test.deny         comma-separated device names to deny
///   test.cpu          none | read | write | read_write (default read_write)
///   test.grant_limit  grants allowed per buffer before denying
final class TestSecureModule: SecureModule {
    static let name = "test"
    static let summary = "secure module for the test suite: records every call, denies as configured"
    static let defaultRank: Int32 = Int32(SMAF_RANK_NONE)

    private let deny: Set<String>
    private let cpu: Access
    private let grantLimit: Int?
    private let calls = Mutex<[String]>([])

    final class BufferContext: @unchecked Sendable {
        let id: UInt64
        let grants = Atomic<Int>(0)
        init(id: UInt64) { self.id = id }
    }

    init(core: PluginCore) throws(PluginError) {
        deny = Set((core.config("deny") ?? "").split(separator: ",").map(String.init))
        let cpuText = core.config("cpu") ?? "read_write"
        guard let cpu = Access(parsing: cpuText) else { throw PluginError(errno: EINVAL, "test.cpu: '\(cpuText)' is not an access") }
        self.cpu = cpu
        if let text = core.config("grant_limit") {
            // A limit that does not parse would silently mean "no limit": refuse it instead.
            guard let limit = Int(text), limit >= 0 else {
                throw PluginError(errno: EINVAL, "test.grant_limit: '\(text)' is not a number of grants (0, 1, 2...)")
            }
            grantLimit = limit
        } else {
            grantLimit = nil
        }
    }

    private func record(_ line: String) { calls.withLock { $0.append(line) } }

    func createContext(buffer: SecureBufferInfo) throws(PluginError) -> AnyObject {
        record("create \(buffer.id)")
        return BufferContext(id: buffer.id)
    }

    func destroyContext(_ context: AnyObject) {
        record("destroy \((context as? BufferContext)?.id ?? 0)")
    }

    func grant(_ context: AnyObject, device: PluginConstraints, offset: UInt64, length: UInt64, access: Access) -> Verdict {
        let ctx = context as? BufferContext
        let line = "grant \(ctx?.id ?? 0) \(device.name) \(offset)+\(length) \(access)"
        if deny.contains(device.name) || (device.name == "cpu" && !cpu.isSuperset(of: access)) {
            record(line + " denied")
            return .reject("test module denies \(device.name)")
        }
        if let limit = grantLimit, let ctx, ctx.grants.wrappingAdd(1, ordering: .relaxed).oldValue >= limit {
            record(line + " denied")
            return .reject("test module grant limit \(limit) reached")
        }
        record(line + " ok")
        return .accept
    }

    func revoke(_ context: AnyObject, device: PluginConstraints, offset: UInt64, length: UInt64, access: Access) {
        record("revoke \((context as? BufferContext)?.id ?? 0) \(device.name) \(offset)+\(length) \(access)")
    }

    func allowCPUAccess(_ context: AnyObject, access: Access) -> Verdict {
        cpu.isSuperset(of: access) ? .accept : .reject("test module allows the CPU \(cpu), not \(access)")
    }

    /// The call log, one call per line.
    func stats() -> String? { calls.withLock { $0.joined(separator: "\n") } }
}

@_cdecl("smaf_plugin_entry")
public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
    PluginExport.entry(TestSecureModule.self)
}
