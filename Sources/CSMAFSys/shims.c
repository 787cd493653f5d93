#define _GNU_SOURCE
#include "CSMAFSys.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>

/* The enum in the header mirrors kernel constants so Swift can see them;
 * make a kernel-header change a build error rather than a silent mismatch. */
_Static_assert(CSMAF_MFD_CLOEXEC == MFD_CLOEXEC, "MFD_CLOEXEC");
_Static_assert(CSMAF_MFD_ALLOW_SEALING == MFD_ALLOW_SEALING, "MFD_ALLOW_SEALING");
_Static_assert(CSMAF_MFD_HUGETLB == MFD_HUGETLB, "MFD_HUGETLB");
_Static_assert(CSMAF_F_SEAL_SEAL == F_SEAL_SEAL, "F_SEAL_SEAL");
_Static_assert(CSMAF_F_SEAL_SHRINK == F_SEAL_SHRINK, "F_SEAL_SHRINK");
_Static_assert(CSMAF_F_SEAL_GROW == F_SEAL_GROW, "F_SEAL_GROW");
_Static_assert(CSMAF_F_SEAL_WRITE == F_SEAL_WRITE, "F_SEAL_WRITE");
_Static_assert(CSMAF_DMA_BUF_SYNC_READ == DMA_BUF_SYNC_READ, "SYNC_READ");
_Static_assert(CSMAF_DMA_BUF_SYNC_WRITE == DMA_BUF_SYNC_WRITE, "SYNC_WRITE");
_Static_assert(CSMAF_DMA_BUF_SYNC_END == DMA_BUF_SYNC_END, "SYNC_END");

const char *csmaf_image_path(const void *address)
{
    Dl_info info;
    return dladdr(address, &info) ? info.dli_fname : NULL;
}

int csmaf_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }

int csmaf_add_seals(int fd, unsigned int seals) { return fcntl(fd, F_ADD_SEALS, seals); }

int csmaf_get_seals(int fd) { return fcntl(fd, F_GET_SEALS); }

int csmaf_dup_cloexec(int fd, int min_fd) { return fcntl(fd, F_DUPFD_CLOEXEC, min_fd); }

int csmaf_udmabuf_create(int udmabuf_dev, int memfd, uint64_t offset, uint64_t size, int cloexec)
{
    struct udmabuf_create create = {
        .memfd = (__u32)memfd,
        .flags = cloexec ? UDMABUF_FLAGS_CLOEXEC : 0,
        .offset = offset,
        .size = size,
    };
    return ioctl(udmabuf_dev, UDMABUF_CREATE, &create);
}

int csmaf_dmabuf_sync(int dmabuf, uint64_t flags)
{
    struct dma_buf_sync sync = { .flags = flags };
    return ioctl(dmabuf, DMA_BUF_IOCTL_SYNC, &sync);
}

int csmaf_dmabuf_set_name(int dmabuf, const char *name)
{
    return ioctl(dmabuf, DMA_BUF_SET_NAME, name);
}

int csmaf_dma_heap_alloc(int heap, uint64_t len, uint32_t fd_flags, uint64_t heap_flags)
{
    struct dma_heap_allocation_data data = {
        .len = len,
        .fd_flags = fd_flags,
        .heap_flags = heap_flags,
    };
    if (ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data) < 0)
        return -1;
    return (int)data.fd;
}

unsigned int csmaf_dev_major(uint64_t dev) { return major((dev_t)dev); }

unsigned long csmaf_at_secure(void) { return getauxval(AT_SECURE); }

int csmaf_clear_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}
