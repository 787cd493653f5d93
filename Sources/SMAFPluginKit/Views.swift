@_exported import CSMAFPlugin
@_exported import SMAFFormats

/// Zero-copy Swift views of what the core passes a plugin. Each is valid only
/// during the call it was passed to; copy out what must outlive it.

/// The application's request, as the core merged it.
public struct PluginRequest {
    let raw: UnsafePointer<smaf_request>

    /// Bytes asked for; for an image, the core's minimum estimate.
    public var size: UInt64 { raw.pointee.size }
    public var width: UInt32 { raw.pointee.width }
    public var height: UInt32 { raw.pointee.height }
    /// nil for a plain byte buffer.
    public var format: FourCC? { raw.pointee.fourcc == 0 ? nil : FourCC(rawValue: raw.pointee.fourcc) }
    public var isImage: Bool { raw.pointee.width != 0 }
    /// Hand out an fd without write permission (SMAF_REQUEST_READ_ONLY); an
    /// allocator that cannot must reject in match().
    public var readOnly: Bool { raw.pointee.flags & SMAF_REQUEST_READ_ONLY.rawValue != 0 }
    /// The application asked for named dma-bufs (SMAF_NAME_BUFFERS=1): name
    /// the buffer with DMA_BUF_SET_NAME where you can.
    public var wantsName: Bool { raw.pointee.flags & SMAF_REQUEST_NAME_BUFFER.rawValue != 0 }

    /// Modifiers every party accepts; empty means "any".
    public var modifiers: UnsafeBufferPointer<UInt64> {
        UnsafeBufferPointer(start: raw.pointee.modifiers, count: Int(raw.pointee.modifier_count))
    }

    /// True if `modifier` is acceptable (an empty list accepts all).
    public func accepts(_ modifier: Modifier) -> Bool {
        modifiers.isEmpty || modifiers.contains(modifier.rawValue)
    }
}

/// One device's constraints, or their merge.
public struct PluginConstraints {
    let raw: UnsafePointer<smaf_constraints>

    public var name: String { raw.pointee.name.map { String(cString: $0) } ?? "device" }
    public var usage: UInt32 { raw.pointee.usage }
    public var flags: UInt32 { raw.pointee.flags }
    public var needsContiguous: Bool { flags & SMAF_CONSTRAINT_CONTIGUOUS.rawValue != 0 }
    public var needsCPUAccess: Bool { flags & SMAF_CONSTRAINT_CPU_ACCESS.rawValue != 0 }
    public var isSecure: Bool { flags & SMAF_CONSTRAINT_SECURE.rawValue != 0 }
    public var needsDmaBuf: Bool { flags & SMAF_CONSTRAINT_DMABUF.rawValue != 0 || raw.pointee.import_node != nil }
    public var importNode: String? { raw.pointee.import_node.map { String(cString: $0) } }
    public var dmaAddressBits: UInt32 { raw.pointee.dma_address_bits }
    public var addressAlignment: UInt64 { raw.pointee.address_alignment }
    public var pitchAlignment: UInt64 { raw.pointee.pitch_alignment }
    public var heightAlignment: UInt64 { raw.pointee.height_alignment }
    public var maxPitch: UInt64 { raw.pointee.max_pitch }
    public var maxSize: UInt64 { raw.pointee.max_size }
    public var maxWidth: UInt32 { raw.pointee.max_width }
    public var maxHeight: UInt32 { raw.pointee.max_height }
    public var maxSegments: UInt32 { raw.pointee.max_segments }

    /// Exporters this device is known to import from (from the probe); nil when unknown.
    public var importableFrom: [String]? {
        guard raw.pointee.importable_count > 0, let list = raw.pointee.importable_from else { return nil }
        return (0..<Int(raw.pointee.importable_count)).compactMap { list[$0].map { String(cString: $0) } }
    }

    /// Can this device import a dma-buf from `exporter` ("udmabuf",
    /// "dma-heap:system", "drm:virtio_gpu")? True when the probe did not say.
    public func canImport(from exporter: String) -> Bool {
        importableFrom?.contains(exporter) ?? true
    }
}

/// What match() decides.
public enum Verdict: Sendable, Equatable {
    case accept
    case reject(String)
}

/// A failure from open() or allocate(): a negative errno goes back over the ABI.
public struct PluginError: Error, Sendable, CustomStringConvertible {
    public var errno: Int32
    public var message: String
    public init(errno: Int32, _ message: String) {
        self.errno = errno
        self.message = message
    }
    public var description: String { message }
}

/// An allocation as a plugin describes it. The plugin keeps owning every fd
/// in it until release() is called with it.
public struct PluginAllocation: Sendable {
    public struct Plane: Sendable {
        public var offset: UInt64
        public var stride: UInt32
        public init(offset: UInt64, stride: UInt32) {
            self.offset = offset
            self.stride = stride
        }
    }

    public struct Guarantees: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let dmaBuf = Guarantees(rawValue: SMAF_ALLOCATION_DMABUF.rawValue)
        public static let contiguous = Guarantees(rawValue: SMAF_ALLOCATION_CONTIGUOUS.rawValue)
        public static let cpuMappable = Guarantees(rawValue: SMAF_ALLOCATION_CPU_MAPPABLE.rawValue)
        public static let coherent = Guarantees(rawValue: SMAF_ALLOCATION_COHERENT.rawValue)
        public static let readOnly = Guarantees(rawValue: SMAF_ALLOCATION_READ_ONLY.rawValue)
    }

    public var fd: Int32
    public var size: UInt64
    public var guarantees: Guarantees
    public var format: FourCC?
    public var width: UInt32 = 0
    public var height: UInt32 = 0
    public var modifier: Modifier = .linear
    public var planes: [Plane] = []
    public var largestContiguous: UInt64 = 0
    /// The plugin's own bookkeeping (an index, an offset); returned to release().
    public var token: UInt = 0
    public var detail: String = ""
    /// Who exports the dma-buf ("udmabuf", "dma-heap:system", "drm:vgem").
    public var exporter: String = ""

    public init(fd: Int32, size: UInt64, guarantees: Guarantees) {
        self.fd = fd
        self.size = size
        self.guarantees = guarantees
    }
}

/// The core's services as a plugin sees them.
public struct PluginCore: @unchecked Sendable {
    let raw: UnsafePointer<smaf_core>
    let pluginName: String

    public func log(_ level: smaf_log_level, _ message: String) {
        guard let log = raw.pointee.log else { return }
        log(raw.pointee.core_data, Int32(level.rawValue), pluginName, message)
    }

    /// A setting for this plugin, from SMAF_<NAME>_<KEY> or the config file.
    public func config(_ key: String) -> String? {
        guard let config = raw.pointee.config, let value = config(raw.pointee.core_data, pluginName, key) else { return nil }
        return String(cString: value)
    }
}
