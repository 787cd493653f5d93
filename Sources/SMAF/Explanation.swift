/// Why a buffer got the memory it got: every allocator's verdict in the
/// order they were asked. `smaf alloc --explain` prints it.
public struct Explanation: Sendable, Codable, CustomStringConvertible {
    public enum Outcome: String, Sendable, Codable {
        /// Accepted and allocated: this one made the buffer.
        case chosen
        /// match() said no.
        case rejected
        /// match() said yes but allocate() failed; the next was tried.
        case failed
        /// Not asked: rank none, another allocator was forced, or one before it won.
        case skipped
    }

    public struct Entry: Sendable, Codable {
        public var allocator: String
        public var rank: Rank
        public var outcome: Outcome
        public var reason: String
    }

    public var forcedAllocator: String?
    public var devices: [String]
    public var entries: [Entry] = []

    public var chosen: String? { entries.first { $0.outcome == .chosen }?.allocator }

    public var description: String {
        var lines: [String] = []
        let who = devices.isEmpty ? "no devices attached" : "devices: \(devices.joined(separator: ", "))"
        lines.append(forcedAllocator.map { "allocator forced by name: \($0); \(who)" } ?? "allocators in rank order; \(who)")
        for e in entries {
            lines.append("  \(e.outcome.rawValue.padding(9)) \(e.allocator.padding(10)) rank \(String(e.rank.value).padding(4)) \(e.reason)")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
