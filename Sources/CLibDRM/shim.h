/* libdrm as Swift sees it (pkg-config libdrm; Debian: libdrm-dev). */
#include <stdint.h>
#include <xf86drm.h>
#include <xf86drmMode.h>
#include <drm_fourcc.h>
