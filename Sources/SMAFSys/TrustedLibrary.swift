import CSMAFSys
import Glibc
import Synchronization

/// A shared library this process may run code from (a smaf plugin), checked before dlopen():
/// a regular file (never a FIFO, device or folder, which it does not even
/// open), owned by root or by the user running smaf (only root when that
/// user is root, as sudo demands of its plugins), writable by no one but its
/// owner, in a folder of the same kind. Whoever could replace the file could
/// run code in every program that loads smaf, as that program's user.
///
/// The checks are made on the file as opened (O_NOFOLLOW, fstat), and
/// dlopen() is given /proc/self/fd/N of that very descriptor, so the file
/// checked is the file mapped: renaming another into place between the two
/// changes nothing.
public struct TrustedLibrary: ~Copyable {
    /// The checked file, open read-only.
    public let fd: UniqueFD
    /// The file's real path (symbolic links resolved), for messages.
    public let realPath: String
    /// Device and inode of the checked file.
    let identity: Identity

    /// Why a library was refused, and whether at the file's checks or at dlopen() itself.
    public struct Refusal: Error, Sendable {
        public enum Step: Sendable { case file, dlopen }
        public var step: Step
        public var reason: String
        init(_ step: Step, _ reason: String) {
            self.step = step
            self.reason = reason
        }
    }

    /// Opens and checks `path`; the reason it was refused otherwise.
    public static func open(_ path: String) -> Result<TrustedLibrary, Refusal> {
        func refuse(_ reason: String) -> Result<TrustedLibrary, Refusal> { .failure(Refusal(.file, reason)) }
        guard let resolved = realpath(path, nil) else {
            return refuse("cannot resolve the path: \(String(cString: strerror(errno)))")
        }
        let real = String(cString: resolved)
        free(resolved)
        // lstat first: a FIFO named *.so must never be opened (open would block).
        var before = stat()
        guard lstat(real, &before) == 0 else { return refuse("cannot stat \(real): \(String(cString: strerror(errno)))") }
        guard before.st_mode & S_IFMT == S_IFREG else { return refuse("\(real) is \(FileKind(before.st_mode)), not a regular file") }
        let fd: UniqueFD
        do {
            fd = try UniqueFD.open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        } catch {
            return refuse("\(error)")
        }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { return refuse("fstat of \(real): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG, st.st_dev == before.st_dev, st.st_ino == before.st_ino else {
            return refuse("\(real) changed while it was being checked")
        }
        if let why = Trust.problem(st, "the file \(real)") { return refuse(why) }
        let folder = String(real[..<(real.lastIndex(of: "/") ?? real.startIndex)])
        var dir = stat()
        guard stat(folder.isEmpty ? "/" : folder, &dir) == 0 else {
            return refuse("cannot stat its folder \(folder): \(String(cString: strerror(errno)))")
        }
        if let why = Trust.problem(dir, "its folder \(folder.isEmpty ? "/" : folder)", folder: true) { return refuse(why) }
        return .success(TrustedLibrary(fd: fd, realPath: real, identity: Identity(device: UInt(st.st_dev), inode: UInt(st.st_ino))))
    }

    /// dlopen()s the checked descriptor, as /proc/self/fd/N. glibc hands
    /// back an image already loaded under the same name without opening
    /// anything, and a number is reused once its fd closes: so each name
    /// given to dlopen is kept with the file it meant, and a name that
    /// meant another file is spelled anew (/proc/self/fd/./N, ...), which
    /// the kernel resolves alike and glibc does not know.
    public func dlopen(_ flags: Int32) -> Result<UnsafeMutableRawPointer, Refusal> {
        guard Self.procShowsFile(fd.rawValue) else {
            return .failure(Refusal(.file, "\(Self.procPath(fd.rawValue)) does not lead to the checked file (is /proc mounted?)"))
        }
        guard let name = Self.dlopenName(fd.rawValue, for: identity) else {
            return .failure(Refusal(.file, "no unused name left for /proc/self/fd/\(fd.rawValue)"))
        }
        guard let handle = Glibc.dlopen(name, flags) else {
            return .failure(Refusal(.dlopen, "dlopen failed: \(dlerror().map { String(cString: $0) } ?? "unknown error")"))
        }
        return .success(handle)
    }

    struct Identity: Hashable {
        var device: UInt
        var inode: UInt
    }

    /// The names this process gave dlopen, and the file each one meant.
    private static let names = Mutex<[String: Identity]>([:])

    /// A name for `fd` that is unused, or already means the same file.
    private static func dlopenName(_ fd: CInt, for file: Identity) -> String? {
        names.withLock { table in
            for dots in 0..<512 {
                let name = "/proc/self/fd/" + String(repeating: "./", count: dots) + "\(fd)"
                if let meant = table[name] {
                    if meant == file { return name }
                } else if csmaf_image_loaded(name) == 0 {
                    // Also unknown to glibc under its main name (another copy of the core may load plugins too).
                    table[name] = file
                    return name
                }
            }
            return nil
        }
    }

    static func procPath(_ fd: CInt) -> String { "/proc/self/fd/\(fd)" }

    /// True when /proc/self/fd/N opens the file behind `fd` (procfs is there).
    private static func procShowsFile(_ fd: CInt) -> Bool {
        var viaProc = stat(), direct = stat()
        return stat(procPath(fd), &viaProc) == 0 && fstat(fd, &direct) == 0
            && viaProc.st_dev == direct.st_dev && viaProc.st_ino == direct.st_ino
    }
}

/// Who may own and write what the loader runs code from.
public enum Trust {
    /// Why a file or folder with this status may not be trusted, nil if it may.
    public static func problem(_ st: stat, _ what: String, folder: Bool = false, euid: uid_t = geteuid()) -> String? {
        let mode = String(st.st_mode & 0o7777, radix: 8)
        if st.st_uid != 0 && st.st_uid != euid {
            let owner = "owned by \(userName(st.st_uid))"
            return euid == 0
                ? "\(what) is \(owner), not root: root loads only plugins root owns"
                : "\(what) is \(owner), neither root nor the user running smaf (\(userName(euid)))"
        }
        let writers = [st.st_mode & S_IWGRP != 0 ? "its group" : nil, st.st_mode & S_IWOTH != 0 ? "anyone" : nil].compactMap { $0 }
        // A sticky folder (/tmp) lets nobody but an entry's owner rename or delete it.
        let sticky = folder && st.st_mode & S_ISVTX != 0
        guard writers.isEmpty || sticky else {
            return "\(what) is writable by \(writers.joined(separator: " and ")) (mode 0\(mode)): only its owner may write it"
                + (folder ? ", or anyone could put another plugin in its place" : "")
        }
        return nil
    }

    /// "uid 65534 (nobody)", or the bare number without a passwd entry.
    public static func userName(_ uid: uid_t) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 1024)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else {
            return "uid \(uid)"
        }
        return "uid \(uid) (\(String(cString: name)))"
    }
}
