/*
 * Plugins at the edges of the ABI's growth rule, for ABIGrowthTests:
 *   FIXTURE_AT_PAGE_END   built against the frozen 1.0 header: its plugin
 *                         table and its ops each end exactly where an
 *                         unmapped page begins, so a loader that reads past
 *                         a 1.0 struct_size faults
 *   FIXTURE_NEWER_STRUCTS a "1.2" plugin: each struct one field longer than
 *                         this header's, abi_minor 2, struct_size its own
 *   FIXTURE_SETS_RESERVED the plugin table sets a reserved word
 *   FIXTURE_SETS_OPS_RESERVED the ops table sets a reserved word
 *   FIXTURE_SETS_SCORE    match() sets smaf_verdict.score
 *   FIXTURE_SETS_ALLOCATION_RESERVED allocate() sets smaf_allocation.reserved[0]
 * Memory is a memfd, as in fixture_plugin.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <smaf/plugin.h>

#ifndef FIXTURE_NAME
#define FIXTURE_NAME "growth"
#endif

static int growth_open(const struct smaf_core *core, void **ctx, char *error, size_t error_size)
{
    (void)core; (void)error; (void)error_size;
    *ctx = NULL;
    return 0;
}

static void growth_close(void *ctx) { (void)ctx; }

static int growth_match(void *ctx, const struct smaf_request *request, const struct smaf_constraints *merged,
                        const struct smaf_constraints *const *devices, uint32_t device_count, struct smaf_verdict *verdict)
{
    (void)ctx; (void)request; (void)merged; (void)devices; (void)device_count;
#ifdef FIXTURE_SETS_SCORE
    verdict->score = 7;
#else
    (void)verdict;
#endif
    return 1;
}

static int growth_allocate(void *ctx, const struct smaf_request *request, const struct smaf_constraints *merged,
                           const struct smaf_constraints *const *devices, uint32_t device_count,
                           struct smaf_allocation *out, char *error, size_t error_size)
{
    (void)ctx; (void)merged; (void)devices; (void)device_count; (void)error; (void)error_size;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t size = (request->size + page - 1) / page * page;
    int fd = memfd_create("smaf-growth", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return -err;
    }
    out->fd = fd;
    out->size = size;
    out->flags = SMAF_ALLOCATION_CPU_MAPPABLE;
    out->plane_count = 1;
    out->planes[0].fd = -1;
#ifdef FIXTURE_SETS_ALLOCATION_RESERVED
    out->reserved[0] = 1;
#endif
    return 0;
}

static void growth_release(void *ctx, struct smaf_allocation *allocation)
{
    (void)ctx;
    close(allocation->fd);
}

#ifdef FIXTURE_NEWER_STRUCTS
/* What a 1.2 header might hold: this header's structs and one more field. */
struct newer_ops { struct smaf_allocator_ops ops; uint64_t added_in_1_2; };
struct newer_plugin { struct smaf_plugin plugin; uint64_t added_in_1_2; };
#endif

static struct smaf_allocator_ops ops_template = {
    .struct_size = sizeof(struct smaf_allocator_ops),
    .match = growth_match,
    .allocate = growth_allocate,
    .release = growth_release,
};

static struct smaf_plugin plugin_template = {
    .struct_size = sizeof(struct smaf_plugin),
    .abi_major = SMAF_PLUGIN_ABI_MAJOR,
    .abi_minor = SMAF_PLUGIN_ABI_MINOR,
    .kind = SMAF_PLUGIN_KIND_ALLOCATOR,
    .name = FIXTURE_NAME,
    .description = "ABI growth fixture",
    .default_rank = 300, /* ahead of memfd, which the tests fall back on */
    .open = growth_open,
    .close = growth_close,
};

/* `size` bytes copied so they end exactly where a PROT_NONE page begins. */
__attribute__((unused)) static void *at_page_end(const void *src, size_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || mprotect(map + page, (size_t)page, PROT_NONE) < 0)
        return NULL;
    char *at = map + page - size;
    memcpy(at, src, size);
    return at;
}

const struct smaf_plugin *SMAF_PLUGIN_ENTRY(const struct smaf_core *core)
{
    (void)core;
#ifdef FIXTURE_SETS_RESERVED
    plugin_template.reserved[3] = 1;
#endif
#ifdef FIXTURE_SETS_OPS_RESERVED
    ops_template.reserved[0] = 1;
#endif
#if defined(FIXTURE_AT_PAGE_END)
    struct smaf_allocator_ops *ops = at_page_end(&ops_template, sizeof ops_template);
    if (!ops)
        return NULL;
    plugin_template.allocator = ops;
    return at_page_end(&plugin_template, sizeof plugin_template);
#elif defined(FIXTURE_NEWER_STRUCTS)
    static struct newer_ops ops;
    static struct newer_plugin plugin;
    ops.ops = ops_template;
    ops.ops.struct_size = sizeof ops;
    ops.added_in_1_2 = 0x1202;
    plugin.plugin = plugin_template;
    plugin.plugin.struct_size = sizeof plugin;
    plugin.plugin.abi_minor = SMAF_PLUGIN_ABI_MINOR + 1;
    plugin.plugin.allocator = &ops.ops;
    plugin.added_in_1_2 = 0x1202;
    return &plugin.plugin;
#else
    plugin_template.allocator = &ops_template;
    return &plugin_template;
#endif
}
