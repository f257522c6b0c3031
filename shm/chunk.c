/* chunk.c - buffer chunks: allocation, message chains, validation, release.
 *
 * One state word per chunk (layout.h has the encoding):
 *
 *   FREE --owner allocates--> WRITING(owner, gen) --fa_msg_end--> SENT(holder, gen)
 *     ^                                                                |
 *     +------------------ receiver frees (fa_msg_free) ----------------+
 *
 * Who writes what, with which order:
 *   state  FREE -> WRITING: the arena's owner, relaxed store after an
 *            acquire load saw FREE. Only the owner leaves FREE, so no CAS.
 *            The acquire pairs with the receiver's release of FREE: the
 *            receiver's last reads of the data happen before we rewrite it.
 *          WRITING -> SENT: the owner, release store, before it publishes
 *            the descriptor (the ring's release/acquire also orders it).
 *          SENT -> FREE: the receiver, release store, after it read the data
 *            and the chunk's `next`.
 *   next, len  the owner while WRITING; the receiver reads them after it
 *            acquired the descriptor and saw SENT(self).
 *   data   of a FREE chunk: nobody's. The owner may give its pages back to
 *            the kernel (fa_arena_trim) after an acquire load saw FREE, for
 *            the same reason it may rewrite them: the receiver is done.
 *
 * The receiver trusts nothing the sender wrote: the descriptor, the links,
 * the lengths, even the header's geometry (any process can write the
 * segment). Each shared field is read once into a local and checked against
 * this process's own mapping size before any address is formed from it.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm/chunk.h"

/* One read of a plain shared field: a racing peer cannot make us check one
 * value and use another. */
#define CHUNK_READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))

/* An arena's place in the mapping, from a header read once and checked. */
struct chunk_geom {
    struct fa_chunk_meta_sh *meta;   /* the arena's first meta entry */
    char *data;                      /* the arena's first chunk */
    uint32_t n;                      /* chunks in the arena */
    uint32_t size;                   /* chunk size */
};

/* 0, or -1 if the header puts the arena (meta or data) outside the mapping. */
static int chunk__geom(const struct fa_seg *seg, uint32_t arena, struct chunk_geom *g)
{
    const struct fa_seg_header_sh *h = seg->hdr;
    uint64_t n = CHUNK_READ_ONCE(h->chunks_per_arena);
    uint64_t size = CHUNK_READ_ONCE(h->chunk_size);
    uint64_t off_meta = CHUNK_READ_ONCE(h->off_chunk_meta);
    uint64_t off_data = CHUNK_READ_ONCE(h->off_chunks);
    uint64_t n_arenas = CHUNK_READ_ONCE(h->n_arenas);
    uint64_t first, end, meta_end, data_end;

    if (arena >= n_arenas || n == 0 || n >= FA_CHUNK_NONE || size == 0 ||
        off_meta % _Alignof(struct fa_chunk_meta_sh) != 0)
        return -1;
    /* (arena + 1) * n < 2^64: both factors are below 2^32. */
    end = ((uint64_t)arena + 1) * n;
    first = (uint64_t)arena * n;
    if (__builtin_mul_overflow(end, sizeof(struct fa_chunk_meta_sh), &meta_end) ||
        __builtin_add_overflow(meta_end, off_meta, &meta_end) || meta_end > seg->size ||
        __builtin_mul_overflow(end, size, &data_end) ||
        __builtin_add_overflow(data_end, off_data, &data_end) || data_end > seg->size)
        return -1;
    g->meta = (struct fa_chunk_meta_sh *)(seg->base + off_meta) + first;
    g->data = seg->base + off_data + first * size;
    g->n = (uint32_t)n;
    g->size = (uint32_t)size;
    return 0;
}

/* --- allocation (arena owner only) --- */

void fa_arena_init(struct fa_arena *a, const struct fa_seg *seg, uint32_t arena_id,
                   uint32_t self, uint32_t gen)
{
    a->seg = seg;
    a->id = arena_id;
    a->self = self;
    a->gen = gen;
    a->n = seg->hdr->chunks_per_arena;
    a->size = seg->hdr->chunk_size;
    a->cursor = 0;
    a->in_use = 0;
    a->keep = a->n < FA_ARENA_KEEP ? a->n : FA_ARENA_KEEP;
    a->high = a->n;          /* a predecessor may have touched any of them */
    a->beyond = a->beyond_seen = 0;
    a->beyond_trimmed = UINT64_MAX;    /* trim once at the first idle moment */
    a->trim_off = 0;
}

/* Chunks come back roughly in the order they were sent, so a cursor that
 * goes round usually finds a FREE chunk at its first try. */
uint32_t fa_chunk_alloc(struct fa_arena *a)
{
    struct fa_chunk_meta_sh *meta = fa_seg_chunk_meta(a->seg, a->id, 0);
    uint32_t word = FA_CHUNK_WORD(FA_CHUNK_WRITING, a->self, a->gen);

    /* Prefer the low end of the arena: whenever chunk 0 is free again, start
     * over from it. A cursor alone walks the whole arena and, over time,
     * touches every page of it in both processes (RSS); this keeps the pages
     * in use near the number of messages in flight, for one extra load. */
    if (a->cursor != 0 && atomic_load_explicit(&meta[0].state, memory_order_relaxed) == FA_CHUNK_FREE)
        a->cursor = 0;
    for (uint32_t k = 0; k < a->n; k++) {
        uint32_t i = a->cursor;
        struct fa_chunk_meta_sh *m = &meta[i];

        a->cursor = i + 1 == a->n ? 0 : i + 1;
        if (atomic_load_explicit(&m->state, memory_order_acquire) != FA_CHUNK_FREE)
            continue;
        atomic_store_explicit(&m->state, word, memory_order_relaxed);
        m->next = FA_CHUNK_NONE;
        m->len = 0;
        if (i >= a->keep) {
            a->beyond++;
            if (i >= a->high)
                a->high = i + 1;
        }
        return i;
    }
    return FA_CHUNK_NONE;
}

void fa_chunk_abort(struct fa_arena *a, uint32_t first)
{
    struct fa_chunk_meta_sh *meta = fa_seg_chunk_meta(a->seg, a->id, 0);
    uint32_t i = first;

    /* Our own chain, but bounded anyway: only WRITING(self) chunks go back. */
    for (uint32_t k = 0; k < a->n && i < a->n; k++) {
        struct fa_chunk_meta_sh *m = &meta[i];
        uint32_t w = atomic_load_explicit(&m->state, memory_order_relaxed);
        uint32_t next = m->next;

        if (FA_CHUNK_STATE(w) != FA_CHUNK_WRITING || FA_CHUNK_HOLDER(w) != (a->self & 0x3fffu))
            return;
        atomic_store_explicit(&m->state, FA_CHUNK_FREE, memory_order_release);
        i = next;
    }
}

/* --- returning pages (arena owner only) --- */

/* Gives back the whole pages inside chunks [from, to) of the arena. */
static int chunk__remove(struct fa_arena *a, uint32_t from, uint32_t to)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)fa_seg_chunk_data(a->seg, a->id, from);
    uintptr_t hi = lo + (uintptr_t)(to - from) * a->size;

    lo = (lo + page - 1) / page * page;     /* whole pages only */
    hi = hi / page * page;
    if (hi <= lo)
        return 0;
    if (madvise((void *)lo, hi - lo, MADV_REMOVE) == 0)
        return 0;
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == EPERM ||
        errno == EACCES)
        a->trim_off = 1;                    /* not a shared memory mapping we may punch */
    return -1;
}

uint32_t fa_arena_trim(struct fa_arena *a)
{
    struct fa_chunk_meta_sh *meta = fa_seg_chunk_meta(a->seg, a->id, 0);
    uint32_t trimmed = 0, run = 0, last_used = a->keep;
    uint32_t high = a->high < a->n ? a->high : a->n;

    if (a->trim_off)
        return 0;
    for (uint32_t i = a->keep; i <= high; i++) {
        /* Acquire: pairs with the receiver's release of FREE, as in
         * fa_chunk_alloc; past this load nobody touches the chunk's data. */
        bool is_free = i < high &&
            atomic_load_explicit(&meta[i].state, memory_order_acquire) == FA_CHUNK_FREE;
        if (is_free) {
            run++;
            continue;
        }
        if (run > 0 && chunk__remove(a, i - run, i) == 0)
            trimmed += run;
        run = 0;
        if (i < high)
            last_used = i + 1;
    }
    a->high = last_used;
    return trimmed;
}

uint32_t fa_arena_idle_trim(struct fa_arena *a)
{
    uint32_t n = 0;

    if (a->beyond == a->beyond_seen && a->beyond != a->beyond_trimmed) {
        n = fa_arena_trim(a);
        a->beyond_trimmed = a->beyond;
    }
    a->beyond_seen = a->beyond;
    return n;
}

uint32_t fa_arena_count_free(const struct fa_seg *seg, uint32_t arena_id)
{
    struct chunk_geom g;
    uint32_t n = 0;

    if (chunk__geom(seg, arena_id, &g) < 0)
        return 0;
    for (uint32_t i = 0; i < g.n; i++)
        n += atomic_load_explicit(&g.meta[i].state, memory_order_relaxed) == FA_CHUNK_FREE;
    return n;
}

/* --- writer --- */

int fa_msg_begin(struct fa_msg_writer *w, struct fa_arena *a)
{
    w->a = a;
    w->used = 0;
    w->len = 0;
    w->failed = 0;
    w->stamp = 0;
    w->first = w->cur = fa_chunk_alloc(a);
    if (w->first == FA_CHUNK_NONE) {
        w->failed = 1;
        return -1;
    }
    return 0;
}

/* Ends the current chunk at w->used bytes and chains a fresh one. */
static int msg__next_chunk(struct fa_msg_writer *w)
{
    uint32_t i = fa_chunk_alloc(w->a);
    struct fa_chunk_meta_sh *m;

    if (i == FA_CHUNK_NONE) {
        w->failed = 1;
        return -1;
    }
    m = fa_seg_chunk_meta(w->a->seg, w->a->id, w->cur);
    m->len = w->used;
    m->next = i;
    w->cur = i;
    w->used = 0;
    return 0;
}

int fa_msg_write(struct fa_msg_writer *w, const void *data, size_t n)
{
    const char *p = data;
    uint32_t size = w->a->size;

    if (w->failed || n > UINT32_MAX - w->len) {
        w->failed = 1;
        return -1;
    }
    while (n > 0) {
        size_t k;

        if (w->used == size && msg__next_chunk(w) < 0)
            return -1;
        k = size - w->used < n ? size - w->used : n;
        memcpy(fa_seg_chunk_data(w->a->seg, w->a->id, w->cur) + w->used, p, k);
        w->used += (uint32_t)k;
        w->len += (uint32_t)k;
        p += k;
        n -= k;
    }
    return 0;
}

void *fa_msg_reserve(struct fa_msg_writer *w, size_t n)
{
    /* n > chunk_size can never be contiguous: the message cannot be built
     * as asked, so it fails like a full arena. */
    if (w->failed || n > w->a->size || n > UINT32_MAX - w->len) {
        w->failed = 1;
        return NULL;
    }
    if (w->a->size - w->used < n && msg__next_chunk(w) < 0)
        return NULL;
    return fa_seg_chunk_data(w->a->seg, w->a->id, w->cur) + w->used;
}

void fa_msg_commit(struct fa_msg_writer *w, size_t used)
{
    assert(used <= w->a->size - w->used);
    w->used += (uint32_t)used;
    w->len += (uint32_t)used;
}

void fa_msg_end(struct fa_msg_writer *w, uint32_t holder, uint32_t gen, struct fa_desc *d)
{
    struct fa_chunk_meta_sh *meta = fa_seg_chunk_meta(w->a->seg, w->a->id, 0);
    uint32_t word = FA_CHUNK_WORD(FA_CHUNK_SENT, holder, gen);

    /* A failed message must be aborted, not sent; if it is sent anyway the
     * descriptor names no chunk and every receiver rejects it. */
    assert(!w->failed && w->first != FA_CHUNK_NONE);
    if (w->failed || w->first == FA_CHUNK_NONE) {
        d->chunk = FA_CHUNK_NONE;
        d->len = 0;
        return;
    }
    meta[w->cur].len = w->used;
    for (uint32_t i = w->first; i != FA_CHUNK_NONE;) {
        uint32_t next = meta[i].next;

        meta[i].stamp = w->stamp;
        atomic_store_explicit(&meta[i].state, word, memory_order_release);
        i = next;
    }
    d->chunk = w->first;
    d->len = w->len;
}

void fa_msg_unsend(struct fa_msg_writer *w)
{
    struct fa_chunk_meta_sh *meta = fa_seg_chunk_meta(w->a->seg, w->a->id, 0);
    uint32_t word = FA_CHUNK_WORD(FA_CHUNK_WRITING, w->a->self, w->a->gen);

    for (uint32_t i = w->first, k = 0; i != FA_CHUNK_NONE && k < w->a->n; k++) {
        atomic_store_explicit(&meta[i].state, word, memory_order_release);
        i = meta[i].next;
    }
}

void fa_msg_abort(struct fa_msg_writer *w)
{
    if (w->first != FA_CHUNK_NONE)
        fa_chunk_abort(w->a, w->first);
    w->first = w->cur = FA_CHUNK_NONE;
    w->used = w->len = 0;
    w->failed = 1;
}

/* --- receiver --- */

int fa_msg_iov(const struct fa_seg *seg, uint32_t arena, uint32_t self,
               const struct fa_desc *d, struct iovec *iov, int max_iov)
{
    struct chunk_geom g;
    uint32_t i = d->chunk, links = 0, want = d->len;
    uint64_t sum = 0;

    if (chunk__geom(seg, arena, &g) < 0)
        return -1;
    do {
        struct fa_chunk_meta_sh *m;
        uint32_t w, len;

        /* In range, and no more links than chunks: a cycle ends here. */
        if (i >= g.n || links == g.n)
            return -1;
        m = &g.meta[i];
        w = atomic_load_explicit(&m->state, memory_order_acquire);
        if (FA_CHUNK_STATE(w) != FA_CHUNK_SENT || FA_CHUNK_HOLDER(w) != (self & 0x3fffu))
            return -1;
        len = CHUNK_READ_ONCE(m->len);
        if (len > g.size || (sum += len) > want)
            return -1;
        if (max_iov > 0 && links < (uint32_t)max_iov) {
            iov[links].iov_base = g.data + (uint64_t)i * g.size;
            iov[links].iov_len = len;
        }
        links++;
        i = CHUNK_READ_ONCE(m->next);
    } while (i != FA_CHUNK_NONE);
    if (sum != want)
        return -1;
    if (max_iov < 0 || links > (uint32_t)max_iov)
        return -2;
    return (int)links;
}

void fa_msg_free(const struct fa_seg *seg, uint32_t arena, uint32_t first)
{
    struct chunk_geom g;
    uint32_t i = first;

    if (chunk__geom(seg, arena, &g) < 0)
        return;
    /* Bounded like fa_msg_iov: the sender may have rewritten the links
     * since. Only SENT chunks go back; `next` is read before the release,
     * after which the owner may reuse the chunk at once. */
    for (uint32_t k = 0; k < g.n && i < g.n; k++) {
        struct fa_chunk_meta_sh *m = &g.meta[i];
        uint32_t next = CHUNK_READ_ONCE(m->next);

        if (FA_CHUNK_STATE(atomic_load_explicit(&m->state, memory_order_relaxed)) != FA_CHUNK_SENT)
            return;
        atomic_store_explicit(&m->state, FA_CHUNK_FREE, memory_order_release);
        i = next;
    }
}
