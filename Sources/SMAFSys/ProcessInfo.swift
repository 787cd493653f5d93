import Glibc

public enum OpenFiles {
    /// How many descriptors this process has open (entries of /proc/self/fd,
    /// less the one opendir itself uses). Leak tests compare it before and after.
    public static func count() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { n += 1 }
        }
        return n - 1
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
