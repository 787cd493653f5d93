import Glibc
import SystemPackage

/// A failed system call, with enough context to act on: which call, on what,
/// and the errno. Its description is one line, e.g.
/// `ioctl(UDMABUF_CREATE) on /dev/udmabuf failed: Invalid argument (EINVAL)`.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var call: String
    public var context: String?
    public var errno: Errno
    /// Set when smaf refused before or instead of the call (a path that is
    /// not the device it should be): then that is the description.
    public var refusal: String?

    public init(_ call: String, _ errno: Errno, context: String? = nil) {
        self.call = call
        self.errno = errno
        self.context = context
    }

    /// A refusal worded in full (`/etc/passwd: not a DRM device (a regular
    /// file)`), with the errno a caller that only looks at errno should see.
    public static func refused(_ call: String, _ errno: Errno, _ refusal: String) -> SystemError {
        var e = SystemError(call, errno)
        e.refusal = refusal
        return e
    }

    /// The error from the calling thread's current errno.
    public static func current(_ call: String, context: String? = nil) -> SystemError {
        SystemError(call, Errno(rawValue: Glibc.errno), context: context)
    }

    public var description: String {
        if let refusal { return refusal }
        let on = context.map { " on \($0)" } ?? ""
        return "\(call)\(on) failed: \(errno.description) (\(errno.symbolicName))"
    }
}

extension Errno {
    /// The C macro name (`EINVAL`), which is what people grep kernel sources for.
    public var symbolicName: String {
        errnoNames[rawValue] ?? "errno \(rawValue)"
    }

    /// `message (EMFILE)`, unless the message names this errno already: a
    /// plugin that passes a SystemError's description on would otherwise
    /// read `... Too many open files (EMFILE) (EMFILE)`.
    public func appended(to message: String) -> String {
        let tag = "(\(symbolicName))"
        return message.contains(tag) ? message : "\(message) \(tag)"
    }

}

// Outside `extension Errno`, where the bare names would mean Errno's own
// (unavailable) members rather than Glibc's numbers.
private let errnoNames: [CInt: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO",
    E2BIG: "E2BIG", EBADF: "EBADF", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES",
    EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR",
    EINVAL: "EINVAL", EMFILE: "EMFILE", ENOTTY: "ENOTTY", EFBIG: "EFBIG", ENOSPC: "ENOSPC",
    ESPIPE: "ESPIPE", EROFS: "EROFS", ERANGE: "ERANGE", ENOSYS: "ENOSYS", EOPNOTSUPP: "EOPNOTSUPP",
    EOVERFLOW: "EOVERFLOW", ENOEXEC: "ENOEXEC", EPROTO: "EPROTO",
]

/// Runs a syscall-shaped closure, retrying on EINTR, and turns -1 into a SystemError.
@inlinable
public func retryingSyscall<T: BinaryInteger>(
    _ call: @autoclosure () -> String, context: @autoclosure () -> String? = nil,
    _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let err = Glibc.errno
        if err == Glibc.EINTR { continue }
        throw SystemError(call(), Errno(rawValue: err), context: context())
    }
}
