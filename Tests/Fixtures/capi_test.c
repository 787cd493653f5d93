/*
 * The C API end to end, as an application uses it: built against the
 * installed header and pkg-config file, linked to libsmafapi.so.
 * Usage: capi_test [DRM_NODE]. Prints one line per check; exits 1 on the
 * first failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <smaf/smaf.h>

#define CHECK(cond, ...) do { \
        if (!(cond)) { printf("FAIL: "); printf(__VA_ARGS__); printf(" (last error: %s)\n", smaf_last_error()); return 1; } \
        printf("ok: "); printf(__VA_ARGS__); printf("\n"); \
    } while (0)

int main(int argc, char **argv)
{
    smaf_context *ctx = smaf_open();
    CHECK(ctx != NULL, "smaf_open");
    int n = smaf_allocator_count(ctx);
    CHECK(n >= 1, "%d allocators", n);
    for (int i = 0; i < n; i++)
        printf("   allocator %d: %s\n", i, smaf_allocator_name(ctx, i));
    CHECK(smaf_allocator_name(ctx, n) == NULL && strstr(smaf_last_error(), "index") != NULL,
          "out-of-range allocator index is an error: %s", smaf_last_error());

    CHECK(smaf_buffer_create(ctx, 0, 0) == NULL && strstr(smaf_last_error(), "0 bytes") != NULL,
          "size 0 refused: %s", smaf_last_error());

    /* XR24 = fourcc 'X','R','2','4' */
    smaf_buffer *buf = smaf_buffer_create_image(ctx, 640, 480, 0x34325258, NULL, 0, 0);
    CHECK(buf != NULL, "deferred 640x480 XR24 buffer");
    CHECK(smaf_buffer_allocator(buf) == NULL, "no memory before the first export");
    CHECK(smaf_buffer_attach_json(buf, "{\"name\": \"codec\", \"pitch_alignment\": 256}") == 0, "attach a JSON descriptor");
    CHECK(smaf_buffer_attach_json(buf, "{\"name\": \"bad\", \"pitch_alignement\": 1}") == -1,
          "a malformed descriptor is refused: %s", smaf_last_error());
    CHECK(smaf_buffer_force_allocator(buf, "no-such-allocator") == -1 && strstr(smaf_last_error(), "known:") != NULL,
          "an unknown allocator is refused: %s", smaf_last_error());

    int drm = -1;
    if (argc > 1) {
        drm = open(argv[1], O_RDWR | O_CLOEXEC);
        CHECK(drm >= 0, "open %s", argv[1]);
        CHECK(smaf_buffer_attach_drm(buf, drm) == 0, "attach the DRM device %s", argv[1]);
    }
    /* With a secure module that takes the buffer the flag is set and read
     * back; without one, or when the module refuses the buffer (the policy
     * module without a rules file), setting it is an error that says so, at
     * once (as in SMAF), and the buffer stays as it was. */
    if (smaf_buffer_set_secure(buf, 1) == 0) {
        CHECK(smaf_buffer_get_secure(buf) == 1, "set_secure(1) reads back 1");
        CHECK(smaf_buffer_set_secure(buf, 0) == 0 && smaf_buffer_get_secure(buf) == 0, "set_secure(0) reads back 0");
    } else {
        CHECK(strstr(smaf_last_error(), "no secure module") != NULL || strstr(smaf_last_error(), "create_context failed") != NULL,
              "secure refused with the reason: %s", smaf_last_error());
        CHECK(smaf_buffer_get_secure(buf) == 0, "get_secure reads 0");
    }

    int fd = smaf_buffer_export(buf);
    CHECK(fd >= 0, "exported fd %d from %s, %llu bytes, pitch %u", fd, smaf_buffer_allocator(buf),
          (unsigned long long)smaf_buffer_size(buf), smaf_buffer_stride(buf));
    CHECK(smaf_buffer_stride(buf) % 256 == 0, "pitch honours the descriptor's 256-byte alignment");
    CHECK(smaf_buffer_force_allocator(buf, "memfd") == -1, "forcing after allocation is refused: %s", smaf_last_error());

    void *p = mmap(NULL, smaf_buffer_size(buf), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED, "the fd maps");
    memset(p, 0x42, 4096);
    munmap(p, smaf_buffer_size(buf));

    char link[64], target[256] = {0};
    snprintf(link, sizeof link, "/proc/self/fdinfo/%d", fd);
    FILE *info = fopen(link, "r");
    int dmabuf = 0;
    char line[256];
    while (info && fgets(line, sizeof line, info))
        if (strncmp(line, "exp_name:", 9) == 0) { dmabuf = 1; snprintf(target, sizeof target, "%s", line + 9); }
    if (info) fclose(info);
    printf("   fd is %s%s", dmabuf ? "a dma-buf from" : "not a dma-buf", dmabuf ? target : "\n");
    if (drm >= 0)
        CHECK(dmabuf, "with a DRM device attached the fd is a dma-buf");

    close(fd);
    smaf_buffer_destroy(buf);
    if (drm >= 0) close(drm);
    smaf_close(ctx);
    printf("all checks passed\n");
    return 0;
}
