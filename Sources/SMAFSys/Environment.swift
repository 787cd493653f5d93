import CSMAFSys
import Glibc

/// The environment as smaf reads it, with secure_getenv(3)'s rule: in a
/// setuid, setgid or capability-elevated process the variables were set by
/// a less privileged caller, so none of them is read (SMAF_PLUGIN_PATH would
/// otherwise load that caller's code, SMAF_CONFIG read their file, HOME and
/// XDG_* pick their folders). Every SMAF_* and XDG_* read goes through here.
public enum Environment {
    /// getauxval(AT_SECURE): the kernel's own verdict on this process.
    public static var isSecureExecution: Bool { csmaf_at_secure() != 0 }

    /// `NAME=value` entries as a dictionary; empty when `secureExecution`.
    /// A name defined twice keeps its first value, as getenv(3) does, so
    /// smaf and the libraries it loads read the same setting.
    public static func variables(_ entries: [String] = entries(), secureExecution: Bool = isSecureExecution) -> [String: String] {
        guard !secureExecution else { return [:] }
        var variables: [String: String] = [:]
        for entry in entries {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            let name = String(entry[..<eq])
            if variables[name] == nil { variables[name] = String(entry[entry.index(after: eq)...]) }
        }
        return variables
    }

    /// One variable, nil when unset or when `secureExecution`.
    public static func value(_ name: String, secureExecution: Bool = isSecureExecution) -> String? {
        guard !secureExecution else { return nil }
        return getenv(name).map { String(cString: $0) }
    }

    /// This process's `environ`, in order.
    public static func entries() -> [String] {
        var entries: [String] = []
        var p = environ
        while let entry = p.pointee {
            entries.append(String(cString: entry))
            p += 1
        }
        return entries
    }
}
