import CSMAFPlugin

/// Access directions a secure module grants.
public struct SecureAccess: OptionSet, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = SecureAccess(rawValue: SMAF_ACCESS_READ.rawValue)
    public static let write = SecureAccess(rawValue: SMAF_ACCESS_WRITE.rawValue)
    public static let readWrite: SecureAccess = [.read, .write]

    /// What a device's usages imply: display, texturing and encoding read;
    /// rendering, decoding and capture write. No usage: both, to be safe.
    public init(usage: Usage) {
        var a: SecureAccess = []
        if !usage.isDisjoint(with: [.scanout, .texture, .videoEncode, .cpuRead]) { a.insert(.read) }
        if !usage.isDisjoint(with: [.render, .videoDecode, .camera, .cpuWrite]) { a.insert(.write) }
        self = a.isEmpty ? .readWrite : a
    }

    public var description: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .readWrite: "read-write"
        default: "none"
        }
    }
}
