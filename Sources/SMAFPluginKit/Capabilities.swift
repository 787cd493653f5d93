/// What an allocator can ever deliver (ABI 1.1), declared once after open.
/// The core turns away, before match() runs, every request the declaration
/// rules out, with the same words for every allocator: match() is left with
/// what only the allocator knows. An allocation that breaks the declaration
/// is released and counts as a failed allocation.
public struct Capabilities: Sendable, Equatable {
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// Its fds are real dma-bufs devices import.
        public static let dmaBuf = Flags(rawValue: SMAF_CAP_DMABUF.rawValue)
        /// mmap() on its fds works.
        public static let cpuMappable = Flags(rawValue: SMAF_CAP_CPU_MAPPABLE.rawValue)
        /// It honours read-only requests (an fd without write permission).
        public static let readOnly = Flags(rawValue: SMAF_CAP_READ_ONLY.rawValue)
        /// It can deliver verified physically contiguous memory.
        public static let contiguous = Flags(rawValue: SMAF_CAP_CONTIGUOUS.rawValue)
        /// It can keep memory below a device's DMA address limit, verified.
        public static let addressLimits = Flags(rawValue: SMAF_CAP_ADDRESS_LIMITS.rawValue)
        /// Its memory is kept from the CPU (for secure-path devices).
        public static let secure = Flags(rawValue: SMAF_CAP_SECURE.rawValue)
        /// It serves plain byte buffers.
        public static let bytes = Flags(rawValue: SMAF_CAP_BYTES.rawValue)
        /// It serves images.
        public static let images = Flags(rawValue: SMAF_CAP_IMAGES.rawValue)
        /// It lays out whatever modifier its device's driver offers.
        public static let anyModifier = Flags(rawValue: SMAF_CAP_ANY_MODIFIER.rawValue)
    }

    public var flags: Flags
    /// The largest start alignment it can honour when a device asks (0: a page).
    public var addressAlignment: UInt64
    /// The layouts it makes; empty means LINEAR only.
    public var modifiers: [Modifier]
    /// The exporter of every dma-buf it makes ("udmabuf"); empty when that
    /// depends on the buffer, and match() checks importers itself.
    public var exporter: String

    public init(_ flags: Flags, addressAlignment: UInt64 = 0, modifiers: [Modifier] = [], exporter: String = "") {
        self.flags = flags
        self.addressAlignment = addressAlignment
        self.modifiers = modifiers
        self.exporter = exporter
    }

    /// Writes the declaration into the core's struct, only the fields that
    /// lie inside the struct_size the core set (ABI growth rule). The
    /// modifier list must outlive the plugin context: `storage` keeps it.
    func write(to caps: UnsafeMutablePointer<smaf_capabilities>, storage: UnsafeMutablePointer<UInt64>?) {
        let size = Int(caps.pointee.struct_size)
        func fits<V>(_ field: KeyPath<smaf_capabilities, V>) -> Bool {
            (MemoryLayout<smaf_capabilities>.offset(of: field) ?? .max) + MemoryLayout<V>.size <= size
        }
        if fits(\.flags) { caps.pointee.flags = flags.rawValue }
        if fits(\.address_alignment) { caps.pointee.address_alignment = addressAlignment }
        if fits(\.modifiers), fits(\.modifier_count), let storage {
            caps.pointee.modifier_count = UInt32(modifiers.count)
            caps.pointee.modifiers = UnsafePointer(storage)
        }
        if fits(\.exporter) {
            withUnsafeMutableBytes(of: &caps.pointee.exporter) { buf in
                copyMessage(exporter, into: buf.baseAddress!.assumingMemoryBound(to: CChar.self), buf.count)
            }
        }
    }
}
