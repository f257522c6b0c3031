/* check_chunk.c - chunk allocation, ownership states, message chains, and
 * fa_msg_iov against descriptors and chains a broken peer could produce. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tshm.h"
#include "shm/chunk.h"

#define CS   128u     /* chunk size */
#define CPA  8u       /* chunks per arena */
#define H0   0u       /* HTTP slot 0: arena 0, holder 0 */
#define PY0  2u       /* Python slot 0: arena n_http + 0 = 2, holder 2 */
#define GEN  5u

static struct fa_seg seg;
static struct fa_arena arena;   /* HTTP slot 0's arena, as its owner sees it */

static void setup(void)
{
    tshm_create(&seg, "chunk", 2, 2, 8, CS, CPA);
    fa_arena_init(&arena, &seg, fa_seg_http_arena(&seg, 0), H0, 0);
}

static void teardown(void)
{
    fa_seg_detach(&seg);
}

static uint32_t state_of(uint32_t a, uint32_t i)
{
    return atomic_load(&fa_seg_chunk_meta(&seg, a, i)->state);
}

/* Sends `n` bytes of a known pattern to PY0; returns the descriptor. */
static struct fa_desc send_pattern(size_t n)
{
    struct fa_msg_writer w;
    struct fa_desc d = { .gen = GEN, .token = 99 };
    char *buf = malloc(n + 1);

    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(i * 7 + 1);
    ck_assert_int_eq(fa_msg_begin(&w, &arena), 0);
    ck_assert_int_eq(fa_msg_write(&w, buf, n), 0);
    fa_msg_end(&w, PY0, GEN, &d);
    free(buf);
    ck_assert_uint_eq(d.len, n);
    return d;
}

/* Gathers what fa_msg_iov returns and compares it with the pattern. */
static void check_pattern(const struct iovec *iov, int n, size_t len)
{
    size_t off = 0;

    for (int k = 0; k < n; k++) {
        const char *p = iov[k].iov_base;
        tshm_assert_ptr_le(seg.base, p);
        tshm_assert_ptr_le(p + iov[k].iov_len, seg.base + seg.size);
        for (size_t j = 0; j < iov[k].iov_len; j++, off++)
            ck_assert_int_eq(p[j], (char)(off * 7 + 1));
    }
    ck_assert_uint_eq(off, len);
}

START_TEST(test_chunk__alloc_until_full)
{
    uint32_t seen = 0;

    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), CPA);
    for (uint32_t k = 0; k < CPA; k++) {
        uint32_t i = fa_chunk_alloc(&arena);
        ck_assert_uint_lt(i, CPA);
        ck_assert_uint_eq(seen & (1u << i), 0);
        seen |= 1u << i;
        ck_assert_uint_eq(state_of(0, i), FA_CHUNK_WORD(FA_CHUNK_WRITING, H0, 0));
    }
    ck_assert_uint_eq(fa_chunk_alloc(&arena), FA_CHUNK_NONE);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), 0);
    /* Other arenas are untouched. */
    ck_assert_uint_eq(fa_arena_count_free(&seg, 1), CPA);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 2), CPA);
    fa_chunk_abort(&arena, 3);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), 1);
    ck_assert_uint_eq(fa_chunk_alloc(&arena), 3);
}
END_TEST

START_TEST(test_chunk__states_follow_the_message)
{
    struct fa_arena pa;
    struct fa_msg_writer w;
    struct fa_desc d;
    struct iovec iov[4];
    uint32_t c;

    fa_arena_init(&pa, &seg, fa_seg_py_arena(&seg, 0), PY0, GEN);
    ck_assert_int_eq(fa_msg_begin(&w, &pa), 0);
    c = w.first;
    ck_assert_uint_eq(state_of(2, c), FA_CHUNK_WORD(FA_CHUNK_WRITING, PY0, GEN));
    ck_assert_int_eq(fa_msg_write(&w, "resp", 4), 0);
    fa_msg_end(&w, H0, GEN, &d);
    ck_assert_uint_eq(state_of(2, c), FA_CHUNK_WORD(FA_CHUNK_SENT, H0, GEN));
    ck_assert_uint_eq(FA_CHUNK_STATE(state_of(2, c)), FA_CHUNK_SENT);
    ck_assert_uint_eq(FA_CHUNK_HOLDER(state_of(2, c)), H0);
    ck_assert_uint_eq(FA_CHUNK_GEN(state_of(2, c)), GEN);
    d.gen = GEN;
    ck_assert_int_eq(fa_msg_iov(&seg, 2, H0, &d, iov, 4), 1);
    ck_assert_int_eq(memcmp(iov[0].iov_base, "resp", 4), 0);
    fa_msg_free(&seg, 2, d.chunk);
    ck_assert_uint_eq(state_of(2, c), FA_CHUNK_FREE);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 2), CPA);
}
END_TEST

START_TEST(test_chunk__abort_frees_the_chain)
{
    struct fa_msg_writer w;
    char big[CS * 3];

    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(fa_msg_begin(&w, &arena), 0);
    ck_assert_int_eq(fa_msg_write(&w, big, sizeof(big)), 0);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), CPA - 3);
    fa_msg_abort(&w);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), CPA);
}
END_TEST

START_TEST(test_chunk__freed_chunks_are_reused)
{
    struct iovec iov[CPA];

    for (int round = 0; round < 10 * (int)CPA; round++) {
        struct fa_desc d = send_pattern(CS * 2 + 5);       /* 3 chunks */
        int n = fa_msg_iov(&seg, 0, PY0, &d, iov, CPA);
        ck_assert_int_eq(n, 3);
        check_pattern(iov, n, CS * 2 + 5);
        fa_msg_free(&seg, 0, d.chunk);
    }
    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), CPA);
}
END_TEST

START_TEST(test_msg__spans_chunks)
{
    struct iovec iov[CPA];
    struct fa_desc d = send_pattern(1000);
    int n = fa_msg_iov(&seg, 0, PY0, &d, iov, CPA);

    ck_assert_int_eq(n, 8);                  /* 7 * 128 + 104 */
    for (int k = 0; k < 7; k++)
        ck_assert_uint_eq(iov[k].iov_len, CS);
    ck_assert_uint_eq(iov[7].iov_len, 104);
    check_pattern(iov, n, 1000);
}
END_TEST

START_TEST(test_msg__exact_chunk_takes_one_chunk)
{
    struct iovec iov[2];
    struct fa_desc d = send_pattern(CS);

    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, 2), 1);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), CPA - 1);
    check_pattern(iov, 1, CS);
}
END_TEST

START_TEST(test_msg__empty_message)
{
    struct iovec iov[1];
    struct fa_desc d = send_pattern(0);

    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, 1), 1);
    ck_assert_uint_eq(iov[0].iov_len, 0);
}
END_TEST

START_TEST(test_msg__reserve_is_contiguous)
{
    struct fa_msg_writer w;
    struct fa_desc d;
    struct iovec iov[4];
    char *p, fill[100];

    memset(fill, 'a', sizeof(fill));
    ck_assert_int_eq(fa_msg_begin(&w, &arena), 0);
    ck_assert_int_eq(fa_msg_write(&w, fill, sizeof(fill)), 0);
    p = fa_msg_reserve(&w, 20);              /* fits: 100 + 20 <= 128 */
    ck_assert_ptr_nonnull(p);
    memset(p, 'b', 20);
    fa_msg_commit(&w, 10);                   /* used less than reserved */
    p = fa_msg_reserve(&w, 50);              /* 110 + 50 > 128: fresh chunk */
    ck_assert_ptr_nonnull(p);
    memset(p, 'c', 50);
    fa_msg_commit(&w, 50);
    ck_assert_ptr_null(fa_msg_reserve(&w, CS + 1));  /* never contiguous */
    ck_assert_int_eq(w.failed, 1);
    fa_msg_abort(&w);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), CPA);

    ck_assert_int_eq(fa_msg_begin(&w, &arena), 0);
    ck_assert_int_eq(fa_msg_write(&w, fill, sizeof(fill)), 0);
    p = fa_msg_reserve(&w, 50);
    memset(p, 'c', 50);
    fa_msg_commit(&w, 40);
    ck_assert_int_eq(fa_msg_write(&w, "zz", 2), 0);
    fa_msg_end(&w, PY0, GEN, &d);
    ck_assert_uint_eq(d.len, 142);
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, 4), 2);
    ck_assert_uint_eq(iov[0].iov_len, 100);
    ck_assert_uint_eq(iov[1].iov_len, 42);
    ck_assert_int_eq(memcmp((char *)iov[1].iov_base + 38, "cczz", 4), 0);
}
END_TEST

START_TEST(test_msg__arena_full_fails_then_abort_restores)
{
    struct fa_msg_writer w, w2;
    char big[CS * CPA + 1];

    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(fa_msg_begin(&w, &arena), 0);
    ck_assert_int_eq(fa_msg_write(&w, big, sizeof(big)), -1);
    ck_assert_int_eq(w.failed, 1);
    ck_assert_int_eq(fa_msg_write(&w, "x", 1), -1);
    ck_assert_int_eq(fa_msg_begin(&w2, &arena), -1);
    fa_msg_abort(&w);
    ck_assert_uint_eq(fa_arena_count_free(&seg, 0), CPA);
    ck_assert_int_eq(fa_msg_begin(&w2, &arena), 0);
    fa_msg_abort(&w2);
}
END_TEST

START_TEST(test_msg__iov_too_small_returns_minus_2)
{
    struct iovec iov[2];
    struct fa_desc d = send_pattern(CS * 3);

    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, 2), -2);
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, NULL, 0), -2);
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, -1), -2);
}
END_TEST

/* --- fa_msg_iov against a broken or hostile sender --- */

static struct fa_chunk_meta_sh *meta(uint32_t i)
{
    return fa_seg_chunk_meta(&seg, 0, i);
}

START_TEST(test_msg_iov__rejects_out_of_range_index)
{
    struct iovec iov[CPA];
    struct fa_desc d = send_pattern(CS + 10);
    struct fa_desc bad = d;
    uint32_t second = meta(d.chunk)->next;

    bad.chunk = CPA;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &bad, iov, CPA), -1);
    bad.chunk = FA_CHUNK_NONE;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &bad, iov, CPA), -1);
    meta(d.chunk)->next = CPA * 5;            /* would be another arena's */
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    meta(d.chunk)->next = second;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), 2);
}
END_TEST

START_TEST(test_msg_iov__rejects_cycle)
{
    struct iovec iov[CPA];
    struct fa_desc d = send_pattern(CS * 2);
    uint32_t second = meta(d.chunk)->next;

    meta(second)->next = d.chunk;             /* a -> b -> a, lengths too long */
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    /* Zero-length chunks never exceed d->len: only the link bound stops it. */
    meta(d.chunk)->len = 0;
    meta(second)->len = 0;
    d.len = 0;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    meta(d.chunk)->next = d.chunk;            /* self loop */
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, NULL, 0), -1);
    fa_msg_free(&seg, 0, d.chunk);            /* bounded too */
}
END_TEST

START_TEST(test_msg_iov__rejects_bad_length)
{
    struct iovec iov[CPA];
    struct fa_desc d = send_pattern(CS + 10);
    uint32_t second = meta(d.chunk)->next;

    meta(second)->len = CS + 1;               /* chunk longer than a chunk */
    d.len = CS + CS + 1;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    meta(second)->len = UINT32_MAX;           /* sum would overflow 32 bits */
    d.len = CS - 1;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
}
END_TEST

START_TEST(test_msg_iov__rejects_sum_mismatch)
{
    struct iovec iov[CPA];
    struct fa_desc d = send_pattern(CS + 10);

    d.len = CS + 9;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    d.len = CS + 11;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    d.len = UINT32_MAX;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    d.len = CS + 10;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), 2);
}
END_TEST

START_TEST(test_msg_iov__rejects_wrong_holder)
{
    struct iovec iov[CPA];
    struct fa_desc d = send_pattern(10);

    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0 + 1, &d, iov, CPA), -1);   /* other Python slot */
    ck_assert_int_eq(fa_msg_iov(&seg, 0, H0, &d, iov, CPA), -1);        /* the sender itself */
    ck_assert_int_eq(fa_msg_iov(&seg, 1, PY0, &d, iov, CPA), -1);       /* wrong arena */
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), 1);
}
END_TEST

START_TEST(test_msg_iov__rejects_wrong_state)
{
    struct iovec iov[CPA];
    struct fa_msg_writer w;
    struct fa_desc d = { 0 };

    /* Still being written (WRITING): not sendable yet. */
    ck_assert_int_eq(fa_msg_begin(&w, &arena), 0);
    ck_assert_int_eq(fa_msg_write(&w, "abc", 3), 0);
    d.chunk = w.first;
    d.len = 3;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    ck_assert_int_eq(fa_msg_iov(&seg, 0, H0, &d, iov, CPA), -1);
    fa_msg_end(&w, PY0, GEN, &d);
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), 1);
    /* Already freed (FREE): a replayed descriptor. */
    fa_msg_free(&seg, 0, d.chunk);
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    /* Second chunk of a chain not SENT. */
    d = send_pattern(CS + 1);
    atomic_store(&meta(meta(d.chunk)->next)->state, FA_CHUNK_WORD(FA_CHUNK_WRITING, PY0, GEN));
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
}
END_TEST

START_TEST(test_msg_iov__rejects_arena_out_of_range)
{
    struct iovec iov[CPA];
    struct fa_desc d = send_pattern(10);

    ck_assert_int_eq(fa_msg_iov(&seg, 4, PY0, &d, iov, CPA), -1);
    ck_assert_int_eq(fa_msg_iov(&seg, UINT32_MAX, PY0, &d, iov, CPA), -1);
    fa_msg_free(&seg, UINT32_MAX, d.chunk);
    ck_assert_uint_eq(fa_arena_count_free(&seg, UINT32_MAX), 0);
}
END_TEST

/* The header is in the segment too: geometry that would put an arena past
 * the end of the mapping is refused, not followed. */
START_TEST(test_msg_iov__rejects_corrupt_header)
{
    struct iovec iov[CPA];
    struct fa_desc d = send_pattern(10);
    struct fa_seg_header_sh *h = seg.hdr;

    h->chunks_per_arena = 1u << 30;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    h->chunks_per_arena = CPA;
    h->chunk_size = 1u << 31;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    h->chunk_size = CS;
    h->off_chunks = seg.size;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    h->off_chunks = UINT64_MAX - 10;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    h->off_chunks = seg.size - (uint64_t)CS * CPA * 4;
    h->off_chunk_meta = seg.size - 1;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
    h->n_arenas = 0;
    ck_assert_int_eq(fa_msg_iov(&seg, 0, PY0, &d, iov, CPA), -1);
}
END_TEST

/* Random chains: whatever the meta entries hold, fa_msg_iov returns -1,
 * -2 or iovecs that lie inside the arena's chunks, and terminates. */
START_TEST(test_msg_iov__random_meta_stays_inside)
{
    char *lo = fa_seg_chunk_data(&seg, 0, 0), *hi = fa_seg_chunk_data(&seg, 0, CPA - 1) + CS;
    unsigned seed = 12345;
    int accepted = 0;

    for (int round = 0; round < 200000; round++) {
        struct iovec iov[CPA];
        struct fa_desc d;
        int n;

        for (uint32_t i = 0; i < CPA; i++) {
            struct fa_chunk_meta_sh *m = meta(i);
            uint32_t r = (uint32_t)rand_r(&seed);
            atomic_store(&m->state, (r & 3) == 0 ? FA_CHUNK_WORD(FA_CHUNK_WRITING, PY0, 0)
                                                  : FA_CHUNK_WORD(FA_CHUNK_SENT, PY0, r >> 20));
            m->next = (r & 0x30) == 0 ? FA_CHUNK_NONE : (uint32_t)rand_r(&seed) % (CPA + 2);
            m->len = (r & 0x300) == 0 ? (uint32_t)rand_r(&seed) : (uint32_t)rand_r(&seed) % (CS + 1);
        }
        d.chunk = (uint32_t)rand_r(&seed) % (CPA + 1);
        d.len = (uint32_t)rand_r(&seed) % (CS * 3);
        n = fa_msg_iov(&seg, 0, PY0, &d, iov, (int)(round % (CPA + 1)));
        ck_assert_int_ge(n, -2);
        ck_assert_int_le(n, (int)CPA);
        if (n > 0)
            accepted++;
        for (int k = 0; k < n; k++) {
            tshm_assert_ptr_le(lo, iov[k].iov_base);
            tshm_assert_ptr_le((char *)iov[k].iov_base + iov[k].iov_len, hi);
        }
    }
    ck_assert_int_gt(accepted, 0);      /* the generator does reach valid chains */
}
END_TEST

/* ---- returning pages ------------------------------------------------------ */

#define TN 256u       /* chunks in the trim tests' arena, one page each */

/* Pages of [p, p + len) resident in this process (mincore). */
static size_t resident_pages(const char *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = len / page, in = 0;
    unsigned char *vec = calloc(n, 1);
    ck_assert_ptr_nonnull(vec);
    ck_assert_int_eq(mincore((void *)p, len, vec), 0);
    for (size_t i = 0; i < n; i++)
        in += vec[i] & 1;
    free(vec);
    return in;
}

/* Allocates every chunk of a fresh page-chunked arena, fills it, and frees
 * all of them as a receiver would except `held`. */
static void trim_setup(struct fa_seg *s, struct fa_arena *a, uint32_t held)
{
    uint32_t page = (uint32_t)sysconf(_SC_PAGESIZE);
    tshm_create(s, "trim", 1, 1, 8, page, TN);
    fa_arena_init(a, s, fa_seg_http_arena(s, 0), H0, 0);
    /* The start-up trim (a predecessor may have touched them): all FREE. */
    ck_assert_uint_eq(fa_arena_idle_trim(a), TN - FA_ARENA_KEEP);
    for (uint32_t i = 0; i < TN; i++) {
        ck_assert_uint_eq(fa_chunk_alloc(a), i);
        memset(fa_seg_chunk_data(s, a->id, i), 0xab, page);
    }
    for (uint32_t i = 0; i < TN; i++)
        if (i != held)
            atomic_store(&fa_seg_chunk_meta(s, a->id, i)->state, FA_CHUNK_FREE);
}

START_TEST(test_arena__idle_trim_gives_back_free_pages_past_keep)
{
    struct fa_seg s;
    struct fa_arena a;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint32_t held = 200;

    trim_setup(&s, &a, held);
    char *data = fa_seg_chunk_data(&s, a.id, 0);
    ck_assert_uint_eq(resident_pages(data, TN * page), TN);
    /* Allocations past `keep` since the last call: still busy, no trim. */
    ck_assert_uint_eq(fa_arena_idle_trim(&a), 0);
    /* A whole period without: every FREE chunk past keep goes. */
    ck_assert_uint_eq(fa_arena_idle_trim(&a), TN - FA_ARENA_KEEP - 1);
    ck_assert_uint_eq(resident_pages(data, TN * page), FA_ARENA_KEEP + 1);
    for (uint32_t i = 0; i < TN; i++) {
        unsigned char want = i < FA_ARENA_KEEP || i == held ? 0xab : 0;
        ck_assert_msg((unsigned char)fa_seg_chunk_data(&s, a.id, i)[page - 1] == want,
                      "chunk %u reads %#x, expected %#x", i,
                      (unsigned char)fa_seg_chunk_data(&s, a.id, i)[page - 1], want);
    }
    ck_assert_uint_eq(a.high, held + 1);
    /* Idle and nothing new past keep: not scanned again. */
    ck_assert_uint_eq(fa_arena_idle_trim(&a), 0);
    /* The trimmed chunks are allocated and written again as usual. */
    atomic_store(&fa_seg_chunk_meta(&s, a.id, 0)->state, FA_CHUNK_WORD(FA_CHUNK_WRITING, H0, 0));
    a.cursor = FA_ARENA_KEEP;      /* (chunk 0 busy: no restart from it) */
    ck_assert_uint_eq(fa_chunk_alloc(&a), FA_ARENA_KEEP);
    memset(fa_seg_chunk_data(&s, a.id, FA_ARENA_KEEP), 0xcd, page);
    ck_assert_uint_eq((unsigned char)fa_seg_chunk_data(&s, a.id, FA_ARENA_KEEP)[0], 0xcd);
    fa_seg_detach(&s);
}
END_TEST

START_TEST(test_arena__trim_spares_chunks_in_use)
{
    struct fa_seg s;
    struct fa_arena a;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    /* Everything past keep held (WRITING or SENT): nothing may go. */
    trim_setup(&s, &a, TN);
    for (uint32_t i = FA_ARENA_KEEP; i < TN; i++)
        atomic_store(&fa_seg_chunk_meta(&s, a.id, i)->state,
                     i % 2 ? FA_CHUNK_WORD(FA_CHUNK_SENT, PY0, GEN) : FA_CHUNK_WORD(FA_CHUNK_WRITING, H0, 0));
    ck_assert_uint_eq(fa_arena_trim(&a), 0);
    for (uint32_t i = 0; i < TN; i++)
        ck_assert_uint_eq((unsigned char)fa_seg_chunk_data(&s, a.id, i)[0], 0xab);
    ck_assert_uint_eq(resident_pages(fa_seg_chunk_data(&s, a.id, 0), TN * page), TN);
    fa_seg_detach(&s);
}
END_TEST

Suite *make_suite_chunk(void)
{
    Suite *s = suite_create("chunk");
    TCase *tc = tcase_create("chunk");

    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_chunk__alloc_until_full);
    tcase_add_test(tc, test_chunk__states_follow_the_message);
    tcase_add_test(tc, test_chunk__abort_frees_the_chain);
    tcase_add_test(tc, test_chunk__freed_chunks_are_reused);
    tcase_add_test(tc, test_msg__spans_chunks);
    tcase_add_test(tc, test_msg__exact_chunk_takes_one_chunk);
    tcase_add_test(tc, test_msg__empty_message);
    tcase_add_test(tc, test_msg__reserve_is_contiguous);
    tcase_add_test(tc, test_msg__arena_full_fails_then_abort_restores);
    tcase_add_test(tc, test_msg__iov_too_small_returns_minus_2);
    tcase_add_test(tc, test_msg_iov__rejects_out_of_range_index);
    tcase_add_test(tc, test_msg_iov__rejects_cycle);
    tcase_add_test(tc, test_msg_iov__rejects_bad_length);
    tcase_add_test(tc, test_msg_iov__rejects_sum_mismatch);
    tcase_add_test(tc, test_msg_iov__rejects_wrong_holder);
    tcase_add_test(tc, test_msg_iov__rejects_wrong_state);
    tcase_add_test(tc, test_msg_iov__rejects_arena_out_of_range);
    tcase_add_test(tc, test_msg_iov__rejects_corrupt_header);
    tcase_add_test(tc, test_msg_iov__random_meta_stays_inside);
    tcase_add_test(tc, test_arena__idle_trim_gives_back_free_pages_past_keep);
    tcase_add_test(tc, test_arena__trim_spares_chunks_in_use);
    suite_add_tcase(s, tc);
    return s;
}
