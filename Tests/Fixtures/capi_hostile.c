/*
 * The C API given what a careless or hostile caller passes: unknown flags,
 * a NULL array with a count, counts far too big, fds that are not DRM
 * devices, strings too long to be descriptors. Each must fail with one line
 * in smaf_last_error() and leave the context usable.
 * Usage: capi_hostile. Prints one line per check; exits 1 on the first failure.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <smaf/smaf.h>

#define CHECK(cond, ...) do { \
        if (!(cond)) { printf("FAIL: "); printf(__VA_ARGS__); printf(" (last error: %s)\n", smaf_last_error()); return 1; } \
        printf("ok: "); printf(__VA_ARGS__); printf("\n"); \
    } while (0)

#define XR24 0x34325258u

/* One printable line: no byte below 0x20 and no DEL. */
static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 0;
    return 1;
}

static uint64_t many[100000];

int main(void)
{
    smaf_context *ctx = smaf_open();
    CHECK(ctx != NULL, "smaf_open");

    CHECK(smaf_buffer_create(ctx, 4096, 1u << 7) == NULL, "an unknown flag is refused: %s", smaf_last_error());
    CHECK(strcmp(smaf_last_error(), "smaf_buffer_create: unknown flags 0x80 (known: SMAF_BUFFER_SECURE)") == 0,
          "the error names the unknown bits");
    CHECK(smaf_buffer_create_image(ctx, 64, 64, XR24, NULL, 3, 0) == NULL, "NULL modifiers with a count of 3: %s", smaf_last_error());
    CHECK(strcmp(smaf_last_error(), "smaf_buffer_create_image: modifiers is NULL but modifier_count is 3") == 0,
          "the error names the NULL array");
    CHECK(smaf_buffer_create_image(ctx, 64, 64, XR24, many, 100000, 0) == NULL, "100000 modifiers: %s", smaf_last_error());
    CHECK(strcmp(smaf_last_error(), "smaf_buffer_create_image: modifier_count 100000 is more than 256") == 0,
          "the error names the cap");

    smaf_buffer *buf = smaf_buffer_create(ctx, 4096, 0);
    CHECK(buf != NULL, "the context is still usable");
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(smaf_buffer_attach_drm(buf, null_fd) == -1, "/dev/null is not a DRM device: %s", smaf_last_error());
    CHECK(strstr(smaf_last_error(), "not a DRM device (a character device of major 1, not 226)") != NULL, "the error says why");
    close(null_fd);

    size_t big = (4u << 20) + 16;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = 0;
    CHECK(smaf_buffer_attach_json(buf, huge) == -1, "a 4 MiB + 16 byte descriptor is refused: %s", smaf_last_error());
    CHECK(strcmp(smaf_last_error(), "smaf_buffer_attach_json: json is longer than 4194304 bytes") == 0, "the error names the limit");
    free(huge);

    CHECK(smaf_buffer_attach_json(buf, "{\"name\": \"x\", \"\\u001b[2Jx\": 1}") == -1, "an unknown key with an escape: %s",
          smaf_last_error());
    CHECK(printable(smaf_last_error()), "smaf_last_error() holds no control character");
    CHECK(smaf_buffer_attach_json(buf, "{\"name\": \"x\", \"secure\": false, \"secure\": true}") == -1,
          "a duplicate key is refused: %s", smaf_last_error());

    int fd = smaf_buffer_export(buf);
    CHECK(fd >= 0, "the buffer still allocates after the refusals (%s)", smaf_buffer_allocator(buf));
    close(fd);
    smaf_buffer_destroy(buf);
    smaf_close(ctx);
    printf("all checks passed\n");
    return 0;
}
