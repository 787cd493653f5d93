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
 *
 * Its memory is a real memfd, so allocations can be mapped and checked.
 */
#define _GNU_SOURCE
#include <errno.h>
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

static int opened;

static int fixture_open(const struct smaf_core *core, void **ctx, char *error, size_t error_size)
{
#ifdef FIXTURE_OPEN_FAILS
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
#ifdef FIXTURE_REJECT
    snprintf(verdict->reason, sizeof verdict->reason, "%s never accepts (test fixture)", FIXTURE_NAME);
    return 0;
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
#ifdef FIXTURE_ALLOC_FAILS
    (void)request; (void)out;
    snprintf(error, error_size, "pool exhausted (test fixture)");
    return -ENOMEM;
#else
    long page = sysconf(_SC_PAGESIZE);
    uint64_t size = (request->size + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    int fd = memfd_create("smaf-fixture", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
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

static const struct smaf_allocator_ops ops = {
    .struct_size = sizeof(struct smaf_allocator_ops),
    .match = fixture_match,
    .allocate = fixture_allocate,
#ifndef FIXTURE_NO_RELEASE
    .release = fixture_release,
#endif
};

__attribute__((unused)) static const struct smaf_plugin plugin = {
    .struct_size = sizeof(struct smaf_plugin),
    .abi_major = FIXTURE_ABI_MAJOR,
    .abi_minor = SMAF_PLUGIN_ABI_MINOR,
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
