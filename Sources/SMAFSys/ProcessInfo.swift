import Glibc

public enum Directory {
    /// The names in a folder, without "." and "..", sorted so that nothing
    /// depends on readdir's order.
    public static func entries(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError.current("opendir", context: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

public enum OpenFiles {
    /// How many descriptors this process has open (entries of /proc/self/fd,
    /// less the one opendir itself uses). Leak tests compare it before and after.
    public static func count() -> Int {
        guard let names = try? Directory.entries("/proc/self/fd") else { return -1 }
        return names.count - 1
    }
}

/// Writes one line to fd 2 with a single write(2), so lines from several
/// threads do not interleave mid-line (and no shared FILE* is touched).
public func writeStandardError(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(0x0a)
    bytes.withUnsafeBytes { p in
        var offset = 0
        while offset < p.count {
            let n = write(2, p.baseAddress! + offset, p.count - offset)
            if n < 0 { if errno == EINTR { continue } else { return } }
            offset += n
        }
    }
}
