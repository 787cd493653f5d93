import CSMAFPlugin
import SMAFFormats

/// What an allocator declared, once after open (ABI 1.1), that it can ever
/// deliver. The core turns away every request the declaration rules out
/// before match() runs, in the same words whichever allocator it hits, and
/// holds each allocation to the declaration. A 1.0 plugin declares nothing:
/// nothing is filtered and match() decides all, as before.
public struct PluginCapabilities: Sendable, Hashable, Codable {
    public struct Flags: OptionSet, Sendable, Hashable, Codable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let dmaBuf = Flags(rawValue: SMAF_CAP_DMABUF.rawValue)
        public static let cpuMappable = Flags(rawValue: SMAF_CAP_CPU_MAPPABLE.rawValue)
        public static let readOnly = Flags(rawValue: SMAF_CAP_READ_ONLY.rawValue)
        public static let contiguous = Flags(rawValue: SMAF_CAP_CONTIGUOUS.rawValue)
        public static let addressLimits = Flags(rawValue: SMAF_CAP_ADDRESS_LIMITS.rawValue)
        public static let secure = Flags(rawValue: SMAF_CAP_SECURE.rawValue)
        public static let bytes = Flags(rawValue: SMAF_CAP_BYTES.rawValue)
        public static let images = Flags(rawValue: SMAF_CAP_IMAGES.rawValue)
        public static let anyModifier = Flags(rawValue: SMAF_CAP_ANY_MODIFIER.rawValue)

        /// Every flag this core knows; a plugin that sets another is refused.
        public static let known: Flags = [.dmaBuf, .cpuMappable, .readOnly, .contiguous, .addressLimits, .secure, .bytes, .images, .anyModifier]

        /// The flags' names, for `smaf list` and explanations.
        public var names: [String] {
            let all: [(Flags, String)] = [(.dmaBuf, "dma-buf"), (.cpuMappable, "cpu-mappable"), (.readOnly, "read-only fds"),
                                          (.contiguous, "contiguous"), (.addressLimits, "address limits"), (.secure, "secure"),
                                          (.bytes, "bytes"), (.images, "images"), (.anyModifier, "any modifier")]
            return all.filter { contains($0.0) }.map(\.1)
        }
    }

    public var flags: Flags
    /// The largest start alignment it can honour when a device asks (a page when the plugin said 0).
    public var addressAlignment: UInt64
    /// The layouts it makes: LINEAR unless it said more; ignored with `.anyModifier`.
    public var modifiers: [Modifier]
    /// The exporter of every dma-buf it makes, nil when that depends on the buffer.
    public var exporter: String?

    public init(flags: Flags, addressAlignment: UInt64, modifiers: [Modifier], exporter: String?) {
        self.flags = flags
        self.addressAlignment = addressAlignment
        self.modifiers = modifiers
        self.exporter = exporter
    }

    /// Why an allocator with these capabilities cannot serve an image (or byte) request with
    /// `modifiers` acceptable, for the devices in `constraints`; nil when its
    /// declaration allows it and match() has the last word.
    public func refusal(isImage: Bool, readOnly: Bool, modifiers wanted: [Modifier], _ constraints: MergedConstraints) -> String? {
        let c = constraints.combined
        func who(_ limit: String) -> String { constraints.origin(of: limit).map { "device \($0)" } ?? "a device" }
        if isImage && !flags.contains(.images) { return "it serves plain byte buffers, not images" }
        if !isImage && !flags.contains(.bytes) { return "it serves images, not plain byte buffers" }
        if c.needsKernelImport && !flags.contains(.dmaBuf) {
            let importer = constraints.devices.first { $0.needsKernelImport }?.name ?? "a device"
            return "its memory is not a dma-buf, and device \(importer) imports one"
        }
        if c.needsCPU && !flags.contains(.cpuMappable) { return "the CPU cannot map its memory, and \(who("cpu")) needs to" }
        if c.secure && !flags.contains(.secure) { return "the CPU can map its memory, and \(who("secure")) needs memory the CPU cannot map" }
        if c.contiguous && !flags.contains(.contiguous) {
            return "it cannot deliver physically contiguous memory, which \(who("contiguous")) needs"
        }
        if let bits = c.dmaAddressBits, bits < 64, !flags.contains(.addressLimits) {
            return "it cannot keep memory below 2^\(bits), which \(who("dma address bits")) needs"
        }
        if readOnly && !flags.contains(.readOnly) {
            return "it cannot hand out read-only fds, which a secure module that denies CPU writes needs"
        }
        if let needed = c.addressAlignment, needed > addressAlignment {
            return "it aligns buffers to at most \(addressAlignment) bytes, and \(who("address alignment")) needs \(needed)"
        }
        if isImage && !flags.contains(.anyModifier) && !wanted.isEmpty && !wanted.contains(where: modifiers.contains) {
            return "it lays out \(modifiers.map(\.description).joined(separator: ", ")) only; the devices accept \(wanted.map(\.description).joined(separator: ", "))"
        }
        if let exporter, let refuser = constraints.devices.first(where: { d in d.needsKernelImport && d.importableFrom.map { !$0.contains(exporter) } ?? false }) {
            return "device \(refuser.name) cannot import \(exporter) dma-bufs (measured by the probe)"
        }
        return nil
    }

    /// Where an allocation breaks the declaration, one phrase each.
    public func breaches(_ a: Allocation) -> [String] {
        var v: [String] = []
        if a.isDmaBuf && !flags.contains(.dmaBuf) { v.append("a dma-buf from an allocator that declared none") }
        if a.cpuMappable && !flags.contains(.cpuMappable) { v.append("CPU-mappable memory from an allocator that declared none") }
        if a.readOnly && !flags.contains(.readOnly) { v.append("a read-only fd from an allocator that declared none") }
        if a.contiguous && !flags.contains(.contiguous) { v.append("contiguous memory from an allocator that declared none") }
        if let m = a.modifier, a.format != nil, !flags.contains(.anyModifier), !modifiers.contains(m) {
            v.append("modifier \(m), not among the declared \(modifiers.map(\.description).joined(separator: ", "))")
        }
        if let exporter, a.isDmaBuf, a.exporter != exporter { v.append("exporter '\(a.exporter)', not the declared '\(exporter)'") }
        return v
    }
}
