import SMAFFormats

/// What a buffer's memory turned out to be. A value: it describes, it owns
/// nothing (the `Buffer` owns the memory and its fd).
public struct Allocation: Sendable, Hashable, Codable {
    public struct Plane: Sendable, Hashable, Codable {
        public var offset: UInt64
        public var stride: UInt32
        public init(offset: UInt64, stride: UInt32) {
            self.offset = offset
            self.stride = stride
        }
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

    /// Every field, for the core that reads them from a plugin's struct.
    package init(allocator: String, size: UInt64, isDmaBuf: Bool, format: FourCC?, width: UInt32, height: UInt32,
                 modifier: Modifier?, planes: [Plane], contiguous: Bool, cpuMappable: Bool, coherent: Bool, readOnly: Bool,
                 largestContiguous: UInt64, detail: String, exporter: String) {
        self.allocator = allocator
        self.size = size
        self.isDmaBuf = isDmaBuf
        self.format = format
        self.width = width
        self.height = height
        self.modifier = modifier
        self.planes = planes
        self.contiguous = contiguous
        self.cpuMappable = cpuMappable
        self.coherent = coherent
        self.readOnly = readOnly
        self.largestContiguous = largestContiguous
        self.detail = detail
        self.exporter = exporter
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
