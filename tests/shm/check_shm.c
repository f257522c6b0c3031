/* check_shm.c - the shm component's Check binary: main and shared helpers.
 * The suites live in check_segment.c, check_ring.c, check_chunk.c,
 * check_doorbell.c, check_pair.c (the two-process test) and check_stat.c
 * (the shm-stat binary, black box). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tshm.h"

#define TSHM_MAX_NAMES 16

static char tshm_names[TSHM_MAX_NAMES][FA_NAME_MAX];
static int tshm_n;
static pid_t tshm_owner;

static void tshm_cleanup(void)
{
    /* A forked helper inherits the handler; only its creator unlinks. */
    if (getpid() != tshm_owner)
        return;
    for (int i = 0; i < tshm_n; i++)
        fa_seg_unlink(tshm_names[i]);
}

const char *tshm_name(const char *tag)
{
    if (tshm_owner != getpid()) {
        tshm_owner = getpid();
        tshm_n = 0;
        atexit(tshm_cleanup);
    }
    ck_assert_int_lt(tshm_n, TSHM_MAX_NAMES);
    snprintf(tshm_names[tshm_n], FA_NAME_MAX, "ck%d.%s", (int)getpid(), tag);
    return tshm_names[tshm_n++];
}

void tshm_create(struct fa_seg *seg, const char *tag, uint32_t n_http, uint32_t max_py,
                 uint32_t ring_cap, uint32_t chunk_size, uint32_t chunks_per_arena)
{
    struct fa_seg_params p = {
        .name = tshm_name(tag), .n_http = n_http, .max_py = max_py, .ring_cap = ring_cap,
        .chunk_size = chunk_size, .chunks_per_arena = chunks_per_arena,
    };
    char *cause = NULL;
    int r = fa_seg_create(seg, &p, &cause);

    ck_assert_msg(r == 0, "fa_seg_create(%s): %s", p.name, cause ? cause : "?");
    free(cause);
}

int tshm_dead_pid(void)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    return (int)pid;
}

#ifdef __SANITIZE_ADDRESS__
/* test_seg__readonly_write_faults expects the test to die of SIGSEGV:
 * ASan would catch the signal and exit(1) instead. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "handle_segv=0";
}
#endif

int main(void)
{
    SRunner *sr = srunner_create(make_suite_segment());
    int failed;

    srunner_add_suite(sr, make_suite_ring());
    srunner_add_suite(sr, make_suite_chunk());
    srunner_add_suite(sr, make_suite_doorbell());
    srunner_add_suite(sr, make_suite_pair());
    srunner_add_suite(sr, make_suite_stat());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
