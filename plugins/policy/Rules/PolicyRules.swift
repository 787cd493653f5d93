import FoundationEssentials
import SMAFPluginKit
import SMAFSys

/// A policy rules file (docs/SECURE.md):
///
///     { "default": "none",
///       "cpu": "read",
///       "drm": { "virtio_gpu": "read", "/dev/dri/card0": "read_write" },
///       "devices": { "video-decoder": "read_write" } }
///
/// Read strictly: the text must be one JSON object with each key once (a
/// duplicate device could grant read_write to smaf while `jq` shows none),
/// no unknown key, no device name a descriptor could not have.
public struct PolicyRules: Decodable, Sendable {
    public var defaultAccess: Access
    public var cpu: Access
    public var devices: [String: Access]
    /// By driver name, or by node path (matched by device number).
    public var drm: [String: Access]

    enum Key: String, CaseIterable { case `default`, cpu, drm, devices }

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// The rules in `bytes`; a problem is one line naming the field.
    public static func parse(_ bytes: [UInt8]) throws(Problem) -> PolicyRules {
        do {
            try StrictJSON.check(bytes)
            return try JSONDecoder().decode(PolicyRules.self, from: Data(bytes))
        } catch let error as StrictJSON.Problem {
            throw Problem(error.description)
        } catch let error as Problem {
            throw error
        } catch let error as DecodingError {
            throw Problem(describe(error))
        } catch {
            throw Problem(DisplayText.escaped("\(error)"))
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let known = Key.allCases.map(\.rawValue)
        if let unknown = c.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw Problem("unknown key '\(DisplayText.escaped(unknown.stringValue))' (known: \(known.joined(separator: ", ")))")
        }
        func access(_ text: String, _ what: String) throws -> Access {
            guard let a = Access(parsing: text) else {
                throw Problem("\(what): '\(DisplayText.escaped(text))' is not none, read, write or read_write")
            }
            return a
        }
        defaultAccess = try access(try c.decodeIfPresent(String.self, forKey: AnyKey("default")) ?? "none", "default")
        cpu = try access(try c.decodeIfPresent(String.self, forKey: AnyKey("cpu")) ?? "none", "cpu")
        let raw = try c.decodeIfPresent([String: String].self, forKey: AnyKey("devices")) ?? [:]
        devices = [:]
        for (name, value) in raw.sorted(by: { $0.key < $1.key }) {
            let what = "devices.\(DisplayText.escaped(name))"
            // Descriptor names are never empty and hold no control characters
            // (docs/CONSTRAINTS.md): a rule for such a name could never apply.
            if name.isEmpty || DisplayText.containsControlCharacters(name) {
                throw Problem("\(what): not a device name (names are non-empty, without control characters)")
            }
            devices[name] = try access(value, what)
        }
        let rawDRM = try c.decodeIfPresent([String: String].self, forKey: AnyKey("drm")) ?? [:]
        drm = [:]
        for (key, value) in rawDRM.sorted(by: { $0.key < $1.key }) {
            let what = "drm.\(DisplayText.escaped(key))"
            if key.isEmpty || DisplayText.containsControlCharacters(key) {
                throw Problem("\(what): not a driver name or a node path")
            }
            drm[key] = try access(value, what)
        }
    }

    /// What a device may do, and which rule said so. A device that names a
    /// node is judged by the node (the node itself, then its driver), never
    /// by its self-declared name; a node that is no DRM device gets nothing.
    public func allowed(_ name: String, importNode: String?) -> (access: Access, rule: String) {
        if let node = importNode {
            let identity: DRMNode.Identity
            do { identity = try DRMNode.identify(node) } catch {
                return ([], "its import_node is not a DRM device: \(error)")
            }
            for (key, access) in drm.sorted(by: { $0.key < $1.key }) where key.hasPrefix("/") {
                if let other = try? DRMNode.identify(key), other.device == identity.device { return (access, "drm.\(key)") }
            }
            if let access = drm[identity.driver] { return (access, "drm.\(identity.driver), the driver of \(node)") }
            return (defaultAccess, "default; \(node) is driven by \(identity.driver), which drm does not name")
        }
        if name == "cpu" { return (cpu, "cpu") }
        if let access = devices[name] { return (access, "devices.\(name)") }
        return (defaultAccess, "default")
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let c):
            return DisplayText.escaped(c.codingPath.isEmpty ? "malformed JSON: \(c.underlyingError.map { "\($0)" } ?? c.debugDescription)" : c.debugDescription)
        case .typeMismatch(_, let c), .valueNotFound(_, let c):
            return "field '\(DisplayText.escaped(c.codingPath.map(\.stringValue).joined(separator: ".")))': wrong type"
        case .keyNotFound(let k, _): return "missing '\(DisplayText.escaped(k.stringValue))'"
        @unknown default: return DisplayText.escaped("\(error)")
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
