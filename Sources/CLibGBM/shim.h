/* Mesa GBM as Swift sees it (pkg-config gbm; Debian: libgbm-dev). */
#include <gbm.h>
