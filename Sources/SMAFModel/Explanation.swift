import SMAFSys

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
        /// Why: the plugin's own words for a rejection, else the core's.
        public var reason: String {
            get {
                switch storage {
                case .text(let text): return text
                case .verdict(let verdict):
                    let text = verdict.reason
                    return text.isEmpty ? "rejected (the plugin gave no reason)" : text
                }
            }
            set { storage = .text(newValue) }
        }

        /// A rejection keeps the plugin's verdict as it came and makes a
        /// String of it only when someone reads it: choosing an allocator
        /// builds no text for the allocators it passes over.
        package enum Reason: Sendable {
            case text(String)
            case verdict(any DeferredReason)
        }
        package var storage: Reason

        public init(allocator: String, rank: Rank, outcome: Outcome, reason: String) {
            self.init(allocator: allocator, rank: rank, outcome: outcome, storage: .text(reason))
        }

        package init(allocator: String, rank: Rank, outcome: Outcome, storage: Reason) {
            self.allocator = allocator
            self.rank = rank
            self.outcome = outcome
            self.storage = storage
        }

        enum CodingKeys: String, CodingKey { case allocator, rank, outcome, reason }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(allocator: try c.decode(String.self, forKey: .allocator), rank: try c.decode(Rank.self, forKey: .rank),
                      outcome: try c.decode(Outcome.self, forKey: .outcome), reason: try c.decode(String.self, forKey: .reason))
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(allocator, forKey: .allocator)
            try c.encode(rank, forKey: .rank)
            try c.encode(outcome, forKey: .outcome)
            try c.encode(reason, forKey: .reason)
        }
    }

    public var forcedAllocator: String?
    public var devices: [String]
    public var entries: [Entry] = []

    public init(forcedAllocator: String?, devices: [String], entries: [Entry] = []) {
        self.forcedAllocator = forcedAllocator
        self.devices = devices
        self.entries = entries
    }

    public var chosen: String? { entries.first { $0.outcome == .chosen }?.allocator }

    /// One line per allocator; what plugins and callers wrote is escaped,
    /// so a reason cannot add lines or drive the terminal.
    public var description: String {
        var lines: [String] = []
        let who = devices.isEmpty ? "no devices attached" : "devices: \(DisplayText.escaped(devices.joined(separator: ", ")))"
        lines.append(forcedAllocator.map { "allocator forced by name: \(DisplayText.escaped($0)); \(who)" } ?? "allocators in rank order; \(who)")
        for e in entries {
            let name = DisplayText.escaped(e.allocator).padding(10)
            lines.append("  \(e.outcome.rawValue.padding(9)) \(name) rank \(String(e.rank.value).padding(4)) \(DisplayText.escaped(e.reason))")
        }
        return lines.joined(separator: "\n")
    }
}

/// A reason stored as its author wrote it (a plugin's verdict in the core's
/// buffer of verdicts), turned into text only when someone reads it.
package protocol DeferredReason: Sendable {
    var reason: String { get }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
