import FoundationEssentials
import Glibc
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
/// file refuses to open, so it can never mean "allow all".
final class PolicyModule: SecureModule {
    static let name = "policy"
    static let summary = "grants device and CPU access from a JSON rules file (policy.rules); default deny"
    static let defaultRank: Int32 = Int32(SMAF_RANK_PRIMARY)

    struct Rules: Decodable, Sendable {
        var defaultAccess: Access
        var cpu: Access
        var devices: [String: Access]
        /// By driver name, or by node path (matched by device number).
        var drm: [String: Access]

        enum Key: String, CodingKey, CaseIterable { case `default`, cpu, drm, devices }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: AnyKey.self)
            let known = Key.allCases.map(\.rawValue)
            if let unknown = c.allKeys.first(where: { !known.contains($0.stringValue) }) {
                throw RulesError("unknown key '\(unknown.stringValue)' (known: \(known.joined(separator: ", ")))")
            }
            func access(_ text: String, _ what: String) throws -> Access {
                guard let a = Access(parsing: text) else {
                    throw RulesError("\(what): '\(text)' is not none, read, write or read_write")
                }
                return a
            }
            defaultAccess = try access(try c.decodeIfPresent(String.self, forKey: AnyKey("default")) ?? "none", "default")
            cpu = try access(try c.decodeIfPresent(String.self, forKey: AnyKey("cpu")) ?? "none", "cpu")
            let raw = try c.decodeIfPresent([String: String].self, forKey: AnyKey("devices")) ?? [:]
            devices = try raw.reduce(into: [:]) { $0[$1.key] = try access($1.value, "devices.\($1.key)") }
            let rawDRM = try c.decodeIfPresent([String: String].self, forKey: AnyKey("drm")) ?? [:]
            drm = try rawDRM.reduce(into: [:]) { $0[$1.key] = try access($1.value, "drm.\($1.key)") }
        }

        /// What `device` may do and which rule said so.
        func allowed(_ device: PluginConstraints) -> (access: Access, rule: String) {
            if let node = device.importNode {
                let identity: DRMNode.Identity
                do { identity = try DRMNode.identify(node) } catch {
                    return ([], "its import_node is not a DRM device: \(error)")
                }
                // The node itself first (any path that names the same device), then its driver.
                for (key, access) in drm.sorted(by: { $0.key < $1.key }) where key.hasPrefix("/") {
                    if let other = try? DRMNode.identify(key), other.device == identity.device { return (access, "drm.\(key)") }
                }
                if let access = drm[identity.driver] { return (access, "drm.\(identity.driver), the driver of \(node)") }
                return (defaultAccess, "default; \(node) is driven by \(identity.driver), which drm does not name")
            }
            if device.name == "cpu" { return (cpu, "cpu") }
            if let access = devices[device.name] { return (access, "devices.\(device.name)") }
            return (defaultAccess, "default")
        }
    }

    struct RulesError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private let rules: Rules?
    private let rulesPath: String?

    init(core: PluginCore) throws(PluginError) {
        rulesPath = core.config("rules")
        guard let path = rulesPath else {
            rules = nil
            return
        }
        do {
            let text = try Self.read(path)
            rules = try JSONDecoder().decode(Rules.self, from: Data(text.utf8))
        } catch let error as PluginError {
            throw error
        } catch let error as DecodingError {
            throw PluginError(errno: EINVAL, "rules file \(path): \(Self.describe(error))")
        } catch {
            throw PluginError(errno: EINVAL, "rules file \(path): \(error)")
        }
        core.log(SMAF_LOG_INFO, "rules from \(path)")
    }

    private static func read(_ path: String) throws(PluginError) -> String {
        guard let f = fopen(path, "r") else {
            throw PluginError(errno: errno, "rules file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "malformed JSON: \(c.underlyingError.map { "\($0)" } ?? c.debugDescription)" : c.debugDescription
        case .typeMismatch(_, let c), .valueNotFound(_, let c):
            return "field '\(c.codingPath.map(\.stringValue).joined(separator: "."))': wrong type"
        case .keyNotFound(let k, _): return "missing '\(k.stringValue)'"
        @unknown default: return "\(error)"
        }
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
        let (allowed, rule) = rules.allowed(device)
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
