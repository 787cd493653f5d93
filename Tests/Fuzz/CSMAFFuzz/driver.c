#include "CSMAFFuzz.h"

/* Weak: resolved only when -sanitize=fuzzer links libFuzzer in; NULL in
 * the ordinary build, which then runs the seeded mutations instead. */
extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *, size_t)) __attribute__((weak));

int csmaf_fuzz_has_libfuzzer(void) { return LLVMFuzzerRunDriver != NULL; }

int csmaf_fuzz_run_libfuzzer(int *argc, char ***argv, csmaf_fuzz_callback callback)
{
    return LLVMFuzzerRunDriver ? LLVMFuzzerRunDriver(argc, argv, callback) : -1;
}
