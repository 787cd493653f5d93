import SMAFSys

/// An allocator's rank: higher is tried first, ties go by name (SMAF's
/// order). The named levels are GStreamer's; any number is valid, and 0
/// (`none`) means "only when forced by name".
public struct Rank: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public var value: Int32
    public init(_ value: Int32) { self.value = value }

    public static let none = Rank(0)
    public static let marginal = Rank(64)
    public static let secondary = Rank(128)
    public static let primary = Rank(256)

    static let names: [(String, Rank)] = [("primary", .primary), ("secondary", .secondary), ("marginal", .marginal), ("none", .none)]

    /// Parses `primary`, `secondary`, `marginal`, `none` (any case) or a number.
    public init?(parsing text: String) {
        let t = text.lowercased()
        if let named = Rank.names.first(where: { $0.0 == t }) { self = named.1 }
        else if let v = Int32(t), v >= 0 { self.init(v) }
        else { return nil }
    }

    /// `primary (256)`, or just the number when it has no name.
    public var description: String {
        Rank.names.first(where: { $0.1 == self }).map { "\($0.0) (\(value))" } ?? "\(value)"
    }

    public static func < (a: Rank, b: Rank) -> Bool { a.value < b.value }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }

    public init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(Int32.self)
    }
}

/// Rank overrides as users write them: `gbm:primary,dumb:none,memfd:100`
/// (the syntax of GST_PLUGIN_FEATURE_RANK). Later entries win.
public struct RankOverrides: Sendable, Hashable {
    public var ranks: [String: Rank] = [:]
    /// Where they came from (`SMAF_RANKS`, a config file path), for `smaf list`.
    public var source: String

    public init(source: String) { self.source = source }

    public init(parsing text: String, source: String) throws(SMAFError) {
        self.source = source
        for entry in text.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = entry.split(separator: ":", maxSplits: 1).map { String($0).trimmed }
            guard parts.count == 2, !parts[0].isEmpty, let rank = Rank(parsing: parts[1]) else {
                throw SMAFError(.invalidConfiguration,
                                "\(source): rank entry '\(DisplayText.escaped(entry))' is not NAME:RANK (RANK: primary, secondary, marginal, none or a number >= 0)")
            }
            ranks[parts[0]] = rank
        }
    }
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
