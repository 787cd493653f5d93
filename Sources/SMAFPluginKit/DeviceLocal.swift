/// For allocators whose memory belongs to one DRM device (dumb buffers,
/// GBM): which node to allocate on, decided from the attached devices.
public enum DRMNodeChoice: Equatable, Sendable {
    /// Allocate on this node: a device must import into it, or it was configured.
    case node(String)
    /// No device names a node: the plugin picks (its first usable node).
    case any
    /// Devices need buffers on different DRM devices; no one node serves all.
    case conflict(String)
}

extension Array where Element == PluginConstraints {
    /// The node named by the devices' `import_node`, else `configured` (a
    /// plugin setting such as dumb.device), else `.any`. Several different
    /// import nodes conflict: a device-local buffer lives on one device, and
    /// whether the others can import it is for `canImport(from:)` to say
    /// once the plugin knows that device's driver.
    public func drmNodeChoice(configured: String?) -> DRMNodeChoice {
        let nodes = compactMap(\.importNode).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        if nodes.count > 1 {
            let pairs = filter { $0.importNode != nil }.map { "\($0.name) into \($0.importNode!)" }
            return .conflict("devices import into different DRM nodes (\(pairs.joined(separator: ", "))); a buffer of one device's own cannot serve both")
        }
        if let node = nodes.first { return .node(node) }
        if let configured, !configured.isEmpty { return .node(configured) }
        return .any
    }
}
