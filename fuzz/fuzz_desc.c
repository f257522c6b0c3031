/* fuzz_desc.c - libFuzzer target: ring descriptor validation, as a receiver
 * sees it (shm/ring.c fa_ring_pop, shm/chunk.c fa_msg_iov and fa_msg_free).
 *
 * Any process can write any byte of the segment (shm/README.md), so the
 * receiver must stay inside its mapping whatever the header geometry, the
 * chunk state words, the chain links, the lengths, the ring indices and the
 * descriptors say. Here all of them come from the fuzz input, and the
 * "segment" is a heap block of exactly the mapping size, so ASan reports any
 * read or write outside it.
 *
 * Input (bytes are taken from the front; missing bytes read as 0):
 *   mode     bit 0: raw header (every geometry field from the input) instead
 *            of a consistent small layout; bit 1: also pop the descriptors
 *            from a ring with fuzzed indices
 *   geometry n_arenas, chunks_per_arena, chunk_size (sane) or the raw fields
 *   per chunk: state word (a meaningful choice or raw), next, len
 *   receiver arena, self, max_iov, descriptors (chunk, len)
 *
 * Checks beyond ASan: an accepted chain's iovecs lie in the arena's chunk
 * data and add up to the descriptor's length; fa_msg_free changes nothing
 * outside the arena's meta entries and only turns SENT into FREE; the ring
 * pops at most its capacity and only from its slots.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "shm/chunk.h"
#include "shm/ring.h"

struct in {
    const uint8_t *p;
    size_t n;
};

static uint32_t take(struct in *in, unsigned bytes)
{
    uint32_t v = 0;

    for (unsigned i = 0; i < bytes; i++) {
        v |= (uint32_t)(in->n ? *in->p : 0) << (8 * i);
        if (in->n) {
            in->p++;
            in->n--;
        }
    }
    return v;
}

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_desc: %s\n", what);
    abort();
}

#define MAX_IOV 64

static void check_one(const struct fa_seg *seg, uint32_t arena, uint32_t self,
                      const struct fa_desc *d, int max_iov, int sane)
{
    const struct fa_seg_header_sh *h = seg->hdr;
    struct iovec iov[MAX_IOV];
    size_t meta_bytes = 0;
    char *before = NULL;
    int n;

    memset(iov, 0, sizeof(iov));
    n = fa_msg_iov(seg, arena, self, d, iov, max_iov);
    if (n < -2)
        fz_fail("fa_msg_iov returned an undocumented value");
    if (n >= 0) {
        uint64_t sum = 0;
        const char *lo, *hi;

        if (n > max_iov)
            fz_fail("more iovecs than max_iov");
        if (!sane)
            return;   /* raw geometry: ASan alone judges */
        lo = seg->base + h->off_chunks + (uint64_t)arena * h->chunks_per_arena * h->chunk_size;
        hi = lo + (uint64_t)h->chunks_per_arena * h->chunk_size;
        for (int i = 0; i < n; i++) {
            const char *b = iov[i].iov_base;

            if (b < lo || b + iov[i].iov_len > hi || iov[i].iov_len > h->chunk_size ||
                (size_t)(b - lo) % h->chunk_size != 0)
                fz_fail("an iovec outside the arena's chunks");
            sum += iov[i].iov_len;
        }
        if (sum != d->len)
            fz_fail("accepted iovecs do not add up to the descriptor's length");
    }
    if (!sane)
        return;
    /* fa_msg_free: whatever the chain, only this arena's SENT words change. */
    meta_bytes = (size_t)h->n_arenas * h->chunks_per_arena * sizeof(struct fa_chunk_meta_sh);
    before = malloc(meta_bytes);
    memcpy(before, seg->base + h->off_chunk_meta, meta_bytes);
    fa_msg_free(seg, arena, d->chunk);
    for (uint32_t a = 0; a < h->n_arenas; a++)
        for (uint32_t i = 0; i < h->chunks_per_arena; i++) {
            const struct fa_chunk_meta_sh *o = (const struct fa_chunk_meta_sh *)before +
                                               (uint64_t)a * h->chunks_per_arena + i;
            const struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(seg, a, i);
            uint32_t ow = atomic_load(&o->state), nw = atomic_load(&m->state);

            if (ow == nw)
                continue;
            if (a != arena)
                fz_fail("fa_msg_free touched another arena");
            if (FA_CHUNK_STATE(ow) != FA_CHUNK_SENT || nw != FA_CHUNK_FREE)
                fz_fail("fa_msg_free changed a chunk that was not SENT, or not to FREE");
        }
    free(before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size};
    uint32_t mode = take(&in, 1);
    int sane = !(mode & 1);
    struct fa_seg seg;
    struct fa_seg_header_sh *h;
    uint32_t n_arenas, cpa, csize, n_chunks;
    uint64_t off_meta, off_chunks, total;
    char *base;

    memset(&seg, 0, sizeof(seg));
    if (sane) {
        n_arenas = 1 + take(&in, 1) % 4;
        cpa = 1 + take(&in, 1) % 16;
        csize = 64u << (take(&in, 1) % 3);            /* 64, 128, 256 */
        n_chunks = n_arenas * cpa;
        off_meta = (sizeof(struct fa_seg_header_sh) + 63) / 64 * 64;
        off_chunks = (off_meta + n_chunks * sizeof(struct fa_chunk_meta_sh) + 63) / 64 * 64;
        total = off_chunks + (uint64_t)n_chunks * csize;
    } else {
        n_arenas = take(&in, 4);
        cpa = take(&in, 4);
        csize = take(&in, 4);
        off_meta = take(&in, 4);
        off_chunks = take(&in, 4);
        total = sizeof(struct fa_seg_header_sh) + take(&in, 2);
        n_chunks = 0;
    }
    base = malloc(total);
    memset(base, 0, total);
    seg.base = base;
    seg.hdr = h = (struct fa_seg_header_sh *)base;
    seg.size = total;
    h->n_arenas = n_arenas;
    h->chunks_per_arena = cpa;
    h->chunk_size = csize;
    h->off_chunk_meta = off_meta;
    h->off_chunks = off_chunks;
    h->n_http = 1;
    h->max_py = n_arenas > 1 ? n_arenas - 1 : 1;

    if (sane) {
        /* Chunk meta from the input: mostly meaningful words. */
        for (uint32_t i = 0; i < n_chunks; i++) {
            struct fa_chunk_meta_sh *m = (struct fa_chunk_meta_sh *)(base + off_meta) + i;
            uint32_t sel = take(&in, 1), w;

            switch (sel & 3) {
            case 0: w = FA_CHUNK_FREE; break;
            case 1: w = FA_CHUNK_WORD(FA_CHUNK_SENT, sel >> 2 & 3, take(&in, 1)); break;
            case 2: w = FA_CHUNK_WORD(FA_CHUNK_WRITING, sel >> 2 & 3, 0); break;
            default: w = take(&in, 4); break;
            }
            atomic_store(&m->state, w);
            sel = take(&in, 1);
            m->next = (sel & 0x80) ? FA_CHUNK_NONE : (sel & 0x40) ? take(&in, 4) : sel % ((uint64_t)cpa + 1);
            sel = take(&in, 1);
            m->len = (sel & 0x80) ? take(&in, 4) : (sel & 0x40) ? csize : (sel * csize) / 64;
            /* chunk data: a recognisable pattern */
            memset(base + off_chunks + (uint64_t)i * csize, (int)i, csize);
        }
    } else {
        /* Raw: whatever lies in the block past the header comes from the input. */
        size_t rest = total - sizeof(struct fa_seg_header_sh);
        size_t k = in.n < rest ? in.n : rest;
        memcpy(base + sizeof(struct fa_seg_header_sh), in.p, k);
        in.p += k;
        in.n -= k;
    }

    uint32_t arena = sane ? take(&in, 1) % (n_arenas + 1) : take(&in, 4);
    uint32_t self = take(&in, 1) & 7;
    int max_iov = (int)(take(&in, 1) % (MAX_IOV + 1));
    if (take(&in, 1) == 0xff)
        max_iov = -1;

    if (mode & 2) {
        /* Descriptors reach the receiver through a ring whose indices the
         * peer may have scribbled on. */
        uint32_t cap = 2u << (take(&in, 1) % 5);      /* 2..32 */
        size_t rbytes = sizeof(struct fa_ring_sh) + cap * sizeof(struct fa_desc);
        struct fa_ring_sh *rs = malloc(rbytes);
        struct fa_ring cons, prod;
        struct fa_desc out[40];
        uint32_t got, total_got = 0;

        memset(rs, 0, rbytes);
        fa_ring_init(&cons, rs, cap);
        atomic_store(&rs->head, take(&in, 4));
        atomic_store(&rs->tail, take(&in, 4));
        for (uint32_t i = 0; i < cap; i++) {
            rs->slots[i].chunk = take(&in, 1) & 0x80 ? take(&in, 4) : take(&in, 1) % ((uint64_t)cpa + 1);
            rs->slots[i].len = take(&in, 2);
            rs->slots[i].gen = take(&in, 1);
            rs->slots[i].token = take(&in, 1);
        }
        (void)fa_ring_depth(rs);
        for (int round = 0; round < 3; round++) {
            got = fa_ring_pop(&cons, out, (uint32_t)(sizeof(out) / sizeof(out[0])));
            if (got > cap)
                fz_fail("fa_ring_pop returned more than the ring holds");
            total_got += got;
            for (uint32_t i = 0; i < got; i++)
                check_one(&seg, arena, self, &out[i], max_iov, sane);
            if (take(&in, 1) & 1)   /* the peer moves tail again */
                atomic_store(&rs->tail, take(&in, 4));
        }
        (void)total_got;
        (void)fa_ring_space_wanted(&cons);
        (void)fa_ring_empty(&cons);
        /* The producer end facing a wild head: every slot it hands out is a
         * slot of this ring. */
        fa_ring_init(&prod, rs, cap);
        atomic_store(&rs->head, take(&in, 4));
        for (int i = 0; i < 40; i++) {
            struct fa_desc *slot = fa_ring_reserve(&prod);
            if (slot == NULL) {
                (void)fa_ring_want_space(&prod);
                break;
            }
            if (slot < rs->slots || slot >= rs->slots + cap)
                fz_fail("fa_ring_reserve handed out a slot outside the ring");
            memset(slot, 0x5a, sizeof(*slot));
        }
        fa_ring_commit(&prod);
        free(rs);
    } else {
        for (int k = 0; k < 4 && in.n > 0; k++) {
            struct fa_desc d;
            uint32_t sel = take(&in, 1);

            d.chunk = (sel & 1) ? take(&in, 4) : take(&in, 1) % ((uint64_t)cpa + 1);
            d.len = (sel & 2) ? take(&in, 4) : take(&in, 2);
            d.gen = 0;
            d.token = 0;
            check_one(&seg, arena, self, &d, max_iov, sane);
        }
    }
    free(base);
    return 0;
}
