import FoundationEssentials
import SMAFFormats
import SMAFSys

// The JSON form of a device constraint descriptor (docs/CONSTRAINTS.md).
// Keys are snake_case like the kernel and libdrm names they mirror; an
// unknown key is an error, so a typo cannot silently drop a constraint.

extension DeviceConstraints {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, usage, formats, contiguous, secure
        case addressAlignment = "address_alignment"
        case pitchAlignment = "pitch_alignment"
        case heightAlignment = "height_alignment"
        case maxPitch = "max_pitch"
        case maxSize = "max_size"
        case maxWidth = "max_width"
        case maxHeight = "max_height"
        case maxSegments = "max_segments"
        case dmaAddressBits = "dma_address_bits"
        case cpuAccess = "cpu_access"
        case needsDmaBuf = "needs_dmabuf"
        case importNode = "import_node"
        case importableFrom = "importable_from"
    }

    public init(from decoder: any Decoder) throws {
        let any = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = any.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw DecodingError.dataCorruptedError(
                forKey: unknown, in: any,
                debugDescription: "unknown key '\(unknown.stringValue)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage) ?? []
        addressAlignment = try c.decodeIfPresent(UInt64.self, forKey: .addressAlignment)
        pitchAlignment = try c.decodeIfPresent(UInt64.self, forKey: .pitchAlignment)
        heightAlignment = try c.decodeIfPresent(UInt64.self, forKey: .heightAlignment)
        maxPitch = try c.decodeIfPresent(UInt64.self, forKey: .maxPitch)
        maxSize = try c.decodeIfPresent(UInt64.self, forKey: .maxSize)
        maxWidth = try c.decodeIfPresent(UInt32.self, forKey: .maxWidth)
        maxHeight = try c.decodeIfPresent(UInt32.self, forKey: .maxHeight)
        formats = try c.decodeIfPresent([FormatModifiers].self, forKey: .formats)
        contiguous = try c.decodeIfPresent(Bool.self, forKey: .contiguous) ?? false
        maxSegments = try c.decodeIfPresent(UInt32.self, forKey: .maxSegments)
        dmaAddressBits = try c.decodeIfPresent(UInt32.self, forKey: .dmaAddressBits)
        cpuAccess = try c.decodeIfPresent(Bool.self, forKey: .cpuAccess) ?? false
        needsDmaBuf = try c.decodeIfPresent(Bool.self, forKey: .needsDmaBuf) ?? false
        importNode = try c.decodeIfPresent(String.self, forKey: .importNode)
        secure = try c.decodeIfPresent(Bool.self, forKey: .secure) ?? false
        importableFrom = try c.decodeIfPresent([String].self, forKey: .importableFrom)
        if let bad = meaninglessField() {
            throw DecodingError.dataCorrupted(.init(codingPath: bad.path, debugDescription: bad.reason))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        if !usage.isEmpty { try c.encode(usage, forKey: .usage) }
        try c.encodeIfPresent(addressAlignment, forKey: .addressAlignment)
        try c.encodeIfPresent(pitchAlignment, forKey: .pitchAlignment)
        try c.encodeIfPresent(heightAlignment, forKey: .heightAlignment)
        try c.encodeIfPresent(maxPitch, forKey: .maxPitch)
        try c.encodeIfPresent(maxSize, forKey: .maxSize)
        try c.encodeIfPresent(maxWidth, forKey: .maxWidth)
        try c.encodeIfPresent(maxHeight, forKey: .maxHeight)
        try c.encodeIfPresent(formats, forKey: .formats)
        if contiguous { try c.encode(true, forKey: .contiguous) }
        try c.encodeIfPresent(maxSegments, forKey: .maxSegments)
        try c.encodeIfPresent(dmaAddressBits, forKey: .dmaAddressBits)
        if cpuAccess { try c.encode(true, forKey: .cpuAccess) }
        if needsDmaBuf { try c.encode(true, forKey: .needsDmaBuf) }
        try c.encodeIfPresent(importNode, forKey: .importNode)
        if secure { try c.encode(true, forKey: .secure) }
        try c.encodeIfPresent(importableFrom, forKey: .importableFrom)
    }

    /// Reads a descriptor from JSON; errors are one line naming the source and
    /// field. The text is checked strictly first (duplicate keys, depth, size):
    /// a descriptor must read the same in smaf as in every other JSON tool.
    public static func fromJSON(_ data: some Sequence<UInt8>, source: String) throws(SMAFError) -> DeviceConstraints {
        let source = DisplayText.escaped(source)
        var bytes: [UInt8] = []
        for byte in data {
            guard bytes.count < InputFile.maximumSize else {
                throw SMAFError(.invalidDescriptor, "\(source): larger than the \(InputFile.maximumSize) bytes a device descriptor may have")
            }
            bytes.append(byte)
        }
        do {
            try StrictJSON.check(bytes)
            return try JSONDecoder().decode(DeviceConstraints.self, from: Data(bytes))
        } catch let error as StrictJSON.Problem {
            throw SMAFError(.invalidDescriptor, "\(source): \(error)")
        } catch let error as DecodingError {
            throw SMAFError(.invalidDescriptor, "\(source): \(describe(error))")
        } catch {
            throw SMAFError(.invalidDescriptor, "\(source): \(DisplayText.escaped("\(error)"))")
        }
    }

    /// Reads a descriptor file: a regular file of at most 4 MiB.
    public static func load(path: String) throws(SMAFError) -> DeviceConstraints {
        let bytes: [UInt8]
        do { bytes = try InputFile.read(path, what: "device descriptor") } catch {
            throw SMAFError(.invalidDescriptor, error.description)
        }
        return try fromJSON(bytes, source: path)
    }

    public func jsonString(pretty: Bool = true) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// `field 'formats[0].format': unknown fourcc "XX24"` from a DecodingError.
func describe(_ error: DecodingError) -> String {
    let path = codingPathText
    switch error {
    case let .keyNotFound(key, ctx):
        let at = path(ctx.codingPath)
        return "missing required field '\(at.isEmpty ? "" : at + ".")\(key.stringValue)'"
    case let .typeMismatch(type, ctx):
        return "field '\(path(ctx.codingPath))': expected \(jsonTypeName(type))"
    case let .valueNotFound(type, ctx):
        return "field '\(path(ctx.codingPath))': expected \(jsonTypeName(type)), got null"
    case let .dataCorrupted(ctx):
        let at = path(ctx.codingPath)
        let detail = ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription
        return at.isEmpty ? "malformed JSON: \(DisplayText.escaped(detail))" : "field '\(at)': \(DisplayText.escaped(ctx.debugDescription))"
    @unknown default:
        return DisplayText.escaped("\(error)")
    }
}

/// `formats[0].format`, keys escaped for printing.
func codingPathText(_ keys: [any CodingKey]) -> String {
    let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
    return DisplayText.escaped(text)
}

private func jsonTypeName(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: return "a string"
    case is Bool.Type: return "true or false"
    case is UInt64.Type, is UInt32.Type, is Int.Type: return "a non-negative whole number"
    default: return "\(type)".hasPrefix("Array") ? "a list" : "an object"
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension Usage: Codable {
    public init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        var usage: Usage = []
        while !c.isAtEnd {
            let index = c.currentIndex
            let name = try c.decode(String.self)
            guard let bit = Usage.names.first(where: { $0.0 == name })?.1 else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: c.codingPath + [AnyKey(intValue: index)!],
                    debugDescription: "unknown usage '\(name)' (known: \(Usage.names.map(\.0).joined(separator: ", ")))"))
            }
            usage.insert(bit)
        }
        self = usage
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(names)
    }
}

extension DeviceConstraints.FormatModifiers {
    enum CodingKeys: String, CodingKey { case format, modifiers }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let text = try c.decode(String.self, forKey: .format)
        guard let fourcc = FourCC(parsing: text) else {
            throw DecodingError.dataCorruptedError(forKey: .format, in: c,
                                                   debugDescription: "unknown format \"\(text)\" (try XR24 or XRGB8888)")
        }
        format = fourcc
        let names = try c.decodeIfPresent([String].self, forKey: .modifiers) ?? []
        modifiers = try names.map { name in
            guard let m = Modifier(parsing: name) else {
                throw DecodingError.dataCorruptedError(forKey: .modifiers, in: c,
                                                       debugDescription: "unknown modifier \"\(name)\" (LINEAR, INVALID or a 0x number)")
            }
            return m
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format.code, forKey: .format)
        if !modifiers.isEmpty { try c.encode(modifiers.map(modifierJSON), forKey: .modifiers) }
    }
}

/// LINEAR and INVALID by name, vendor modifiers as a 0x number that parses back.
func modifierJSON(_ m: Modifier) -> String {
    m == .linear || m == .invalid ? m.description : "0x" + String(m.rawValue, radix: 16)
}
