/*
 * The raw syscalls behind each smaf backend, timed phase by phase. See
 * CSMAFBaseline.h. Kept deliberately plain: no caching, no retries, nothing
 * a direct user of the kernel interface would not write.
 */
#define _GNU_SOURCE
#include "CSMAFBaseline.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <gbm.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <xf86drm.h>

uint64_t csmaf_baseline_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Records the phase that just ended and starts the next one. */
static void lap(struct csmaf_baseline_run *run, int phase, uint64_t *mark)
{
    uint64_t now = csmaf_baseline_now_ns();
    run->ns[phase] = now - *mark;
    *mark = now;
}

static int fail(struct csmaf_baseline_run *run, const char *step, int err)
{
    run->failed_step = step;
    return -(err ? err : EIO);
}

static void write_pages(volatile uint8_t *p, uint64_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    for (uint64_t off = 0; off < size; off += (uint64_t)page)
        p[off] = (uint8_t)(off >> 12);
}

/* mmap, DMA_BUF_IOCTL_SYNC start, one write per page, sync end, munmap. */
static int touch_fd(struct csmaf_baseline_run *run, int fd, uint64_t size, int dmabuf)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return fail(run, "mmap", errno);
    struct dma_buf_sync sync = { .flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE };
    if (dmabuf && ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) < 0) {
        int err = errno;
        munmap(p, size);
        return fail(run, "DMA_BUF_IOCTL_SYNC", err);
    }
    write_pages(p, size);
    sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE;
    if (dmabuf)
        ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync);
    munmap(p, size);
    return 0;
}

/* drmPrimeFDToHandle into each device, then closes the GEM handle. */
static int import_all(struct csmaf_baseline_run *run, int dmabuf)
{
    for (uint32_t i = 0; i < run->import_count; i++) {
        uint32_t handle = 0;
        int rc = drmPrimeFDToHandle(run->import_fds[i], dmabuf, &handle);
        if (rc != 0)
            return fail(run, "drmPrimeFDToHandle", rc < -1 ? -rc : errno);
        drmCloseBufferHandle(run->import_fds[i], handle);
    }
    return 0;
}

/* The phases every fd-native backend shares once it holds `fd`: export
 * (a dup, the second owner the application hands on), touch, import,
 * release. Closes `fd` on every path. */
static int finish_fd_backend(struct csmaf_baseline_run *run, int fd, int dmabuf, uint64_t *mark)
{
    int exported = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (exported < 0) {
        int err = errno;
        close(fd);
        return fail(run, "F_DUPFD_CLOEXEC", err);
    }
    lap(run, CSMAF_PHASE_EXPORT, mark);
    int rc = run->touch ? touch_fd(run, exported, run->bytes, dmabuf) : 0;
    lap(run, CSMAF_PHASE_TOUCH, mark);
    if (rc == 0)
        rc = import_all(run, exported);
    lap(run, CSMAF_PHASE_IMPORT, mark);
    close(exported);
    close(fd);
    lap(run, CSMAF_PHASE_RELEASE, mark);
    return rc;
}

int csmaf_baseline_udmabuf(int udmabuf_dev, struct csmaf_baseline_run *run)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t size = (run->size + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    memset(run->ns, 0, sizeof run->ns);
    run->bytes = size;
    uint64_t mark = csmaf_baseline_now_ns();

    int memfd = memfd_create("smaf-raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0)
        return fail(run, "memfd_create", errno);
    if (ftruncate(memfd, (off_t)size) < 0 || fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int err = errno;
        close(memfd);
        return fail(run, "ftruncate/F_ADD_SEALS", err);
    }
    int fd = memfd;
    if (udmabuf_dev >= 0) {
        struct udmabuf_create create = { .memfd = (uint32_t)memfd, .flags = UDMABUF_FLAGS_CLOEXEC, .offset = 0, .size = size };
        fd = ioctl(udmabuf_dev, UDMABUF_CREATE, &create);
        int err = errno;
        close(memfd); /* the dma-buf holds the pages */
        if (fd < 0)
            return fail(run, "UDMABUF_CREATE", err);
    }
    lap(run, CSMAF_PHASE_ALLOCATE, &mark);
    return finish_fd_backend(run, fd, udmabuf_dev >= 0, &mark);
}

int csmaf_baseline_dma_heap(int heap_fd, struct csmaf_baseline_run *run)
{
    memset(run->ns, 0, sizeof run->ns);
    run->bytes = run->size;
    uint64_t mark = csmaf_baseline_now_ns();
    struct dma_heap_allocation_data data = { .len = run->size, .fd_flags = O_RDWR | O_CLOEXEC };
    if (ioctl(heap_fd, DMA_HEAP_IOCTL_ALLOC, &data) < 0)
        return fail(run, "DMA_HEAP_IOCTL_ALLOC", errno);
    lap(run, CSMAF_PHASE_ALLOCATE, &mark);
    return finish_fd_backend(run, (int)data.fd, 1, &mark);
}

int csmaf_baseline_dumb(int drm_fd, struct csmaf_baseline_run *run)
{
    memset(run->ns, 0, sizeof run->ns);
    uint64_t mark = csmaf_baseline_now_ns();
    struct drm_mode_create_dumb create = { .width = run->width, .height = run->height, .bpp = run->bits_per_pixel };
    if (drmIoctl(drm_fd, DRM_IOCTL_MODE_CREATE_DUMB, &create) < 0)
        return fail(run, "DRM_IOCTL_MODE_CREATE_DUMB", errno);
    run->bytes = create.size;
    lap(run, CSMAF_PHASE_ALLOCATE, &mark);

    struct drm_mode_destroy_dumb destroy = { .handle = create.handle };
    int fd = -1;
    int rc = drmPrimeHandleToFD(drm_fd, create.handle, DRM_CLOEXEC | DRM_RDWR, &fd);
    if (rc != 0 || fd < 0) {
        int err = rc < -1 ? -rc : errno;
        drmIoctl(drm_fd, DRM_IOCTL_MODE_DESTROY_DUMB, &destroy);
        return fail(run, "drmPrimeHandleToFD", err);
    }
    lap(run, CSMAF_PHASE_EXPORT, &mark);
    rc = run->touch ? touch_fd(run, fd, run->bytes, 1) : 0;
    lap(run, CSMAF_PHASE_TOUCH, &mark);
    if (rc == 0)
        rc = import_all(run, fd);
    lap(run, CSMAF_PHASE_IMPORT, &mark);
    drmIoctl(drm_fd, DRM_IOCTL_MODE_DESTROY_DUMB, &destroy);
    close(fd);
    lap(run, CSMAF_PHASE_RELEASE, &mark);
    return rc;
}

int csmaf_baseline_gbm(void *gbm_device, struct csmaf_baseline_run *run)
{
    memset(run->ns, 0, sizeof run->ns);
    uint64_t mark = csmaf_baseline_now_ns();
    errno = 0;
    struct gbm_bo *bo = gbm_bo_create(gbm_device, run->width, run->height, run->fourcc, run->gbm_flags);
    if (!bo)
        return fail(run, "gbm_bo_create", errno ? errno : ENOMEM);
    run->bytes = (uint64_t)gbm_bo_get_stride(bo) * run->height;
    lap(run, CSMAF_PHASE_ALLOCATE, &mark);

    int fd = gbm_bo_get_fd(bo);
    if (fd < 0) {
        int err = errno;
        gbm_bo_destroy(bo);
        return fail(run, "gbm_bo_get_fd", err);
    }
    lap(run, CSMAF_PHASE_EXPORT, &mark);
    int rc = 0;
    if (run->touch) {
        uint32_t stride = 0;
        void *data = NULL;
        void *p = gbm_bo_map(bo, 0, 0, run->width, run->height, GBM_BO_TRANSFER_WRITE, &stride, &data);
        if (p == NULL || p == MAP_FAILED)
            rc = fail(run, "gbm_bo_map", errno ? errno : EIO);
        else {
            write_pages(p, (uint64_t)stride * run->height);
            gbm_bo_unmap(bo, data);
        }
    }
    lap(run, CSMAF_PHASE_TOUCH, &mark);
    if (rc == 0)
        rc = import_all(run, fd);
    lap(run, CSMAF_PHASE_IMPORT, &mark);
    close(fd);
    gbm_bo_destroy(bo);
    lap(run, CSMAF_PHASE_RELEASE, &mark);
    return rc;
}

void *csmaf_baseline_gbm_open(int drm_fd) { return gbm_create_device(drm_fd); }

void csmaf_baseline_gbm_close(void *gbm_device)
{
    if (gbm_device)
        gbm_device_destroy(gbm_device);
}

uint32_t csmaf_baseline_gbm_flags(int scanout, int rendering, int linear)
{
    return (scanout ? GBM_BO_USE_SCANOUT : 0) | (rendering ? GBM_BO_USE_RENDERING : 0) | (linear ? GBM_BO_USE_LINEAR : 0);
}
