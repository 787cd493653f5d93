import CSMAFSys
import Glibc
import SystemPackage

/// The one owner of an open file descriptor. Not copyable, so the compiler
/// rules out closing it twice or forgetting whose it is: it closes when it
/// goes out of scope unless ownership is handed on with `take()`.
public struct UniqueFD: ~Copyable, @unchecked Sendable {
    public let rawValue: CInt

    /// Takes ownership of `rawValue`, which must be an open fd nobody else closes.
    public init(adopting rawValue: CInt) {
        precondition(rawValue >= 0, "UniqueFD needs an open descriptor")
        self.rawValue = rawValue
    }

    /// Opens `path` close-on-exec.
    public static func open(_ path: String, _ flags: CInt, mode: mode_t = 0) throws(SystemError) -> UniqueFD {
        let fd = try retryingSyscall("open", context: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return UniqueFD(adopting: fd)
    }

    /// A new owner for the same open file (close-on-exec).
    public func duplicate(context: String? = nil) throws(SystemError) -> UniqueFD {
        try UniqueFD.duplicate(rawValue, context: context)
    }

    /// A new owner for a descriptor someone else owns (close-on-exec).
    public static func duplicate(_ fd: CInt, context: String? = nil) throws(SystemError) -> UniqueFD {
        let copy = try retryingSyscall("fcntl(F_DUPFD_CLOEXEC)", context: context) { csmaf_dup_cloexec(fd, 0) }
        return UniqueFD(adopting: copy)
    }

    /// Gives up ownership without closing; the caller now owns the number.
    public consuming func take() -> CInt {
        let fd = rawValue
        discard self
        return fd
    }

    deinit {
        // close() must not be retried on EINTR on Linux: the fd is gone either way.
        _ = Glibc.close(rawValue)
    }
}

extension UniqueFD {
    /// Size of the file behind the descriptor (fstat), or of a dma-buf (lseek).
    public func byteSize() throws(SystemError) -> UInt64 {
        var st = Glibc.stat()
        _ = try retryingSyscall("fstat") { Glibc.fstat(rawValue, &st) }
        if st.st_size > 0 { return UInt64(st.st_size) }
        // dma-bufs report st_size 0 on older kernels; SEEK_END is the documented way.
        let end = try retryingSyscall("lseek(SEEK_END)") { Glibc.lseek(rawValue, 0, SEEK_END) }
        _ = Glibc.lseek(rawValue, 0, SEEK_SET)
        return UInt64(end)
    }
}
