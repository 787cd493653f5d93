import Glibc

/// Why an input file was not read: one line naming what it was for, the
/// path, and the reason (`device descriptor /dev/zero: not a regular file
/// (a character device)`).
public struct InputFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Reading files a user, another user or an attacker may have named. Every
/// descriptor, rules file, config file and cache goes through `read`, so
/// none of them can be a device that never ends (/dev/zero), a FIFO that
/// never opens or never closes, or a terminal that becomes the controlling one.
public enum InputFile {
    /// Descriptors, rules and config files: a few KiB in practice; 4 MiB
    /// leaves room for generated descriptors and keeps memory bounded.
    public static let maximumSize = 4 << 20

    /// The whole of the regular file at `path` (relative to `directory`),
    /// at most `maxBytes`. `what` names it in errors ("device descriptor").
    ///
    /// Opened `O_NONBLOCK` (a FIFO's open does not wait for a writer),
    /// `O_NOCTTY` and close-on-exec; then the *opened* file is checked with
    /// fstat, so a path swapped after a check cannot slip through.
    /// `followSymlinks: false` refuses a symlink as the last component;
    /// `owner` refuses a file some other user owns.
    public static func read(_ path: String, maxBytes: Int = maximumSize, what: String,
                            relativeTo directory: CInt = AT_FDCWD, followSymlinks: Bool = true,
                            owner: uid_t? = nil) throws(InputFileError) -> [UInt8] {
        let name = "\(what) \(DisplayText.escaped(path))"
        var flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC
        if !followSymlinks { flags |= O_NOFOLLOW }
        let fd: UniqueFD
        do {
            fd = UniqueFD(adopting: try retryingSyscall("open") { openat(directory, path, flags) })
        } catch {
            let reason = error.errno.rawValue == ELOOP && !followSymlinks ? "is a symbolic link, which is not followed here" : "\(error)"
            throw InputFileError("\(name): \(reason)")
        }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else {
            throw InputFileError("\(name): \(SystemError.current("fstat"))")
        }
        guard FileKind(st.st_mode) == .regular else {
            throw InputFileError("\(name): not a regular file (\(FileKind(st.st_mode)))")
        }
        if let owner, st.st_uid != owner {
            throw InputFileError("\(name): owned by uid \(st.st_uid), not by uid \(owner); not trusted")
        }
        let limit = "larger than the \(maxBytes) bytes a \(what) may have"
        guard st.st_size <= maxBytes else { throw InputFileError("\(name): \(limit)") }
        // The size can change after fstat (a file being appended to):
        // read at most one byte past the limit and refuse if it comes.
        let raw = fd.rawValue // borrowed; `fd` closes it when this returns
        var bytes = [UInt8](repeating: 0, count: min(Int(st.st_size), maxBytes) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                guard bytes.count <= maxBytes else { throw InputFileError("\(name): \(limit)") }
                bytes.append(contentsOf: repeatElement(0, count: min(bytes.count, maxBytes + 1 - bytes.count)))
            }
            let n: Int
            do {
                n = try bytes.withUnsafeMutableBytes { p throws(SystemError) in
                    try retryingSyscall("read") { Glibc.read(raw, p.baseAddress! + count, p.count - count) }
                }
            } catch {
                throw InputFileError("\(name): \(error)")
            }
            if n == 0 { break }
            count += n
        }
        bytes.removeSubrange(count...)
        return bytes
    }
}

/// What kind of file a stat mode describes, worded for errors.
public enum FileKind: Sendable, Equatable, CustomStringConvertible {
    case regular, directory, characterDevice, blockDevice, fifo, socket, symbolicLink, unknown

    public init(_ mode: mode_t) {
        switch mode & 0o170000 {
        case 0o100000: self = .regular
        case 0o040000: self = .directory
        case 0o020000: self = .characterDevice
        case 0o060000: self = .blockDevice
        case 0o010000: self = .fifo
        case 0o140000: self = .socket
        case 0o120000: self = .symbolicLink
        default: self = .unknown
        }
    }

    public var description: String {
        switch self {
        case .regular: "a regular file"
        case .directory: "a directory"
        case .characterDevice: "a character device"
        case .blockDevice: "a block device"
        case .fifo: "a FIFO"
        case .socket: "a socket"
        case .symbolicLink: "a symbolic link"
        case .unknown: "an unknown kind of file"
        }
    }
}
