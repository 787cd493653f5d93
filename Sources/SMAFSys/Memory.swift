import Glibc
import SMAFFormats

public enum Memory {
    /// The system page size: every buffer smaf hands out is a whole number of pages.
    public static let pageSize: UInt64 = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// The machine's RAM in bytes (0 if unknown): nothing larger can be allocated.
    public static let physicalRAM: UInt64 = UInt64(max(sysconf(Int32(_SC_PHYS_PAGES)), 0)) &* pageSize

    /// `size` rounded up to whole pages, nil on overflow.
    public static func pageRounded(_ size: UInt64) -> UInt64? { alignUp(size, pageSize) }
}

/// A shared mapping of a whole fd (a dma-buf or memfd), unmapped on deinit.
/// Owned by one value; the pointer is valid for the mapping's lifetime.
public struct Mapping: ~Copyable, @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let length: Int
    public let writable: Bool

    public init(fd: CInt, length: Int, writable: Bool, context: String? = nil) throws(SystemError) {
        let prot = PROT_READ | (writable ? PROT_WRITE : 0)
        let p = mmap(nil, length, prot, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw SystemError.current(writable ? "mmap(PROT_READ|PROT_WRITE)" : "mmap(PROT_READ)", context: context)
        }
        base = p
        self.length = length
        self.writable = writable
    }

    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: length) }

    deinit { munmap(base, length) }
}
