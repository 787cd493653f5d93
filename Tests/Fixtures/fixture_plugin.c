/*
 * A small, real allocator plugin in plain C against <smaf/plugin.h> alone,
 * compiled by the tests into variants with -D switches so each loader and
 * selection rule can be exercised:
 *
 *   FIXTURE_NAME         plugin name (default "fixture")
 *   FIXTURE_RANK         default rank (default 100)
 *   FIXTURE_ABI_MAJOR    ABI major it claims (default SMAF_PLUGIN_ABI_MAJOR)
 *   FIXTURE_ABI_REQUIRED the oldest core minor it accepts (default 0)
 *   FIXTURE_NO_ENTRY     export no entry symbol
 *   FIXTURE_NULL_ENTRY   entry returns NULL
 *   FIXTURE_NO_RELEASE   leave out the release op
 *   FIXTURE_OPEN_FAILS   open() fails with -ENODEV
 *   FIXTURE_ALLOC_FAILS  match() accepts but allocate() fails with -ENOMEM
 *   FIXTURE_REJECT       match() always rejects with a reason
 *   FIXTURE_CONTIGUOUS   claims (falsely, it is a test) verified contiguity
 *   FIXTURE_ABI_MINOR    ABI minor it claims to be built for (default SMAF_PLUGIN_ABI_MINOR)
 *
 * Hostile return values, each breaking the ABI's range on purpose (the core
 * must refuse the value, never compute with it):
 *
 *   FIXTURE_OPEN_RETURNS=N      open() returns N (INT_MIN, 7...)
 *   FIXTURE_MATCH_RETURNS=N     match() returns N instead of 1
 *   FIXTURE_ALLOCATE_RETURNS=N  allocate() returns N without allocating
 *   FIXTURE_STATS_RETURNS=N     describe_stats() claims N bytes (SIZE_MAX, 1ull << 62)
 *   FIXTURE_MATCH_OVERRUN       match() writes 64 bytes past its struct smaf_verdict
 *   FIXTURE_MATCH_CRASHES       match() dies of SIGSEGV
 *
 * Without FIXTURE_STRICT it accepts nearly anything (what the loader and
 * selection tests want). FIXTURE_STRICT makes it a conformant allocator that
 * `smaf plugin check` passes: it refuses what it cannot serve and lays images
 * out as the devices ask. Each switch below breaks one promise on top of it,
 * so the conformance tests can show every check failing for its reason:
 *
 *   FIXTURE_STRICT              the conformant baseline described above
 *   FIXTURE_ACCEPTS_BAD_REQUESTS  skips the request validation (0 bytes, overflow, unknown formats)
 *   FIXTURE_NONDETERMINISTIC    match() accepts and rejects on alternate calls
 *   FIXTURE_MATCH_SIDE_EFFECT   match() creates a memfd and keeps it
 *   FIXTURE_WRONG_PITCH         packs rows tightly, ignoring the pitch alignment
 *   FIXTURE_LEAK_FD             allocate() keeps a dup of the fd that release() never closes
 *   FIXTURE_THREAD_UNSAFE       allocate() passes the fd through an unlocked global, overlapping calls by design
 *   FIXTURE_CLOSE_LEAKS         open() opens a memfd that close() never closes
 *
 * Lies the core must catch at allocation (either mode):
 *   FIXTURE_LIES_ABOUT_SIZE     reports the size asked for, backs half of it
 *   FIXTURE_LIES_READ_ONLY      claims a read-only fd over an O_RDWR memfd
 *   FIXTURE_LIES_DMABUF         claims a memfd is a dma-buf
 *
 * Its memory is a real memfd, so allocations can be mapped and checked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <smaf/plugin.h>

#ifndef FIXTURE_NAME
#define FIXTURE_NAME "fixture"
#endif
#ifndef FIXTURE_RANK
#define FIXTURE_RANK 100
#endif
#ifndef FIXTURE_ABI_MAJOR
#define FIXTURE_ABI_MAJOR SMAF_PLUGIN_ABI_MAJOR
#endif
#ifndef FIXTURE_ABI_REQUIRED
#define FIXTURE_ABI_REQUIRED 0
#endif
#ifndef FIXTURE_ABI_MINOR
#define FIXTURE_ABI_MINOR SMAF_PLUGIN_ABI_MINOR
#endif

static int opened;

#ifdef FIXTURE_STRICT
/* The conformant baseline: a linear layout that honours the merged
 * constraints, and a refusal with the reason for everything else. */
#define FIXTURE_FOURCC(a, b, c, d) \
    ((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

/* Bytes per pixel of the single-plane formats it lays out; 0 for others. */
static uint64_t strict_bpp(uint32_t fourcc)
{
    switch (fourcc) {
    case FIXTURE_FOURCC('X', 'R', '2', '4'): case FIXTURE_FOURCC('A', 'R', '2', '4'):
    case FIXTURE_FOURCC('X', 'B', '2', '4'): case FIXTURE_FOURCC('A', 'B', '2', '4'):
        return 4;
    case FIXTURE_FOURCC('R', 'G', '1', '6'):
        return 2;
    case FIXTURE_FOURCC('R', '8', ' ', ' '):
        return 1;
    }
    return 0;
}

/* x rounded up to a multiple of `align` (0 or 1: unchanged); 0 on overflow. */
static uint64_t strict_round(uint64_t x, uint64_t align)
{
    if (align <= 1)
        return x;
    if (x > UINT64_MAX - (align - 1))
        return 0;
    return (x + align - 1) / align * align;
}

/* The layout for `r` under `m`: 0 with the pitch and size, or -EINVAL with `why`. */
static int strict_layout(const struct smaf_request *r, const struct smaf_constraints *m,
                         uint64_t *pitch, uint64_t *size, char *why, size_t why_size)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    *pitch = 0;
    *size = r->size;
#ifndef FIXTURE_ACCEPTS_BAD_REQUESTS
    if (r->size == 0 || r->size > (uint64_t)INT64_MAX - page)
        return snprintf(why, why_size, "%llu bytes is not a size this fixture allocates",
                        (unsigned long long)r->size), -EINVAL;
#endif
#if SMAF_PLUGIN_ABI_MINOR < 1
    /* Built against ABI 1.0, which has no capabilities: the generic checks
     * are the plugin's own. From 1.1 strict_capabilities declares them and
     * the core makes them. */
    if (r->flags)
        return snprintf(why, why_size, "request flags 0x%x are not supported", r->flags), -EINVAL;
    if (m->flags & (SMAF_CONSTRAINT_CONTIGUOUS | SMAF_CONSTRAINT_SECURE | SMAF_CONSTRAINT_DMABUF) || m->import_node)
        return snprintf(why, why_size, "memfd memory: not contiguous, not secure, not a dma-buf"), -EINVAL;
    if ((m->dma_address_bits && m->dma_address_bits < 64) || m->address_alignment > page)
        return snprintf(why, why_size, "no address guarantees beyond page alignment"), -EINVAL;
    for (uint32_t i = 0; i < r->modifier_count; i++)
        if (r->modifiers[i] == 0)
            goto linear_ok;
    if (r->modifier_count)
        return snprintf(why, why_size, "LINEAR only"), -EINVAL;
linear_ok:
#endif
    if (r->width) {
        uint64_t bpp = strict_bpp(r->fourcc);
#ifndef FIXTURE_ACCEPTS_BAD_REQUESTS
        if (!bpp)
            return snprintf(why, why_size, "format 0x%08x is not one this fixture lays out", r->fourcc), -EINVAL;
#else
        if (!bpp)
            bpp = 4;
#endif
        if ((m->max_width && r->width > m->max_width) || (m->max_height && r->height > m->max_height))
            return snprintf(why, why_size, "%ux%u is over the devices' maximum", r->width, r->height), -EINVAL;
#ifdef FIXTURE_WRONG_PITCH
        *pitch = r->width * bpp;
#else
        *pitch = strict_round(r->width * bpp, m->pitch_alignment);
#endif
        uint64_t rows = strict_round(r->height, m->height_alignment);
        if (!*pitch || !rows || (m->max_pitch && *pitch > m->max_pitch) || *pitch > UINT64_MAX / rows)
            return snprintf(why, why_size, "no pitch fits the devices' alignment and maximum"), -EINVAL;
        if (*pitch * rows > *size)
            *size = *pitch * rows;
    }
    if (m->max_size && *size > m->max_size)
        return snprintf(why, why_size, "%llu bytes is over the max size %llu",
                        (unsigned long long)*size, (unsigned long long)m->max_size), -EINVAL;
    *size = strict_round(*size, page);
    return 0;
}

static int strict_match(const struct smaf_request *r, const struct smaf_constraints *m,
                        struct smaf_verdict *verdict)
{
    uint64_t pitch, size;
#ifdef FIXTURE_NONDETERMINISTIC
    static int calls;
    if (calls++ % 2)
        return snprintf(verdict->reason, sizeof verdict->reason, "busy every other call"), 0;
#endif
#ifdef FIXTURE_MATCH_SIDE_EFFECT
    (void)memfd_create("smaf-fixture-match", MFD_CLOEXEC); /* kept: the side effect */
#endif
    return strict_layout(r, m, &pitch, &size, verdict->reason, sizeof verdict->reason) == 0;
}

static int strict_allocate(const struct smaf_request *r, const struct smaf_constraints *m,
                           struct smaf_allocation *out, char *error, size_t error_size)
{
    uint64_t pitch, size;
    int rc = strict_layout(r, m, &pitch, &size, error, error_size);
    if (rc)
        return rc;
    int fd = memfd_create("smaf-fixture", MFD_CLOEXEC);
#ifdef FIXTURE_LIES_ABOUT_SIZE
    off_t backed = (off_t)(size / 2);
#else
    off_t backed = (off_t)size;
#endif
    if (fd < 0 || ftruncate(fd, backed) < 0) {
        int err = errno;
        snprintf(error, error_size, "memfd: %s", strerror(err));
        if (fd >= 0)
            close(fd);
        return -err;
    }
#ifdef FIXTURE_LEAK_FD
    (void)dup(fd); /* "bookkeeping" release() never closes */
#endif
#ifdef FIXTURE_THREAD_UNSAFE
    /* One slot for every thread's fd, no lock: a call that overlaps the next
     * one returns that one's fd. So that the overlap is certain rather than a
     * matter of scheduling, each call waits (10 ms at most) for another call
     * to come in after it; the last call of a burst times out and keeps its
     * own fd, which the call before it returns as well. (The slot and count
     * are atomics so that the C is defined: the fault is the protocol.) */
    static int slot, arrivals;
    __atomic_store_n(&slot, fd, __ATOMIC_SEQ_CST);
    int me = __atomic_add_fetch(&arrivals, 1, __ATOMIC_SEQ_CST);
    for (int waited = 0; waited < 100 && __atomic_load_n(&arrivals, __ATOMIC_SEQ_CST) == me; waited++)
        usleep(100);
    fd = __atomic_load_n(&slot, __ATOMIC_SEQ_CST);
#endif
    out->fd = fd;
    out->size = size;
    out->flags = SMAF_ALLOCATION_CPU_MAPPABLE;
    out->fourcc = r->fourcc;
    out->width = r->width;
    out->height = r->height;
    out->modifier = 0;
    out->plane_count = 1;
    out->planes[0].fd = -1;
    out->planes[0].offset = 0;
    out->planes[0].stride = (uint32_t)pitch;
    snprintf(out->detail, sizeof out->detail, "%s memfd (strict)", FIXTURE_NAME);
    return 0;
}
#endif /* FIXTURE_STRICT */

static int fixture_open(const struct smaf_core *core, void **ctx, char *error, size_t error_size)
{
#ifdef FIXTURE_OPEN_RETURNS
    (void)core; (void)ctx;
    snprintf(error, error_size, "hostile open");
    return FIXTURE_OPEN_RETURNS;
#elif defined(FIXTURE_OPEN_FAILS)
    (void)core; (void)ctx;
    snprintf(error, error_size, "no such hardware here");
    return -ENODEV;
#else
    (void)error; (void)error_size;
    if (core->config) {
        const char *v = core->config(core->core_data, FIXTURE_NAME, "greeting");
        if (v && core->log)
            core->log(core->core_data, SMAF_LOG_INFO, FIXTURE_NAME, v);
    }
#ifdef FIXTURE_CLOSE_LEAKS
    /* A "pool" fd that fixture_close forgets. */
    if (memfd_create("smaf-fixture-pool", MFD_CLOEXEC) < 0)
        return -errno;
#endif
    *ctx = &opened;
    opened++;
    return 0;
#endif
}

static void fixture_close(void *ctx)
{
    (void)ctx;
    opened--;
}

static int fixture_match(void *ctx, const struct smaf_request *request,
                         const struct smaf_constraints *merged,
                         const struct smaf_constraints *const *devices, uint32_t device_count,
                         struct smaf_verdict *verdict)
{
    (void)ctx; (void)request; (void)devices; (void)device_count;
#ifdef FIXTURE_MATCH_CRASHES
    raise(SIGSEGV);
#endif
#ifdef FIXTURE_MATCH_OVERRUN
    /* Past the reason, into whatever the caller keeps after the struct. */
    memset((char *)verdict + sizeof *verdict, 0x5a, 64);
#endif
#ifdef FIXTURE_MATCH_RETURNS
    (void)merged;
    return FIXTURE_MATCH_RETURNS;
#elif defined(FIXTURE_REJECT)
    snprintf(verdict->reason, sizeof verdict->reason, "%s never accepts (test fixture)", FIXTURE_NAME);
    return 0;
#elif defined(FIXTURE_STRICT)
    return strict_match(request, merged, verdict);
#else
    if (merged->flags & SMAF_CONSTRAINT_SECURE) {
        snprintf(verdict->reason, sizeof verdict->reason, "no secure memory here");
        return 0;
    }
    return 1;
#endif
}

static int fixture_allocate(void *ctx, const struct smaf_request *request,
                            const struct smaf_constraints *merged,
                            const struct smaf_constraints *const *devices, uint32_t device_count,
                            struct smaf_allocation *out, char *error, size_t error_size)
{
    (void)ctx; (void)merged; (void)devices; (void)device_count;
#ifdef FIXTURE_ALLOCATE_RETURNS
    (void)request; (void)out;
    snprintf(error, error_size, "hostile allocate");
    return FIXTURE_ALLOCATE_RETURNS;
#elif defined(FIXTURE_ALLOC_FAILS)
    (void)request; (void)out;
    snprintf(error, error_size, "pool exhausted (test fixture)");
    return -ENOMEM;
#elif defined(FIXTURE_STRICT)
    return strict_allocate(request, merged, out, error, error_size);
#else
    long page = sysconf(_SC_PAGESIZE);
    uint64_t size = (request->size + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    int fd = memfd_create("smaf-fixture", MFD_CLOEXEC);
#ifdef FIXTURE_LIES_ABOUT_SIZE
    off_t backed = (off_t)(size / 2);
#else
    off_t backed = (off_t)size;
#endif
    if (fd < 0 || ftruncate(fd, backed) < 0) {
        int err = errno;
        snprintf(error, error_size, "memfd: %s", strerror(err));
        if (fd >= 0)
            close(fd);
        return -err;
    }
    out->fd = fd;
    out->size = size;
    out->flags = SMAF_ALLOCATION_CPU_MAPPABLE;
#ifdef FIXTURE_CONTIGUOUS
    out->flags |= SMAF_ALLOCATION_CONTIGUOUS;
    out->largest_contiguous = size;
#endif
#ifdef FIXTURE_LIES_READ_ONLY
    out->flags |= SMAF_ALLOCATION_READ_ONLY;
#endif
#ifdef FIXTURE_LIES_DMABUF
    out->flags |= SMAF_ALLOCATION_DMABUF;
    snprintf(out->exporter, sizeof out->exporter, "udmabuf");
#endif
    out->fourcc = request->fourcc;
    out->width = request->width;
    out->height = request->height;
    out->modifier = 0;
    out->plane_count = 1;
    out->planes[0].fd = -1;
    out->planes[0].offset = 0;
    out->planes[0].stride = request->height ? (uint32_t)(request->size / request->height) : 0;
    snprintf(out->detail, sizeof out->detail, "%s memfd", FIXTURE_NAME);
    return 0;
#endif
}

__attribute__((unused)) static void fixture_release(void *ctx, struct smaf_allocation *allocation)
{
    (void)ctx;
    close(allocation->fd);
}

#ifdef FIXTURE_STATS_RETURNS
static size_t fixture_stats(void *ctx, char *buffer, size_t size)
{
    (void)ctx;
    if (size)
        snprintf(buffer, size, "hostile stats");
    return FIXTURE_STATS_RETURNS;
}
#endif

#if defined(FIXTURE_STRICT) && SMAF_PLUGIN_ABI_MINOR >= 1
/* What the strict fixture's memfds are (ABI 1.1): mappable, linear, page
 * aligned, not dma-bufs; the core turns away the rest before match(). */
static int strict_capabilities(void *ctx, struct smaf_capabilities *caps)
{
    (void)ctx;
    caps->flags = SMAF_CAP_CPU_MAPPABLE | SMAF_CAP_BYTES | SMAF_CAP_IMAGES;
    return 0;
}
#endif

static const struct smaf_allocator_ops ops = {
    .struct_size = sizeof(struct smaf_allocator_ops),
    .match = fixture_match,
    .allocate = fixture_allocate,
#ifndef FIXTURE_NO_RELEASE
    .release = fixture_release,
#endif
#ifdef FIXTURE_STATS_RETURNS
    .describe_stats = fixture_stats,
#endif
#if defined(FIXTURE_STRICT) && SMAF_PLUGIN_ABI_MINOR >= 1
    .capabilities = strict_capabilities,
#endif
};

__attribute__((unused)) static const struct smaf_plugin plugin = {
    .struct_size = sizeof(struct smaf_plugin),
    .abi_major = FIXTURE_ABI_MAJOR,
    .abi_minor = FIXTURE_ABI_MINOR,
    .abi_minor_required = FIXTURE_ABI_REQUIRED,
    .kind = SMAF_PLUGIN_KIND_ALLOCATOR,
    .name = FIXTURE_NAME,
    .description = "test fixture allocator over memfd",
    .default_rank = FIXTURE_RANK,
    .open = fixture_open,
    .close = fixture_close,
    .allocator = &ops,
};

#ifndef FIXTURE_NO_ENTRY
const struct smaf_plugin *SMAF_PLUGIN_ENTRY(const struct smaf_core *core)
{
    (void)core;
#ifdef FIXTURE_NULL_ENTRY
    return NULL;
#else
    return &plugin;
#endif
}
#else
/* Something exported, so the .so is a valid library without the entry. */
int fixture_not_a_plugin(void) { return plugin.default_rank; }
#endif
