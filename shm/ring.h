/* ring.h - single-producer single-consumer descriptor ring (see layout.h for
 * the picture and the memory-order rules).
 *
 * Each process keeps a struct fa_ring handle per ring end it uses; the
 * handle caches the other side's index so the shared index is read only
 * when the cached one says full (producer) or empty (consumer).
 */
#ifndef FA_SHM_RING_H
#define FA_SHM_RING_H

#include "shm/layout.h"

struct fa_ring {
    struct fa_ring_sh *sh;
    uint32_t mask;     /* cap - 1 */
    uint32_t local;    /* producer: next tail (reserved, not yet committed);
                          consumer: unused */
    uint32_t cached;   /* producer: last head seen; consumer: last tail seen */
};

/* Producer and consumer handles both start from the shared indices. */
void fa_ring_init(struct fa_ring *r, struct fa_ring_sh *sh, uint32_t cap);

/* Zeroes a ring in a fresh segment (master only, before any process uses it). */
void fa_ring_format(struct fa_ring_sh *sh);

/* --- producer --- */
/* Returns the next free slot to fill, or NULL when the ring is full. The slot
 * is invisible to the consumer until fa_ring_commit(). */
struct fa_desc *fa_ring_reserve(struct fa_ring *r);
/* Publishes every reserved slot (one release store). Returns how many. */
uint32_t fa_ring_commit(struct fa_ring *r);
/* Convenience: reserve + copy + commit. 0, or -1 when full. */
int fa_ring_push(struct fa_ring *r, const struct fa_desc *d);
/* Ring full: sets want_space, then re-checks. Returns 1 if there is space
 * after all (flag may stay set: harmless), 0 if the producer may sleep: the
 * consumer will ring its doorbell once it frees a slot. */
int fa_ring_want_space(struct fa_ring *r);

/* --- consumer --- */
/* Copies up to `max` descriptors out and releases their slots. Returns the
 * number copied. The copies are the consumer's own: validate them, not the
 * shared slots. */
uint32_t fa_ring_pop(struct fa_ring *r, struct fa_desc *out, uint32_t max);
/* fa_ring_pop in two steps: copies up to `max` published descriptors out
 * without releasing their slots; fa_ring_release(r, n) then releases the
 * next n of them (n <= what was peeked and not released yet). A consumer
 * that releases each descriptor as it takes it on leaves the ones it has
 * not started in the ring, past head: if it dies, the producer knows they
 * were never started and can send them elsewhere. */
uint32_t fa_ring_peek(struct fa_ring *r, struct fa_desc *out, uint32_t max);
void fa_ring_release(struct fa_ring *r, uint32_t n);
/* 1 if nothing is published (acquire load of tail). */
int fa_ring_empty(struct fa_ring *r);
/* After popping: 1 if the producer asked for space (flag consumed), in which
 * case the caller rings the producer's doorbell. */
int fa_ring_space_wanted(struct fa_ring *r);
/* Descriptors published and not yet popped (for stats; racy snapshot). */
uint32_t fa_ring_depth(const struct fa_ring_sh *sh);

#endif
