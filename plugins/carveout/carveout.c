/*
 * carveout: a fixed budget of RAM carved out on the first allocation and
 * handed out as one sealed memfd per buffer (a dma-buf, through /dev/udmabuf,
 * where that driver exists). Plain C against <smaf/plugin.h> alone;
 * docs/PLUGINS.md walks through it.
 *
 * What it guarantees: the whole budget (carveout.size, SMAF_CARVEOUT_SIZE,
 * default 32M) is committed when the plugin serves its first allocation (not
 * at open: a process that loads smaf but never uses carveout pays nothing),
 * as pages held in a reserve memfd, and stays committed until the plugin
 * closes; the buffers together never exceed it. Allocating moves pages from the reserve
 * to the buffer (punch a hole in the reserve, fallocate the buffer),
 * releasing moves them back, so while budget remains an allocation does not
 * depend on the rest of the system having memory free. Between the punch
 * and the fallocate another process could take the pages: then allocate
 * fails with ENOMEM and the reserve is refilled. A dup an application keeps
 * after release keeps its pages alive outside the budget.
 *
 * What it does not: physical contiguity, low addresses, secure memory; these
 * are ordinary pages. Rank none: used only when a request names it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/udmabuf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "carveout.h" /* the state, and the budget's helpers in budget.c */

#define PITCH_ALIGN 64 /* rows on cache lines when no device asks for more */
#define FOURCC(a, b, c, d) ((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

static int carveout_open(const struct smaf_core *core, void **ctx, char *error, size_t error_size)
{
    const char *setting = core->config ? core->config(core->core_data, NAME, "size") : NULL;
    uint64_t budget = setting ? round_up(parse_size(setting), page_size()) : DEFAULT_BUDGET;
    if (!budget)
        return snprintf(error, error_size, "carveout.size '%s' is not a size (e.g. 32M)", setting), -EINVAL;
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * page_size();
    if (budget > ram / 2)
        return snprintf(error, error_size, "carveout.size %llu bytes is more than half the RAM (%llu bytes)",
                        (unsigned long long)budget, (unsigned long long)ram), -ENOMEM;

    struct carveout *co = calloc(1, sizeof *co);
    if (!co)
        return snprintf(error, error_size, "out of memory"), -ENOMEM;
    co->core = core;
    co->budget = budget;
    co->reserve = -1; /* committed by the first allocation */
    pthread_mutex_init(&co->lock, NULL);
    co->udmabuf = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
    FILE *limit = fopen("/sys/module/udmabuf/parameters/size_limit_mb", "re");
    unsigned long long mb;
    if (limit && fscanf(limit, "%llu", &mb) == 1)
        co->udmabuf_limit = mb << 20;
    if (limit)
        fclose(limit);
    *ctx = co;
    return 0;
}

static void carveout_close(void *ctx)
{
    struct carveout *co = ctx;
    if (co->reserve >= 0)
        close(co->reserve);
    if (co->udmabuf >= 0)
        close(co->udmabuf);
    pthread_mutex_destroy(&co->lock);
    free(co);
}

/* Bytes per pixel of the single-plane formats laid out here, 0 for others. */
static uint64_t bytes_per_pixel(uint32_t fourcc)
{
    switch (fourcc) {
    case FOURCC('X', 'R', '2', '4'): case FOURCC('A', 'R', '2', '4'):
    case FOURCC('X', 'B', '2', '4'): case FOURCC('A', 'B', '2', '4'): return 4;
    case FOURCC('R', 'G', '1', '6'): case FOURCC('Y', 'U', 'Y', 'V'): return 2;
    case FOURCC('R', '8', ' ', ' '): return 1;
    }
    return 0;
}

static int needs_dmabuf(const struct smaf_constraints *c)
{
    return (c->flags & SMAF_CONSTRAINT_DMABUF) || c->import_node;
}

/* Everything match() decides, also run again by allocate(): 0 with the
 * page-rounded size and pitch, or -EINVAL with the reason. Reads only what
 * open() fixed, so the same inputs always give the same answer. */
static int plan(const struct carveout *co, const struct smaf_request *r, const struct smaf_constraints *m,
                const struct smaf_constraints *const *devices, uint32_t device_count,
                uint64_t *size, uint64_t *pitch, char *why, size_t n)
{
#define REFUSE(...) return snprintf(why, n, __VA_ARGS__), -EINVAL
    if (r->flags)
        REFUSE("request flags 0x%x are not supported (carveout hands out writable memory)", r->flags);
    if (m->flags & SMAF_CONSTRAINT_SECURE)
        REFUSE("carve-out pages are CPU-mappable; a secure buffer needs a secure allocator");
    if (m->flags & SMAF_CONSTRAINT_CONTIGUOUS)
        REFUSE("carve-out pages are ordinary pages, not physically contiguous");
    if ((m->dma_address_bits && m->dma_address_bits < 64) || m->address_alignment > page_size())
        REFUSE("carve-out pages promise no address range and only page alignment");
    for (uint32_t i = 0; i < device_count; i++) {
        const struct smaf_constraints *d = devices[i];
        if (!needs_dmabuf(d))
            continue;
        if (co->udmabuf < 0)
            REFUSE("device %s needs a dma-buf and /dev/udmabuf is unavailable", d->name ? d->name : "?");
        int importable = d->importable_count == 0;
        for (uint32_t k = 0; k < d->importable_count; k++)
            importable |= d->importable_from[k] && !strcmp(d->importable_from[k], "udmabuf");
        if (!importable)
            REFUSE("device %s cannot import udmabuf dma-bufs (measured by the probe)", d->name ? d->name : "?");
    }
    if (needs_dmabuf(m) && co->udmabuf < 0)
        REFUSE("a device needs a dma-buf and /dev/udmabuf is unavailable");
    int linear = r->modifier_count == 0;
    for (uint32_t i = 0; i < r->modifier_count; i++)
        linear |= r->modifiers[i] == 0;
    if (!linear)
        REFUSE("carve-out buffers are LINEAR only");

    uint64_t bytes = r->size;
    *pitch = 0;
    if (r->width) {
        uint64_t bpp = bytes_per_pixel(r->fourcc);
        if (!bpp)
            REFUSE("format 0x%08x is not one of XR24, AR24, XB24, AB24, RG16, YUYV, R8", r->fourcc);
        if ((m->max_width && r->width > m->max_width) || (m->max_height && r->height > m->max_height))
            REFUSE("%ux%u exceeds the devices' maximum %ux%u", r->width, r->height, m->max_width, m->max_height);
        uint64_t align = lcm(m->pitch_alignment, PITCH_ALIGN);
        uint64_t rows = round_up(r->height, m->height_alignment);
        *pitch = round_up(r->width * bpp, align);
        if (!align || !*pitch || !rows || *pitch > UINT32_MAX || (m->max_pitch && *pitch > m->max_pitch))
            REFUSE("no pitch for %u pixels fits the devices' alignment %llu and maximum %llu", r->width,
                   (unsigned long long)m->pitch_alignment, (unsigned long long)m->max_pitch);
        if (*pitch > UINT64_MAX / rows)
            REFUSE("%ux%u overflows 64 bits", r->width, r->height);
        if (*pitch * rows > bytes)
            bytes = *pitch * rows;
    }
    if (bytes == 0)
        REFUSE("a buffer of 0 bytes");
    *size = round_up(bytes, page_size());
    if (m->max_size && bytes > m->max_size)
        REFUSE("%llu bytes exceeds the max size %llu", (unsigned long long)bytes, (unsigned long long)m->max_size);
    if (*size == 0 || *size > co->budget)
        REFUSE("%llu bytes is more than the whole carve-out (%llu bytes)", (unsigned long long)bytes,
               (unsigned long long)co->budget);
    if (co->udmabuf >= 0 && co->udmabuf_limit && *size > co->udmabuf_limit)
        REFUSE("%llu bytes exceeds udmabuf's size limit of %llu bytes", (unsigned long long)*size,
               (unsigned long long)co->udmabuf_limit);
    if (m->max_segments && *size / page_size() > m->max_segments)
        REFUSE("up to %llu segments; a device takes %u", (unsigned long long)(*size / page_size()), m->max_segments);
    return 0;
#undef REFUSE
}

static int carveout_match(void *ctx, const struct smaf_request *request, const struct smaf_constraints *merged,
                          const struct smaf_constraints *const *devices, uint32_t device_count,
                          struct smaf_verdict *verdict)
{
    uint64_t size, pitch;
    return plan(ctx, request, merged, devices, device_count, &size, &pitch, verdict->reason, sizeof verdict->reason) == 0;
}

static int carveout_allocate(void *ctx, const struct smaf_request *request, const struct smaf_constraints *merged,
                             const struct smaf_constraints *const *devices, uint32_t device_count,
                             struct smaf_allocation *out, char *error, size_t error_size)
{
    struct carveout *co = ctx;
    uint64_t size, pitch;
    int err = plan(co, request, merged, devices, device_count, &size, &pitch, error, error_size);
    if (err)
        return err;

    pthread_mutex_lock(&co->lock);
    err = commit_budget(co, error, error_size);
    if (err) {
        pthread_mutex_unlock(&co->lock);
        return err;
    }
    if (co->used + size > co->budget) {
        snprintf(error, error_size, "budget exhausted: %llu of %llu bytes in use",
                 (unsigned long long)co->used, (unsigned long long)co->budget);
        pthread_mutex_unlock(&co->lock);
        return -ENOSPC;
    }
    co->used += size; /* the top `size` bytes of the reserve move to the buffer */
    err = fallocate(co->reserve, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(co->budget - co->used), (off_t)size) < 0 ? errno : 0;
    if (err)
        co->used -= size;
    else
        co->buffers++;
    pthread_mutex_unlock(&co->lock);
    if (err)
        return snprintf(error, error_size, "punching the reserve: %s", strerror(err)), -err;

    int memfd = memfd_create("smaf-carveout", MFD_CLOEXEC | MFD_ALLOW_SEALING), fd = -1;
    const char *step = "memfd_create";
    if (memfd >= 0 && (step = "fallocate", fallocate(memfd, 0, 0, (off_t)size) == 0) &&
        (step = "F_ADD_SEALS", fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)) {
        if (co->udmabuf < 0) {
            fd = memfd, memfd = -1; /* the sealed memfd is the buffer */
        } else {
            struct udmabuf_create create = { .memfd = (uint32_t)memfd, .flags = UDMABUF_FLAGS_CLOEXEC, .size = size };
            step = "ioctl(UDMABUF_CREATE)";
            fd = ioctl(co->udmabuf, UDMABUF_CREATE, &create); /* the dma-buf holds the pages now */
        }
    }
    err = fd < 0 ? errno : 0;
    if (memfd >= 0)
        close(memfd);
    if (fd < 0) {
        pthread_mutex_lock(&co->lock);
        co->buffers--;
        refill(co, size);
        pthread_mutex_unlock(&co->lock);
        return snprintf(error, error_size, "%s (%llu bytes): %s", step, (unsigned long long)size, strerror(err)), -err;
    }
    if (co->udmabuf >= 0)
        (void)ioctl(fd, DMA_BUF_SET_NAME_B, "smaf:carveout"); /* a label in fdinfo; optional */

    out->fd = fd;
    out->size = size;
    out->flags = SMAF_ALLOCATION_CPU_MAPPABLE | (co->udmabuf >= 0 ? SMAF_ALLOCATION_DMABUF : 0);
    out->fourcc = request->fourcc;
    out->width = request->width;
    out->height = request->height;
    out->modifier = 0; /* DRM_FORMAT_MOD_LINEAR */
    out->plane_count = 1;
    out->planes[0] = (struct smaf_plane){ .fd = -1, .stride = (uint32_t)pitch, .offset = 0 };
    out->plugin_data = (void *)(uintptr_t)size; /* what release() gives back to the reserve */
    snprintf(out->exporter, sizeof out->exporter, "%s", co->udmabuf >= 0 ? "udmabuf" : "");
    snprintf(out->detail, sizeof out->detail, "%llu bytes of the carve-out%s", (unsigned long long)size,
             co->udmabuf >= 0 ? " via udmabuf" : " (sealed memfd: no /dev/udmabuf, not a dma-buf)");
    return 0;
}

static void carveout_release(void *ctx, struct smaf_allocation *allocation)
{
    struct carveout *co = ctx;
    close(allocation->fd);
    pthread_mutex_lock(&co->lock);
    co->buffers--;
    refill(co, (uint64_t)(uintptr_t)allocation->plugin_data);
    pthread_mutex_unlock(&co->lock);
}

static size_t carveout_stats(void *ctx, char *buffer, size_t size)
{
    struct carveout *co = ctx;
    pthread_mutex_lock(&co->lock);
    const char *udmabuf = co->udmabuf >= 0 ? "exports dma-bufs via udmabuf" : "no /dev/udmabuf: sealed memfds";
    int n = co->reserve < 0
        ? snprintf(buffer, size, "budget %llu bytes, not committed yet (on the first allocation); %s",
                   (unsigned long long)co->budget, udmabuf)
        : snprintf(buffer, size, "budget %llu bytes committed; %llu in %u buffers, %llu in reserve; %s",
                   (unsigned long long)co->budget, (unsigned long long)co->used, co->buffers,
                   (unsigned long long)(co->budget - co->used), udmabuf);
    pthread_mutex_unlock(&co->lock);
    return n < 0 ? 0 : (size_t)n + 1;
}

static const struct smaf_allocator_ops carveout_ops = {
    .struct_size = sizeof(struct smaf_allocator_ops),
    .match = carveout_match,
    .allocate = carveout_allocate,
    .release = carveout_release,
    .describe_stats = carveout_stats,
};

static const struct smaf_plugin carveout_plugin = {
    .struct_size = sizeof(struct smaf_plugin),
    .abi_major = SMAF_PLUGIN_ABI_MAJOR,
    .abi_minor = SMAF_PLUGIN_ABI_MINOR,
    .abi_minor_required = 0, /* uses nothing newer than ABI 1.0 */
    .kind = SMAF_PLUGIN_KIND_ALLOCATOR,
    .name = NAME,
    .description = "a fixed RAM budget committed on first use, one sealed memfd per buffer (udmabuf dma-buf where available)",
    .default_rank = SMAF_RANK_NONE,
    .open = carveout_open,
    .close = carveout_close,
    .allocator = &carveout_ops,
};

const struct smaf_plugin *SMAF_PLUGIN_ENTRY(const struct smaf_core *core)
{
    (void)core;
    return &carveout_plugin;
}
