/*
 * carveout's budget: the RAM it commits on its first allocation, held in a
 * reserve memfd, and the checked arithmetic around it. carveout.c is the
 * plugin (open, plan, match, allocate, release and the tables); this file is
 * what it leans on. Functions shared between the two are hidden
 * (carveout.h): the plugin exports smaf_plugin_entry alone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "carveout.h"

uint64_t page_size(void) { return (uint64_t)sysconf(_SC_PAGESIZE); }

uint64_t round_up(uint64_t x, uint64_t align)
{
    if (align <= 1)
        return x;
    return x > UINT64_MAX - (align - 1) ? 0 : (x + align - 1) / align * align;
}

static uint64_t gcd(uint64_t a, uint64_t b) { return b ? gcd(b, a % b) : a; }

uint64_t lcm(uint64_t a, uint64_t b)
{
    a = a ? a : 1, b = b ? b : 1;
    uint64_t q = a / gcd(a, b);
    return q > UINT64_MAX / b ? 0 : q * b;
}

uint64_t parse_size(const char *text)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    if (errno || end == text || (shift && end[1]) || (!shift && *end) || n > (UINT64_MAX >> shift))
        return 0;
    return (uint64_t)n << shift;
}

/* A "Key:   1234 kB" line of /proc/meminfo in bytes; 0 if absent. */
static uint64_t meminfo(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (!strncmp(line, key, n) && line[n] == ':')
            return strtoull(line + n + 1, NULL, 10) << 10;
    return 0;
}

/* 0 if `bytes` can be taken from the system now, else -ENOMEM with the
 * figures in `why`. The kernel does not refuse shmem pages it does not have:
 * it reclaims, then calls the OOM killer. Like smaf's own check (SMAFSys
 * MemoryHeadroom, which also reads the cgroup's limit), it keeps 1/32 of
 * the RAM, at most 256 MiB, free for everything else. */
static int check_memory(uint64_t bytes, char *why, size_t n)
{
    char text[4096];
    FILE *f = fopen("/proc/meminfo", "re");
    size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[len] = 0;
    uint64_t available = meminfo(text, "MemAvailable"), total = meminfo(text, "MemTotal");
    if (!available || !total)
        return 0; /* nothing to judge by */
    uint64_t keep = total / 32 < (256ull << 20) ? total / 32 : 256ull << 20;
    uint64_t spare = available > keep ? available - keep : 0;
    if (bytes <= spare)
        return 0;
    return snprintf(why, n, "cannot commit the %llu-byte budget now: %llu bytes available (MemAvailable %llu, less %llu kept free)",
                    (unsigned long long)bytes, (unsigned long long)spare, (unsigned long long)available,
                    (unsigned long long)keep), -ENOMEM;
}

int commit_budget(struct carveout *co, char *why, size_t n)
{
    if (co->reserve >= 0)
        return 0;
    int err = check_memory(co->budget, why, n);
    if (err)
        return err;
    int fd = memfd_create("smaf-carveout-reserve", MFD_CLOEXEC);
    err = fd < 0 ? errno : fallocate(fd, 0, 0, (off_t)co->budget) < 0 ? errno : 0;
    if (err) {
        if (fd >= 0)
            close(fd);
        return snprintf(why, n, "cannot commit %llu bytes: %s", (unsigned long long)co->budget, strerror(err)), -err;
    }
    co->reserve = fd;
    return 0;
}

void refill(struct carveout *co, uint64_t size)
{
    if (fallocate(co->reserve, 0, (off_t)(co->budget - co->used), (off_t)size) < 0 && co->core->log)
        co->core->log(co->core->core_data, SMAF_LOG_WARNING, NAME, "could not refill the reserve; the budget is no longer all committed");
    co->used -= size;
}
