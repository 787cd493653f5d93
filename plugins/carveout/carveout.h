/* What carveout.c and budget.c share: the plugin's state and the budget's
 * helpers. Hidden from the dynamic symbol table, like everything but
 * smaf_plugin_entry. */
#ifndef CARVEOUT_H
#define CARVEOUT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <smaf/plugin.h>

#define NAME "carveout"
#define DEFAULT_BUDGET (32ull << 20)
#define CARVEOUT_HIDDEN __attribute__((visibility("hidden")))

struct carveout {
    pthread_mutex_t lock;     /* guards reserve, used, buffers and the reserve's holes */
    int reserve;              /* memfd holding the part of the budget not handed out; -1 until committed */
    uint64_t budget;
    uint64_t used;            /* bytes in buffers between allocate and release */
    unsigned buffers;
    int udmabuf;              /* /dev/udmabuf, or -1: then buffers are plain memfds */
    uint64_t udmabuf_limit;   /* its size_limit_mb in bytes, 0 if unknown */
    const struct smaf_core *core;
};

CARVEOUT_HIDDEN uint64_t page_size(void);
/* x rounded up to a multiple of align (0/1: x); 0 on overflow. */
CARVEOUT_HIDDEN uint64_t round_up(uint64_t x, uint64_t align);
/* The smallest multiple of both (0 counts as 1); 0 on overflow. */
CARVEOUT_HIDDEN uint64_t lcm(uint64_t a, uint64_t b);
/* "32M", "65536", "1G" -> bytes; 0 if it is not a size. */
CARVEOUT_HIDDEN uint64_t parse_size(const char *text);
/* The carve-out itself, on first use: every page of the budget allocated
 * now, if the system can spare it. The caller holds the lock; 0, or a
 * negative errno with `why`. */
CARVEOUT_HIDDEN int commit_budget(struct carveout *co, char *why, size_t n);
/* Give `size` bytes back to the reserve; the caller holds the lock. The
 * reserve's pages fill [0, budget - used): a buffer takes `size` bytes off
 * the top and gives them back there, so only counts need tracking. */
CARVEOUT_HIDDEN void refill(struct carveout *co, uint64_t size);

#endif
