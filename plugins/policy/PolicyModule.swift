import FoundationEssentials
import Glibc
import PolicyRules
import SMAFPluginKit
import SMAFSys
import Synchronization

/// A secure module driven by a JSON rules file (policy.rules, or
/// SMAF_POLICY_RULES, or `smaf alloc --secure --policy FILE`):
///
///     { "default": "none",
///       "cpu": "read",
///       "drm": { "virtio_gpu": "read", "/dev/dri/card0": "read_write" },
///       "devices": { "video-decoder": "read_write" } }
///
/// A device that names a DRM node (`import_node`) is judged by what that
/// node really is: its driver, or the node itself, under "drm"; never by
/// the name its descriptor gives itself, which anyone can write. A node that
/// is not a DRM device is denied. Other devices are judged by their
/// self-declared name under "devices" (docs/SECURE.md: a name proves
/// nothing). Anything not allowed is denied. A malformed or unreadable rules
/// file refuses to open, so it can never mean "allow all" (PolicyRules reads it).
final class PolicyModule: SecureModule {
    static let name = "policy"
    static let summary = "grants device and CPU access from a JSON rules file (policy.rules); default deny"
    static let defaultRank: Int32 = Int32(SMAF_RANK_PRIMARY)

    private let rules: PolicyRules?
    private let rulesPath: String?

    init(core: PluginCore) throws(PluginError) {
        rulesPath = core.config("rules")
        guard let path = rulesPath else {
            rules = nil
            return
        }
        do {
            rules = try PolicyRules.parse(try InputFile.read(path, what: "rules file"))
        } catch let error as InputFileError {
            throw PluginError(errno: EINVAL, error.description)
        } catch {
            throw PluginError(errno: EINVAL, "rules file \(DisplayText.escaped(path)): \(error)")
        }
        core.log(SMAF_LOG_INFO, "rules from \(DisplayText.escaped(path))")
    }

    final class BufferContext: @unchecked Sendable {
        let id: UInt64
        init(id: UInt64) { self.id = id }
    }

    func createContext(buffer: SecureBufferInfo) throws(PluginError) -> AnyObject {
        guard rules != nil else {
            throw PluginError(errno: EACCES, "no rules file: set policy.rules (SMAF_POLICY_RULES) or pass smaf alloc --policy FILE")
        }
        return BufferContext(id: buffer.id)
    }

    func destroyContext(_ context: AnyObject) {}

    func grant(_ context: AnyObject, device: PluginConstraints, offset: UInt64, length: UInt64, access: Access) -> Verdict {
        guard let rules else { return .reject("no rules") }
        let (allowed, rule) = rules.allowed(device.name, importNode: device.importNode)
        if allowed.isSuperset(of: access) { return .accept }
        return .reject("\(rulesPath ?? "rules") allows \(device.name) \(allowed) (\(rule)), not \(access)")
    }

    func revoke(_ context: AnyObject, device: PluginConstraints, offset: UInt64, length: UInt64, access: Access) {
        // Grants are decisions, not kernel state: nothing to undo here.
    }

    func allowCPUAccess(_ context: AnyObject, access: Access) -> Verdict {
        guard let rules else { return .reject("no rules") }
        return rules.cpu.isSuperset(of: access) ? .accept : .reject("\(rulesPath ?? "rules") allows the CPU \(rules.cpu), not \(access)")
    }

    func stats() -> String? {
        guard let rules else { return "no rules file (policy.rules unset): every secure buffer is refused" }
        let drm = rules.drm.sorted { $0.key < $1.key }.map { "drm \($0.key): \($0.value)" }
        let devices = rules.devices.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
        return "rules \(rulesPath ?? ""): default \(rules.defaultAccess), cpu \(rules.cpu); " + (drm + devices).joined(separator: ", ")
    }
}

@_cdecl("smaf_plugin_entry")
public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
    PluginExport.entry(PolicyModule.self)
}
