import CSMAFSys
import Glibc

/// memfd and the udmabuf driver that turns memfd pages into a dma-buf.
public enum Memfd {
    public struct Seals: OptionSet, Sendable {
        public let rawValue: CInt
        public init(rawValue: CInt) { self.rawValue = rawValue }
        public static let seal = Seals(rawValue: CInt(CSMAF_F_SEAL_SEAL))
        public static let shrink = Seals(rawValue: CInt(CSMAF_F_SEAL_SHRINK))
        public static let grow = Seals(rawValue: CInt(CSMAF_F_SEAL_GROW))
        public static let write = Seals(rawValue: CInt(CSMAF_F_SEAL_WRITE))
    }

    /// A sealable, close-on-exec memfd of `size` bytes (size must be page-rounded
    /// for udmabuf). `hugetlb` asks for 2 MiB pages.
    public static func create(name: String, size: UInt64, hugetlb: Bool = false) throws(SystemError) -> UniqueFD {
        var flags = UInt32(CSMAF_MFD_CLOEXEC | CSMAF_MFD_ALLOW_SEALING)
        if hugetlb { flags |= UInt32(CSMAF_MFD_HUGETLB) }
        let fd = UniqueFD(adopting: try retryingSyscall("memfd_create", context: name) {
            csmaf_memfd_create(name, flags)
        })
        guard size <= UInt64(Int64.max) else { throw SystemError("ftruncate", .fileTooLarge, context: name) }
        _ = try retryingSyscall("ftruncate(\(size))", context: name) { ftruncate(fd.rawValue, off_t(size)) }
        return fd
    }

    public static func addSeals(_ fd: CInt, _ seals: Seals) throws(SystemError) {
        _ = try retryingSyscall("fcntl(F_ADD_SEALS)") { csmaf_add_seals(fd, UInt32(seals.rawValue)) }
    }

    public static func seals(_ fd: CInt) throws(SystemError) -> Seals {
        Seals(rawValue: try retryingSyscall("fcntl(F_GET_SEALS)") { csmaf_get_seals(fd) })
    }
}

public enum Udmabuf {
    public static let devicePath = "/dev/udmabuf"
    public static let sizeLimitPath = "/sys/module/udmabuf/parameters/size_limit_mb"

    /// udmabuf's per-buffer limit in bytes (the module parameter; 64 MiB by default).
    public static func sizeLimit() -> UInt64? {
        guard let text = try? readTextFile(sizeLimitPath),
              let mb = UInt64(text.filter { !$0.isWhitespace }) else { return nil }
        return mb * 1024 * 1024
    }

    /// UDMABUF_CREATE: a dma-buf over `size` bytes of `memfd` from `offset`.
    /// The memfd must carry F_SEAL_SHRINK and must not carry F_SEAL_WRITE.
    public static func create(device: CInt, memfd: CInt, offset: UInt64, size: UInt64) throws(SystemError) -> UniqueFD {
        let fd = try retryingSyscall("ioctl(UDMABUF_CREATE)", context: devicePath) {
            csmaf_udmabuf_create(device, memfd, offset, size, 1)
        }
        return UniqueFD(adopting: fd)
    }
}

/// Turns sealed memfd ranges into dma-bufs through /dev/udmabuf, or says why it cannot.
/// Shared by every plugin that exports memfd memory (memfd, cma).
public final class UdmabufExporter: Sendable {
    /// The open /dev/udmabuf, nil where the driver is missing.
    private let device: CInt?
    /// Why `device` is nil, for match() reasons.
    public let unavailableReason: String?
    /// The per-buffer limit (size_limit_mb), nil if unknown.
    public let sizeLimit: UInt64?

    public init() {
        do {
            device = try UniqueFD.open(Udmabuf.devicePath, O_RDWR).take()
            unavailableReason = nil
        } catch {
            device = nil
            unavailableReason = error.description
        }
        sizeLimit = device == nil ? nil : Udmabuf.sizeLimit()
    }

    public var isAvailable: Bool { device != nil }

    /// The seals udmabuf needs: no shrinking (pages must stay), no growing and no
    /// further seals so the layout is fixed. Never F_SEAL_WRITE: udmabuf refuses it.
    public static let requiredSeals: Memfd.Seals = [.shrink, .grow, .seal]

    /// A dma-buf over `size` bytes of `memfd` at `offset`, named for fdinfo when `name` is given.
    public func export(memfd: CInt, offset: UInt64, size: UInt64, name: String? = nil) throws(SystemError) -> UniqueFD {
        guard let device else {
            throw SystemError("open", .noSuchFileOrDirectory, context: Udmabuf.devicePath)
        }
        let fd = try Udmabuf.create(device: device, memfd: memfd, offset: offset, size: size)
        // A name is a debugging aid; a kernel without DMA_BUF_SET_NAME still gets its buffer.
        if let name { try? DmaBuf.setName(fd.rawValue, name) }
        return fd
    }

    deinit {
        if let device { _ = Glibc.close(device) }
    }
}
