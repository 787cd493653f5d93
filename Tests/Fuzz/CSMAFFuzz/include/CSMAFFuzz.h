/*
 * libFuzzer's driver, if the fuzz target was linked with it
 * (swiftc -sanitize=fuzzer, see Tests/Fuzz/README.md); otherwise the
 * target runs its own seeded mutations.
 */
#ifndef CSMAFFUZZ_H
#define CSMAFFUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef int (*csmaf_fuzz_callback)(const uint8_t *data, size_t size);

/* 1 if libFuzzer is linked in. */
int csmaf_fuzz_has_libfuzzer(void);

/* Runs libFuzzer's driver (LLVMFuzzerRunDriver) with these arguments; -1
 * when libFuzzer is not linked in. */
int csmaf_fuzz_run_libfuzzer(int *argc, char ***argv, csmaf_fuzz_callback callback);

#endif
