/* check_pair.c - two processes, one ring, the doorbell protocol both ways.
 *
 * A forked producer (playing an HTTP worker) pushes 1,000,000 descriptors
 * through one request ring to the test process (playing a Python worker),
 * which checks that every sequence number arrives exactly once and in
 * order. Both sides spin a little, then sleep on their eventfd with the
 * sleeping-flag protocol; the producer facing a full ring sets want_space
 * and sleeps until the consumer rings it. Each side pauses a few times on
 * purpose so that both sleep paths certainly run; a wait that times out
 * would be a lost wakeup and fails the test.
 *
 * The second test sends real messages: a payload in chunks from the
 * producer's arena, checked byte by byte through fa_msg_iov and freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "tshm.h"
#include "shm/chunk.h"
#include "shm/doorbell.h"
#include "shm/ring.h"

#define N_MSG        1000000u
#define CAP          256u
#define BATCH        64u
#ifndef SPIN
#define SPIN         1000        /* polls before sleeping: a few microseconds */
#endif
#ifndef PAUSE_EVERY
#define PAUSE_EVERY  250000u     /* each side stops for PAUSE_US this often */
#endif
#define PAUSE_US     5000
#define WAIT_MS      5000        /* a wait this long means a lost wakeup */
#define CS           128u
#define CPA          1024u       /* > 2 chunks * (CAP in the ring + BATCH popped + 1) */
#define MAX_PAYLOAD  200u

/* Each side writes its own counters; the parent reads them after waitpid. */
struct pair_counts {
    uint64_t prod_wakes;     /* producer -> consumer doorbell writes */
    uint64_t prod_sleeps;    /* producer slept on a full ring */
    uint64_t prod_timeouts;
    uint64_t prod_alloc_failures;
    uint64_t cons_wakes;     /* consumer -> producer (want_space) doorbell writes */
    uint64_t cons_sleeps;    /* consumer slept on an empty ring */
    uint64_t cons_timeouts;
};

struct pair {
    struct fa_seg seg;
    struct fa_ring_sh *ring;                /* request ring HTTP 0 -> Python 0 */
    _Atomic uint32_t *prod_sleeping, *cons_sleeping;
    int prod_efd, cons_efd;
    int chunks;                             /* messages carry chunk payloads */
    struct pair_counts *cnt;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static uint8_t payload_byte(uint32_t seq, uint32_t i)
{
    return (uint8_t)(seq * 31 + i);
}

/* --- producer (child) --- */

/* A free slot, sleeping on the producer's doorbell while the ring is full. */
static struct fa_desc *prod_slot(struct pair *pp, struct fa_ring *r)
{
    struct fa_desc *d;

    for (;;) {
        for (int i = 0; i < SPIN; i++) {
            if ((d = fa_ring_reserve(r)) != NULL)
                return d;
            cpu_relax();
        }
        if (fa_ring_want_space(r))
            continue;
        fa_doorbell_sleep_begin(pp->prod_sleeping);
        if ((d = fa_ring_reserve(r)) != NULL) {
            fa_doorbell_sleep_cancel(pp->prod_sleeping);
            return d;
        }
        pp->cnt->prod_sleeps++;
        if (fa_doorbell_wait(pp->prod_efd, WAIT_MS) == 0)
            pp->cnt->prod_timeouts++;
        fa_doorbell_sleep_cancel(pp->prod_sleeping);
    }
}

static void prod_build(struct pair *pp, struct fa_arena *a, uint32_t seq, struct fa_desc *d)
{
    uint8_t buf[MAX_PAYLOAD];
    uint32_t n = seq % MAX_PAYLOAD;
    struct fa_msg_writer w;

    for (uint32_t i = 0; i < n; i++)
        buf[i] = payload_byte(seq, i);
    if (fa_msg_begin(&w, a) < 0 || fa_msg_write(&w, &seq, sizeof(seq)) < 0 ||
        fa_msg_write(&w, buf, n) < 0) {
        pp->cnt->prod_alloc_failures++;
        _exit(3);
    }
    fa_msg_end(&w, fa_seg_py_arena(&pp->seg, 0), 1, d);
}

static void producer(struct pair *pp)
{
    struct fa_ring r;
    struct fa_arena a;

    fa_ring_init(&r, pp->ring, CAP);
    fa_arena_init(&a, &pp->seg, fa_seg_http_arena(&pp->seg, 0), 0, 0);
    for (uint32_t seq = 0; seq < N_MSG; seq++) {
        struct fa_desc d = { .gen = 1, .token = seq }, *slot;

        if (pp->chunks)
            prod_build(pp, &a, seq, &d);
        slot = prod_slot(pp, &r);
        *slot = d;
        fa_ring_commit(&r);
        if (fa_doorbell_ring(pp->cons_sleeping, pp->cons_efd))
            pp->cnt->prod_wakes++;
        if ((seq + 1) % PAUSE_EVERY == 0)
            usleep(PAUSE_US);       /* the consumer runs dry and sleeps */
    }
}

/* --- consumer (the test process) --- */

/* Returns once the ring is not empty, sleeping if it stays empty. */
static void cons_wait(struct pair *pp, struct fa_ring *r)
{
    for (;;) {
        for (int i = 0; i < SPIN; i++) {
            if (!fa_ring_empty(r))
                return;
            cpu_relax();
        }
        fa_doorbell_sleep_begin(pp->cons_sleeping);
        if (!fa_ring_empty(r)) {
            fa_doorbell_sleep_cancel(pp->cons_sleeping);
            return;
        }
        pp->cnt->cons_sleeps++;
        if (fa_doorbell_wait(pp->cons_efd, WAIT_MS) == 0)
            pp->cnt->cons_timeouts++;
        fa_doorbell_sleep_cancel(pp->cons_sleeping);
    }
}

static void cons_check_msg(struct pair *pp, const struct fa_desc *d, uint32_t seq)
{
    struct iovec iov[4];
    uint8_t flat[sizeof(uint32_t) + MAX_PAYLOAD];
    uint32_t got_seq, off = 0;
    int n = fa_msg_iov(&pp->seg, fa_seg_http_arena(&pp->seg, 0), fa_seg_py_arena(&pp->seg, 0),
                       d, iov, 4);

    if (n < 1 || d->len != sizeof(seq) + seq % MAX_PAYLOAD)
        ck_abort_msg("message %u: fa_msg_iov %d, len %u", seq, n, d->len);
    for (int k = 0; k < n; k++) {
        memcpy(flat + off, iov[k].iov_base, iov[k].iov_len);
        off += (uint32_t)iov[k].iov_len;
    }
    memcpy(&got_seq, flat, sizeof(got_seq));
    if (got_seq != seq)
        ck_abort_msg("message %u carries sequence %u", seq, got_seq);
    for (uint32_t i = 0; i < seq % MAX_PAYLOAD; i++)
        if (flat[sizeof(seq) + i] != payload_byte(seq, i))
            ck_abort_msg("message %u: payload byte %u is wrong", seq, i);
    fa_msg_free(&pp->seg, fa_seg_http_arena(&pp->seg, 0), d->chunk);
}

static void consumer(struct pair *pp)
{
    struct fa_ring r;
    struct fa_desc buf[BATCH];
    uint32_t got = 0, next_pause = PAUSE_EVERY / 2;

    fa_ring_init(&r, pp->ring, CAP);
    while (got < N_MSG) {
        uint32_t n = fa_ring_pop(&r, buf, BATCH);

        if (n == 0) {
            cons_wait(pp, &r);
            continue;
        }
        for (uint32_t k = 0; k < n; k++, got++) {
            if (buf[k].token != got)
                ck_abort_msg("expected message %u, got %u (lost, duplicated or reordered)",
                             got, buf[k].token);
            if (pp->chunks)
                cons_check_msg(pp, &buf[k], got);
        }
        if (fa_ring_space_wanted(&r) && fa_doorbell_ring(pp->prod_sleeping, pp->prod_efd))
            pp->cnt->cons_wakes++;
        if (got >= next_pause) {
            next_pause += PAUSE_EVERY;
            usleep(PAUSE_US);       /* the ring fills, the producer sleeps */
        }
    }
}

static void run_pair(const char *tag, int chunks)
{
    struct pair pp = { .chunks = chunks };
    struct timespec t0, t1;
    pid_t pid;
    int st;
    double ms;
    uint64_t writes;

    tshm_create(&pp.seg, tag, 1, 1, CAP, CS, CPA);
    pp.ring = fa_seg_req_ring(&pp.seg, 0, 0);
    pp.prod_sleeping = &fa_seg_http_slot(&pp.seg, 0)->sleeping;
    pp.cons_sleeping = &fa_seg_py_slot(&pp.seg, 0)->sleeping;
    pp.prod_efd = fa_doorbell_create();
    pp.cons_efd = fa_doorbell_create();
    ck_assert_int_ge(pp.prod_efd, 0);
    ck_assert_int_ge(pp.cons_efd, 0);
    pp.cnt = mmap(NULL, sizeof(*pp.cnt), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(pp.cnt, MAP_FAILED);
    memset(pp.cnt, 0, sizeof(*pp.cnt));

    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a failed consumer takes us along */
        producer(&pp);
        _exit(0);                           /* not exit(): the parent unlinks */
    }
    consumer(&pp);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "producer ended with status 0x%x", st);

    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    writes = pp.cnt->prod_wakes + pp.cnt->cons_wakes;
    printf("pair %s: %u messages in %.1f ms (%.0f ns/msg, incl. %d pauses of %d us); "
           "doorbell writes %llu (producer->consumer %llu, want_space %llu); "
           "sleeps: consumer %llu, producer %llu\n",
           tag, N_MSG, ms, ms * 1e6 / N_MSG, 2 * (int)(N_MSG / PAUSE_EVERY), PAUSE_US,
           (unsigned long long)writes, (unsigned long long)pp.cnt->prod_wakes,
           (unsigned long long)pp.cnt->cons_wakes, (unsigned long long)pp.cnt->cons_sleeps,
           (unsigned long long)pp.cnt->prod_sleeps);
    fflush(stdout);

    ck_assert_uint_eq(pp.cnt->prod_timeouts, 0);     /* no lost wakeup */
    ck_assert_uint_eq(pp.cnt->cons_timeouts, 0);
    ck_assert_uint_eq(pp.cnt->prod_alloc_failures, 0);
    /* The pauses made both sides sleep, and each was woken by a write. */
    ck_assert_uint_gt(pp.cnt->cons_sleeps, 0);
    ck_assert_uint_gt(pp.cnt->prod_sleeps, 0);
    ck_assert_uint_gt(pp.cnt->prod_wakes, 0);
    ck_assert_uint_gt(pp.cnt->cons_wakes, 0);
    /* Syscalls only when a side really slept: far fewer than messages. */
    ck_assert_uint_lt(writes, N_MSG / 20);
    ck_assert_uint_eq(fa_ring_depth(pp.ring), 0);
    if (chunks)
        ck_assert_uint_eq(fa_arena_count_free(&pp.seg, 0), CPA);
    munmap(pp.cnt, sizeof(*pp.cnt));
    close(pp.prod_efd);
    close(pp.cons_efd);
    fa_seg_detach(&pp.seg);
}

START_TEST(test_pair__million_descriptors_in_order)
{
    run_pair("desc", 0);
}
END_TEST

START_TEST(test_pair__million_messages_with_chunks)
{
    run_pair("chunks", 1);
}
END_TEST

Suite *make_suite_pair(void)
{
    Suite *s = suite_create("pair");
    TCase *tc = tcase_create("pair");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pair__million_descriptors_in_order);
    tcase_add_test(tc, test_pair__million_messages_with_chunks);
    suite_add_tcase(s, tc);
    return s;
}
