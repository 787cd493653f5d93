/*
 * smaf C API for applications (libsmafapi.so; pkg-config smaf).
 *
 * Describe the devices that will touch a buffer, and smaf gives it to the
 * first allocator (in rank order) whose match() accepts them all. Memory is
 * allocated on the first export, so attach every device first.
 *
 *     smaf_context *ctx = smaf_open();
 *     smaf_buffer *buf = smaf_buffer_create_image(ctx, 1920, 1080, 0x34325258, NULL, 0, 0);
 *     smaf_buffer_attach_drm(buf, drm_fd);
 *     int fd = smaf_buffer_export(buf);      // a dma-buf you own; close() it
 *     smaf_buffer_destroy(buf);
 *     smaf_close(ctx);
 *
 * Every call that can fail returns NULL or -1 and leaves one line in
 * smaf_last_error() (per thread). Objects are not thread safe; distinct
 * objects may be used from distinct threads.
 */
#ifndef SMAF_SMAF_H
#define SMAF_SMAF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct smaf_context smaf_context;
typedef struct smaf_buffer smaf_buffer;

/* Flags for smaf_buffer_create*(). */
#define SMAF_BUFFER_SECURE (1u << 0) /* same as smaf_buffer_set_secure(buf, 1) */

/* The last error on this thread, one line; "" if none. Valid until the next call. */
const char *smaf_last_error(void);

/* Loads the plugins (SMAF_PLUGIN_PATH, SMAF_RANKS... as the CLI). NULL on error. */
smaf_context *smaf_open(void);
void smaf_close(smaf_context *ctx);

/* Allocators in the order they are tried. Names live as long as ctx. */
int smaf_allocator_count(smaf_context *ctx);
const char *smaf_allocator_name(smaf_context *ctx, int index);

/* A deferred buffer: no memory until the first export. NULL on error. */
smaf_buffer *smaf_buffer_create(smaf_context *ctx, uint64_t size, uint32_t flags);
smaf_buffer *smaf_buffer_create_image(smaf_context *ctx, uint32_t width, uint32_t height, uint32_t fourcc,
                                      const uint64_t *modifiers, uint32_t modifier_count, uint32_t flags);
/* Frees the buffer (and its memory, once no exported fd is left). Returns 0,
 * or -1 when a secure buffer's memory could not be scrubbed (smaf_last_error()
 * says why; the handle is freed either way). */
int smaf_buffer_destroy(smaf_buffer *buf);

/* Attach a device: the DRM device behind an open fd (probed), or a
 * constraint descriptor in JSON (docs/CONSTRAINTS.md). 0 or -1. */
int smaf_buffer_attach_drm(smaf_buffer *buf, int drm_fd);
int smaf_buffer_attach_json(smaf_buffer *buf, const char *json);

/* Force an allocator by name (before the first export). 0 or -1. */
int smaf_buffer_force_allocator(smaf_buffer *buf, const char *name);

/* Mark secure (before the first export; needs a secure module, which is
 * asked for the buffer's context at once: its refusal is this call's error).
 * set_secure(buf, 0) undoes it before the first export. 0 or -1. */
int smaf_buffer_set_secure(smaf_buffer *buf, int secure);
/* 1 if secure, 0 if not. */
int smaf_buffer_get_secure(smaf_buffer *buf);

/* Allocate if needed and return a new fd for the buffer (a dma-buf where
 * the allocator made one), owned by the caller. -1 on error. A secure
 * buffer is exported to a named attached device with smaf_buffer_export_for. */
int smaf_buffer_export(smaf_buffer *buf);
int smaf_buffer_export_for(smaf_buffer *buf, const char *device);

/* After the first export: the allocator chosen, the size, the pitch of
 * plane 0. NULL / 0 before. */
const char *smaf_buffer_allocator(smaf_buffer *buf);
uint64_t smaf_buffer_size(smaf_buffer *buf);
uint32_t smaf_buffer_stride(smaf_buffer *buf);

/* Internal: sets smaf_last_error() for this thread. */
void smaf_set_last_error(const char *message);

#ifdef __cplusplus
}
#endif

#endif /* SMAF_SMAF_H */
