/* ring.c - single-producer single-consumer descriptor ring.
 *
 *   head (consumer)             tail (producer)
 *     v                           v
 *   [ . | d | d | d | d | . | . | . ]   slots[i & mask]
 *
 * Who writes what (layout.h has the same rules):
 *   tail        producer only: store(release) after filling the slots;
 *               consumer: load(acquire) before copying them out.
 *   head        consumer only: store(release) after copying slots out;
 *               producer: load(acquire) before overwriting a slot.
 *   slots       producer between reserve and commit; consumer between its
 *               acquire of tail and its release of head.
 *   want_space  producer: store 1 (seq_cst), seq_cst fence, reload head.
 *               consumer: release head, seq_cst fence, exchange 1 -> 0.
 *               The two fences make the pair a Dekker handshake: either the
 *               producer's reload sees the new head, or the consumer sees
 *               the flag and rings the producer's doorbell. Never neither.
 *
 * Indices are free-running uint32: `tail - head` is the depth even across
 * the 2^32 wrap. Each side caches the other's index in its handle and reads
 * the shared one only when the cache says full (producer) or empty
 * (consumer), so a busy ring costs one shared-line read per batch.
 *
 * The other side may be buggy or dead. Every slot access is masked, so a
 * wild index never leaves the ring; a depth above cap is treated as full
 * by the producer and clamped to cap by the consumer.
 */
#include <string.h>

#include "shm/ring.h"

void fa_ring_format(struct fa_ring_sh *sh)
{
    atomic_store_explicit(&sh->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&sh->head, 0, memory_order_relaxed);
    atomic_store_explicit(&sh->want_space, 0, memory_order_relaxed);
}

/* One init for both ends: `cached` = head works for the producer (last head
 * seen) and for the consumer (a tail equal to head means "nothing known
 * published", so its first pop reloads tail). */
void fa_ring_init(struct fa_ring *r, struct fa_ring_sh *sh, uint32_t cap)
{
    r->sh = sh;
    r->mask = cap - 1;
    r->local = atomic_load_explicit(&sh->tail, memory_order_acquire);
    r->cached = atomic_load_explicit(&sh->head, memory_order_acquire);
}

/* --- producer --- */

struct fa_desc *fa_ring_reserve(struct fa_ring *r)
{
    uint32_t cap = r->mask + 1;

    if (r->local - r->cached >= cap) {
        r->cached = atomic_load_explicit(&r->sh->head, memory_order_acquire);
        if (r->local - r->cached >= cap)
            return NULL;
    }
    return &r->sh->slots[r->local++ & r->mask];
}

uint32_t fa_ring_commit(struct fa_ring *r)
{
    /* The producer is tail's only writer: a relaxed read of it is exact. */
    uint32_t n = r->local - atomic_load_explicit(&r->sh->tail, memory_order_relaxed);

    if (n != 0)
        atomic_store_explicit(&r->sh->tail, r->local, memory_order_release);
    return n;
}

int fa_ring_push(struct fa_ring *r, const struct fa_desc *d)
{
    struct fa_desc *slot = fa_ring_reserve(r);

    if (slot == NULL)
        return -1;
    *slot = *d;
    fa_ring_commit(r);
    return 0;
}

int fa_ring_want_space(struct fa_ring *r)
{
    atomic_store_explicit(&r->sh->want_space, 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst);
    r->cached = atomic_load_explicit(&r->sh->head, memory_order_acquire);
    return r->local - r->cached < r->mask + 1;
}

/* --- consumer --- */

uint32_t fa_ring_peek(struct fa_ring *r, struct fa_desc *out, uint32_t max)
{
    struct fa_ring_sh *sh = r->sh;
    uint32_t head = atomic_load_explicit(&sh->head, memory_order_relaxed);
    uint32_t avail = r->cached - head, n;

    if (avail == 0 || avail > r->mask + 1) {
        r->cached = atomic_load_explicit(&sh->tail, memory_order_acquire);
        avail = r->cached - head;
        if (avail > r->mask + 1)     /* producer wrote a wild tail */
            avail = r->mask + 1;
    }
    n = avail < max ? avail : max;
    for (uint32_t i = 0; i < n; i++)
        out[i] = sh->slots[(head + i) & r->mask];
    return n;
}

void fa_ring_release(struct fa_ring *r, uint32_t n)
{
    /* The consumer is head's only writer: a relaxed read of it is exact. */
    uint32_t head = atomic_load_explicit(&r->sh->head, memory_order_relaxed);

    atomic_store_explicit(&r->sh->head, head + n, memory_order_release);
}

uint32_t fa_ring_pop(struct fa_ring *r, struct fa_desc *out, uint32_t max)
{
    uint32_t n = fa_ring_peek(r, out, max);

    if (n != 0)
        fa_ring_release(r, n);
    return n;
}

int fa_ring_empty(struct fa_ring *r)
{
    uint32_t head = atomic_load_explicit(&r->sh->head, memory_order_relaxed);

    r->cached = atomic_load_explicit(&r->sh->tail, memory_order_acquire);
    return r->cached == head;
}

int fa_ring_space_wanted(struct fa_ring *r)
{
    /* Orders our head store (in fa_ring_pop) before the flag load; pairs
     * with the fence in fa_ring_want_space. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->sh->want_space, memory_order_relaxed) == 0)
        return 0;
    return atomic_exchange_explicit(&r->sh->want_space, 0, memory_order_seq_cst) == 1;
}

uint32_t fa_ring_depth(const struct fa_ring_sh *sh)
{
    /* head first: the tail read after it is never behind it. */
    uint32_t head = atomic_load_explicit(&sh->head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&sh->tail, memory_order_acquire);

    return tail - head;
}
