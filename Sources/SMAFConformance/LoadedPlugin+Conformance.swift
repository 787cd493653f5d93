import CSMAFPlugin
import Glibc
import SMAF

/// The plugin's ops as the conformance run sees them: the raw return codes
/// and messages, where the registry's calls (LoadedPlugin.swift) turn them
/// into verdicts and errors and so hide a "2" from match() or an empty reason.
extension LoadedPlugin {
    struct RawVerdict: Equatable, Sendable {
        var code: Int32
        var reason: String
        /// Guard bytes after the struct smaf_verdict that match() changed.
        var overrun = 0
        var accepted: Bool { code == 1 }
        var text: String { accepted ? "accepted" : "rejected (\(reason.isEmpty ? "no reason" : reason))" }

        /// Same verdict: the code and the reason (an overrun is reported on its own).
        static func == (a: RawVerdict, b: RawVerdict) -> Bool { a.code == b.code && a.reason == b.reason }
    }

    struct RawAllocation {
        var code: Int32
        var allocation: smaf_allocation
        var message: String
        /// Guard bytes changed after the struct smaf_allocation and after the error buffer.
        var overrun = (allocation: 0, message: 0)
    }

    /// match() as the walk asks it: what the allocator's declaration rules
    /// out, the core turns away first (code 0, the core's reason), so the
    /// checks hold the plugin to what it leaves match() to decide.
    func rawMatch(_ probe: ConformanceProbe, _ c: CallStructs) -> RawVerdict {
        let image = if case .image = probe.request.shape { true } else { false }
        if let capabilities, let merged = try? MergedConstraints(probe.devices),
           let refusal = capabilities.refusal(isImage: image, readOnly: probe.request.readOnly, modifiers: probe.modifiers, merged) {
            return RawVerdict(code: 0, reason: "core, from its capabilities: \(refusal)")
        }
        return rawMatch(c)
    }

    func rawMatch(_ c: CallStructs) -> RawVerdict {
        let (verdict, overrun) = GuardedMemory.with(MemoryLayout<smaf_verdict>.size) { raw in
            let v = raw.bindMemory(to: smaf_verdict.self, capacity: 1)
            v.pointee.struct_size = UInt32(MemoryLayout<smaf_verdict>.size)
            let code = serialized {
                ops.match!(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount), v)
            }
            return RawVerdict(code: code, reason: withUnsafeBytes(of: v.pointee.reason) { cString($0) })
        }
        var result = verdict
        result.overrun = overrun
        return result
    }

    /// allocate() as the core calls it, with guard bytes after the
    /// allocation and the message. The caller releases what succeeded.
    func rawAllocate(_ c: CallStructs) -> RawAllocation {
        let messageSize = Int(SMAF_REASON_MAX)
        let ((code, allocation, message, messageOverrun), allocationOverrun) = GuardedMemory.with(MemoryLayout<smaf_allocation>.size) { raw in
            let a = raw.bindMemory(to: smaf_allocation.self, capacity: 1)
            a.pointee.struct_size = UInt32(MemoryLayout<smaf_allocation>.size)
            a.pointee.fd = -1
            let ((code, message), messageOverrun) = GuardedMemory.with(messageSize) { text in
                let chars = text.bindMemory(to: CChar.self, capacity: messageSize)
                let code = serialized {
                    ops.allocate!(context, c.request, c.merged, c.devicePointers, UInt32(c.deviceCount), a, chars, messageSize)
                }
                return (code, cString(UnsafeRawBufferPointer(start: text, count: messageSize)))
            }
            return (code, a.pointee, message, messageOverrun)
        }
        return RawAllocation(code: code, allocation: allocation, message: message, overrun: (allocationOverrun, messageOverrun))
    }

    /// describe_stats() called raw: with (nil, 0) for the length it wants,
    /// then with a guarded buffer of `size` bytes.
    func rawStats(size: Int) -> (needed: Int, written: String, overrun: Int)? {
        guard let describe = ops.describe_stats else { return nil }
        let ((needed, text), overrun) = GuardedMemory.with(size) { raw in
            let needed = serialized { describe(context, size == 0 ? nil : raw.bindMemory(to: CChar.self, capacity: size), size) }
            return (needed, cString(UnsafeRawBufferPointer(start: raw, count: size)))
        }
        return (needed, text, overrun)
    }

    /// What the plugin's table says about itself, for the report.
    var declaredABI: (minor: UInt32, required: UInt32) {
        (table.abi_minor, table.abi_minor_required)
    }

    var isSerialized: Bool { table.flags & SMAF_PLUGIN_FLAG_SERIALIZE.rawValue != 0 }
    var hasStats: Bool { ops.describe_stats != nil }
}

/// Memory a plugin writes into (a struct, a message buffer) followed by
/// guard bytes. In the core a plugin that writes past what it was given
/// corrupts memory nobody can protect; here the change is seen and reported.
enum GuardedMemory {
    static let guardBytes = 256
    static let pattern: UInt8 = 0xa5

    /// Runs `body` on `byteCount` zeroed bytes followed by the guard;
    /// returns its result and how many guard bytes changed.
    static func with<R>(_ byteCount: Int, _ body: (UnsafeMutableRawPointer) -> R) -> (R, Int) {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: byteCount + guardBytes, alignment: 16)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        (raw + byteCount).initializeMemory(as: UInt8.self, repeating: pattern, count: guardBytes)
        let result = body(raw)
        let guarded = UnsafeRawBufferPointer(start: raw + byteCount, count: guardBytes)
        return (result, guarded.count { $0 != pattern })
    }
}
