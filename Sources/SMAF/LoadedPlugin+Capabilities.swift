import CSMAFPlugin
import SMAFFormats
import SMAFSys

extension LoadedPlugin {
    /// The most modifiers a declaration may list: every vendor's tilings of
    /// one driver fit many times over; a count beyond is a broken plugin.
    static let declaredModifierLimit = 256

    /// Asks an allocator that negotiated ABI 1.1 or later what it can ever
    /// deliver, once, right after open. nil when all is well (or when it has
    /// nothing to declare); else why the plugin is refused: a declaration
    /// the core cannot read is not guessed at.
    func loadCapabilities() -> String? {
        guard case .allocator(let ops) = entryPoints, abiVersion.minor >= 1, let declare = ops.capabilities else { return nil }
        var caps = smaf_capabilities()
        caps.struct_size = UInt32(MemoryLayout<smaf_capabilities>.size)
        let code = serialized { declare(context, &caps) }
        switch PluginStatus(code) {
        case .success: break
        case .failure(let errno): return "capabilities() failed (\(errnoName(errno)))"
        case .invalid(let code): return PluginStatus.invalidCode("capabilities()", code)
        }
        let flags = PluginCapabilities.Flags(rawValue: caps.flags)
        guard flags.isSubset(of: .known) else {
            return "declares capability bits 0x\(String(flags.subtracting(.known).rawValue, radix: 16)) this smaf does not know"
        }
        guard caps.padding == 0 else { return "sets smaf_capabilities.padding, which has no meaning yet and must be 0" }
        let count = Int(caps.modifier_count)
        guard count <= Self.declaredModifierLimit, count == 0 || caps.modifiers != nil else {
            return "declares \(count) modifiers\(caps.modifiers == nil ? " through a NULL list" : ", more than \(Self.declaredModifierLimit)")"
        }
        let alignment = caps.address_alignment
        guard alignment == 0 || alignment & (alignment - 1) == 0 else {
            return "declares an address alignment of \(alignment) bytes, which is not a power of two"
        }
        let exporter = withUnsafeBytes(of: caps.exporter) { cString($0) }
        capabilities = PluginCapabilities(
            flags: flags,
            addressAlignment: max(alignment, Memory.pageSize),
            modifiers: count == 0 ? [.linear] : (0..<count).map { Modifier(rawValue: caps.modifiers[$0]) },
            exporter: exporter.isEmpty ? nil : exporter)
        return nil
    }
}
