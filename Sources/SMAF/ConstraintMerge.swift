import SMAFFormats

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
    private var origin: [String: String] = [:]

    public init() {}

    public init(_ devices: [DeviceConstraints]) throws(SMAFError) {
        for d in devices { try add(d) }
    }

    /// Adds a device; on a conflict throws and leaves `self` unchanged.
    public mutating func add(_ device: DeviceConstraints) throws(SMAFError) {
        var next = self
        try next.merge(device)
        self = next
    }

    private mutating func merge(_ d: DeviceConstraints) throws(SMAFError) {
        var m = combined
        let who = d.name
        func conflict(_ text: String) -> SMAFError { SMAFError(.conflictingConstraints, text) }

        for (name, keyPath) in [("address alignment", \DeviceConstraints.addressAlignment),
                                ("pitch alignment", \.pitchAlignment), ("height alignment", \.heightAlignment)] {
            guard let mine = d[keyPath: keyPath] else { continue }
            guard let merged = leastCommonMultiple(m[keyPath: keyPath] ?? 1, mine) else {
                throw conflict("\(name) of device \(who) (\(mine)) and \(origin[name] ?? "the others") (\(m[keyPath: keyPath] ?? 1)) have no common multiple below 2^64")
            }
            if merged != m[keyPath: keyPath] { origin[name] = who }
            m[keyPath: keyPath] = merged
        }
        func takeMin<T: Comparable>(_ name: String, _ keyPath: WritableKeyPath<DeviceConstraints, T?>) {
            guard let mine = d[keyPath: keyPath] else { return }
            if let cur = m[keyPath: keyPath], cur <= mine { return }
            m[keyPath: keyPath] = mine
            origin[name] = who
        }
        takeMin("max pitch", \.maxPitch)
        takeMin("max size", \.maxSize)
        takeMin("max width", \.maxWidth)
        takeMin("max height", \.maxHeight)
        takeMin("max segments", \.maxSegments)
        takeMin("dma address bits", \.dmaAddressBits)

        m.usage.formUnion(d.usage)
        m.contiguous = m.contiguous || d.contiguous
        m.cpuAccess = m.cpuAccess || d.needsCPU
        m.needsDmaBuf = m.needsDmaBuf || d.needsKernelImport
        if d.contiguous { origin["contiguous"] = origin["contiguous"] ?? who }
        if d.needsCPU { origin["cpu"] = origin["cpu"] ?? who }
        if d.secure { origin["secure"] = origin["secure"] ?? who }
        m.secure = m.secure || d.secure

        if m.secure && m.cpuAccess {
            throw conflict("device \(origin["cpu"] ?? who) needs CPU access but device \(origin["secure"] ?? who) requires a secure buffer the CPU may not map")
        }
        if let maxPitch = m.maxPitch, let align = m.pitchAlignment, maxPitch < align {
            throw conflict("max pitch \(maxPitch) of device \(origin["max pitch"] ?? who) is below the pitch alignment \(align) of device \(origin["pitch alignment"] ?? who)")
        }
        if let segments = m.maxSegments, segments == 0 {
            throw conflict("device \(origin["max segments"] ?? who) takes 0 segments")
        }

        if let theirs = d.formats {
            m.formats = try intersect(m.formats, theirs, adding: who)
        }
        if let mine = d.importableFrom {
            m.importableFrom = m.importableFrom.map { $0.filter(mine.contains) } ?? mine
        }
        if let node = d.importNode, !importNodes.contains(node) { importNodes.append(node) }

        combined = m
        devices.append(d)
    }

    /// Intersects format sets. An empty modifier list means "any modifier".
    private func intersect(_ current: [DeviceConstraints.FormatModifiers]?, _ theirs: [DeviceConstraints.FormatModifiers],
                           adding who: String) throws(SMAFError) -> [DeviceConstraints.FormatModifiers] {
        guard let current else { return theirs }
        let constrainedBy = devices.filter { $0.formats != nil }.map(\.name)
        let plural = constrainedBy.count != 1
        let others = constrainedBy.isEmpty ? "the other devices" : "device\(plural ? "s" : "") \(constrainedBy.joined(separator: ", "))"
        let (accept, take) = plural ? ("accept", "take") : ("accepts", "takes")
        var result: [DeviceConstraints.FormatModifiers] = []
        var modifierDisagreement: [String] = []
        for mine in current {
            guard let other = theirs.first(where: { $0.format == mine.format }) else { continue }
            let modifiers: [Modifier]
            if mine.modifiers.isEmpty { modifiers = other.modifiers }
            else if other.modifiers.isEmpty { modifiers = mine.modifiers }
            else {
                modifiers = mine.modifiers.filter(other.modifiers.contains)
                if modifiers.isEmpty {
                    modifierDisagreement.append("\(mine.format.code): \(others) \(take) \(list(mine.modifiers)), device \(who) takes \(list(other.modifiers))")
                    continue
                }
            }
            result.append(.init(mine.format, modifiers))
        }
        if result.isEmpty {
            if !modifierDisagreement.isEmpty {
                throw SMAFError(.conflictingConstraints, "no modifier all devices accept: " + modifierDisagreement.joined(separator: "; "))
            }
            throw SMAFError(.conflictingConstraints,
                            "no format all devices accept: \(others) \(accept) \(current.map(\.format.code).joined(separator: ", ")); device \(who) accepts \(theirs.map(\.format.code).joined(separator: ", "))")
        }
        return result
    }

    private func list(_ modifiers: [Modifier]) -> String { modifiers.map(\.description).joined(separator: "|") }

    /// The device that set a limit, for error messages ("max width", "max size"...).
    public func origin(of limit: String) -> String? { origin[limit] }
}
