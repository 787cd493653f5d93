import CSMAFSys
import Glibc
import SystemPackage

/// The dma-buf uAPI (`linux/dma-buf.h`) for a descriptor someone else owns.
public enum DmaBuf {
    public struct SyncAccess: OptionSet, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let read = SyncAccess(rawValue: UInt64(CSMAF_DMA_BUF_SYNC_READ))
        public static let write = SyncAccess(rawValue: UInt64(CSMAF_DMA_BUF_SYNC_WRITE))
        public static let readWrite: SyncAccess = [.read, .write]
    }

    /// DMA_BUF_IOCTL_SYNC START: caches made coherent for CPU access.
    public static func beginCPUAccess(_ fd: CInt, _ access: SyncAccess) throws(SystemError) {
        try sync(fd, access.rawValue | UInt64(CSMAF_DMA_BUF_SYNC_START), "DMA_BUF_SYNC_START")
    }

    /// DMA_BUF_IOCTL_SYNC END: hands the memory back to devices.
    public static func endCPUAccess(_ fd: CInt, _ access: SyncAccess) throws(SystemError) {
        try sync(fd, access.rawValue | UInt64(CSMAF_DMA_BUF_SYNC_END), "DMA_BUF_SYNC_END")
    }

    private static func sync(_ fd: CInt, _ flags: UInt64, _ what: String) throws(SystemError) {
        // EAGAIN is documented for this ioctl as "try again", like EINTR.
        while true {
            if csmaf_dmabuf_sync(fd, flags) == 0 { return }
            let err = Glibc.errno
            if err == EINTR || err == EAGAIN { continue }
            throw SystemError("ioctl(DMA_BUF_IOCTL_SYNC \(what))", Errno(rawValue: err))
        }
    }

    /// DMA_BUF_SET_NAME: the name shows in /proc/<pid>/fdinfo and debugfs.
    public static func setName(_ fd: CInt, _ name: String) throws(SystemError) {
        let truncated = String(name.utf8.prefix(31)) ?? "smaf"
        _ = try retryingSyscall("ioctl(DMA_BUF_SET_NAME)") { csmaf_dmabuf_set_name(fd, truncated) }
    }

    /// The fdinfo of a descriptor in this process: `exp_name`, `size`, `name`...
    /// A dma-buf is recognised by having `exp_name`.
    public static func fdInfo(_ fd: CInt) -> [String: String] {
        guard let text = try? readTextFile("/proc/self/fdinfo/\(fd)") else { return [:] }
        var info: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: " \t")
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
            info[key] = value
        }
        return info
    }

    /// The exporter's name (`udmabuf`, `system`, `virtio_gpu`...), nil when `fd` is no dma-buf.
    public static func exporterName(_ fd: CInt) -> String? { fdInfo(fd)["exp_name"] }

    /// Does the kernel call `fd` a dma-buf? Its file lives on the dma-buf
    /// pseudo file system: one fstatfs, no procfs read.
    public static func isDmaBuf(_ fd: CInt) -> Bool {
        csmaf_fs_type(fd) == magic
    }

    /// DMA_BUF_MAGIC, the f_type of a dma-buf's file (linux/magic.h).
    static let magic = 0x444d_4142

    /// How many references to the dma-buf behind `fd` exist besides `fd`
    /// itself: other fds (here or in another process), mappings, device
    /// imports. The kernel's file count ("count" in fdinfo). nil when `fd`
    /// is not a dma-buf or the count cannot be read.
    public static func otherReferences(_ fd: CInt) -> Int? {
        guard let count = fdInfo(fd)["count"].flatMap({ Int($0) }), count >= 1 else { return nil }
        return count - 1
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// Reads a small kernel text file (procfs, sysfs) in one go: at most
/// `maxBytes` (1 MiB), so a path that names a device that never ends
/// cannot exhaust memory. Files users name go through `InputFile.read`.
public func readTextFile(_ path: String, maxBytes: Int = 1 << 20) throws(SystemError) -> String {
    let fd = try UniqueFD.open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
    var bytes: [UInt8] = []
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
    defer { chunk.deallocate() }
    while true {
        let n = try retryingSyscall("read", context: path) { read(fd.rawValue, chunk.baseAddress, chunk.count) }
        if n == 0 { break }
        guard bytes.count + n <= maxBytes else { throw SystemError("read", Errno(rawValue: EFBIG), context: path) }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
