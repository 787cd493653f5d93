/* Prints the kernel header's value for every fourcc name given on the
 * command line, so the tests can compare smaf's Swift table with it. */
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <drm_fourcc.h>

#define F(x) { #x, DRM_FORMAT_##x }
static const struct { const char *name; uint32_t value; } formats[] = {
    F(C8), F(R8), F(R16), F(GR88), F(RGB565), F(BGR565), F(RGB888), F(BGR888),
    F(XRGB8888), F(XBGR8888), F(RGBX8888), F(BGRX8888), F(ARGB8888), F(ABGR8888),
    F(RGBA8888), F(BGRA8888), F(XRGB2101010), F(XBGR2101010), F(ARGB2101010),
    F(ABGR2101010), F(XBGR16161616F), F(ABGR16161616F), F(YUYV), F(UYVY), F(NV12),
    F(NV21), F(NV16), F(P010), F(YUV420), F(YVU420),
};

int main(void)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        printf("%s %u\n", formats[i].name, formats[i].value);
    printf("MOD_LINEAR %llu\n", (unsigned long long)DRM_FORMAT_MOD_LINEAR);
    printf("MOD_INVALID %llu\n", (unsigned long long)DRM_FORMAT_MOD_INVALID);
    return 0;
}
