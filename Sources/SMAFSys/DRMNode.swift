import CSMAFSys
import Glibc
import SystemPackage

/// What a path claims to be a DRM device, checked: the node is a character
/// device of the DRM major, and the driver behind it answers
/// DRM_IOCTL_VERSION. Opened read-only, non-blocking and without becoming
/// a controlling terminal, so a FIFO, a tty or a regular file named as a
/// node costs one error, never a hang or a side effect. No libdrm needed:
/// the core and secure modules use it to bind grants to real devices.
public enum DRMNode {
    /// The character-device major of every DRM node (include/drm/drm.h, DRM_MAJOR).
    public static let major: UInt32 = 226

    public struct Identity: Sendable, Hashable {
        public var path: String
        public var driver: String
        /// The device number: two paths (a symlink, /dev/dri/by-path) name the same node if it is equal.
        public var device: UInt64
    }

    public static func identify(_ path: String) throws(SystemError) -> Identity {
        let fd = try UniqueFD.open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
        let device = try checkedDevice(fd.rawValue, path)
        var name = [CChar](repeating: 0, count: 64)
        _ = try retryingSyscall("ioctl(DRM_IOCTL_VERSION)", context: path) { csmaf_drm_driver_name(fd.rawValue, &name, name.count) }
        return Identity(path: path, driver: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                        device: device)
    }

    /// The device number of an open fd, if it is a DRM character device; else ENODEV naming the path.
    public static func checkedDevice(_ fd: CInt, _ path: String) throws(SystemError) -> UInt64 {
        var st = stat()
        _ = try retryingSyscall("fstat", context: path) { fstat(fd, &st) }
        guard st.st_mode & S_IFMT == S_IFCHR, majorNumber(UInt64(st.st_rdev)) == major else {
            throw SystemError("open as a DRM node (a character device of major \(major))", Errno(rawValue: ENODEV), context: path)
        }
        return UInt64(st.st_rdev)
    }

    /// glibc's major(): the macro Swift cannot import.
    static func majorNumber(_ dev: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff))
    }
}
