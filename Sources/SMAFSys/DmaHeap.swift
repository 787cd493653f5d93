import CSMAFSys
import Glibc

/// The dma-buf heaps uAPI (`linux/dma-heap.h`): one character device per heap
/// under /dev/dma_heap, each allocating dma-bufs with DMA_HEAP_IOCTL_ALLOC.
public enum DmaHeap {
    public static let directory = "/dev/dma_heap"

    public static func path(_ heap: String) -> String { "\(directory)/\(heap)" }

    /// The heaps this kernel offers ("system", "linux,cma", "reserved",
    /// "default_cma_region"...), sorted; empty when /dev/dma_heap is missing.
    public static func heapNames() -> [String] {
        (try? Directory.entries(directory)) ?? []
    }

    /// DMA_HEAP_IOCTL_ALLOC: a new close-on-exec dma-buf of `size` bytes (the
    /// kernel rounds up to pages) from the open heap device `heap`. A
    /// `readOnly` buffer's fd is opened without O_RDWR, so the kernel refuses
    /// writable mappings of it (EACCES). `context` names the heap in errors.
    public static func allocate(heap: CInt, size: UInt64, readOnly: Bool = false,
                                context: String? = nil) throws(SystemError) -> UniqueFD {
        let fdFlags = UInt32(bitPattern: O_CLOEXEC | (readOnly ? O_RDONLY : O_RDWR))
        let fd = try retryingSyscall("ioctl(DMA_HEAP_IOCTL_ALLOC, \(size) bytes)", context: context) {
            csmaf_dma_heap_alloc(heap, size, fdFlags, 0)
        }
        return UniqueFD(adopting: fd)
    }
}
