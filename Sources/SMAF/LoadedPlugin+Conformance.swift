import CSMAFPlugin
import Glibc

/// The plugin's ops as the conformance run sees them: the raw return codes
/// and messages, where the registry's calls (LoadedPlugin.swift) turn them
/// into verdicts and errors and so hide a "2" from match() or an empty reason.
extension LoadedPlugin {
    struct RawVerdict: Equatable, Sendable {
        var code: Int32
        var reason: String
        var accepted: Bool { code == 1 }
        var text: String { accepted ? "accepted" : "rejected (\(reason.isEmpty ? "no reason" : reason))" }
    }

    struct RawAllocation {
        var code: Int32
        var allocation: smaf_allocation
        var message: String
    }

    func rawMatch(_ c: CallStructs) -> RawVerdict {
        var verdict = smaf_verdict()
        verdict.struct_size = UInt32(MemoryLayout<smaf_verdict>.size)
        let code = serialized {
            ops.pointee.match(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount), &verdict)
        }
        return RawVerdict(code: code, reason: withUnsafeBytes(of: verdict.reason) { cString($0) })
    }

    /// allocate() as the core calls it. The caller releases what succeeded.
    func rawAllocate(_ c: CallStructs) -> RawAllocation {
        var allocation = smaf_allocation()
        allocation.struct_size = UInt32(MemoryLayout<smaf_allocation>.size)
        allocation.fd = -1
        var message = [CChar](repeating: 0, count: Int(SMAF_REASON_MAX))
        let code = serialized {
            ops.pointee.allocate(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount),
                                 &allocation, &message, message.count)
        }
        return RawAllocation(code: code, allocation: allocation,
                             message: message.withUnsafeBytes { cString($0) })
    }

    /// What the plugin's table says about itself, for the report.
    var declaredABI: (minor: UInt32, required: UInt32) {
        (table.pointee.abi_minor, table.pointee.abi_minor_required)
    }

    var isSerialized: Bool { table.pointee.flags & SMAF_PLUGIN_FLAG_SERIALIZE.rawValue != 0 }
    var hasStats: Bool { ops.pointee.describe_stats != nil }
}

/// A NUL-terminated string in a fixed C buffer (never reads past it).
func cString(_ raw: UnsafeRawBufferPointer) -> String {
    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
}
