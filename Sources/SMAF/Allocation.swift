import CSMAFPlugin
import SMAFFormats

/// What a buffer's memory turned out to be. A value: it describes, it owns
/// nothing (the `Buffer` owns the memory and its fd).
public struct Allocation: Sendable, Hashable, Codable {
    public struct Plane: Sendable, Hashable, Codable {
        public var offset: UInt64
        public var stride: UInt32
    }

    public var allocator: String
    public var size: UInt64
    /// A real dma-buf (importable by devices), not just shared memory.
    public var isDmaBuf: Bool
    public var format: FourCC?
    public var width: UInt32
    public var height: UInt32
    public var modifier: Modifier?
    public var planes: [Plane]
    public var contiguous: Bool
    public var cpuMappable: Bool
    public var coherent: Bool
    public var readOnly: Bool
    /// Largest verified physically contiguous run in bytes; 0 = not verified.
    public var largestContiguous: UInt64
    /// The plugin's own words ("memfd pages via udmabuf").
    public var detail: String
    /// Who exports the dma-buf ("udmabuf", "dma-heap:system", "drm:vgem"); empty if none.
    public var exporter: String

    enum CodingKeys: String, CodingKey {
        case allocator, size, format, width, height, modifier, planes, contiguous, coherent, detail, exporter
        case isDmaBuf = "dmabuf", cpuMappable = "cpu_mappable", readOnly = "read_only"
        case largestContiguous = "largest_contiguous"
    }

    init(plugin: String, _ a: smaf_allocation) {
        allocator = plugin
        size = a.size
        isDmaBuf = a.flags & SMAF_ALLOCATION_DMABUF.rawValue != 0
        contiguous = a.flags & SMAF_ALLOCATION_CONTIGUOUS.rawValue != 0
        cpuMappable = a.flags & SMAF_ALLOCATION_CPU_MAPPABLE.rawValue != 0
        coherent = a.flags & SMAF_ALLOCATION_COHERENT.rawValue != 0
        readOnly = a.flags & SMAF_ALLOCATION_READ_ONLY.rawValue != 0
        format = a.fourcc == 0 ? nil : FourCC(rawValue: a.fourcc)
        width = a.width
        height = a.height
        modifier = a.fourcc == 0 ? nil : Modifier(rawValue: a.modifier)
        let count = min(Int(a.plane_count), Int(SMAF_MAX_PLANES))
        planes = withUnsafeBytes(of: a.planes) { raw in
            raw.bindMemory(to: smaf_plane.self).prefix(count).map { Plane(offset: $0.offset, stride: $0.stride) }
        }
        largestContiguous = a.largest_contiguous
        detail = withUnsafeBytes(of: a.detail) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        exporter = withUnsafeBytes(of: a.exporter) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

extension FourCC: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let f = FourCC(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown format \"\(text)\""))
        }
        self = f
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(code)
    }
}

extension Modifier: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let m = Modifier(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown modifier \"\(text)\""))
        }
        self = m
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(modifierJSON(self))
    }
}

/// The memory behind a materialized buffer. Its one release path is deinit,
/// which hands the allocation back to the plugin that made it.
final class LiveAllocation: @unchecked Sendable {
    // @unchecked: `raw` is written once in init; the plugin is Sendable.
    let plugin: LoadedPlugin
    private var raw: smaf_allocation
    let info: Allocation

    init(plugin: LoadedPlugin, raw: smaf_allocation, info: Allocation) {
        self.plugin = plugin
        self.raw = raw
        self.info = info
    }

    /// The plugin-owned fd; borrow only while this object lives.
    var fd: Int32 { raw.fd }

    deinit { plugin.release(&raw) }
}
