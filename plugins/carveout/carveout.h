/* carveout's private declarations: the plugin (carveout.c) and the
 * budget, size and memory arithmetic it rests on (budget.c). */
#ifndef CARVEOUT_H
#define CARVEOUT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <smaf/plugin.h>

#define NAME "carveout"
#define DEFAULT_BUDGET (32ull << 20)
#define PITCH_ALIGN 64 /* rows on cache lines when no device asks for more */
#define FOURCC(a, b, c, d) ((uint32_t)(a) | ((uint32_t)(b) << 8) | ((uint32_t)(c) << 16) | ((uint32_t)(d) << 24))

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

uint64_t page_size(void);
/* x rounded up to a multiple of align (0/1: x); 0 on overflow. */
uint64_t round_up(uint64_t x, uint64_t align);
/* The smallest multiple of both (0 counts as 1); 0 on overflow. */
uint64_t lcm(uint64_t a, uint64_t b);
/* "32M", "65536", "1G" -> bytes; 0 if it is not a size. */
uint64_t parse_size(const char *text);
/* Bytes per pixel of the single-plane formats laid out here, 0 for others. */
uint64_t bytes_per_pixel(uint32_t fourcc);
/* The carve-out itself, on first use: every page of the budget allocated
 * now. The caller holds the lock; 0, or a negative errno with `why`. */
int commit_budget(struct carveout *co, char *why, size_t n);
/* Give `size` bytes back to the reserve; the caller holds the lock. */
void refill(struct carveout *co, uint64_t size);

#endif
