import CSMAFSys
import Glibc
import SystemPackage

/// Device nodes named by input (a descriptor's `import_node`, a C caller's fd).
public enum DeviceNode {
    /// The character-device major of every DRM node (DRM_MAJOR in the kernel).
    public static let drmMajor: UInt32 = 226

    /// Why a file with status `st` is not a `kind` (a character device of
    /// `major`), worded to follow a path: `not a DRM device (a FIFO)`; nil if it is one.
    public static func refusal(_ st: stat, major: UInt32, kind: String) -> String? {
        let fileKind = FileKind(st.st_mode)
        if fileKind != .characterDevice { return "not a \(kind) (\(fileKind))" }
        let found = csmaf_dev_major(UInt64(st.st_rdev))
        return found == major ? nil : "not a \(kind) (a character device of major \(found), not \(major))"
    }
}

extension UniqueFD {
    /// Opens `path` only if it is a character device of `major` (226 for
    /// DRM): a path from a descriptor (`import_node`) may name /etc/shadow,
    /// a FIFO or /dev/udmabuf, and an ioctl meant for DRM must reach none of
    /// them. Checked twice: with stat before opening, since opening some
    /// devices acts (a watchdog arms, a tape rewinds), and with fstat on the
    /// opened fd, since the path may have changed in between and only the
    /// fd is what later calls use. Opened O_NONBLOCK|O_NOCTTY until checked.
    public static func openCharacterDevice(_ path: String, major: UInt32, kind: String, flags: CInt) throws(SystemError) -> UniqueFD {
        let shown = DisplayText.escaped(path)
        func refuse(_ reason: String) -> SystemError { .refused("open", Errno(rawValue: ENODEV), "\(shown): \(reason)") }
        var st = stat()
        _ = try retryingSyscall("stat", context: shown) { stat(path, &st) }
        if let reason = DeviceNode.refusal(st, major: major, kind: kind) { throw refuse(reason) }
        let fd = try UniqueFD.open(path, flags | O_NONBLOCK | O_NOCTTY)
        var opened = stat()
        _ = try retryingSyscall("fstat", context: shown) { fstat(fd.rawValue, &opened) }
        if let reason = DeviceNode.refusal(opened, major: major, kind: kind) { throw refuse(reason) }
        guard opened.st_rdev == st.st_rdev else { throw refuse("changed while it was being opened") }
        // Checked: blocking calls behave as the caller expects from here on.
        _ = try retryingSyscall("fcntl(F_SETFL)", context: shown) { csmaf_clear_nonblock(fd.rawValue) }
        return fd
    }
}
