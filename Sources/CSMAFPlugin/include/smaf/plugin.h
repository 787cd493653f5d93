/*
 * smaf plugin ABI.
 *
 * A plugin is a shared object that exports one symbol, SMAF_PLUGIN_ENTRY_NAME,
 * returning a pointer to a static `struct smaf_plugin`. Everything the core and
 * the plugin exchange goes through the structs below; this header is the whole
 * contract, so a plugin can be written in C, Swift or anything that exports
 * C symbols.
 *
 * How the ABI grows (one rule, applied mechanically by the core's loader):
 *  - A struct only grows at its end. A published field keeps its offset,
 *    type and meaning for the life of the major version; each field added
 *    after 1.0 says "since 1.N".
 *  - Every struct starts with `struct_size`: how many bytes its writer has.
 *    The reader reads a field only if offsetof(field) + sizeof(field) <=
 *    struct_size, and treats a field beyond it as 0 / NULL, which every
 *    added field defines to mean "as before". The core never copies a whole
 *    plugin struct.
 *  - Fields with no meaning yet (the `reserved` words, smaf_verdict.score)
 *    must be zero: the core refuses a plugin that sets one, so a later minor
 *    can give it a meaning without old plugins having said something else.
 *  - A plugin states the minor it was built for (abi_minor) and the oldest
 *    core minor it can work with (abi_minor_required); the two sides use
 *    min(core minor, plugin minor). An incompatible change bumps
 *    SMAF_PLUGIN_ABI_MAJOR; the core refuses a plugin of another major.
 *
 * Ownership: every fd a plugin hands out in a `smaf_allocation` stays owned by
 * the plugin until the core calls `release` for that allocation; the core
 * dup()s what it gives to applications. Strings the core passes in are valid
 * for the duration of the call only.
 *
 * Threading: `match`, `allocate` and `release` may be called from several
 * threads at once unless the plugin sets SMAF_PLUGIN_FLAG_SERIALIZE, in which
 * case the core holds a per-plugin lock around every call.
 */
#ifndef SMAF_PLUGIN_H
#define SMAF_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMAF_PLUGIN_ABI_MAJOR 1
#define SMAF_PLUGIN_ABI_MINOR 1

/* The one symbol a plugin exports. Do not rename. */
#define SMAF_PLUGIN_ENTRY smaf_plugin_entry
#define SMAF_PLUGIN_ENTRY_NAME "smaf_plugin_entry"

#define SMAF_NAME_MAX 64
#define SMAF_REASON_MAX 256
#define SMAF_MAX_PLANES 4

/* GStreamer-style rank anchors. Rank 0 is never chosen automatically. */
#define SMAF_RANK_NONE 0
#define SMAF_RANK_MARGINAL 64
#define SMAF_RANK_SECONDARY 128
#define SMAF_RANK_PRIMARY 256

/* Log levels for smaf_core.log. */
enum smaf_log_level {
    SMAF_LOG_ERROR = 0,
    SMAF_LOG_WARNING = 1,
    SMAF_LOG_INFO = 2,
    SMAF_LOG_DEBUG = 3,
};

/* Device usages (smaf_constraints.usage). */
enum smaf_usage {
    SMAF_USAGE_SCANOUT = 1u << 0,
    SMAF_USAGE_RENDER = 1u << 1,
    SMAF_USAGE_TEXTURE = 1u << 2,
    SMAF_USAGE_CPU_READ = 1u << 3,
    SMAF_USAGE_CPU_WRITE = 1u << 4,
    SMAF_USAGE_VIDEO_DECODE = 1u << 5,
    SMAF_USAGE_VIDEO_ENCODE = 1u << 6,
    SMAF_USAGE_CAMERA = 1u << 7,
};

/* Requirements (smaf_constraints.flags). */
enum smaf_constraint_flags {
    SMAF_CONSTRAINT_CONTIGUOUS = 1u << 0, /* physically contiguous memory */
    SMAF_CONSTRAINT_CPU_ACCESS = 1u << 1, /* the CPU must be able to mmap it */
    SMAF_CONSTRAINT_SECURE = 1u << 2,     /* a secure path: CPU kept out */
    SMAF_CONSTRAINT_DMABUF = 1u << 3,     /* must be a real dma-buf (imported by a device) */
};

/* What the core offers the plugin: logging and configuration. */
struct smaf_core {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t reserved0;         /* must be 0 */
    void *core_data;
    /* Log one line on behalf of `plugin`. Safe from any thread. */
    void (*log)(void *core_data, int level, const char *plugin, const char *message);
    /* A configuration value for `plugin` (from SMAF_<PLUGIN>_<KEY> or the
     * config file), or NULL. The string lives as long as the core. */
    const char *(*config)(void *core_data, const char *plugin, const char *key);
    uint64_t reserved[8];       /* must be 0 */
};

/* One accepted format and the modifiers accepted with it. A modifier list
 * of length 0 means "any modifier". DRM_FORMAT_MOD_INVALID means implicit. */
struct smaf_format {
    uint32_t fourcc;
    uint32_t modifier_count;
    const uint64_t *modifiers;
};

/* A device's constraints, or the merge of all attached devices'. 0 means
 * "no constraint" for every number. An empty format list means "any". */
struct smaf_constraints {
    uint32_t struct_size;
    uint32_t usage;             /* enum smaf_usage bits */
    uint32_t flags;             /* enum smaf_constraint_flags bits */
    uint32_t dma_address_bits;  /* every byte below 2^bits */
    const char *name;           /* device name, or "merged" */
    const char *import_node;    /* DRM node the buffer must import into, or NULL */
    uint64_t address_alignment;
    uint64_t pitch_alignment;
    uint64_t height_alignment;
    uint64_t max_pitch;
    uint64_t max_size;
    uint32_t max_width;
    uint32_t max_height;
    uint32_t max_segments;      /* scatter-gather entries the device takes */
    uint32_t format_count;
    const struct smaf_format *formats;
    /* Set by the device probe: the exporters this device was measured to
     * import from ("udmabuf", "dma-heap:system", "drm:virtio_gpu", see
     * smaf_allocation.exporter). NULL/0: not known, assume importable. */
    uint32_t importable_count;
    uint32_t reserved0;         /* must be 0 */
    const char *const *importable_from;
    uint64_t reserved[8];       /* must be 0 */
};

/* Request flags (smaf_request.flags). */
enum smaf_request_flags {
    /* Hand out an fd without write permission, so the kernel refuses
     * writable CPU mappings (EACCES). Set for secure buffers whose module
     * denies CPU writes. An allocator that cannot must reject in match(). */
    SMAF_REQUEST_READ_ONLY = 1u << 0,
    /* Since 1.1: name the dma-buf (DMA_BUF_SET_NAME, shown in fdinfo and
     * debugfs) where the allocator can. A debugging aid, one ioctl per
     * buffer: asked for with SMAF_NAME_BUFFERS=1, never by default. */
    SMAF_REQUEST_NAME_BUFFER = 1u << 1,
};

/* What the application asked for. Either a byte size (width == 0) or an image. */
struct smaf_request {
    uint32_t struct_size;
    uint32_t flags;             /* enum smaf_request_flags bits */
    uint64_t size;              /* bytes; for images the core's minimum estimate */
    uint32_t width;
    uint32_t height;
    uint32_t fourcc;            /* 0 for a plain byte buffer */
    uint32_t modifier_count;    /* acceptable modifiers after merging; 0 = any */
    const uint64_t *modifiers;
    uint64_t reserved[8];       /* must be 0 */
};

/* The verdict of match(). */
struct smaf_verdict {
    uint32_t struct_size;
    int32_t score;              /* no meaning yet: must stay 0 */
    char reason[SMAF_REASON_MAX];
};

struct smaf_plane {
    int32_t fd;                 /* must be -1: the plane lies in the allocation's fd */
    uint32_t stride;
    uint64_t offset;
};

/* Guarantees an allocation makes (smaf_allocation.flags). */
enum smaf_allocation_flags {
    SMAF_ALLOCATION_DMABUF = 1u << 0,        /* fd is a real dma-buf */
    SMAF_ALLOCATION_CONTIGUOUS = 1u << 1,    /* verified physically contiguous */
    SMAF_ALLOCATION_CPU_MAPPABLE = 1u << 2,  /* mmap() on the fd works */
    SMAF_ALLOCATION_COHERENT = 1u << 3,      /* CPU caches coherent with devices */
    SMAF_ALLOCATION_READ_ONLY = 1u << 4,     /* the fd refuses writable mappings */
};

/* Filled by allocate(). The plugin owns `fd` and any plane fds until
 * release() is called with the same struct. */
struct smaf_allocation {
    uint32_t struct_size;
    uint32_t flags;             /* enum smaf_allocation_flags bits */
    int32_t fd;
    uint32_t plane_count;
    uint64_t size;              /* bytes behind fd */
    uint32_t fourcc;            /* 0 for a plain byte buffer */
    uint32_t width;
    uint32_t height;
    uint32_t reserved0;         /* must be 0 */
    uint64_t modifier;
    struct smaf_plane planes[SMAF_MAX_PLANES];
    uint64_t largest_contiguous; /* bytes; 0 if not verified */
    void *plugin_data;          /* the plugin's own per-allocation state */
    char detail[SMAF_REASON_MAX]; /* human readable, e.g. "memfd 8 MiB via udmabuf" */
    /* Who exports the dma-buf, in the names device probes record in
     * smaf_constraints.importable_from: "udmabuf", "dma-heap:<heap>",
     * "drm:<driver>" (a DRM device's own buffer). Empty if not a dma-buf. */
    char exporter[SMAF_NAME_MAX];
    uint64_t reserved[8];       /* must be 0 */
};

/* What an allocator can ever deliver (since 1.1). The core rejects, before
 * match() is called, every request the declaration rules out, with the
 * same words whichever allocator it hits, so match() is left with what only
 * the allocator knows (its formats, its devices, its limits). An allocation
 * that breaks the declaration is a failed allocation. */
enum smaf_capability_flags {
    SMAF_CAP_DMABUF = 1u << 0,         /* its fds are real dma-bufs */
    SMAF_CAP_CPU_MAPPABLE = 1u << 1,   /* mmap() on its fds works */
    SMAF_CAP_READ_ONLY = 1u << 2,      /* honours SMAF_REQUEST_READ_ONLY */
    SMAF_CAP_CONTIGUOUS = 1u << 3,     /* can deliver verified physically contiguous memory */
    SMAF_CAP_ADDRESS_LIMITS = 1u << 4, /* can keep memory below a device's dma_address_bits, verified */
    SMAF_CAP_SECURE = 1u << 5,         /* memory the CPU cannot map, for SMAF_CONSTRAINT_SECURE devices */
    SMAF_CAP_BYTES = 1u << 6,          /* serves plain byte buffers (fourcc 0) */
    SMAF_CAP_IMAGES = 1u << 7,         /* serves images */
    SMAF_CAP_ANY_MODIFIER = 1u << 8,   /* lays out the modifiers its device's driver offers (modifiers ignored) */
};

struct smaf_capabilities {
    uint32_t struct_size;
    uint32_t flags;                 /* enum smaf_capability_flags bits */
    uint64_t address_alignment;     /* the largest start alignment it can honour when a device asks; 0: a page */
    uint32_t modifier_count;        /* the layouts it makes; 0: LINEAR only (or any, with SMAF_CAP_ANY_MODIFIER) */
    uint32_t padding;               /* must be 0 */
    const uint64_t *modifiers;      /* valid until close(); the core copies them */
    /* The exporter of every dma-buf it makes ("udmabuf"), as in
     * smaf_allocation.exporter; "" when it depends on the buffer (a DRM
     * device's own buffers), and match() then checks importers itself. */
    char exporter[SMAF_NAME_MAX];
};

/* Allocator operations. All but `describe_stats` and `capabilities` are required. */
struct smaf_allocator_ops {
    uint32_t struct_size;
    uint32_t reserved0;         /* must be 0 */
    /* Decide whether this plugin can satisfy the request for these devices.
     * Must not allocate device memory or change any state visible outside
     * the plugin; the same inputs must give the same verdict.
     * Returns 1 to accept, 0 to reject (with verdict->reason filled). */
    int (*match)(void *plugin_ctx, const struct smaf_request *request,
                 const struct smaf_constraints *merged,
                 const struct smaf_constraints *const *devices, uint32_t device_count,
                 struct smaf_verdict *verdict);
    /* Allocate for the same inputs match() accepted. Returns 0, or a
     * negative errno with `error` filled; the core then tries the next
     * allocator, so ENOMEM and limits are not fatal. */
    int (*allocate)(void *plugin_ctx, const struct smaf_request *request,
                    const struct smaf_constraints *merged,
                    const struct smaf_constraints *const *devices, uint32_t device_count,
                    struct smaf_allocation *allocation,
                    char *error, size_t error_size);
    /* Free everything allocate() made for this allocation. Never fails. */
    void (*release)(void *plugin_ctx, struct smaf_allocation *allocation);
    /* Optional: a human readable state report (e.g. a region map). Writes
     * at most `size` bytes including the NUL; returns the length needed. */
    size_t (*describe_stats)(void *plugin_ctx, char *buffer, size_t size);
    uint64_t reserved[8];       /* must be 0 */
    /* Since 1.1, optional: what the allocator can ever deliver, asked once
     * after open(). Fill `caps` (the core zeroed it and set struct_size;
     * write only fields inside it) and return 0, or a negative errno to be
     * skipped. NULL: the core filters nothing and match() decides all, as
     * in 1.0. */
    int (*capabilities)(void *plugin_ctx, struct smaf_capabilities *caps);
};

/* Access directions for secure modules. */
enum smaf_access {
    SMAF_ACCESS_READ = 1u << 0,
    SMAF_ACCESS_WRITE = 1u << 1,
    SMAF_ACCESS_READ_WRITE = SMAF_ACCESS_READ | SMAF_ACCESS_WRITE,
};

/* The buffer a secure context is about (smaf_secure_ops.create_context). */
struct smaf_buffer_info {
    uint32_t struct_size;
    uint32_t reserved0;         /* must be 0 */
    uint64_t id;                /* unique per process, for logs */
    uint64_t size;              /* 0 until the buffer has memory */
    const char *allocator;      /* NULL until the buffer has memory */
    uint64_t reserved[8];       /* must be 0 */
};

/* Secure module operations: SMAF's secure ops. The CPU is one more device,
 * named "cpu", that receives grants; allow_cpu_access is asked first so the
 * policy stays inspectable without granting anything. All are required. */
struct smaf_secure_ops {
    uint32_t struct_size;
    uint32_t reserved0;         /* must be 0 */
    /* A per-buffer context, made when the buffer is marked secure (before
     * it has memory). Returns 0 or a negative errno with `error` filled. */
    int (*create_context)(void *plugin_ctx, const struct smaf_buffer_info *buffer,
                          void **buffer_ctx, char *error, size_t error_size);
    /* After every grant was revoked and the memory scrubbed. */
    void (*destroy_context)(void *plugin_ctx, void *buffer_ctx);
    /* Let `device` access [offset, offset + length) in `access` directions.
     * Returns 0, or a negative errno (EACCES: denied) with `reason` filled. */
    int (*grant_access)(void *plugin_ctx, void *buffer_ctx, const struct smaf_constraints *device,
                        uint64_t offset, uint64_t length, uint32_t access,
                        char *reason, size_t reason_size);
    /* Undo one grant_access that succeeded, with the same arguments. */
    void (*revoke_access)(void *plugin_ctx, void *buffer_ctx, const struct smaf_constraints *device,
                          uint64_t offset, uint64_t length, uint32_t access);
    /* May the CPU map the buffer for `access`? 1 yes, 0 no (`reason` filled).
     * Pure: no grant is made. */
    int (*allow_cpu_access)(void *plugin_ctx, void *buffer_ctx, uint32_t access,
                            char *reason, size_t reason_size);
    /* Optional: a state report, as smaf_allocator_ops.describe_stats. */
    size_t (*describe_stats)(void *plugin_ctx, char *buffer, size_t size);
    uint64_t reserved[8];       /* must be 0 */
};

enum smaf_plugin_kind {
    SMAF_PLUGIN_KIND_ALLOCATOR = 1,
    SMAF_PLUGIN_KIND_SECURE = 2,
};

enum smaf_plugin_flags {
    SMAF_PLUGIN_FLAG_SERIALIZE = 1u << 0, /* core serializes every call */
};

/* What the entry point returns. Static storage; never freed. */
struct smaf_plugin {
    uint32_t struct_size;
    uint32_t abi_major;          /* must equal the core's SMAF_PLUGIN_ABI_MAJOR */
    uint32_t abi_minor;          /* the minor version the plugin was built for */
    uint32_t abi_minor_required; /* the oldest core minor it can live with */
    uint32_t kind;               /* enum smaf_plugin_kind */
    uint32_t flags;              /* enum smaf_plugin_flags */
    const char *name;            /* [a-z0-9_-]{1,63}, unique */
    const char *description;
    int32_t default_rank;
    uint32_t reserved0;         /* must be 0 */
    /* Create the per-plugin context. Returns 0, or a negative errno with
     * `error` filled; a failing plugin is skipped with that reason. */
    int (*open)(const struct smaf_core *core, void **plugin_ctx,
                char *error, size_t error_size);
    void (*close)(void *plugin_ctx);
    const struct smaf_allocator_ops *allocator; /* kind ALLOCATOR, else NULL */
    const struct smaf_secure_ops *secure;        /* kind SECURE, else NULL */
    uint64_t reserved[8];       /* must be 0 */
};

typedef const struct smaf_plugin *(*smaf_plugin_entry_fn)(const struct smaf_core *core);

#ifdef __cplusplus
}
#endif

#endif /* SMAF_PLUGIN_H */
