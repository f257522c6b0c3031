/* check_ring.c - the SPSC descriptor ring, in one process: both handles
 * over the same fa_ring_sh, driven step by step. */
#include <stdlib.h>
#include <string.h>

#include "tshm.h"
#include "shm/ring.h"

#define CAP 8u

static struct fa_ring_sh *ring_new(uint32_t start)
{
    size_t sz = sizeof(struct fa_ring_sh) + CAP * sizeof(struct fa_desc);
    struct fa_ring_sh *sh = aligned_alloc(FA_CACHELINE, sz);

    ck_assert_ptr_nonnull(sh);
    memset(sh, 0xa5, sz);       /* garbage slots: format must not need them */
    fa_ring_format(sh);
    /* Indices as a long-lived ring would have them, written before init. */
    atomic_store(&sh->tail, start);
    atomic_store(&sh->head, start);
    return sh;
}

static struct fa_desc desc(uint32_t seq)
{
    struct fa_desc d = { .chunk = seq * 3, .len = seq + 1, .gen = 7, .token = seq };
    return d;
}

static void check_desc(const struct fa_desc *d, uint32_t seq)
{
    ck_assert_uint_eq(d->token, seq);
    ck_assert_uint_eq(d->chunk, seq * 3);
    ck_assert_uint_eq(d->len, seq + 1);
    ck_assert_uint_eq(d->gen, 7);
}

START_TEST(test_ring__empty_pop_returns_zero)
{
    struct fa_ring_sh *sh = ring_new(0);
    struct fa_ring c;
    struct fa_desc out[4];

    fa_ring_init(&c, sh, CAP);
    ck_assert_int_eq(fa_ring_empty(&c), 1);
    ck_assert_uint_eq(fa_ring_pop(&c, out, 4), 0);
    ck_assert_uint_eq(fa_ring_depth(sh), 0);
    ck_assert_int_eq(fa_ring_space_wanted(&c), 0);
    free(sh);
}
END_TEST

START_TEST(test_ring__push_pop_in_order)
{
    struct fa_ring_sh *sh = ring_new(0);
    struct fa_ring p, c;
    struct fa_desc out[CAP];
    uint32_t next = 0;

    fa_ring_init(&p, sh, CAP);
    fa_ring_init(&c, sh, CAP);
    for (uint32_t i = 0; i < 5; i++) {
        struct fa_desc d = desc(i);
        ck_assert_int_eq(fa_ring_push(&p, &d), 0);
    }
    ck_assert_uint_eq(fa_ring_depth(sh), 5);
    ck_assert_int_eq(fa_ring_empty(&c), 0);
    ck_assert_uint_eq(fa_ring_pop(&c, out, 2), 2);
    check_desc(&out[0], next++);
    check_desc(&out[1], next++);
    ck_assert_uint_eq(fa_ring_pop(&c, out, CAP), 3);
    for (int i = 0; i < 3; i++)
        check_desc(&out[i], next++);
    ck_assert_int_eq(fa_ring_empty(&c), 1);
    free(sh);
}
END_TEST

/* peek copies without releasing: head moves only with release, one by one,
 * and what is not released is still there for the next peek; the producer
 * cannot reuse an unreleased slot. */
START_TEST(test_ring__peek_then_release_one_by_one)
{
    struct fa_ring_sh *sh = ring_new(0);
    struct fa_ring p, c;
    struct fa_desc out[CAP];

    fa_ring_init(&p, sh, CAP);
    fa_ring_init(&c, sh, CAP);
    for (uint32_t i = 0; i < CAP; i++) {
        struct fa_desc d = desc(i);
        ck_assert_int_eq(fa_ring_push(&p, &d), 0);
    }
    ck_assert_uint_eq(fa_ring_peek(&c, out, 3), 3);
    check_desc(&out[2], 2);
    ck_assert_uint_eq(atomic_load(&sh->head), 0);
    ck_assert_ptr_null(fa_ring_reserve(&p));            /* still full */
    fa_ring_release(&c, 1);
    ck_assert_uint_eq(atomic_load(&sh->head), 1);
    ck_assert_uint_eq(fa_ring_depth(sh), CAP - 1);
    ck_assert_ptr_nonnull(fa_ring_reserve(&p));         /* one slot back */
    ck_assert_uint_eq(fa_ring_peek(&c, out, CAP), CAP - 1);
    check_desc(&out[0], 1);                             /* the unreleased ones again */
    fa_ring_release(&c, CAP - 1);
    ck_assert_int_eq(fa_ring_empty(&c), 1);
    free(sh);
}
END_TEST

START_TEST(test_ring__full_reserve_fails)
{
    struct fa_ring_sh *sh = ring_new(0);
    struct fa_ring p, c;
    struct fa_desc out[1], d = desc(0);

    fa_ring_init(&p, sh, CAP);
    fa_ring_init(&c, sh, CAP);
    for (uint32_t i = 0; i < CAP; i++)
        ck_assert_ptr_nonnull(fa_ring_reserve(&p));
    ck_assert_ptr_null(fa_ring_reserve(&p));
    ck_assert_uint_eq(fa_ring_commit(&p), CAP);
    ck_assert_int_eq(fa_ring_push(&p, &d), -1);
    ck_assert_uint_eq(fa_ring_depth(sh), CAP);
    ck_assert_uint_eq(fa_ring_pop(&c, out, 1), 1);
    ck_assert_ptr_nonnull(fa_ring_reserve(&p));
    ck_assert_ptr_null(fa_ring_reserve(&p));
    free(sh);
}
END_TEST

START_TEST(test_ring__reserved_invisible_until_commit)
{
    struct fa_ring_sh *sh = ring_new(0);
    struct fa_ring p, c;
    struct fa_desc out[CAP];

    fa_ring_init(&p, sh, CAP);
    fa_ring_init(&c, sh, CAP);
    *fa_ring_reserve(&p) = desc(0);
    *fa_ring_reserve(&p) = desc(1);
    *fa_ring_reserve(&p) = desc(2);
    ck_assert_int_eq(fa_ring_empty(&c), 1);
    ck_assert_uint_eq(fa_ring_pop(&c, out, CAP), 0);
    ck_assert_uint_eq(fa_ring_commit(&p), 3);
    ck_assert_uint_eq(fa_ring_commit(&p), 0);
    ck_assert_uint_eq(fa_ring_pop(&c, out, CAP), 3);
    for (uint32_t i = 0; i < 3; i++)
        check_desc(&out[i], i);
    free(sh);
}
END_TEST

/* Free-running indices: start a few steps before 2^32 and go round the ring
 * many times, so tail and head wrap (tail first, then both). */
START_TEST(test_ring__wraps_across_uint32)
{
    uint32_t start = UINT32_MAX - 5;
    struct fa_ring_sh *sh = ring_new(start);
    struct fa_ring p, c;
    struct fa_desc out[CAP];
    uint32_t sent = 0, got = 0;

    fa_ring_init(&p, sh, CAP);
    fa_ring_init(&c, sh, CAP);
    for (int round = 0; round < 50; round++) {
        uint32_t k = 1 + round % CAP, n;

        for (uint32_t i = 0; i < k; i++) {
            struct fa_desc d = desc(sent);
            ck_assert_int_eq(fa_ring_push(&p, &d), 0);
            sent++;
        }
        ck_assert_uint_eq(fa_ring_depth(sh), k);
        n = fa_ring_pop(&c, out, CAP);
        ck_assert_uint_eq(n, k);
        for (uint32_t i = 0; i < n; i++)
            check_desc(&out[i], got++);
    }
    ck_assert_uint_eq(atomic_load(&sh->tail), start + sent);
    ck_assert_uint_lt(atomic_load(&sh->tail), 1000);   /* it did wrap */
    free(sh);
}
END_TEST

/* Full and empty are decided by tail - head, also while tail has wrapped
 * and head has not. */
START_TEST(test_ring__full_across_wrap)
{
    struct fa_ring_sh *sh = ring_new(UINT32_MAX - 2);
    struct fa_ring p, c;
    struct fa_desc out[CAP];

    fa_ring_init(&p, sh, CAP);
    fa_ring_init(&c, sh, CAP);
    for (uint32_t i = 0; i < CAP; i++) {
        struct fa_desc d = desc(i);
        ck_assert_int_eq(fa_ring_push(&p, &d), 0);
    }
    ck_assert_uint_lt(atomic_load(&sh->tail), atomic_load(&sh->head));
    ck_assert_uint_eq(fa_ring_depth(sh), CAP);
    ck_assert_ptr_null(fa_ring_reserve(&p));
    ck_assert_uint_eq(fa_ring_pop(&c, out, CAP), CAP);
    for (uint32_t i = 0; i < CAP; i++)
        check_desc(&out[i], i);
    ck_assert_int_eq(fa_ring_empty(&c), 1);
    ck_assert_uint_eq(fa_ring_depth(sh), 0);
    free(sh);
}
END_TEST

START_TEST(test_ring__want_space_flag_round_trip)
{
    struct fa_ring_sh *sh = ring_new(0);
    struct fa_ring p, c;
    struct fa_desc out[2], d = desc(0);

    fa_ring_init(&p, sh, CAP);
    fa_ring_init(&c, sh, CAP);
    while (fa_ring_push(&p, &d) == 0)
        ;
    /* Full and still full after the re-check: the producer may sleep. */
    ck_assert_int_eq(fa_ring_want_space(&p), 0);
    ck_assert_uint_eq(atomic_load(&sh->want_space), 1);
    ck_assert_uint_eq(fa_ring_pop(&c, out, 2), 2);
    ck_assert_int_eq(fa_ring_space_wanted(&c), 1);     /* consumer rings */
    ck_assert_uint_eq(atomic_load(&sh->want_space), 0);
    ck_assert_int_eq(fa_ring_space_wanted(&c), 0);     /* flag consumed once */
    ck_assert_ptr_nonnull(fa_ring_reserve(&p));
    free(sh);
}
END_TEST

/* The consumer freed a slot between the producer's failed reserve and its
 * want_space: the re-check inside fa_ring_want_space must see it. */
START_TEST(test_ring__want_space_rechecks)
{
    struct fa_ring_sh *sh = ring_new(0);
    struct fa_ring p, c;
    struct fa_desc out[1], d = desc(0);

    fa_ring_init(&p, sh, CAP);
    fa_ring_init(&c, sh, CAP);
    while (fa_ring_push(&p, &d) == 0)
        ;
    ck_assert_uint_eq(fa_ring_pop(&c, out, 1), 1);
    ck_assert_int_eq(fa_ring_want_space(&p), 1);
    ck_assert_ptr_nonnull(fa_ring_reserve(&p));
    free(sh);
}
END_TEST

/* A new incarnation never resets a ring: handles made mid-stream continue
 * from the shared indices. */
START_TEST(test_ring__init_resumes_from_shared_indices)
{
    struct fa_ring_sh *sh = ring_new(12345);
    struct fa_ring p, c;
    struct fa_desc out[CAP];

    fa_ring_init(&p, sh, CAP);
    for (uint32_t i = 0; i < 3; i++) {
        struct fa_desc d = desc(i);
        ck_assert_int_eq(fa_ring_push(&p, &d), 0);
    }
    fa_ring_init(&c, sh, CAP);
    ck_assert_uint_eq(fa_ring_pop(&c, out, 1), 1);
    check_desc(&out[0], 0);
    fa_ring_init(&p, sh, CAP);          /* producer restarted */
    fa_ring_init(&c, sh, CAP);          /* consumer restarted */
    {
        struct fa_desc d = desc(3);
        ck_assert_int_eq(fa_ring_push(&p, &d), 0);
    }
    ck_assert_uint_eq(fa_ring_pop(&c, out, CAP), 3);
    for (uint32_t i = 0; i < 3; i++)
        check_desc(&out[i], i + 1);
    free(sh);
}
END_TEST

/* A wild tail from a broken producer: the consumer takes at most cap
 * descriptors, all from inside the ring. */
START_TEST(test_ring__wild_tail_is_clamped)
{
    struct fa_ring_sh *sh = ring_new(100);
    struct fa_ring c;
    struct fa_desc out[64];

    fa_ring_init(&c, sh, CAP);
    atomic_store(&sh->tail, 100 + 1000000);
    ck_assert_uint_eq(fa_ring_pop(&c, out, 64), CAP);
    atomic_store(&sh->tail, 50);        /* behind head */
    ck_assert_uint_le(fa_ring_pop(&c, out, 64), CAP);
    free(sh);
}
END_TEST

/* A wild head from a broken consumer (ahead of tail): the producer sees a
 * full ring rather than overwriting unread slots. */
START_TEST(test_ring__wild_head_means_full)
{
    struct fa_ring_sh *sh = ring_new(100);
    struct fa_ring p;

    fa_ring_init(&p, sh, CAP);
    for (uint32_t i = 0; i < CAP; i++)
        ck_assert_ptr_nonnull(fa_ring_reserve(&p));
    fa_ring_commit(&p);
    /* The producer reads head only when its cached copy says full. */
    atomic_store(&sh->head, 100 + CAP + 5);
    ck_assert_ptr_null(fa_ring_reserve(&p));
    ck_assert_int_eq(fa_ring_want_space(&p), 0);
    free(sh);
}
END_TEST

Suite *make_suite_ring(void)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("ring");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_ring__empty_pop_returns_zero);
    tcase_add_test(tc, test_ring__push_pop_in_order);
    tcase_add_test(tc, test_ring__peek_then_release_one_by_one);
    tcase_add_test(tc, test_ring__full_reserve_fails);
    tcase_add_test(tc, test_ring__reserved_invisible_until_commit);
    tcase_add_test(tc, test_ring__wraps_across_uint32);
    tcase_add_test(tc, test_ring__full_across_wrap);
    tcase_add_test(tc, test_ring__want_space_flag_round_trip);
    tcase_add_test(tc, test_ring__want_space_rechecks);
    tcase_add_test(tc, test_ring__init_resumes_from_shared_indices);
    tcase_add_test(tc, test_ring__wild_tail_is_clamped);
    tcase_add_test(tc, test_ring__wild_head_means_full);
    suite_add_tcase(s, tc);
    return s;
}
