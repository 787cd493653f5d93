import SMAFFormats

/// What one device that will touch a buffer needs from it. Every field is
/// optional: an absent field constrains nothing. Reads and writes the JSON
/// documented in docs/CONSTRAINTS.md, so a device smaf cannot probe (a camera
/// ISP, a device in another process) can still take part.
public struct DeviceConstraints: Sendable, Hashable, Codable {
    public var name: String
    public var usage: Usage = []
    /// Device address alignment in bytes.
    public var addressAlignment: UInt64?
    /// Row pitch must be a multiple of this many bytes.
    public var pitchAlignment: UInt64?
    /// Height (in rows) is padded to a multiple of this.
    public var heightAlignment: UInt64?
    public var maxPitch: UInt64?
    public var maxSize: UInt64?
    public var maxWidth: UInt32?
    public var maxHeight: UInt32?
    /// Formats and their modifiers the device accepts; nil accepts any.
    public var formats: [FormatModifiers]?
    /// Needs physically contiguous memory (a device without an IOMMU).
    public var contiguous: Bool = false
    /// Largest scatter-gather list the device takes.
    public var maxSegments: UInt32?
    /// The device can address only memory below 2^dmaAddressBits.
    public var dmaAddressBits: UInt32?
    /// The CPU must be able to map the buffer.
    public var cpuAccess: Bool = false
    /// The device needs a real dma-buf (it imports one through the kernel).
    public var needsDmaBuf: Bool = false
    /// The DRM node the buffer must import into, e.g. /dev/dri/card0.
    public var importNode: String?
    /// Part of a secure path: the CPU is kept out.
    public var secure: Bool = false
    /// Exporters this device was measured to import from (set by the probe).
    public var importableFrom: [String]?

    public init(name: String, usage: Usage = []) {
        self.name = name
        self.usage = usage
    }

    /// One format and its modifiers. An empty modifier list accepts any;
    /// `INVALID` in it means the implicit (driver-chosen) layout is accepted.
    public struct FormatModifiers: Sendable, Hashable, Codable {
        public var format: FourCC
        public var modifiers: [Modifier]
        public init(_ format: FourCC, _ modifiers: [Modifier] = []) {
            self.format = format
            self.modifiers = modifiers
        }
    }

    /// Is the CPU among the users (by flag or by usage)?
    public var needsCPU: Bool { cpuAccess || !usage.isDisjoint(with: [.cpuRead, .cpuWrite]) }

    /// Does the device import the buffer through the kernel?
    public var needsKernelImport: Bool { needsDmaBuf || importNode != nil }
}

/// How a device will use a buffer.
public struct Usage: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let scanout = Usage(rawValue: 1 << 0)
    public static let render = Usage(rawValue: 1 << 1)
    public static let texture = Usage(rawValue: 1 << 2)
    public static let cpuRead = Usage(rawValue: 1 << 3)
    public static let cpuWrite = Usage(rawValue: 1 << 4)
    public static let videoDecode = Usage(rawValue: 1 << 5)
    public static let videoEncode = Usage(rawValue: 1 << 6)
    public static let camera = Usage(rawValue: 1 << 7)

    /// The JSON spellings, in bit order.
    public static let names: [(String, Usage)] = [
        ("scanout", .scanout), ("render", .render), ("texture", .texture),
        ("cpu_read", .cpuRead), ("cpu_write", .cpuWrite),
        ("video_decode", .videoDecode), ("video_encode", .videoEncode), ("camera", .camera),
    ]

    public var names: [String] { Usage.names.filter { contains($0.1) }.map(\.0) }
}
