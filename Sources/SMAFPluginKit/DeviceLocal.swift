/// For allocators whose memory belongs to one DRM device (dumb buffers,
/// GBM): which node(s) to allocate on, decided from the attached devices.
public enum DRMNodeChoice: Equatable, Sendable {
    /// Candidate home nodes in order: those the devices import into, else
    /// the configured one. With several, the plugin takes the first whose
    /// buffers every other device can import (`canImport(from: "drm:<driver>")`).
    case nodes([String])
    /// No device names a node and none is configured: the plugin picks.
    case any
}

extension Array where Element == PluginConstraints {
    /// The nodes named by the devices' `import_node`, else `configured` (a
    /// plugin setting such as dumb.device), else `.any`.
    public func drmNodeChoice(configured: String?) -> DRMNodeChoice {
        let nodes = compactMap(\.importNode).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        if !nodes.isEmpty { return .nodes(nodes) }
        if let configured, !configured.isEmpty { return .nodes([configured]) }
        return .any
    }
}
