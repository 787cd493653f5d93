/// A secure module written in Swift: SMAF's secure ops. It decides which
/// devices may reach a buffer, over which bytes, in which directions, and
/// whether the CPU may map it. The CPU arrives as a device named "cpu".
///
///     @_cdecl("smaf_plugin_entry")
///     public func smafPluginEntry(_ core: UnsafePointer<smaf_core>?) -> UnsafeRawPointer? {
///         PluginExport.entry(MyPolicy.self)
///     }
public protocol SecureModule: SMAFPlugin {
    /// Per-buffer state, made when a buffer is marked secure.
    func createContext(buffer: SecureBufferInfo) throws(PluginError) -> AnyObject
    /// Called after every grant was revoked and the memory scrubbed.
    func destroyContext(_ context: AnyObject)
    /// `.accept` grants `device` the range in `access` directions.
    func grant(_ context: AnyObject, device: PluginConstraints, offset: UInt64, length: UInt64, access: Access) -> Verdict
    /// Undoes one successful grant (same arguments).
    func revoke(_ context: AnyObject, device: PluginConstraints, offset: UInt64, length: UInt64, access: Access)
    /// May the CPU map the buffer for `access`? Pure: grants nothing.
    func allowCPUAccess(_ context: AnyObject, access: Access) -> Verdict
}

/// Access directions (`enum smaf_access`).
public struct Access: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = Access(rawValue: SMAF_ACCESS_READ.rawValue)
    public static let write = Access(rawValue: SMAF_ACCESS_WRITE.rawValue)
    public static let readWrite: Access = [.read, .write]

    public var description: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .readWrite: "read-write"
        default: "none"
        }
    }

    /// The spellings rules files use: none, read, write, read_write.
    public init?(parsing text: String) {
        switch text.lowercased() {
        case "none": self = []
        case "read": self = .read
        case "write": self = .write
        case "read_write", "read-write", "rw": self = .readWrite
        default: return nil
        }
    }
}

/// The buffer a context is for.
public struct SecureBufferInfo: Sendable {
    public var id: UInt64
    public var size: UInt64
    public var allocator: String?
}
