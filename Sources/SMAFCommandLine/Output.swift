import FoundationEssentials
import Glibc
import SMAFSys

/// Prints any Encodable as pretty, key-sorted JSON on stdout.
public func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Writes `text` to `path` (created or truncated, mode 0644).
public func writeFile(_ path: String, _ text: String) throws(SystemError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw SystemError.current("open", context: path) }
    let owned = UniqueFD(adopting: fd)
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { p in write(owned.rawValue, p.baseAddress, p.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw SystemError.current("write", context: path) }
        offset += n
    }
}
