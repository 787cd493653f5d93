import SMAFSys
import SystemPackage

/// Every error smaf reports: one line that names what was wrong (the request
/// field, the device, the plugin, the call and errno), and a kind for code
/// that wants to react to it.
public struct SMAFError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// The request itself is malformed (size 0, unknown format, overflow).
        case invalidRequest
        /// A device constraint descriptor could not be read.
        case invalidDescriptor
        /// Attached devices disagree; no buffer can satisfy all of them.
        case conflictingConstraints
        /// A named allocator is not loaded.
        case unknownAllocator
        /// No allocator accepted, or every one that accepted failed.
        case noAllocator
        /// A device attached after allocation does not fit the memory.
        case lateAttachRefused
        /// The operation needs something the buffer's allocation lacks.
        case unsupported
        /// A system call failed.
        case system
        /// The configuration (environment, config file) is malformed.
        case invalidConfiguration
        /// A secure module refused: a device's access, a CPU mapping, an export.
        case accessDenied
    }

    public var kind: Kind
    public var message: String
    /// The failed call, when a system call is the cause.
    public var systemError: SystemError?

    public init(_ kind: Kind, _ message: String, systemError: SystemError? = nil) {
        self.kind = kind
        self.message = message
        self.systemError = systemError
    }

    public static func system(_ error: SystemError, _ what: String? = nil) -> SMAFError {
        SMAFError(.system, what.map { "\($0): \(error)" } ?? error.description, systemError: error)
    }

    public var description: String { message }
}

/// A plugin's failure message with its errno named once: `pool exhausted
/// (ENOMEM)`, and not twice when the message already carries it.
package func withErrno(_ message: String, _ errno: Int32) -> String {
    Errno(rawValue: errno).appended(to: message)
}
