import SMAFFormats
import SMAFSys

// What a descriptor may not say, whether it comes from JSON or is built in
// code: values that mean nothing, or mean something other than they seem
// (docs/CONSTRAINTS.md, "Values that are refused"). The JSON reader refuses
// them at parse with the key's path; attach refuses a built one the same way.

extension DeviceConstraints {
    /// The first field that means nothing or could mislead, with why; nil if none.
    func meaninglessField() -> (path: [AnyKey], reason: String)? {
        func field(_ key: CodingKeys, _ reason: String, index: Int? = nil, then inner: String? = nil) -> ([AnyKey], String) {
            var path = [AnyKey(stringValue: key.rawValue)]
            if let index { path.append(AnyKey(intValue: index)!) }
            if let inner { path.append(AnyKey(stringValue: inner)) }
            return (path, reason)
        }
        if name.isEmpty { return field(.name, "an empty name cannot be told apart in errors and explanations") }
        if DisplayText.containsControlCharacters(name) {
            return field(.name, "control characters are not allowed in a name (it is printed in logs and explanations)")
        }
        // The C ABI reads a limit of 0 as "no limit"; a descriptor that says 0
        // means either "nothing" or "unlimited", so it must say neither.
        // (Field by field, no arrays: this runs on every attach.)
        let zeroLimit = "a limit of 0 allows nothing; leave the key out for no limit"
        if maxPitch == 0 { return field(.maxPitch, zeroLimit) }
        if maxSize == 0 { return field(.maxSize, zeroLimit) }
        if maxWidth == 0 { return field(.maxWidth, zeroLimit) }
        if maxHeight == 0 { return field(.maxHeight, zeroLimit) }
        if maxSegments == 0 { return field(.maxSegments, zeroLimit) }
        let zeroAlignment = "an alignment of 0 means nothing; leave the key out"
        if addressAlignment == 0 { return field(.addressAlignment, zeroAlignment) }
        if pitchAlignment == 0 { return field(.pitchAlignment, zeroAlignment) }
        if heightAlignment == 0 { return field(.heightAlignment, zeroAlignment) }
        if let bits = dmaAddressBits, bits == 0 || bits > 64 { return field(.dmaAddressBits, "must be 1...64, got \(bits)") }
        if let formats {
            // The ABI reads an empty list as "any format": refused, so no
            // descriptor says "none" or "any" by accident.
            if formats.isEmpty { return field(.formats, "an empty list would accept no format; leave the key out to accept any") }
            // A short list (every real one) is compared pairwise without
            // allocating; a long one through a set, so it stays linear.
            let twice: Int?
            if formats.count <= 16 {
                twice = formats.indices.first { i in formats[..<i].contains { $0.format == formats[i].format } }
            } else {
                var seen = Set<FourCC>()
                twice = formats.indices.first { !seen.insert(formats[$0].format).inserted }
            }
            if let i = twice {
                return field(.formats, "\(formats[i].format.code) is listed twice; list each format once with all its modifiers",
                             index: i, then: "format")
            }
        }
        if let node = importNode, node.isEmpty || DisplayText.containsControlCharacters(node) {
            return field(.importNode, "must be a DRM node path such as /dev/dri/card0")
        }
        if let i = importableFrom?.firstIndex(where: { $0.isEmpty || DisplayText.containsControlCharacters($0) }) {
            return field(.importableFrom, "exporter names are non-empty and without control characters", index: i)
        }
        return nil
    }

    /// Refuses a descriptor built in code that the JSON reader would refuse.
    func validated() throws(SMAFError) {
        guard let bad = meaninglessField() else { return }
        throw SMAFError(.invalidDescriptor, "device \(DisplayText.escaped(name)): field '\(codingPathText(bad.path))': \(bad.reason)")
    }
}
