/* check_pyworker.c - fasterapi-pyworker driven for real.
 *
 * The test plays the master and the HTTP workers: it creates a segment and
 * the eventfds, execs the real binary on tests/pyworker/app_pyworker.py,
 * pushes request envelopes (msgpack, in chunks of its own arenas) onto the
 * request rings, rings the worker's doorbell, sleeps on its own eventfds and
 * checks the responses it pops (status, headers, body).
 *
 * Environment (defaults from the build):
 *   FA_PYWORKER         the binary            (FA_BUILDDIR/fasterapi-pyworker)
 *   FA_PYWORKER_APPDIR  the test app's folder (FA_SRCDIR/tests/pyworker)
 *   FA_PYW_BENCH_N      requests in the throughput test (20000)
 *   FA_PYW_BENCH_BODY   bytes of body: POST /echo instead of GET /plain (<= 8192)
 *   FA_PYW_VERBOSE      set: keep the worker's usage messages in the log
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "shm/chunk.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/segment.h"

#ifndef FA_BUILDDIR
#define FA_BUILDDIR "."
#endif
#ifndef FA_SRCDIR
#define FA_SRCDIR "."
#endif

/* Routes of app_pyworker.py, in registration order. */
enum { ROUTE_HELLO, ROUTE_USER, ROUTE_ECHO, ROUTE_BOOM, ROUTE_SLOW, ROUTE_PLAIN, ROUTE_INFO,
       ROUTE_KEEP, ROUTE_KEEP_VIEW, ROUTE_DROP, ROUTE_CRLF, ROUTE_BIGHEAD, ROUTE_HUGE, ROUTE_INSPECT,
       N_ROUTES };

#define N_HTTP     2
#define MAX_PY     2
#define SLOT       1          /* not 0: catches slot/arena index mix-ups */
#define GEN        3
#define RING_CAP   64
#define CHUNK      16384
#define CHUNKS     64         /* per arena: 1 MiB */
#define MAX_IOV    CHUNKS

struct harness {
    struct fa_seg seg;
    char name[FA_NAME_MAX];
    int shm_fd;
    int py_efd;
    int http_efd[N_HTTP];
    pid_t pid;
    struct fa_arena arena[N_HTTP];
    struct fa_ring req[N_HTTP], resp[N_HTTP];
    uint32_t token;
};

struct resp {
    uint32_t token;
    int status;
    int n_headers;
    char names[16][64], values[16][128];
    char *body;               /* malloc'd, NUL-terminated */
    size_t body_len;
};

static struct harness H;      /* one per forked test process */

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static const char *pyw_bin(void)
{
    const char *e = getenv("FA_PYWORKER");
    return e && *e ? e : FA_BUILDDIR "/fasterapi-pyworker";
}

static const char *pyw_appdir(void)
{
    const char *e = getenv("FA_PYWORKER_APPDIR");
    return e && *e ? e : FA_SRCDIR "/tests/pyworker";
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void harness_cleanup(void)
{
    if (H.pid > 0) {
        kill(H.pid, SIGKILL);
        waitpid(H.pid, NULL, 0);
        H.pid = 0;
    }
    if (H.name[0]) {
        fa_seg_unlink(H.name);
        H.name[0] = '\0';
    }
}

/* Creates the segment and the doorbells, as the master does: every fd
 * inheritable, the slot STARTING with generation GEN. */
static void harness_create(void)
{
    static int counter;
    struct fa_seg_params p = {
        .n_http = N_HTTP, .max_py = MAX_PY, .ring_cap = RING_CAP,
        .chunk_size = CHUNK, .chunks_per_arena = CHUNKS,
    };
    struct fa_slot_sh *slot;
    char *cause = NULL;

    memset(&H, 0, sizeof(H));
    snprintf(H.name, sizeof(H.name), "pywtest.%d.%d", (int)getpid(), counter++);
    p.name = H.name;
    ck_assert_msg(fa_seg_create(&H.seg, &p, &cause) == 0, "fa_seg_create: %s", cause);
    atexit(harness_cleanup);
    H.shm_fd = shm_open(H.seg.shm_name, O_RDWR, 0);
    ck_assert_msg(H.shm_fd >= 0, "shm_open %s: %s", H.seg.shm_name, strerror(errno));
    fcntl(H.shm_fd, F_SETFD, 0);   /* shm_open sets close-on-exec */
    H.py_efd = fa_doorbell_create();
    ck_assert_int_ge(H.py_efd, 0);
    for (int h = 0; h < N_HTTP; h++) {
        H.http_efd[h] = fa_doorbell_create();
        ck_assert_int_ge(H.http_efd[h], 0);
        fa_arena_init(&H.arena[h], &H.seg, fa_seg_http_arena(&H.seg, h), (uint32_t)h, 0);
        fa_ring_init(&H.req[h], fa_seg_req_ring(&H.seg, h, SLOT), RING_CAP);
        fa_ring_init(&H.resp[h], fa_seg_resp_ring(&H.seg, h, SLOT), RING_CAP);
    }
    slot = fa_seg_py_slot(&H.seg, SLOT);
    atomic_store(&slot->gen, GEN);
    atomic_store(&slot->state, FA_SLOT_STARTING);
}

/* harness_create(), then execs the worker in serve mode; returns once the
 * slot is READY. */
static void harness_start(void)
{
    struct fa_slot_sh *slot;
    uint64_t deadline;

    harness_create();
    slot = fa_seg_py_slot(&H.seg, SLOT);
    H.pid = fork();
    ck_assert_int_ge(H.pid, 0);
    if (H.pid == 0) {
        char shm_fd[16], efd[16], gen[16], slotbuf[16], http[64];
        snprintf(shm_fd, sizeof(shm_fd), "%d", H.shm_fd);
        snprintf(efd, sizeof(efd), "%d", H.py_efd);
        snprintf(gen, sizeof(gen), "%d", GEN);
        snprintf(slotbuf, sizeof(slotbuf), "%d", SLOT);
        snprintf(http, sizeof(http), "%d,%d", H.http_efd[0], H.http_efd[1]);
        execl(pyw_bin(), pyw_bin(), "--serve", "--app", "app_pyworker:app",
              "--app-dir", pyw_appdir(), "--shm-fd", shm_fd, "--slot", slotbuf,
              "--gen", gen, "--doorbell-fd", efd, "--http-doorbell-fds", http, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", pyw_bin(), strerror(errno));
        _exit(127);
    }
    deadline = now_ms() + 20000;
    while (atomic_load(&slot->state) != FA_SLOT_READY) {
        int st;
        ck_assert_msg(waitpid(H.pid, &st, WNOHANG) == 0,
                      "the worker exited before it was READY (status 0x%x)", st);
        ck_assert_msg(now_ms() < deadline, "the worker is not READY after 20 s");
        usleep(2000);
    }
    ck_assert_int_eq(atomic_load(&slot->pid), H.pid);
}

/* SIGTERM, then the exit status (waits at most 10 s). */
static int harness_stop(void)
{
    int st = -1;
    uint64_t deadline = now_ms() + 10000;

    kill(H.pid, SIGTERM);
    while (waitpid(H.pid, &st, WNOHANG) == 0) {
        ck_assert_msg(now_ms() < deadline, "the worker did not exit 10 s after SIGTERM");
        usleep(2000);
    }
    H.pid = 0;
    return st;
}

/* Packs an envelope and pushes it to ring h with generation gen. Returns
 * the token, and the descriptor in *out if not NULL. */
static uint32_t send_req_gen(uint32_t h, uint64_t route, const char *method, const char *path,
                             const char *query, const char **params, int n_params,
                             const char **headers, int n_headers,
                             const void *body, size_t body_len, uint32_t gen,
                             struct fa_desc *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct fa_msg_writer w;
    struct fa_desc d;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint64(&pk, route);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    msgpack_pack_str_with_body(&pk, path, strlen(path));
    msgpack_pack_str_with_body(&pk, query, strlen(query));
    msgpack_pack_array(&pk, (size_t)n_params);
    for (int i = 0; i < n_params; i++)
        msgpack_pack_str_with_body(&pk, params[i], strlen(params[i]));
    msgpack_pack_array(&pk, (size_t)n_headers * 2);
    for (int i = 0; i < n_headers * 2; i++)
        msgpack_pack_str_with_body(&pk, headers[i], strlen(headers[i]));
    msgpack_pack_str_with_body(&pk, "127.0.0.1", 9);
    msgpack_pack_uint16(&pk, 54321);
    msgpack_pack_uint8(&pk, 1);

    ck_assert_int_eq(fa_msg_begin(&w, &H.arena[h]), 0);
    ck_assert_int_eq(fa_msg_write(&w, sb.data, sb.size), 0);
    if (body_len)
        ck_assert_int_eq(fa_msg_write(&w, body, body_len), 0);
    fa_msg_end(&w, N_HTTP + SLOT, gen, &d);
    msgpack_sbuffer_destroy(&sb);
    d.token = ++H.token;
    d.gen = gen;
    ck_assert_msg(fa_ring_push(&H.req[h], &d) == 0, "request ring %u full", h);
    fa_doorbell_ring(&fa_seg_py_slot(&H.seg, SLOT)->sleeping, H.py_efd);
    if (out)
        *out = d;
    return d.token;
}

static uint32_t send_req(uint32_t h, uint64_t route, const char *method, const char *path,
                         const char **params, int n_params, const void *body, size_t body_len)
{
    static const char *hdrs[] = {"Host", "localhost", "User-Agent", "check/1.0"};
    return send_req_gen(h, route, method, path, "", params, n_params, hdrs, 2, body, body_len,
                        GEN, NULL);
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Pops one response from ring h, waiting up to timeout_ms with the doorbell
 * protocol. 1 got one (checked and freed from shm), 0 timeout. */
static int recv_resp(uint32_t h, struct resp *r, int timeout_ms)
{
    struct fa_slot_sh *me = fa_seg_http_slot(&H.seg, h);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    struct iovec iov[MAX_IOV];
    struct fa_desc d;
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0, total = 0;
    char *buf;
    int n;

    for (;;) {
        if (fa_ring_pop(&H.resp[h], &d, 1) == 1)
            break;
        /* Spin about a wake-up's cost first, as an HTTP worker does. */
        for (int i = 0; i < 4000 && fa_ring_empty(&H.resp[h]); i++)
            __asm__ __volatile__("pause");
        if (!fa_ring_empty(&H.resp[h]))
            continue;
        fa_doorbell_sleep_begin(&me->sleeping);
        if (!fa_ring_empty(&H.resp[h])) {
            fa_doorbell_sleep_cancel(&me->sleeping);
            continue;
        }
        if (now_ms() >= deadline) {
            fa_doorbell_sleep_cancel(&me->sleeping);
            return 0;
        }
        fa_doorbell_wait(H.http_efd[h], (int)(deadline - now_ms()) + 1);
        fa_doorbell_sleep_cancel(&me->sleeping);
    }
    if (fa_ring_space_wanted(&H.resp[h]))
        fa_doorbell_ring(&fa_seg_py_slot(&H.seg, SLOT)->sleeping, H.py_efd);

    ck_assert_uint_eq(d.gen, GEN);
    n = fa_msg_iov(&H.seg, fa_seg_py_arena(&H.seg, SLOT), h, &d, iov, MAX_IOV);
    ck_assert_msg(n > 0, "invalid response descriptor (%d)", n);
    buf = malloc(d.len + 1);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < n; i++) {
        memcpy(buf + total, iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    ck_assert_uint_eq(total, d.len);
    /* The head lies whole in the first chunk (PROTOCOL.md). */
    msgpack_zone_init(&zone, 2048);
    ck_assert_int_ge(msgpack_unpack(iov[0].iov_base, iov[0].iov_len, &off, &zone, &o),
                     MSGPACK_UNPACK_EXTRA_BYTES);
    fa_msg_free(&H.seg, fa_seg_py_arena(&H.seg, SLOT), d.chunk);

    memset(r, 0, sizeof(*r));
    r->token = d.token;
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o.via.array.size, 2);
    ck_assert_int_eq(o.via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    r->status = (int)o.via.array.ptr[0].via.u64;
    ck_assert_int_eq(o.via.array.ptr[1].type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o.via.array.ptr[1].via.array.size % 2, 0);
    for (uint32_t i = 0; i < o.via.array.ptr[1].via.array.size / 2 && i < 16; i++) {
        msgpack_object *nm = &o.via.array.ptr[1].via.array.ptr[2 * i];
        msgpack_object *vl = nm + 1;
        ck_assert_int_eq(nm->type, MSGPACK_OBJECT_STR);
        ck_assert_int_eq(vl->type, MSGPACK_OBJECT_STR);
        snprintf(r->names[i], sizeof(r->names[i]), "%.*s", (int)nm->via.str.size, nm->via.str.ptr);
        snprintf(r->values[i], sizeof(r->values[i]), "%.*s", (int)vl->via.str.size,
                 vl->via.str.ptr);
        r->n_headers++;
    }
    msgpack_zone_destroy(&zone);
    r->body_len = d.len - off;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, buf + off, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
    return 1;
}

static void recv_ok(uint32_t h, struct resp *r, uint32_t token)
{
    ck_assert_msg(recv_resp(h, r, 10000) == 1, "no response on ring %u within 10 s", h);
    ck_assert_uint_eq(r->token, token);
}

static const char *resp_header(const struct resp *r, const char *name)
{
    for (int i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

/* Runs the binary with argv (NULL-terminated, argv[0] omitted); returns the
 * wait status, stdout in *out (malloc'd) and its length. quiet: stderr goes
 * to /dev/null (the usage text of the argument tests). */
static int run_capture_q(const char *const *args, char **out, size_t *out_len, int quiet)
{
    int pfd[2], st;
    pid_t pid;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    const char *argv[32];
    int n = 0;

    ck_assert_ptr_nonnull(buf);
    argv[n++] = pyw_bin();
    while (*args && n < 31)
        argv[n++] = *args++;
    argv[n] = NULL;
    ck_assert_int_eq(pipe(pfd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        if (quiet && getenv("FA_PYW_VERBOSE") == NULL) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        ssize_t r;
        if (len == cap) {
            char *bigger = realloc(buf, cap *= 2);
            ck_assert_ptr_nonnull(bigger);
            buf = bigger;
        }
        r = read(pfd[0], buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(pfd[0]);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    *out = buf;
    *out_len = len;
    return st;
}

static int run_capture(const char *const *args, char **out, size_t *out_len)
{
    return run_capture_q(args, out, out_len, 0);
}

/* ------------------------------------------------------------------ */
/* Describe                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_pyworker__describe_prints_route_table)
{
    static const struct { const char *method, *pattern; } want[N_ROUTES] = {
        {"GET", "/hello"}, {"GET", "/users/{user_id}"}, {"POST", "/echo"}, {"GET", "/boom"},
        {"GET", "/slow"}, {"GET", "/plain"}, {"GET", "/info"}, {"POST", "/keep"},
        {"POST", "/keep_view"}, {"GET", "/drop"}, {"GET", "/crlf"}, {"GET", "/bighead"},
        {"GET", "/huge"}, {"GET", "/inspect"},
    };
    const char *args[] = {"--describe", "--app", "app_pyworker:app", "--app-dir", pyw_appdir(),
                          NULL};
    char *out;
    size_t len, off = 0;
    int st = run_capture(args, &out, &len);
    msgpack_zone zone;
    msgpack_object o;

    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "describe exited with 0x%x", st);
    msgpack_zone_init(&zone, 2048);
    ck_assert_int_eq(msgpack_unpack(out, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(o.via.array.size, N_ROUTES);
    for (uint32_t i = 0; i < N_ROUTES; i++) {
        msgpack_object *r = &o.via.array.ptr[i];
        ck_assert_int_eq(r->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(r->via.array.size, 4);
        ck_assert_int_eq(r->via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_eq(r->via.array.ptr[0].via.u64, i);
        for (int k = 1; k < 4; k++)
            ck_assert_int_eq(r->via.array.ptr[k].type, MSGPACK_OBJECT_STR);
        {
            char m[32], p[64], k[32];
            snprintf(m, sizeof(m), "%.*s", (int)r->via.array.ptr[1].via.str.size,
                     r->via.array.ptr[1].via.str.ptr);
            snprintf(p, sizeof(p), "%.*s", (int)r->via.array.ptr[2].via.str.size,
                     r->via.array.ptr[2].via.str.ptr);
            snprintf(k, sizeof(k), "%.*s", (int)r->via.array.ptr[3].via.str.size,
                     r->via.array.ptr[3].via.str.ptr);
            ck_assert_str_eq(m, want[i].method);
            ck_assert_str_eq(p, want[i].pattern);
            ck_assert_str_eq(k, "python");
        }
    }
    msgpack_zone_destroy(&zone);
    free(out);
}
END_TEST

START_TEST(test_pyworker__describe_import_error_exits_2)
{
    const char *args[] = {"--describe", "--app", "no_such_module_xyz:app", "--app-dir",
                          pyw_appdir(), NULL};
    char *out;
    size_t len;
    int st = run_capture(args, &out, &len);

    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 2, "exit status 0x%x, want 2", st);
    ck_assert_uint_eq(len, 0);
    free(out);
}
END_TEST

START_TEST(test_pyworker__bad_arguments_exit_64)
{
    const char *cases[][8] = {
        {NULL},
        {"--describe", NULL},
        {"--describe", "--app", "nocolon", NULL},
        {"--describe", "--serve", "--app", "a:b", NULL},
        {"--serve", "--app", "a:b", NULL},
        {"--serve", "--app", "a:b", "--slot", "x", NULL},
        {"--describe", "--app", "a:b", "--app-dir", "/nonexistent/dir", NULL},
        {"--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out;
        size_t len;
        int st = run_capture_q(cases[i], &out, &len, 1);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "case %zu: status 0x%x, want 64",
                      i, st);
        free(out);
    }
}
END_TEST

/* Serve-mode arguments that contradict the segment. */
START_TEST(test_pyworker__serve_bad_segment_args_exit_64)
{
    char shm_fd[16], efd[16], http1[16], http2[32], ro[16];
    const char *cases[][20] = {
        {"--serve", "--app", "app_pyworker:app", "--shm-fd", shm_fd, "--slot", "2", "--gen", "3",
         "--doorbell-fd", efd, "--http-doorbell-fds", http2, NULL},              /* slot >= max_py */
        {"--serve", "--app", "app_pyworker:app", "--shm-fd", shm_fd, "--slot", "1", "--gen", "3",
         "--doorbell-fd", efd, "--http-doorbell-fds", http1, NULL},              /* 1 fd, 2 slots */
        {"--serve", "--app", "app_pyworker:app", "--shm-fd", "999", "--slot", "1", "--gen", "3",
         "--doorbell-fd", efd, "--http-doorbell-fds", http2, NULL},              /* closed fd */
        {"--serve", "--app", "app_pyworker:app", "--shm-fd", ro, "--slot", "1", "--gen", "3",
         "--doorbell-fd", efd, "--http-doorbell-fds", http2, NULL},              /* read-only */
    };
    int ro_fd;

    harness_create();
    ro_fd = shm_open(H.seg.shm_name, O_RDONLY, 0);
    ck_assert_int_ge(ro_fd, 0);
    fcntl(ro_fd, F_SETFD, 0);
    snprintf(shm_fd, sizeof(shm_fd), "%d", H.shm_fd);
    snprintf(ro, sizeof(ro), "%d", ro_fd);
    snprintf(efd, sizeof(efd), "%d", H.py_efd);
    snprintf(http1, sizeof(http1), "%d", H.http_efd[0]);
    snprintf(http2, sizeof(http2), "%d,%d", H.http_efd[0], H.http_efd[1]);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out;
        size_t len;
        int st = run_capture_q(cases[i], &out, &len, 1);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "case %zu: status 0x%x, want 64",
                      i, st);
        free(out);
    }
    ck_assert_uint_eq(atomic_load(&fa_seg_py_slot(&H.seg, SLOT)->state), FA_SLOT_STARTING);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Serve                                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_pyworker__json_route)
{
    struct resp r;
    uint32_t t;

    harness_start();
    t = send_req(0, ROUTE_HELLO, "GET", "/hello", NULL, 0, NULL, 0);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(resp_header(&r, "content-type"));
    ck_assert_ptr_nonnull(strstr(resp_header(&r, "content-type"), "application/json"));
    ck_assert_ptr_nonnull(strstr(r.body, "\"hello\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"world\""));
    resp_free(&r);
    /* The other HTTP worker's ring is served too. */
    t = send_req(1, ROUTE_HELLO, "GET", "/hello", NULL, 0, NULL, 0);
    recv_ok(1, &r, t);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(harness_stop(), 0);
    {
        struct fa_stats_sh *st = &fa_seg_py_slot(&H.seg, SLOT)->stats;
        ck_assert_uint_eq(atomic_load(&st->requests), 2);
        ck_assert_uint_eq(atomic_load(&st->errors), 0);
        ck_assert_uint_gt(atomic_load(&st->bytes_in), 0);
        ck_assert_uint_gt(atomic_load(&st->bytes_out), 0);
    }
}
END_TEST

START_TEST(test_pyworker__path_params)
{
    const char *ok[] = {"42"}, *bad[] = {"forty-two"};
    struct resp r;
    uint32_t t;

    harness_start();
    t = send_req(0, ROUTE_USER, "GET", "/users/42", ok, 1, NULL, 0);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "42"));
    ck_assert_ptr_nonnull(strstr(r.body, "\"id\""));
    resp_free(&r);
    t = send_req(0, ROUTE_USER, "GET", "/users/forty-two", bad, 1, NULL, 0);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 422);
    resp_free(&r);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

static void check_echo(uint32_t h, size_t n)
{
    char *body = malloc(n);
    struct resp r;
    uint32_t t;

    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + (i * 7 + i / 251) % 26);
    t = send_req(h, ROUTE_ECHO, "POST", "/echo", NULL, 0, body, n);
    recv_ok(h, &r, t);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, n);
    ck_assert_msg(memcmp(r.body, body, n) == 0, "echoed body differs (%zu bytes)", n);
    resp_free(&r);
    free(body);
}

START_TEST(test_pyworker__echo_small_and_100k)
{
    harness_start();
    check_echo(0, 1);                 /* one chunk: a memoryview over shm */
    check_echo(1, 1000);
    check_echo(0, 100 * 1024);        /* 7 chunks each way */
    check_echo(1, CHUNK * 3);         /* chunk-aligned sizes */
    check_echo(0, 0);
    /* Every request chunk came back to the HTTP arenas, every response
     * chunk to the worker's. */
    for (int h = 0; h < N_HTTP; h++)
        ck_assert_uint_eq(fa_arena_count_free(&H.seg, fa_seg_http_arena(&H.seg, h)), CHUNKS);
    ck_assert_uint_eq(fa_arena_count_free(&H.seg, fa_seg_py_arena(&H.seg, SLOT)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

START_TEST(test_pyworker__handler_exception_500_then_serves)
{
    struct resp r;
    uint32_t t;

    harness_start();
    t = send_req(0, ROUTE_BOOM, "GET", "/boom", NULL, 0, NULL, 0);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 500);
    resp_free(&r);
    t = send_req(0, ROUTE_HELLO, "GET", "/hello", NULL, 0, NULL, 0);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(harness_stop(), 0);
    ck_assert_uint_eq(atomic_load(&fa_seg_py_slot(&H.seg, SLOT)->stats.errors), 1);
}
END_TEST

START_TEST(test_pyworker__malformed_envelope_500)
{
    struct fa_msg_writer w;
    struct fa_desc d;
    struct resp r;
    static const char junk[] = "\x93\x01\x02";   /* array of 3: too short */

    harness_start();
    ck_assert_int_eq(fa_msg_begin(&w, &H.arena[0]), 0);
    ck_assert_int_eq(fa_msg_write(&w, junk, sizeof(junk) - 1), 0);
    fa_msg_end(&w, N_HTTP + SLOT, GEN, &d);
    d.token = 777;
    d.gen = GEN;
    ck_assert_int_eq(fa_ring_push(&H.req[0], &d), 0);
    fa_doorbell_ring(&fa_seg_py_slot(&H.seg, SLOT)->sleeping, H.py_efd);
    recv_ok(0, &r, 777);
    ck_assert_int_eq(r.status, 500);
    resp_free(&r);
    ck_assert_uint_eq(fa_arena_count_free(&H.seg, fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

START_TEST(test_pyworker__stale_generation_dropped)
{
    static const char *hdrs[] = {"host", "x"};
    struct fa_desc stale;
    struct resp r;
    uint32_t t;

    harness_start();
    send_req_gen(0, ROUTE_HELLO, "GET", "/hello", "", NULL, 0, hdrs, 1, NULL, 0, GEN - 1, &stale);
    /* Dropped unread: no answer, and its chunk is left for us to reclaim. */
    ck_assert_int_eq(recv_resp(0, &r, 300), 0);
    ck_assert_uint_eq(fa_arena_count_free(&H.seg, fa_seg_http_arena(&H.seg, 0)), CHUNKS - 1);
    t = send_req(0, ROUTE_HELLO, "GET", "/hello", NULL, 0, NULL, 0);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    fa_msg_free(&H.seg, fa_seg_http_arena(&H.seg, 0), stale.chunk);   /* the HTTP side reclaims */
    ck_assert_uint_eq(fa_arena_count_free(&H.seg, fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
    ck_assert_uint_eq(atomic_load(&fa_seg_py_slot(&H.seg, SLOT)->stats.requests), 1);
}
END_TEST

START_TEST(test_pyworker__sigterm_drains_then_exits_0)
{
    enum { N = 24 };
    uint32_t tokens[N];
    int seen[N] = {0}, got = 0, st;

    harness_start();
    for (int i = 0; i < N; i++)
        tokens[i] = send_req((uint32_t)(i % N_HTTP), ROUTE_SLOW, "GET", "/slow", NULL, 0, NULL, 0);
    /* 24 x 5 ms of work is queued: the signal lands while most of it waits. */
    kill(H.pid, SIGTERM);
    while (got < N) {
        struct resp r;
        int any = 0;
        for (uint32_t h = 0; h < N_HTTP; h++) {
            if (recv_resp(h, &r, 50) == 1) {
                int k = -1;
                for (int i = 0; i < N; i++)
                    if (tokens[i] == r.token)
                        k = i;
                ck_assert_int_ge(k, 0);
                ck_assert_int_eq(seen[k], 0);
                ck_assert_int_eq(r.status, 200);
                seen[k] = 1;
                got++;
                any = 1;
                resp_free(&r);
            }
        }
        if (!any)
            ck_assert_msg(waitpid(H.pid, &st, WNOHANG) == 0,
                          "the worker exited with %d of %d requests unanswered", N - got, N);
    }
    ck_assert_int_eq(waitpid(H.pid, &st, 0), H.pid);
    H.pid = 0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x after SIGTERM", st);
}
END_TEST

/* Stopping while an HTTP worker takes no responses (the master stopped the
 * HTTP workers first, one of them with a full ring): after 5 s the worker
 * gives up and exits 1 instead of waiting for ever. */
START_TEST(test_pyworker__sigterm_with_stuck_http_worker_exits_1)
{
    uint64_t t0;
    int st;

    harness_start();
    for (int i = 0; i < RING_CAP + 8; i++) {
        send_req(0, ROUTE_PLAIN, "GET", "/plain", NULL, 0, NULL, 0);
        if (i == RING_CAP - 1)   /* let the first RING_CAP fill the response ring */
            for (int k = 0; k < 5000 &&
                 fa_ring_depth(fa_seg_resp_ring(&H.seg, 0, SLOT)) < RING_CAP; k++)
                usleep(1000);
    }
    usleep(50000);
    t0 = now_ms();
    kill(H.pid, SIGTERM);
    ck_assert_int_eq(waitpid(H.pid, &st, 0), H.pid);
    H.pid = 0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit status 0x%x, want 1", st);
    ck_assert_uint_ge(now_ms() - t0, 4500);
}
END_TEST

START_TEST(test_pyworker__worker_info)
{
    struct resp r;
    uint32_t t;
    char want[64];

    harness_start();
    t = send_req(1, ROUTE_INFO, "GET", "/info", NULL, 0, NULL, 0);
    recv_ok(1, &r, t);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"slot\""));
    snprintf(want, sizeof(want), "%d", SLOT);
    ck_assert_ptr_nonnull(strstr(r.body, want));
    snprintf(want, sizeof(want), "%d", (int)H.pid);
    ck_assert_ptr_nonnull(strstr(r.body, want));
    resp_free(&r);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

static uint32_t free_chunks(uint32_t arena)
{
    return fa_arena_count_free(&H.seg, arena);
}

/* A view of the body kept past the call (a slice, which memoryview.release()
 * cannot see) pins the request chunk until it dies and still reads the
 * original bytes; a kept memoryview itself is released at once. */
START_TEST(test_pyworker__kept_body_view_pins_chunk)
{
    uint32_t http0;
    struct resp r;
    uint32_t t;

    harness_start();
    http0 = fa_seg_http_arena(&H.seg, 0);
    t = send_req(0, ROUTE_KEEP, "POST", "/keep", NULL, 0, "abcdefgh", 8);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_uint_eq(free_chunks(http0), CHUNKS - 1);
    /* The chunk is not reused while pinned: other requests flow around it. */
    check_echo(0, 5000);
    t = send_req(0, ROUTE_KEEP_VIEW, "POST", "/keep_view", NULL, 0, "ijkl", 4);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_uint_eq(free_chunks(http0), CHUNKS - 1);
    t = send_req(0, ROUTE_DROP, "GET", "/drop", NULL, 0, NULL, 0);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "abcd,released");
    resp_free(&r);
    ck_assert_uint_eq(free_chunks(http0), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

START_TEST(test_pyworker__bad_responses_500)
{
    static const int routes[] = {ROUTE_CRLF, ROUTE_BIGHEAD, ROUTE_HUGE};
    struct resp r;
    uint32_t t;

    harness_start();
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        t = send_req(1, (uint64_t)routes[i], "GET", "/bad", NULL, 0, NULL, 0);
        recv_ok(1, &r, t);
        ck_assert_msg(r.status == 500, "route %d: status %d, want 500", routes[i], r.status);
        for (int k = 0; k < r.n_headers; k++)
            ck_assert_ptr_null(strpbrk(r.values[k], "\r\n"));
        resp_free(&r);
    }
    t = send_req(1, ROUTE_PLAIN, "GET", "/plain", NULL, 0, NULL, 0);
    recv_ok(1, &r, t);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_uint_eq(free_chunks(fa_seg_py_arena(&H.seg, SLOT)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* Ten 100 KiB echoes need 70 response chunks, the arena has 64: the worker
 * waits for the HTTP side to free some, then finishes. */
START_TEST(test_pyworker__arena_full_waits_for_free)
{
    enum { N = 10, LEN = 100 * 1024 };
    char *body = malloc(LEN);
    uint32_t tokens[N];

    harness_start();
    for (int i = 0; i < LEN; i++)
        body[i] = (char)(i * 31);
    for (int i = 0; i < N; i++)
        tokens[i] = send_req((uint32_t)(i % N_HTTP), ROUTE_ECHO, "POST", "/echo", NULL, 0,
                             body, LEN);
    usleep(300000);
    /* Nothing freed yet: at most 9 whole responses fit. */
    ck_assert_uint_lt(free_chunks(fa_seg_py_arena(&H.seg, SLOT)), 7);
    for (int i = 0; i < N; i++) {
        struct resp r;
        recv_ok((uint32_t)(i % N_HTTP), &r, tokens[i]);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.body_len, LEN);
        ck_assert(memcmp(r.body, body, LEN) == 0);
        resp_free(&r);
    }
    free(body);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* 2 x RING_CAP requests before popping any response: the response ring
 * fills, the worker sets want_space and sleeps; our pops wake it. */
START_TEST(test_pyworker__response_ring_full_waits)
{
    uint32_t first = 0;

    harness_start();
    for (int i = 0; i < RING_CAP; i++) {
        uint32_t t = send_req(0, ROUTE_PLAIN, "GET", "/plain", NULL, 0, NULL, 0);
        if (first == 0)
            first = t;
    }
    for (int k = 0; k < 5000 && fa_ring_depth(fa_seg_resp_ring(&H.seg, 0, SLOT)) < RING_CAP; k++)
        usleep(1000);
    ck_assert_uint_eq(fa_ring_depth(fa_seg_resp_ring(&H.seg, 0, SLOT)), RING_CAP);
    for (int i = 0; i < RING_CAP; i++)
        send_req(0, ROUTE_PLAIN, "GET", "/plain", NULL, 0, NULL, 0);
    usleep(100000);
    /* Blocked on the full response ring, with requests still queued. */
    ck_assert_uint_eq(fa_ring_depth(fa_seg_resp_ring(&H.seg, 0, SLOT)), RING_CAP);
    ck_assert(!fa_ring_empty(&H.req[0]));
    for (int got = 0; got < 2 * RING_CAP; got++) {
        struct resp r;
        recv_ok(0, &r, first + (uint32_t)got);
        ck_assert_int_eq(r.status, 200);
        resp_free(&r);
    }
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* What dispatch receives: header names lower-cased (short and long ones),
 * values latin-1, a head bigger than a chunk (gathered), query, client. */
START_TEST(test_pyworker__request_fields)
{
    char *big = malloc(20001);
    char longname[100];
    const char *hdrs[8];
    struct resp r;
    uint32_t t;

    harness_start();
    memset(big, 'v', 20000);
    big[20000] = '\0';
    memset(longname, 'Z', 80);
    strcpy(longname + 80, "-Header");
    hdrs[0] = "Host"; hdrs[1] = "example.org";
    hdrs[2] = "X-Latin1"; hdrs[3] = "caf\xe9";
    hdrs[4] = longname; hdrs[5] = "1";
    hdrs[6] = "X-LONG"; hdrs[7] = big;
    for (int pass = 0; pass < 2; pass++) {   /* 2nd pass: header-name cache hits */
        t = send_req_gen(0, ROUTE_INSPECT, "GET", "/inspect", "a=1&b=%20", NULL, 0, hdrs,
                         pass == 0 ? 4 : 3, NULL, 0, GEN, NULL);
        recv_ok(0, &r, t);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(strstr(r.body, "\"host\",\"x-latin1\",\"zzzz") != NULL, "%s", r.body);
        ck_assert_msg(strstr(r.body, "zzz-header\"") != NULL, "%s", r.body);
        ck_assert_msg(strstr(r.body, "\"latin1\":\"caf\xc3\xa9\"") != NULL, "%s", r.body);
        ck_assert_msg(strstr(r.body, pass == 0 ? "\"long\":20000" : "\"long\":0") != NULL,
                      "%s", r.body);
        ck_assert_msg(strstr(r.body, "\"query\":\"a=1&b=%20\"") != NULL, "%s", r.body);
        ck_assert_msg(strstr(r.body, "\"method\":\"GET\"") != NULL, "%s", r.body);
        ck_assert_msg(strstr(r.body, "\"path\":\"/inspect\"") != NULL, "%s", r.body);
        ck_assert_msg(strstr(r.body, "\"client\":[\"127.0.0.1\",54321]") != NULL, "%s", r.body);
        resp_free(&r);
    }
    ck_assert_uint_eq(free_chunks(fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    free(big);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* Throughput: pipelined small requests over both rings, as fast as the
 * worker answers. The harness side stays cheap (one envelope packed once,
 * no Check assertion per request: in fork mode each one is a write(2)) so
 * that the rate measures the worker. Prints requests/s and the worker's own
 * busy time per request. */
static int bench_recv(uint32_t h, const char *want_body, size_t want_len)
{
    struct fa_slot_sh *me = fa_seg_http_slot(&H.seg, h);
    struct iovec iov[4];
    struct fa_desc d;
    msgpack_object o;
    msgpack_zone *zone = NULL;
    size_t off = 0;
    int n, ok;

    for (;;) {
        if (fa_ring_pop(&H.resp[h], &d, 1) == 1)
            break;
        for (int i = 0; i < 4000 && fa_ring_empty(&H.resp[h]); i++)
            __asm__ __volatile__("pause");
        if (!fa_ring_empty(&H.resp[h]))
            continue;
        fa_doorbell_sleep_begin(&me->sleeping);
        if (!fa_ring_empty(&H.resp[h])) {
            fa_doorbell_sleep_cancel(&me->sleeping);
            continue;
        }
        if (fa_doorbell_wait(H.http_efd[h], 10000) == 0)
            return -1;
        fa_doorbell_sleep_cancel(&me->sleeping);
    }
    if (fa_ring_space_wanted(&H.resp[h]))
        fa_doorbell_ring(&fa_seg_py_slot(&H.seg, SLOT)->sleeping, H.py_efd);
    n = fa_msg_iov(&H.seg, fa_seg_py_arena(&H.seg, SLOT), h, &d, iov, 4);
    if (n != 1)
        return -1;
    {
        static msgpack_zone z;
        static int init;
        if (!init)
            init = msgpack_zone_init(&z, 2048);
        zone = &z;
        msgpack_zone_clear(zone);
    }
    ok = msgpack_unpack(iov[0].iov_base, iov[0].iov_len, &off, zone, &o) ==
             MSGPACK_UNPACK_EXTRA_BYTES &&
         o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 2 &&
         o.via.array.ptr[0].via.u64 == 200 && iov[0].iov_len - off == want_len &&
         memcmp((char *)iov[0].iov_base + off, want_body, want_len) == 0;
    fa_msg_free(&H.seg, fa_seg_py_arena(&H.seg, SLOT), d.chunk);
    return ok ? 0 : -1;
}

START_TEST(test_pyworker__throughput)
{
    const char *e = getenv("FA_PYW_BENCH_N"), *eb = getenv("FA_PYW_BENCH_BODY");
    long total = e ? atol(e) : 20000, sent = 0, done = 0, bad = 0;
    size_t body_len = eb ? (size_t)atol(eb) : 0;   /* > 0: POST /echo with that body */
    static char body[8192];
    int window = RING_CAP / 2, inflight[N_HTTP] = {0};
    static const char *hdrs[] = {"Host", "localhost", "User-Agent", "check/1.0",
                                 "Accept", "*/*"};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct fa_slot_sh *py;
    double t0, dt;
    uint64_t busy;

    if (body_len > sizeof(body))
        body_len = sizeof(body);
    memset(body, 'b', body_len);
    harness_start();
    py = fa_seg_py_slot(&H.seg, SLOT);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint64(&pk, body_len ? ROUTE_ECHO : ROUTE_PLAIN);
    msgpack_pack_str_with_body(&pk, body_len ? "POST" : "GET", body_len ? 4 : 3);
    msgpack_pack_str_with_body(&pk, body_len ? "/echo" : "/plain", body_len ? 5 : 6);
    msgpack_pack_str_with_body(&pk, "", 0);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_array(&pk, 6);
    for (int i = 0; i < 6; i++)
        msgpack_pack_str_with_body(&pk, hdrs[i], strlen(hdrs[i]));
    msgpack_pack_str_with_body(&pk, "127.0.0.1", 9);
    msgpack_pack_uint16(&pk, 54321);
    msgpack_pack_uint8(&pk, 1);
    msgpack_sbuffer_write(&sb, body, body_len);

    t0 = now_s();
    while (done < total && bad == 0) {
        for (uint32_t h = 0; h < N_HTTP; h++) {
            int pushed = 0;
            while (inflight[h] < window && sent < total) {
                struct fa_msg_writer w;
                struct fa_desc d;
                if (fa_msg_begin(&w, &H.arena[h]) < 0 || fa_msg_write(&w, sb.data, sb.size) < 0)
                    break;
                fa_msg_end(&w, N_HTTP + SLOT, GEN, &d);
                d.token = ++H.token;
                d.gen = GEN;
                if (fa_ring_push(&H.req[h], &d) < 0) {
                    bad++;
                    break;
                }
                inflight[h]++;
                sent++;
                pushed = 1;
            }
            if (pushed)
                fa_doorbell_ring(&py->sleeping, H.py_efd);
            if (inflight[h] > 0) {
                if (bench_recv(h, body_len ? body : "ok", body_len ? body_len : 2) < 0)
                    bad++;
                inflight[h]--;
                done++;
            }
        }
    }
    dt = now_s() - t0;
    msgpack_sbuffer_destroy(&sb);
    ck_assert_msg(bad == 0, "%ld bad responses or timeouts", bad);
    busy = atomic_load(&py->stats.busy_ns);
    fprintf(stderr, "throughput (%s): %ld requests in %.3f s: %.0f requests/s, %.2f us/request "
                    "end to end, %.2f us/request busy in the worker\n",
            body_len ? "POST /echo" : "GET /plain", total, dt, (double)total / dt, dt * 1e6 / (double)total,
            (double)busy / 1e3 / (double)atomic_load(&py->stats.requests));
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

static Suite *make_suite_pyworker(void)
{
    Suite *s = suite_create("pyworker");
    TCase *tc = tcase_create("describe");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_pyworker__describe_prints_route_table);
    tcase_add_test(tc, test_pyworker__describe_import_error_exits_2);
    tcase_add_test(tc, test_pyworker__bad_arguments_exit_64);
    tcase_add_test(tc, test_pyworker__serve_bad_segment_args_exit_64);
    suite_add_tcase(s, tc);

    tc = tcase_create("serve");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pyworker__json_route);
    tcase_add_test(tc, test_pyworker__path_params);
    tcase_add_test(tc, test_pyworker__echo_small_and_100k);
    tcase_add_test(tc, test_pyworker__handler_exception_500_then_serves);
    tcase_add_test(tc, test_pyworker__malformed_envelope_500);
    tcase_add_test(tc, test_pyworker__stale_generation_dropped);
    tcase_add_test(tc, test_pyworker__sigterm_drains_then_exits_0);
    tcase_add_test(tc, test_pyworker__sigterm_with_stuck_http_worker_exits_1);
    tcase_add_test(tc, test_pyworker__worker_info);
    tcase_add_test(tc, test_pyworker__request_fields);
    tcase_add_test(tc, test_pyworker__kept_body_view_pins_chunk);
    tcase_add_test(tc, test_pyworker__bad_responses_500);
    tcase_add_test(tc, test_pyworker__arena_full_waits_for_free);
    tcase_add_test(tc, test_pyworker__response_ring_full_waits);
    suite_add_tcase(s, tc);

    tc = tcase_create("bench");   /* CK_RUN_CASE=bench FA_PYW_BENCH_N=100000 */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pyworker__throughput);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(make_suite_pyworker());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
