/* chunk.h - buffer chunks: allocation by the arena owner, messages as chunk
 * chains, validation and release by the receiver (states in layout.h).
 *
 * Only the owning process allocates from an arena (FREE -> WRITING by a
 * plain store after an acquire load saw FREE: nobody else can take a FREE
 * chunk). The receiver returns chunks with a release store of FREE after it
 * finished reading them, which the owner's acquire load pairs with.
 */
#ifndef FA_SHM_CHUNK_H
#define FA_SHM_CHUNK_H

#include <stddef.h>
#include <sys/uio.h>
#include "shm/segment.h"

struct fa_arena {
    const struct fa_seg *seg;
    uint32_t id;        /* arena id */
    uint32_t self;      /* holder id of the owning process (see layout.h) */
    uint32_t gen;       /* owner's generation (Python slots; 0 for HTTP) */
    uint32_t n;         /* chunks in the arena */
    uint32_t size;      /* chunk size */
    uint32_t cursor;    /* next index to try */
    uint32_t in_use;    /* chunks taken by this process and not seen freed:
                           not maintained; use fa_arena_count_free() */
    /* Returning pages (fa_arena_idle_trim): chunks below `keep` are never
     * trimmed; chunks below `high` may hold pages touched since the last
     * trim; `beyond` counts allocations at or past `keep`. */
    uint32_t keep, high;
    uint64_t beyond, beyond_seen, beyond_trimmed;
    int trim_off;       /* the kernel refused once: do not try again */
};

/* Chunks at the low end of an arena whose pages are never returned: the
 * allocator prefers them (fa_chunk_alloc), so a steady light load lives
 * there. */
#define FA_ARENA_KEEP 64u

void fa_arena_init(struct fa_arena *a, const struct fa_seg *seg, uint32_t arena_id,
                   uint32_t self, uint32_t gen);
/* Index of a chunk now WRITING(self), or FA_CHUNK_NONE when the arena is full. */
uint32_t fa_chunk_alloc(struct fa_arena *a);
/* Frees a chain the owner wrote but will not send (error path). */
void fa_chunk_abort(struct fa_arena *a, uint32_t first);
/* Chunks FREE now (racy snapshot; stats and tests). */
uint32_t fa_arena_count_free(const struct fa_seg *seg, uint32_t arena_id);
/* Owner only. Gives the pages of the FREE chunks at or past `keep` back to
 * the kernel (madvise MADV_REMOVE: the segment's memory itself is freed,
 * and the pages leave every process's RSS; they read as zeros and are
 * faulted in again when next written). Returns the chunks trimmed. */
uint32_t fa_arena_trim(struct fa_arena *a);
/* Owner only; call it about once a second. Trims when chunks past `keep`
 * were allocated since the last trim but none since the previous call (a
 * burst is over): pages a steady load keeps using are not given back and
 * faulted in again and again, and an idle arena is not scanned again. */
uint32_t fa_arena_idle_trim(struct fa_arena *a);

/* Writer: builds one message in the owner's arena. */
struct fa_msg_writer {
    struct fa_arena *a;
    uint32_t first, cur;  /* chain head and current chunk */
    uint32_t used;        /* bytes used in cur */
    uint32_t len;         /* total message bytes */
    int failed;           /* arena full at some point: message must be aborted */
    uint32_t stamp;       /* written into each chunk's meta by fa_msg_end (layout.h) */
};
/* 0, or -1 when no chunk is free. */
int fa_msg_begin(struct fa_msg_writer *w, struct fa_arena *a);
/* Appends, spanning chunks. 0 or -1 (arena full; w->failed set). */
int fa_msg_write(struct fa_msg_writer *w, const void *data, size_t n);
/* Contiguous space of n <= chunk_size bytes: in the current chunk if it fits,
 * else in a fresh chunk (the current one ends early). Returns NULL on arena
 * full. The caller fills it and calls fa_msg_commit(w, used) with used <= n. */
void *fa_msg_reserve(struct fa_msg_writer *w, size_t n);
void fa_msg_commit(struct fa_msg_writer *w, size_t used);
/* Marks the chain SENT(holder, gen) and fills d->chunk and d->len (the caller
 * sets d->gen and d->token). After this the owner must not touch the chain. */
void fa_msg_end(struct fa_msg_writer *w, uint32_t holder, uint32_t gen, struct fa_desc *d);
void fa_msg_abort(struct fa_msg_writer *w);
/* Takes back a message that was sent (fa_msg_end) to a receiver that died
 * without taking it: its chunks are WRITING(owner) again, so that nobody
 * reclaims them as a dead receiver's, and fa_msg_end can send it anew. Only
 * when no live process can reach the chain (its descriptor names a dead
 * generation). */
void fa_msg_unsend(struct fa_msg_writer *w);

/* Receiver: validates the chain of d in `arena` (indices in range, each chunk
 * SENT to `self`, chunk lengths within chunk_size, lengths summing to d->len,
 * no more links than chunks) and fills up to max_iov iovecs. Returns the
 * number of iovecs, or -1 if the descriptor is invalid (nothing touched
 * outside the segment either way), or -2 if max_iov is too small. */
int fa_msg_iov(const struct fa_seg *seg, uint32_t arena, uint32_t self,
               const struct fa_desc *d, struct iovec *iov, int max_iov);
/* Receiver: frees the chain that fa_msg_iov accepted. */
void fa_msg_free(const struct fa_seg *seg, uint32_t arena, uint32_t first);

#endif
