/* check_stat.c - shm-stat as a user runs it: the real binary against
 * segments made here. The binary is $SHM_STAT, else ./shm-stat (make check
 * runs tests from the top build directory, where it is built). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tshm.h"
#include "shm/ring.h"

#define OUT_MAX 16384

struct run {
    int status;              /* exit status, or -1 if it did not exit */
    char out[OUT_MAX], err[OUT_MAX];
};

static void slurp(int fd, char *buf)
{
    size_t n = 0;
    ssize_t r;

    while (n < OUT_MAX - 1 && (r = read(fd, buf + n, OUT_MAX - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd);
}

/* Runs shm-stat with up to two arguments (NULL ends the list). */
static void run_stat(struct run *r, const char *a1, const char *a2)
{
    const char *bin = getenv("SHM_STAT") ? getenv("SHM_STAT") : "./shm-stat";
    int po[2], pe[2], st;
    pid_t pid;

    ck_assert_msg(access(bin, X_OK) == 0, "cannot run %s: build it, or set SHM_STAT", bin);
    ck_assert_int_eq(pipe(po), 0);
    ck_assert_int_eq(pipe(pe), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        execl(bin, "shm-stat", a1, a2, (char *)NULL);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    slurp(po[0], r->out);      /* outputs are small: no pipe deadlock */
    slurp(pe[0], r->err);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define ck_assert_has(hay, needle) \
    ck_assert_msg(strstr(hay, needle) != NULL, "\"%s\" not in:\n%s", needle, hay)

static void fill(struct fa_seg *s)
{
    struct fa_ring r;
    struct fa_desc d = { 0 };
    struct fa_slot_sh *h = fa_seg_http_slot(s, 1), *p = fa_seg_py_slot(s, 2);

    atomic_store(&h->state, FA_SLOT_READY);
    atomic_store(&h->pid, 4242);
    atomic_store(&h->stats.requests, 123456);
    atomic_store(&h->stats.bytes_in, 1000);
    atomic_store(&h->stats.connections, 7);
    atomic_store(&p->state, FA_SLOT_DRAINING);
    atomic_store(&p->pid, 4343);
    atomic_store(&p->gen, 9);
    atomic_store(&fa_seg_req_ring(s, 0, 2)->in_flight, 3);
    atomic_store(&p->stats.requests, 777);
    atomic_store(&p->stats.errors, 5);
    atomic_store(&p->stats.restarts, 2);
    /* Two descriptors queued to Python slot 2, from each HTTP worker. */
    for (uint32_t w = 0; w < 2; w++) {
        fa_ring_init(&r, fa_seg_req_ring(s, w, 2), s->hdr->ring_cap);
        fa_ring_push(&r, &d);
        fa_ring_push(&r, &d);
    }
}

START_TEST(test_stat__table)
{
    struct fa_seg s;
    struct run r;

    tshm_create(&s, "stat", 2, 4, 8, 64, 2);
    fill(&s);
    run_stat(&r, s.hdr->name, NULL);
    ck_assert_msg(r.status == 0, "exit %d, stderr: %s", r.status, r.err);
    ck_assert_has(r.out, "server 'ck");
    ck_assert_has(r.out, "4242 ready");
    ck_assert_has(r.out, "123456");
    ck_assert_has(r.out, "4343 draining      9        777        0       5         3      4        -        -       0 B        2");
    ck_assert_has(r.out, "(4 unused slots not shown)");
    fa_seg_detach(&s);
}
END_TEST

START_TEST(test_stat__json)
{
    struct fa_seg s;
    struct run r;

    tshm_create(&s, "json", 2, 4, 8, 64, 2);
    fill(&s);
    run_stat(&r, "--json", s.hdr->name);
    ck_assert_msg(r.status == 0, "exit %d, stderr: %s", r.status, r.err);
    ck_assert_int_eq(r.out[0], '{');
    ck_assert_has(r.out, "{\"slot\":1,\"pid\":4242,\"state\":\"ready\",\"req_per_s\":0.000,"
                         "\"rss_kb\":0,\"chunks_free\":2,\"connections\":7,\"requests\":123456,\"queued\":0,"
                         "\"bytes_in\":1000,\"bytes_out\":0,\"restarts\":0}");
    ck_assert_has(r.out, "{\"slot\":2,\"pid\":4343,\"state\":\"draining\",\"req_per_s\":0.000,"
                         "\"rss_kb\":0,\"chunks_free\":2,\"latency_avg_ms\":null,\"latency_p99_ms\":null,\"gen\":9,"
                         "\"requests\":777,\"errors\":5,\"in_flight\":3,\"ring_depth\":4,"
                         "\"restarts\":2}");
    ck_assert_has(r.out, "\"python\":{\"requests\":777,\"errors\":5,\"in_flight\":3,"
                         "\"ring_depth\":4,\"restarts\":2}}}\n");
    fa_seg_detach(&s);
}
END_TEST

START_TEST(test_stat__missing_server)
{
    struct run r;
    char want[128];
    const char *name = tshm_name("none");

    run_stat(&r, name, NULL);
    ck_assert_int_eq(r.status, 1);
    snprintf(want, sizeof(want), "no server named '%s' is running (no /dev/shm/fasterapi.%s)",
             name, name);
    ck_assert_has(r.err, want);
    ck_assert_str_eq(r.out, "");
}
END_TEST

START_TEST(test_stat__stale_segment)
{
    struct fa_seg s;
    struct run r;

    tshm_create(&s, "dead", 1, 1, 2, 64, 1);
    atomic_store(&s.hdr->master_pid, tshm_dead_pid());
    run_stat(&r, s.hdr->name, NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_has(r.err, "is not running");
    ck_assert_has(r.err, "stale");
    fa_seg_detach(&s);
}
END_TEST

START_TEST(test_stat__usage)
{
    struct run r;

    run_stat(&r, "--help", NULL);
    ck_assert_int_eq(r.status, 0);
    ck_assert_has(r.out, "usage: shm-stat [NAME] [--json]");
    run_stat(&r, "--bogus", NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_has(r.err, "unknown option '--bogus'");
    run_stat(&r, "a", "b");
    ck_assert_int_eq(r.status, 1);
    ck_assert_has(r.err, "one server name at a time");
    run_stat(&r, "../x", NULL);
    ck_assert_int_eq(r.status, 1);
    ck_assert_has(r.err, "contains '/'");
}
END_TEST

Suite *make_suite_stat(void)
{
    Suite *s = suite_create("shm-stat");
    TCase *tc = tcase_create("shm-stat");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_stat__table);
    tcase_add_test(tc, test_stat__json);
    tcase_add_test(tc, test_stat__missing_server);
    tcase_add_test(tc, test_stat__stale_segment);
    tcase_add_test(tc, test_stat__usage);
    suite_add_tcase(s, tc);
    return s;
}
