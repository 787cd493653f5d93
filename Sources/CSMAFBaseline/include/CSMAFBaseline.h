/*
 * The raw baseline for `smaf bench`: for each backend, the syscalls an
 * application makes when it uses that backend directly, with no framework in
 * between. The bench runs these interleaved with smaf's own path (A, B, A,
 * B...) in one process, so the ratio framework/raw is what smaf costs.
 *
 * Each function runs one whole cycle (allocate, export to an fd, optionally
 * touch every page from the CPU and import into DRM devices, release), times
 * each phase with CLOCK_MONOTONIC, and returns 0 or -errno. Whatever it
 * created is released on every path, error paths included.
 */
#ifndef CSMAF_BASELINE_H
#define CSMAF_BASELINE_H

#include <stdint.h>

enum csmaf_phase {
    CSMAF_PHASE_ALLOCATE = 0,
    CSMAF_PHASE_EXPORT = 1,
    CSMAF_PHASE_TOUCH = 2,
    CSMAF_PHASE_IMPORT = 3,
    CSMAF_PHASE_RELEASE = 4,
    CSMAF_PHASE_COUNT = 5,
};

struct csmaf_baseline_run {
    /* In. memfd and heap use `size`; dumb and gbm use the image fields. */
    uint64_t size;
    uint32_t width, height, fourcc, bits_per_pixel;
    uint32_t gbm_flags;
    /* Map the buffer, write one byte per page, unmap (DMA_BUF_IOCTL_SYNC around it). */
    int touch;
    /* DRM fds to import the dma-buf into (drmPrimeFDToHandle, then GEM close). */
    const int *import_fds;
    uint32_t import_count;

    /* Out: nanoseconds per phase, the bytes the kernel allocated, and for
     * an error the step that failed (a static string). */
    uint64_t ns[CSMAF_PHASE_COUNT];
    uint64_t bytes;
    const char *failed_step;
};

/* memfd_create + ftruncate + F_ADD_SEALS + UDMABUF_CREATE; export is a dup of
 * the dma-buf. With udmabuf_dev < 0 the sealed memfd itself is the buffer
 * (what the memfd plugin hands out without /dev/udmabuf). */
int csmaf_baseline_udmabuf(int udmabuf_dev, struct csmaf_baseline_run *run);

/* DMA_HEAP_IOCTL_ALLOC on an open heap (O_RDWR | O_CLOEXEC fd); export is a dup. */
int csmaf_baseline_dma_heap(int heap_fd, struct csmaf_baseline_run *run);

/* DRM_IOCTL_MODE_CREATE_DUMB; export drmPrimeHandleToFD(DRM_CLOEXEC | DRM_RDWR);
 * release DRM_IOCTL_MODE_DESTROY_DUMB + close. `drm_fd` is a primary node. */
int csmaf_baseline_dumb(int drm_fd, struct csmaf_baseline_run *run);

/* gbm_bo_create; export gbm_bo_get_fd; touch through gbm_bo_map (Mesa's
 * gbm_bo_get_fd exports without DRM_RDWR, so the fd refuses writable
 * mappings); release close + gbm_bo_destroy. */
int csmaf_baseline_gbm(void *gbm_device, struct csmaf_baseline_run *run);

/* gbm_create_device on an open DRM fd (the caller keeps the fd open until
 * csmaf_baseline_gbm_close); NULL with errno set on failure. */
void *csmaf_baseline_gbm_open(int drm_fd);
void csmaf_baseline_gbm_close(void *gbm_device);

/* GBM_BO_USE_* values the bench passes in gbm_flags. */
uint32_t csmaf_baseline_gbm_flags(int scanout, int rendering, int linear);

uint64_t csmaf_baseline_now_ns(void);

#endif
