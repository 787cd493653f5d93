import FoundationEssentials
import Glibc
import SMAF
import SMAFSys

/// Import results per boot: importing is cheap, but opening every exporter
/// is not free, and the answers only change with the kernel.
///
/// The results decide which allocators a device is given, so the cache is
/// trusted only as far as its folder is: one this user owns and nobody else
/// may write in (`$XDG_RUNTIME_DIR/smaf`, else `/run/user/<uid>/smaf`, else
/// `~/.cache/smaf` from the password database, never a shared folder such as
/// /tmp), opened without following a symlink. The file must be this user's,
/// regular and at most 1 MiB; it is replaced through a new file made with
/// O_EXCL|O_NOFOLLOW and a rename. When no such folder can be had, nothing
/// is cached and every probe measures.
struct ImportCache {
    struct Entry: Codable {
        var driver: String
        var imports: [String: String]
    }
    struct File: Codable {
        var bootID: String
        var devices: [String: Entry]
    }

    static let fileName = "probe.json"
    static let maximumSize = 1 << 20

    /// The cache folder; nil: no caching.
    let directory: String?
    let bootID = (try? readTextFile("/proc/sys/kernel/random/boot_id"))?.filter { !$0.isWhitespace } ?? "unknown"
    private let uid = geteuid()

    init(directory: String? = ImportCache.defaultDirectory()) {
        self.directory = directory
    }

    /// Where this user's cache lives. XDG_RUNTIME_DIR is read like every
    /// variable (ignored in a setuid process); the home folder comes from
    /// the password database, not $HOME, which sudo may leave pointing at
    /// the invoking user's.
    static func defaultDirectory(runtimeDirectory: String? = Environment.value("XDG_RUNTIME_DIR"),
                                 uid: uid_t = geteuid()) -> String? {
        if let runtime = runtimeDirectory, runtime.hasPrefix("/") { return "\(runtime)/smaf" }
        var st = stat()
        let perUser = "/run/user/\(uid)"
        if stat(perUser, &st) == 0, FileKind(st.st_mode) == .directory, st.st_uid == uid { return "\(perUser)/smaf" }
        return homeDirectory(uid).map { "\($0)/.cache/smaf" }
    }

    private static func homeDirectory(_ uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        return buffer.withUnsafeMutableBufferPointer { b -> String? in
            guard getpwuid_r(uid, &entry, b.baseAddress!, b.count, &result) == 0, result != nil,
                  let dir = entry.pw_dir, dir.pointee == CChar(UInt8(ascii: "/")) else { return nil }
            return String(cString: dir)
        }
    }

    /// The folder, created 0700 if missing (its parent too, for ~/.cache);
    /// refused unless this user owns it and no one else may write in it.
    func openDirectory() throws(InputFileError) -> UniqueFD {
        guard let directory else { throw InputFileError("probe cache: no private folder to keep it in") }
        if mkdir(directory, 0o700) != 0 && errno == ENOENT {
            let parent = String(directory[..<(directory.lastIndex(of: "/") ?? directory.endIndex)])
            _ = mkdir(parent, 0o700)
            _ = mkdir(directory, 0o700)
        }
        let name = "probe cache folder \(DisplayText.escaped(directory))"
        let fd: UniqueFD
        do { fd = try UniqueFD.open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) } catch {
            throw InputFileError("\(name): \(error)")
        }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { throw InputFileError("\(name): \(SystemError.current("fstat"))") }
        guard st.st_uid == uid else { throw InputFileError("\(name): owned by uid \(st.st_uid), not \(uid); not used") }
        guard st.st_mode & 0o022 == 0 else {
            throw InputFileError("\(name): writable by others (mode \(String(st.st_mode & 0o777, radix: 8))); not used")
        }
        return fd
    }

    private func load(in folder: borrowing UniqueFD) -> File? {
        guard let bytes = try? InputFile.read(Self.fileName, maxBytes: Self.maximumSize, what: "probe cache",
                                              relativeTo: folder.rawValue, followSymlinks: false, owner: uid),
              (try? StrictJSON.check(bytes)) != nil,
              let file = try? JSONDecoder().decode(File.self, from: Data(bytes)),
              file.bootID == bootID else { return nil }
        return file
    }

    func lookup(node: String, driver: String) -> [String: String]? {
        guard let folder = try? openDirectory(), let e = load(in: folder)?.devices[node], e.driver == driver else { return nil }
        return e.imports
    }

    func store(node: String, driver: String, imports: [String: String]) {
        guard let folder = try? openDirectory() else { return }
        var file = load(in: folder) ?? File(bootID: bootID, devices: [:])
        file.devices[node] = Entry(driver: driver, imports: imports)
        guard let data = try? JSONEncoder().encode(file) else { return }
        // A new file nobody can have planted (O_EXCL, no symlink followed),
        // renamed over the old one so a concurrent reader sees all or nothing.
        let tmp = "\(Self.fileName).\(getpid()).\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
        let created = openat(folder.rawValue, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard created >= 0 else { return }
        let written = UniqueFD(adopting: created) // closed when this returns
        let fd = written.rawValue
        let ok = data.withUnsafeBytes { p in
            var offset = 0
            while offset < p.count {
                let n = write(fd, p.baseAddress! + offset, p.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        if !ok || renameat(folder.rawValue, tmp, folder.rawValue, Self.fileName) != 0 {
            unlinkat(folder.rawValue, tmp, 0)
        }
    }
}
