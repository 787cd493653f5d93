/* The per-thread last error of the C API: a C thread-local, so the Swift
 * side needs no thread-local storage of its own. */
#include <string.h>
#include "smaf/smaf.h"

static _Thread_local char last_error[512];

const char *smaf_last_error(void) { return last_error; }

void smaf_set_last_error(const char *message)
{
    if (!message) {
        last_error[0] = 0;
        return;
    }
    strncpy(last_error, message, sizeof last_error - 1);
    last_error[sizeof last_error - 1] = 0;
}
