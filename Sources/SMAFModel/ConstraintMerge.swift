import SMAFFormats
import SMAFSys

/// The constraints of every device attached to a buffer, merged the way the
/// Unix Device Memory Allocator merges them: constraints are unioned
/// (alignments by least common multiple, limits by minimum, requirements by
/// or), capabilities are intersected (formats and their modifiers). When the
/// devices cannot agree, the error says which devices and on what.
public struct MergedConstraints: Sendable, Hashable {
    public private(set) var devices: [DeviceConstraints] = []
    /// The merge, named "merged"; `importNode` is unused here, see `importNodes`.
    public private(set) var combined = DeviceConstraints(name: "merged")
    /// Every DRM node some device must import into.
    public private(set) var importNodes: [String] = []
    /// Which device set each limit, for error messages.
    private var origins = Origins()

    /// The device behind each limit: plain fields, not a dictionary, so a
    /// merge (on every allocation's path) hashes no strings.
    private struct Origins: Sendable, Hashable {
        var addressAlignment, pitchAlignment, heightAlignment: String?
        var maxPitch, maxSize, maxWidth, maxHeight, maxSegments, dmaAddressBits: String?
        var contiguous, cpu, secure: String?

        subscript(_ limit: String) -> String? {
            switch limit {
            case "address alignment": addressAlignment
            case "pitch alignment": pitchAlignment
            case "height alignment": heightAlignment
            case "max pitch": maxPitch
            case "max size": maxSize
            case "max width": maxWidth
            case "max height": maxHeight
            case "max segments": maxSegments
            case "dma address bits": dmaAddressBits
            case "contiguous": contiguous
            case "cpu": cpu
            case "secure": secure
            default: nil
            }
        }
    }

    public init() {}

    public init(_ devices: [DeviceConstraints]) throws(SMAFError) {
        self.devices.reserveCapacity(devices.count)
        for d in devices { try add(d) }
    }

    /// Adds a device; on a conflict throws and leaves `self` unchanged.
    /// Every new value is worked out in locals and checked first, then
    /// stored in place: a merge copies no constraint struct, on the path of
    /// every attach and every choice.
    public mutating func add(_ d: DeviceConstraints) throws(SMAFError) {
        try d.validated()
        let who = d.name // validated: no control characters
        let c = combined
        func conflict(_ text: String) -> SMAFError { SMAFError(.conflictingConstraints, text) }

        /// The merged alignment and whether this device set it.
        func lcm(_ name: String, _ merged: UInt64?, _ mine: UInt64?, _ source: String?) throws(SMAFError) -> (UInt64?, Bool) {
            guard let mine else { return (merged, false) }
            guard let result = leastCommonMultiple(merged ?? 1, mine) else {
                throw conflict("\(name) of device \(who) (\(mine)) and \(source ?? "the others") (\(merged ?? 1)) have no common multiple below 2^64")
            }
            return (result, result != merged)
        }
        let address = try lcm("address alignment", c.addressAlignment, d.addressAlignment, origins.addressAlignment)
        let pitch = try lcm("pitch alignment", c.pitchAlignment, d.pitchAlignment, origins.pitchAlignment)
        let height = try lcm("height alignment", c.heightAlignment, d.heightAlignment, origins.heightAlignment)

        /// The smaller limit and whether it is this device's.
        func takeMin<T: Comparable>(_ merged: T?, _ mine: T?) -> (T?, Bool) {
            guard let mine else { return (merged, false) }
            if let cur = merged, cur <= mine { return (merged, false) }
            return (mine, true)
        }
        let pitchLimit = takeMin(c.maxPitch, d.maxPitch)
        let segmentLimit = takeMin(c.maxSegments, d.maxSegments)
        let needsCPU = d.needsCPU
        let secure = c.secure || d.secure, cpu = c.cpuAccess || needsCPU
        if secure && cpu {
            let cpuDevice = origins.cpu ?? who, secureDevice = origins.secure ?? who
            throw conflict("device \(cpuDevice) needs CPU access but device \(secureDevice) requires a secure buffer the CPU may not map")
        }
        if let maxPitch = pitchLimit.0, let align = pitch.0, maxPitch < align {
            let limiter = pitchLimit.1 ? who : origins.maxPitch ?? who, aligner = pitch.1 ? who : origins.pitchAlignment ?? who
            throw conflict("max pitch \(maxPitch) of device \(limiter) is below the pitch alignment \(align) of device \(aligner)")
        }
        let formats = try d.formats.map { (theirs) throws(SMAFError) in try intersect(c.formats, theirs, adding: who) } ?? c.formats

        // Checked: store in place.
        func set<T>(_ value: (T?, Bool), _ field: inout T?, _ source: inout String?) {
            guard value.1 else { return }
            field = value.0
            source = who
        }
        func setMin<T: Comparable>(_ mine: T?, _ field: inout T?, _ source: inout String?) { set(takeMin(field, mine), &field, &source) }
        set(address, &combined.addressAlignment, &origins.addressAlignment)
        set(pitch, &combined.pitchAlignment, &origins.pitchAlignment)
        set(height, &combined.heightAlignment, &origins.heightAlignment)
        set(pitchLimit, &combined.maxPitch, &origins.maxPitch)
        setMin(d.maxSize, &combined.maxSize, &origins.maxSize)
        setMin(d.maxWidth, &combined.maxWidth, &origins.maxWidth)
        setMin(d.maxHeight, &combined.maxHeight, &origins.maxHeight)
        set(segmentLimit, &combined.maxSegments, &origins.maxSegments)
        setMin(d.dmaAddressBits, &combined.dmaAddressBits, &origins.dmaAddressBits)
        combined.usage.formUnion(d.usage)
        combined.contiguous = c.contiguous || d.contiguous
        combined.cpuAccess = cpu
        combined.needsDmaBuf = c.needsDmaBuf || d.needsKernelImport
        combined.secure = secure
        if d.contiguous && origins.contiguous == nil { origins.contiguous = who }
        if needsCPU && origins.cpu == nil { origins.cpu = who }
        if d.secure && origins.secure == nil { origins.secure = who }
        if d.formats != nil { combined.formats = formats }
        if let mine = d.importableFrom {
            combined.importableFrom = combined.importableFrom.map { $0.filter(mine.contains) } ?? mine
        }
        if let node = d.importNode, !importNodes.contains(node) { importNodes.append(node) }
        devices.append(d)
    }

    /// Intersects format sets. An empty modifier list means "any modifier".
    private func intersect(_ current: [DeviceConstraints.FormatModifiers]?, _ theirs: [DeviceConstraints.FormatModifiers],
                           adding who: String) throws(SMAFError) -> [DeviceConstraints.FormatModifiers] {
        guard let current else { return theirs }
        // Who constrained the formats so far, worded for the error messages only.
        func others() -> (others: String, accept: String, take: String) {
            let constrainedBy = devices.filter { $0.formats != nil }.map(\.name)
            let plural = constrainedBy.count != 1
            let others = constrainedBy.isEmpty ? "the other devices" : "device\(plural ? "s" : "") \(constrainedBy.joined(separator: ", "))"
            return plural ? (others, "accept", "take") : (others, "accepts", "takes")
        }
        var result: [DeviceConstraints.FormatModifiers] = []
        result.reserveCapacity(min(current.count, theirs.count))
        var modifierDisagreement: [String] = []
        for mine in current {
            guard let other = theirs.first(where: { $0.format == mine.format }) else { continue }
            let modifiers: [Modifier]
            if mine.modifiers.isEmpty { modifiers = other.modifiers }
            else if other.modifiers.isEmpty { modifiers = mine.modifiers }
            else if mine.modifiers == other.modifiers { modifiers = mine.modifiers }
            else {
                modifiers = mine.modifiers.filter(other.modifiers.contains)
                if modifiers.isEmpty {
                    let o = others()
                    modifierDisagreement.append("\(mine.format.code): \(o.others) \(o.take) \(list(mine.modifiers)), device \(who) takes \(list(other.modifiers))")
                    continue
                }
            }
            result.append(.init(mine.format, modifiers))
        }
        if result.isEmpty {
            if !modifierDisagreement.isEmpty {
                throw SMAFError(.conflictingConstraints, "no modifier all devices accept: " + modifierDisagreement.joined(separator: "; "))
            }
            let o = others()
            throw SMAFError(.conflictingConstraints,
                            "no format all devices accept: \(o.others) \(o.accept) \(current.map(\.format.code).joined(separator: ", ")); device \(who) accepts \(theirs.map(\.format.code).joined(separator: ", "))")
        }
        // Unchanged: share the storage instead of holding a copy.
        return result == current ? current : result
    }

    private func list(_ modifiers: [Modifier]) -> String { modifiers.map(\.description).joined(separator: "|") }

    /// The device that set a limit, for error messages ("max width", "max size"...).
    public func origin(of limit: String) -> String? { origins[limit] }
}
