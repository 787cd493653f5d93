#define _GNU_SOURCE
#include "CSMAFSys.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <link.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/auxv.h>
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

static int image_named(struct dl_phdr_info *info, size_t size, void *name)
{
    (void)size;
    return info->dlpi_name && strcmp(info->dlpi_name, name) == 0;
}

int csmaf_image_loaded(const char *name) { return dl_iterate_phdr(image_named, (void *)name); }

const char *csmaf_signal_abbrev(int signal) { return sigabbrev_np(signal); }

int csmaf_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }

void csmaf_stderr_lock(void) { flockfile(stderr); }
void csmaf_stderr_flush(void) { fflush(stderr); }
void csmaf_stderr_unlock(void) { funlockfile(stderr); }

int csmaf_add_seals(int fd, unsigned int seals) { return fcntl(fd, F_ADD_SEALS, seals); }

int csmaf_get_seals(int fd) { return fcntl(fd, F_GET_SEALS); }

int csmaf_dup_cloexec(int fd, int min_fd) { return fcntl(fd, F_DUPFD_CLOEXEC, min_fd); }

int csmaf_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

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

_Static_assert(DMA_BUF_MAGIC == 0x444d4142, "DMA_BUF_MAGIC");

long csmaf_fs_type(int fd) {
    struct statfs fs;
    return fstatfs(fd, &fs) == 0 ? (long)fs.f_type : -1;
}

/* struct drm_version from the kernel's drm.h, which this module does not
 * include (the core does not depend on libdrm): the DRM tests compare what
 * this returns with libdrm's drmGetVersion on every node of the test bed. */
struct csmaf_drm_version {
    int version_major, version_minor, version_patchlevel;
    size_t name_len;
    char *name;
    size_t date_len;
    char *date;
    size_t desc_len;
    char *desc;
};

int csmaf_drm_driver_name(int fd, char *name, size_t size) {
    if (size == 0)
        return errno = EINVAL, -1;
    struct csmaf_drm_version v = { .name_len = size - 1, .name = name };
    int rc = ioctl(fd, _IOWR('d', 0x00, struct csmaf_drm_version), &v);
    if (rc == 0)
        name[v.name_len < size - 1 ? v.name_len : size - 1] = 0;
    return rc;
}

unsigned int csmaf_dev_major(uint64_t dev) { return major((dev_t)dev); }

unsigned long csmaf_at_secure(void) { return getauxval(AT_SECURE); }

int csmaf_clear_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

int csmaf_signalfd(const sigset_t *mask)
{
    return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

int csmaf_signalfd_read(int fd)
{
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n == (ssize_t)sizeof info)
        return (int)info.ssi_signo;
    if (n < 0 && errno != EAGAIN)
        return -1;
    return 0;
}
