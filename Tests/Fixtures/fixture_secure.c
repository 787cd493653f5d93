/*
 * A secure module in plain C against <smaf/plugin.h> alone, compiled by the
 * tests with -D switches, for what the Swift `test` module cannot do: return
 * values outside the ABI's range.
 *
 *   FIXTURE_NAME             module name (default "fixture-secure")
 *   FIXTURE_CREATE_RETURNS=N create_context() returns N (INT_MIN, 5...)
 *   FIXTURE_GRANT_RETURNS=N  grant_access() returns N
 *   FIXTURE_CPU_RETURNS=N    allow_cpu_access() returns N (default 1: allowed)
 *
 * Without switches it grants everything and records nothing.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include <smaf/plugin.h>

#ifndef FIXTURE_NAME
#define FIXTURE_NAME "fixture-secure"
#endif
#ifndef FIXTURE_CREATE_RETURNS
#define FIXTURE_CREATE_RETURNS 0
#endif
#ifndef FIXTURE_GRANT_RETURNS
#define FIXTURE_GRANT_RETURNS 0
#endif
#ifndef FIXTURE_CPU_RETURNS
#define FIXTURE_CPU_RETURNS 1
#endif

static int buffers; /* a buffer context's address, never dereferenced by the core */

static int secure_open(const struct smaf_core *core, void **ctx, char *error, size_t error_size)
{
    (void)core; (void)error; (void)error_size;
    *ctx = &buffers;
    return 0;
}

static void secure_close(void *ctx) { (void)ctx; }

static int create_context(void *ctx, const struct smaf_buffer_info *buffer, void **buffer_ctx,
                          char *error, size_t error_size)
{
    (void)ctx; (void)buffer;
    *buffer_ctx = &buffers;
    if (FIXTURE_CREATE_RETURNS)
        snprintf(error, error_size, "hostile create_context");
    return FIXTURE_CREATE_RETURNS;
}

static void destroy_context(void *ctx, void *buffer_ctx) { (void)ctx; (void)buffer_ctx; }

static int grant_access(void *ctx, void *buffer_ctx, const struct smaf_constraints *device,
                        uint64_t offset, uint64_t length, uint32_t access, char *reason, size_t reason_size)
{
    (void)ctx; (void)buffer_ctx; (void)device; (void)offset; (void)length; (void)access;
    (void)reason; (void)reason_size; /* no reason: the core must name the code itself */
    return FIXTURE_GRANT_RETURNS;
}

static void revoke_access(void *ctx, void *buffer_ctx, const struct smaf_constraints *device,
                          uint64_t offset, uint64_t length, uint32_t access)
{
    (void)ctx; (void)buffer_ctx; (void)device; (void)offset; (void)length; (void)access;
}

static int allow_cpu_access(void *ctx, void *buffer_ctx, uint32_t access, char *reason, size_t reason_size)
{
    (void)ctx; (void)buffer_ctx; (void)access; (void)reason; (void)reason_size;
    return FIXTURE_CPU_RETURNS;
}

static const struct smaf_secure_ops ops = {
    .struct_size = sizeof(struct smaf_secure_ops),
    .create_context = create_context,
    .destroy_context = destroy_context,
    .grant_access = grant_access,
    .revoke_access = revoke_access,
    .allow_cpu_access = allow_cpu_access,
};

static const struct smaf_plugin plugin = {
    .struct_size = sizeof(struct smaf_plugin),
    .abi_major = SMAF_PLUGIN_ABI_MAJOR,
    .abi_minor = SMAF_PLUGIN_ABI_MINOR,
    .kind = SMAF_PLUGIN_KIND_SECURE,
    .name = FIXTURE_NAME,
    .description = "test fixture secure module with switchable return codes",
    .default_rank = SMAF_RANK_PRIMARY,
    .open = secure_open,
    .close = secure_close,
    .secure = &ops,
};

const struct smaf_plugin *SMAF_PLUGIN_ENTRY(const struct smaf_core *core)
{
    (void)core;
    return &plugin;
}
