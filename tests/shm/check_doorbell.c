/* check_doorbell.c - the sleeping-flag protocol, one step at a time. */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tshm.h"
#include "shm/doorbell.h"

static uint64_t counter(int efd)
{
    uint64_t v = 0;

    if (read(efd, &v, sizeof(v)) != sizeof(v))
        return 0;           /* EAGAIN: nothing written */
    return v;
}

START_TEST(test_doorbell__awake_consumer_costs_no_syscall)
{
    _Atomic uint32_t sleeping = 0;
    int efd = fa_doorbell_create();

    ck_assert_int_ge(efd, 0);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(fa_doorbell_ring(&sleeping, efd), 0);
    ck_assert_uint_eq(counter(efd), 0);
    close(efd);
}
END_TEST

START_TEST(test_doorbell__sleeping_consumer_is_woken_once)
{
    _Atomic uint32_t sleeping = 0;
    int efd = fa_doorbell_create();

    fa_doorbell_sleep_begin(&sleeping);
    ck_assert_uint_eq(atomic_load(&sleeping), 1);
    ck_assert_int_eq(fa_doorbell_ring(&sleeping, efd), 1);
    ck_assert_uint_eq(atomic_load(&sleeping), 0);
    /* The flag is consumed: a second producer does not write again. */
    ck_assert_int_eq(fa_doorbell_ring(&sleeping, efd), 0);
    ck_assert_int_eq(fa_doorbell_wait(efd, 1000), 1);
    ck_assert_uint_eq(counter(efd), 0);        /* wait consumed it */
    close(efd);
}
END_TEST

START_TEST(test_doorbell__cancel_means_no_write)
{
    _Atomic uint32_t sleeping = 0;
    int efd = fa_doorbell_create();

    fa_doorbell_sleep_begin(&sleeping);
    fa_doorbell_sleep_cancel(&sleeping);       /* the re-check found work */
    ck_assert_int_eq(fa_doorbell_ring(&sleeping, efd), 0);
    ck_assert_uint_eq(counter(efd), 0);
    close(efd);
}
END_TEST

START_TEST(test_doorbell__wait_times_out)
{
    int efd = fa_doorbell_create();

    ck_assert_int_eq(fa_doorbell_wait(efd, 20), 0);
    ck_assert_int_eq(fa_doorbell_wait(-1, 20), 0);   /* poll ignores fd -1 */
    close(efd);
    ck_assert_int_eq(fa_doorbell_wait(efd, 20), -1);  /* closed: no endless "woken" */
}
END_TEST

START_TEST(test_doorbell__force_and_drain)
{
    int efd = fa_doorbell_create();

    fa_doorbell_ring_force(efd);
    fa_doorbell_ring_force(efd);
    fa_doorbell_drain(efd);
    ck_assert_uint_eq(counter(efd), 0);
    fa_doorbell_drain(efd);                    /* empty: does not block */
    fa_doorbell_ring_force(efd);
    ck_assert_int_eq(fa_doorbell_wait(efd, -1), 1);
    close(efd);
}
END_TEST

/* Inherited across fork (no CLOEXEC): what the master relies on. */
START_TEST(test_doorbell__works_across_fork)
{
    _Atomic uint32_t *sleeping;
    int efd = fa_doorbell_create();
    struct fa_seg s;
    pid_t pid;

    tshm_create(&s, "bell", 1, 1, 2, 64, 1);
    sleeping = &fa_seg_py_slot(&s, 0)->sleeping;
    fa_doorbell_sleep_begin(sleeping);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(fa_doorbell_ring(sleeping, efd) == 1 ? 0 : 1);
    ck_assert_int_eq(fa_doorbell_wait(efd, 5000), 1);
    {
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_int_eq(st, 0);
    }
    fa_seg_detach(&s);
    close(efd);
}
END_TEST

Suite *make_suite_doorbell(void)
{
    Suite *s = suite_create("doorbell");
    TCase *tc = tcase_create("doorbell");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_doorbell__awake_consumer_costs_no_syscall);
    tcase_add_test(tc, test_doorbell__sleeping_consumer_is_woken_once);
    tcase_add_test(tc, test_doorbell__cancel_means_no_write);
    tcase_add_test(tc, test_doorbell__wait_times_out);
    tcase_add_test(tc, test_doorbell__force_and_drain);
    tcase_add_test(tc, test_doorbell__works_across_fork);
    suite_add_tcase(s, tc);
    return s;
}
