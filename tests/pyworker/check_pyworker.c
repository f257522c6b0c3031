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
 *   FA_PYWORKER_APPDIR  the test app's folder (FA_SRCDIR/tests/pyworker); the
 *                       protocol tests use FA_SRCDIR/tests/pyworker/proto
 *   FA_PYW_BENCH_N      requests in the throughput test (20000)
 *   FA_PYW_BENCH_BODY   bytes of body: POST /echo instead of GET /plain (<= 8192)
 *   FA_PYW_BENCH_JSON   set: GET /hello (a dict, encoded by the C encoder) instead
 *   FA_PYW_BENCH_PROTO  set (with _JSON): GET /hello of proto/proto_app.py, whose
 *                       dispatch returns at once: the C side's own cost per request
 *                       (FA_TEST_LAZY=1: with lazy headers)
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

#include "pyworker/envelope.h"
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

/* Routes of proto/proto_app.py, whose dispatch answers in each way
 * PROTOCOL.md allows (a stand-in fasterapi._boot there shadows the package). */
enum { PROTO_JSON, PROTO_JSON_REF, PROTO_BIG, PROTO_BIG_REF, PROTO_BAD_JSON, PROTO_HUGE_JSON,
       PROTO_BYTEARRAY, PROTO_ECHO_VIEW, PROTO_ECHO_SLICE, PROTO_NONCONTIG, PROTO_AFTER,
       PROTO_AFTER_RAISES, PROTO_AFTER_LOG, PROTO_SENDFILE, PROTO_STR, PROTO_HOOKS,
       PROTO_HOOKS_REF, PROTO_HEADERS, PROTO_HEADERS_KEEP, PROTO_HEADERS_KEPT, PROTO_HEADERS_SEQ,
       PROTO_STATIC, PROTO_HELLO, PROTO_DEFER_LATER, PROTO_STREAM_SYNC, PROTO_STREAM_PRESSURE,
       PROTO_DEFER_GONE, PROTO_STREAM_UNTIL_GONE, PROTO_DEFER_FOREVER, PROTO_DEFER_COUNT,
       PROTO_FLAGS, PROTO_DEFER_TWICE, PROTO_DEFER_RAISES, PROTO_STREAM_ABORT, N_PROTO };

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

/* harness_create(), then execs the worker in serve mode on app `spec` in
 * `appdir`; returns once the slot is READY. */
static void harness_start_app(const char *appdir, const char *spec)
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
        execl(pyw_bin(), pyw_bin(), "--serve", "--app", spec,
              "--app-dir", appdir, "--shm-fd", shm_fd, "--slot", slotbuf,
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

static void harness_start(void)
{
    harness_start_app(pyw_appdir(), "app_pyworker:app");
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
    /* The app's routes first; the package may add its own after them
     * (/openapi.json, /docs). */
    ck_assert_uint_ge(o.via.array.size, N_ROUTES);
    for (uint32_t i = 0; i < o.via.array.size; i++) {
        msgpack_object *r = &o.via.array.ptr[i];
        ck_assert_int_eq(r->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_msg(r->via.array.size == 4 ||
                      (r->via.array.size == 5 && r->via.array.ptr[4].type == MSGPACK_OBJECT_MAP),
                      "route %u: not [id, method, pattern, kind(, extra map)]", i);
        ck_assert_int_eq(r->via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_eq(r->via.array.ptr[0].via.u64, i);
        for (int k = 1; k < 4; k++)
            ck_assert_int_eq(r->via.array.ptr[k].type, MSGPACK_OBJECT_STR);
        if (i >= N_ROUTES)
            continue;
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



/* ------------------------------------------------------------------ */
/* Envelope heads (pyworker/envelope.c), without the worker             */
/* ------------------------------------------------------------------ */

/* One request head packed by libmsgpack, with every string form the
 * reader accepts and, after the nine items, items of every other type. */
static void pack_head(msgpack_sbuffer *sb, int variant)
{
    msgpack_packer pk;
    char big[70000];

    memset(big, 'x', sizeof(big));
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, variant ? 12 : 9);
    msgpack_pack_uint64(&pk, variant ? 4000000000ull : 7);
    msgpack_pack_str_with_body(&pk, "GET", 3);
    if (variant) {
        msgpack_pack_str_with_body(&pk, big, 300);      /* str16 */
        msgpack_pack_bin_with_body(&pk, "a=1", 3);      /* bin8 */
    } else {
        msgpack_pack_str_with_body(&pk, "/p", 2);
        msgpack_pack_str_with_body(&pk, "", 0);
    }
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, big, 40);           /* str8 */
    msgpack_pack_str_with_body(&pk, variant ? big : "v", variant ? 70000 : 1);   /* str32 */
    msgpack_pack_array(&pk, variant ? 20 : 2);
    for (int i = 0; i < (variant ? 10 : 1); i++) {
        msgpack_pack_str_with_body(&pk, "Host", 4);
        msgpack_pack_bin_with_body(&pk, big, (size_t)i * 30);
    }
    msgpack_pack_str_with_body(&pk, "::1", 3);
    msgpack_pack_uint16(&pk, variant ? 65535 : 80);
    msgpack_pack_uint8(&pk, 3);
    if (variant) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_nil(&pk);
        msgpack_pack_double(&pk, 1.5);
        msgpack_pack_true(&pk);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int64(&pk, -5);
        msgpack_pack_float(&pk, 2.5f);
        msgpack_pack_ext_with_body(&pk, "abc", 3, 1);
        msgpack_pack_bin_with_body(&pk, big, 1000);     /* bin16 */
    }
}

START_TEST(test_pyworker__envelope_reads_every_form)
{
    for (int variant = 0; variant < 2; variant++) {
        msgpack_sbuffer sb;
        struct fa_env e;
        const char *why = NULL, *p;
        const unsigned char *it;
        uint32_t n;
        char *body;

        msgpack_sbuffer_init(&sb);
        pack_head(&sb, variant);
        msgpack_sbuffer_write(&sb, "BODY", 4);
        body = malloc(sb.size);   /* exact size: ASan sees an over-read */
        memcpy(body, sb.data, sb.size);
        ck_assert_int_eq(fa_env_parse(body, sb.size, &e, &why), 0);
        ck_assert_uint_eq(e.head_len, sb.size - 4);
        ck_assert_uint_eq(e.route_id, variant ? 4000000000ull : 7);
        ck_assert_uint_eq(e.method_len, 3);
        ck_assert(memcmp(e.method, "GET", 3) == 0);
        ck_assert_uint_eq(e.path_len, variant ? 300 : 2);
        ck_assert_uint_eq(e.query_len, variant ? 3 : 0);
        ck_assert_uint_eq(e.n_params, 2);
        it = fa_env_str(&e, e.params, &p, &n);
        ck_assert_uint_eq(n, 40);
        it = fa_env_str(&e, it, &p, &n);
        ck_assert_uint_eq(n, variant ? 70000 : 1);
        ck_assert_ptr_eq(it, e.params + (variant ? 42 + 70005 : 42 + 2));
        ck_assert_uint_eq(e.n_headers, variant ? 10 : 1);
        it = e.headers;
        for (uint32_t i = 0; i < e.n_headers; i++) {
            it = fa_env_str(&e, it, &p, &n);
            ck_assert_uint_eq(n, 4);
            it = fa_env_str(&e, it, &p, &n);
            ck_assert_uint_eq(n, i * 30);
        }
        ck_assert_uint_eq(e.host_len, 3);
        ck_assert_uint_eq(e.port, variant ? 65535 : 80);
        /* Every proper prefix of the head asks for more. */
        for (size_t cut = 0; cut < e.head_len; cut += variant && cut > 400 ? 97 : 1) {
            char *part = malloc(cut ? cut : 1);
            memcpy(part, body, cut);
            ck_assert_msg(fa_env_parse(part, cut, &e, &why) == -2, "variant %d cut at %zu: %s",
                          variant, cut, why);
            free(part);
        }
        free(body);
        msgpack_sbuffer_destroy(&sb);
    }
}
END_TEST

START_TEST(test_pyworker__envelope_refuses_wrong_types)
{
    static const struct { const char *bytes; size_t len; const char *why; } cases[] = {
        {"\x80", 1, "not a msgpack array"},
        {"\x98", 1, "fewer than 9"},
        {"\x99\xa1x", 3, "route id"},
        {"\x99\xff", 2, "route id"},                                 /* negative */
        {"\x99\x01\x05", 3, "method"},
        {"\x99\x01\xa3GET\xa1/\xa0\x91\x01", 12, "path parameter"},
        {"\x99\x01\xa3GET\xa1/\xa0\x90\x91\xa1h", 14, "pairs"},
        {"\x99\x01\xa3GET\xa1/\xa0\x90\x92\xa1h\x01", 15, "header name or value"},
        {"\x99\x01\xa3GET\xa1/\xa0\x90\x90\xa2h1\xce\x00\x01\x00\x00\x00", 20, "above 65535"},
        {"\x99\x01\xa3GET\xa1/\xa0\x90\x90\xa2h1\x50\xc1", 16, "flags"},
        {"\x9a\x01\xa3GET\xa1/\xa0\x90\x90\xa2h1\x50\x04\xc1", 17, "after the flags"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fa_env e;
        const char *why = NULL;
        char *b = malloc(cases[i].len);

        memcpy(b, cases[i].bytes, cases[i].len);
        ck_assert_msg(fa_env_parse(b, cases[i].len, &e, &why) == -1, "case %zu", i);
        ck_assert_msg(why != NULL && strstr(why, cases[i].why) != NULL, "case %zu: %s", i, why);
        free(b);
    }
}
END_TEST

START_TEST(test_pyworker__envelope_writes_response_heads)
{
    static char buf[140000];
    char *big = malloc(70000);
    struct fa_env_out o = {buf, buf + sizeof(buf), 0};
    static const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;

    memset(big, 'y', 70000);
    fa_env_put_array(&o, 2);
    fa_env_put_uint(&o, 204);
    fa_env_put_array(&o, 7);
    for (size_t i = 0; i < 7; i++)
        fa_env_put_str(&o, big, lens[i]);
    ck_assert_int_eq(o.overflow, 0);
    msgpack_zone_init(&zone, 4096);
    ck_assert_int_eq(msgpack_unpack(buf, (size_t)(o.p - buf), &off, &zone, &obj),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(obj.via.array.ptr[0].via.u64, 204);
    for (size_t i = 0; i < 7; i++) {
        ck_assert_int_eq(obj.via.array.ptr[1].via.array.ptr[i].type, MSGPACK_OBJECT_STR);
        ck_assert_uint_eq(obj.via.array.ptr[1].via.array.ptr[i].via.str.size, lens[i]);
    }
    msgpack_zone_destroy(&zone);
    for (uint64_t v = 0; v < (1ull << 40); v = v * 3 + 1) {
        o.p = buf;
        fa_env_put_uint(&o, v);
        off = 0;
        msgpack_zone_init(&zone, 256);
        ck_assert_int_eq(msgpack_unpack(buf, (size_t)(o.p - buf), &off, &zone, &obj),
                         MSGPACK_UNPACK_SUCCESS);
        ck_assert_uint_eq(obj.via.u64, v);
        msgpack_zone_destroy(&zone);
    }
    o.p = buf;
    o.end = buf + 10;
    fa_env_put_str(&o, big, 10);
    ck_assert_int_eq(o.overflow, 1);
    free(big);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The JSON encoder, response bodies, after hooks, shutdown             */
/* ------------------------------------------------------------------ */

/* tests/pyworker/test_json.py, run by pytest inside the worker's own
 * interpreter (--run): _fasterapi.dumps against json.dumps. */
START_TEST(test_pyworker__json_encoder_matches_json_dumps)
{
    const char *args[] = {"--run", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          FA_SRCDIR "/tests/pyworker/test_json.py", NULL};
    char *out;
    size_t len;
    int st = run_capture(args, &out, &len);

    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pytest in the worker: status 0x%x:\n%.*s",
                  st, (int)len, out);
    free(out);
}
END_TEST

START_TEST(test_pyworker__run_mode)
{
    const char *ok[] = {"--run", FA_SRCDIR "/tests/pyworker/proto/run_probe.py", "a", "-q", NULL};
    const char *exit3[] = {"--run", FA_SRCDIR "/tests/pyworker/proto/run_probe.py", "exit3", NULL};
    const char *missing[] = {"--run", "/nonexistent/script.py", NULL};
    const char *late[] = {"--describe", "--run", "x.py", NULL};
    char *out;
    size_t len;
    int st;

    st = run_capture(ok, &out, &len);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    ck_assert_msg(memmem(out, len, "argv=['", 7) != NULL && memmem(out, len, "', 'a', '-q']", 13),
                  "%.*s", (int)len, out);
    ck_assert_msg(memmem(out, len, "dumps=b'{\"a\":[1]}'", 18) != NULL, "%.*s", (int)len, out);
    free(out);
    st = run_capture(exit3, &out, &len);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status 0x%x", st);
    free(out);
    st = run_capture_q(missing, &out, &len, 1);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "status 0x%x", st);
    free(out);
    st = run_capture_q(late, &out, &len, 1);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "status 0x%x", st);
    free(out);
}
END_TEST

static void proto_start(void)
{
    static char dir[] = "/tmp/fa-pywtest.XXXXXX";

    ck_assert_ptr_nonnull(mkdtemp(dir));
    setenv("FA_TEST_DIR", dir, 1);
    harness_start_app(FA_SRCDIR "/tests/pyworker/proto", "proto_app:dispatch");
}

static void proto_get(uint32_t h, int route, struct resp *r)
{
    uint32_t t = send_req(h, (uint64_t)route, "GET", "/r", NULL, 0, NULL, 0);
    recv_ok(h, r, t);
}

/* A body that is a value: encoded in C into the response chunks, the same
 * bytes as json.dumps, also when it spans many chunks. */
START_TEST(test_pyworker__json_body_encoded_into_chunks)
{
    static const int pairs[][2] = {{PROTO_JSON, PROTO_JSON_REF}, {PROTO_BIG, PROTO_BIG_REF},
                                   {PROTO_HOOKS, PROTO_HOOKS_REF}};
    struct resp a, b;

    proto_start();
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        proto_get(0, pairs[i][0], &a);
        proto_get(1, pairs[i][1], &b);
        ck_assert_int_eq(a.status, 200);
        ck_assert_int_eq(b.status, 200);
        ck_assert_uint_eq(a.body_len, b.body_len);
        ck_assert_msg(memcmp(a.body, b.body, a.body_len) == 0, "route %d: %s\nvs %s", pairs[i][0],
                      a.body, b.body);
        if (pairs[i][0] == PROTO_BIG)
            ck_assert_uint_gt(a.body_len, 10 * CHUNK);
        resp_free(&a);
        resp_free(&b);
    }
    proto_get(0, PROTO_STR, &a);
    ck_assert_str_eq(a.body, "\"a str body\"");
    resp_free(&a);
    ck_assert_uint_eq(free_chunks(fa_seg_py_arena(&H.seg, SLOT)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST


/* The same headers as a list and, with LAZY_HEADERS, as RequestHeaders:
 * built on first use, or when dispatch returns if the app kept them (the
 * request's chunks are reused at once by the next requests). */
static void headers_roundtrip(int lazy)
{
    static const char *hdrs[] = {"Host", "localhost", "X-Mixed-CASE", "caf\xe9",
                                 "Accept", "*/*"};
    static const char *other[] = {"Host", "elsewhere", "X-Other", "zzzzzzzzzzzzzzzzzzzzzzz"};
    static const char want[] =
        "[[\"host\",\"localhost\"],[\"x-mixed-case\",\"caf\xc3\xa9\"],[\"accept\",\"*/*\"]]";
    struct resp r;
    uint32_t t;

    setenv("FA_TEST_LAZY", lazy ? "1" : "0", 1);
    proto_start();
    t = send_req_gen(0, PROTO_HEADERS, "GET", "/r", "", NULL, 0, hdrs, 3, NULL, 0, GEN, NULL);
    recv_ok(0, &r, t);
    ck_assert_str_eq(r.body, want);
    resp_free(&r);
    t = send_req_gen(0, PROTO_HEADERS_KEEP, "GET", "/r", "", NULL, 0, hdrs, 3, NULL, 0, GEN, NULL);
    recv_ok(0, &r, t);
    resp_free(&r);
    for (int i = 0; i < 3 * CHUNKS; i++) {   /* every request chunk reused, rewritten */
        t = send_req_gen(0, PROTO_HEADERS, "GET", "/r", "", NULL, 0, other, 2, NULL, 0, GEN, NULL);
        recv_ok(0, &r, t);
        resp_free(&r);
    }
    t = send_req_gen(0, PROTO_HEADERS_KEPT, "GET", "/r", "", NULL, 0, other, 2, NULL, 0, GEN, NULL);
    recv_ok(0, &r, t);
    ck_assert_uint_eq(r.body_len, sizeof(want) + 1);
    ck_assert(memcmp(r.body + 1, want, sizeof(want) - 1) == 0);
    resp_free(&r);
    t = send_req_gen(1, PROTO_HEADERS_SEQ, "GET", "/r", "", NULL, 0, hdrs, 3, NULL, 0, GEN, NULL);
    recv_ok(1, &r, t);
    ck_assert_msg(strstr(r.body, lazy ? "\"type\":\"RequestHeaders\"" : "\"type\":\"list\"") &&
                  strstr(r.body, "\"len\":3,\"first\":[\"host\",\"localhost\"],"
                                 "\"last\":[\"accept\",\"*/*\"],\"slice\":[[\"host\",\"localhost\"]],"
                                 "\"contains\":true,\"eq\":true,\"copy\":true"), "%s", r.body);
    resp_free(&r);
    ck_assert_uint_eq(free_chunks(fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}

START_TEST(test_pyworker__headers_list)
{
    headers_roundtrip(0);
}
END_TEST

START_TEST(test_pyworker__headers_lazy)
{
    headers_roundtrip(1);
}
END_TEST

/* FASTERAPI_NO_POOL (perf's off switch): every string, tuple and exporter
 * made afresh, the same answers. */
START_TEST(test_pyworker__headers_without_pooling)
{
    setenv("FASTERAPI_NO_POOL", "1", 1);
    headers_roundtrip(0);
}
END_TEST

/* A route's `extra` dict reaches the route table as a msgpack map. */
START_TEST(test_pyworker__describe_packs_extra)
{
    const char *args[] = {"--describe", "--app", "proto_app:dispatch", "--app-dir",
                          FA_SRCDIR "/tests/pyworker/proto", NULL};
    char *out;
    size_t len, off = 0;
    int st = run_capture(args, &out, &len);
    msgpack_zone zone;
    msgpack_object o, *r, *m;
    int seen = 0;

    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "describe exited with 0x%x", st);
    msgpack_zone_init(&zone, 4096);
    ck_assert_int_eq(msgpack_unpack(out, len, &off, &zone, &o), MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(o.via.array.size, N_PROTO);
    r = &o.via.array.ptr[PROTO_STATIC];
    ck_assert_uint_eq(r->via.array.size, 5);
    ck_assert_int_eq(r->via.array.ptr[4].type, MSGPACK_OBJECT_MAP);
    m = &r->via.array.ptr[4];
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        msgpack_object_kv *kv = &m->via.map.ptr[i];
        const char *k = kv->key.via.str.ptr;
        uint32_t kn = kv->key.via.str.size;

        if (kn == 4 && memcmp(k, "body", 4) == 0) {
            ck_assert_int_eq(kv->val.type, MSGPACK_OBJECT_BIN);
            ck_assert_uint_eq(kv->val.via.bin.size, 4);
            ck_assert(memcmp(kv->val.via.bin.ptr, "\0bin", 4) == 0);
            seen |= 1;
        } else if (kn == 12 && memcmp(k, "content_type", 12) == 0) {
            ck_assert_int_eq(kv->val.type, MSGPACK_OBJECT_NIL);
            seen |= 2;
        } else if (kn == 1 && k[0] == 'n') {
            msgpack_object *a = kv->val.via.array.ptr;
            ck_assert_uint_eq(kv->val.via.array.size, 5);
            ck_assert_int_eq(a[0].type, MSGPACK_OBJECT_FLOAT64);
            ck_assert_int_eq(a[1].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
            ck_assert_uint_eq(a[2].via.u64, UINT64_MAX);
            ck_assert_int_eq(a[3].type, MSGPACK_OBJECT_BOOLEAN);
            ck_assert_uint_eq(a[4].via.array.size, 2);
            seen |= 4;
        }
    }
    ck_assert_int_eq(seen, 7);
    msgpack_zone_destroy(&zone);
    free(out);
}
END_TEST

/* A value that cannot be encoded, one larger than the arena, a buffer
 * that is not contiguous: 500 each (logged), the chunks of the aborted
 * message back in the arena, and the worker serves on. */
START_TEST(test_pyworker__bad_bodies_500_then_serves)
{
    static const int routes[] = {PROTO_BAD_JSON, PROTO_HUGE_JSON, PROTO_NONCONTIG};
    struct resp r;

    proto_start();
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        proto_get(1, routes[i], &r);
        ck_assert_msg(r.status == 500, "route %d: status %d", routes[i], r.status);
        ck_assert_str_eq(r.body, "Internal Server Error\n");
        resp_free(&r);
        ck_assert_uint_eq(free_chunks(fa_seg_py_arena(&H.seg, SLOT)), CHUNKS);
    }
    proto_get(1, PROTO_JSON, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_uint_eq(fa_seg_py_slot(&H.seg, SLOT)->stats.errors, 3);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* bytearray and memoryview bodies, including the request's own body view
 * and a slice of it, copied once; the request chunk is freed after. */
START_TEST(test_pyworker__buffer_bodies)
{
    struct resp r;
    uint32_t t;

    proto_start();
    proto_get(0, PROTO_BYTEARRAY, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "bytearray body");
    resp_free(&r);
    t = send_req(0, PROTO_ECHO_VIEW, "POST", "/r", NULL, 0, "hello view", 10);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello view");
    resp_free(&r);
    t = send_req(0, PROTO_ECHO_SLICE, "POST", "/r", NULL, 0, "[slice]", 7);
    recv_ok(0, &r, t);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "slice");
    resp_free(&r);
    ck_assert_uint_eq(free_chunks(fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* The 4th item of dispatch's result runs after the response is published
 * and the HTTP worker woken: the hook waits for a file that the test makes
 * only once it holds the response. A hook that raises is logged only. */
START_TEST(test_pyworker__after_hook_runs_after_publish)
{
    char go[256];
    struct resp r;
    uint64_t t0;
    int fd;

    proto_start();
    snprintf(go, sizeof(go), "%s/after-go", getenv("FA_TEST_DIR"));
    t0 = now_ms();
    proto_get(0, PROTO_AFTER, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"ok\":true}");
    ck_assert_uint_lt(now_ms() - t0, 4000);
    resp_free(&r);
    fd = open(go, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    proto_get(0, PROTO_AFTER_LOG, &r);
    ck_assert_str_eq(r.body, "[\"go\"]");
    resp_free(&r);
    proto_get(1, PROTO_AFTER_RAISES, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    proto_get(1, PROTO_AFTER_LOG, &r);
    ck_assert_str_eq(r.body, "[\"raised\"]");
    resp_free(&r);
    ck_assert_uint_eq(fa_seg_py_slot(&H.seg, SLOT)->stats.errors, 0);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* The package's internal header for files sent by the HTTP worker passes
 * as it is (a path's bytes, latin-1 decoded). */
START_TEST(test_pyworker__sendfile_header_passes)
{
    struct resp r;

    proto_start();
    proto_get(0, PROTO_SENDFILE, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(resp_header(&r, "x-fasterapi-sendfile"));
    ck_assert_str_eq(resp_header(&r, "x-fasterapi-sendfile"),
                     "/srv/files/caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.txt");
    ck_assert_uint_eq(r.body_len, 0);
    resp_free(&r);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Deferred and streamed responses (PROTOCOL.md)                        */
/* ------------------------------------------------------------------ */

enum { PART_WHOLE, PART_START, PART_MORE, PART_LAST, PART_ABORT };

/* One response message of any kind: a whole response, the start of a
 * stream, or a part ([1] more, [0] last, [2] abort). */
struct msg {
    uint32_t token;
    int kind;
    int status;              /* PART_WHOLE and PART_START */
    char body[4096];
    size_t body_len;
};

/* Pops one message from ring h (doorbell protocol, as recv_resp), copies
 * it out and frees its chunks. 1, or 0 on timeout. */
static int recv_msg(uint32_t h, struct msg *m, int timeout_ms)
{
    struct fa_slot_sh *me = fa_seg_http_slot(&H.seg, h);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    struct iovec iov[MAX_IOV];
    struct fa_desc d;
    msgpack_zone zone;
    msgpack_object o;
    size_t off = 0;
    int n;

    while (fa_ring_pop(&H.resp[h], &d, 1) != 1) {
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
    ck_assert_msg(n == 1, "a test message spans %d chunks", n);
    msgpack_zone_init(&zone, 2048);
    ck_assert_int_ge(msgpack_unpack(iov[0].iov_base, iov[0].iov_len, &off, &zone, &o),
                     MSGPACK_UNPACK_EXTRA_BYTES);
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_ARRAY);
    memset(m, 0, sizeof(*m));
    m->token = d.token;
    switch (o.via.array.size) {
    case 1:
        ck_assert_int_eq(o.via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        ck_assert_uint_le(o.via.array.ptr[0].via.u64, 2);
        m->kind = o.via.array.ptr[0].via.u64 == 1 ? PART_MORE
                  : o.via.array.ptr[0].via.u64 == 0 ? PART_LAST : PART_ABORT;
        break;
    case 3:
        ck_assert_uint_eq(o.via.array.ptr[2].via.u64, 1);
        m->kind = PART_START;
        m->status = (int)o.via.array.ptr[0].via.u64;
        break;
    default:
        ck_assert_uint_eq(o.via.array.size, 2);
        m->kind = PART_WHOLE;
        m->status = (int)o.via.array.ptr[0].via.u64;
    }
    msgpack_zone_destroy(&zone);
    m->body_len = iov[0].iov_len - off;
    ck_assert_uint_lt(m->body_len, sizeof(m->body));
    memcpy(m->body, (char *)iov[0].iov_base + off, m->body_len);
    fa_msg_free(&H.seg, fa_seg_py_arena(&H.seg, SLOT), d.chunk);
    return 1;
}

static void recv_msg_ok(uint32_t h, struct msg *m, uint32_t token, int kind)
{
    ck_assert_msg(recv_msg(h, m, 10000) == 1, "no message on ring %u within 10 s", h);
    ck_assert_uint_eq(m->token, token);
    ck_assert_int_eq(m->kind, kind);
}

/* The disconnect notice an HTTP worker sends when a client goes away. */
static void send_notice(uint32_t h, uint32_t token)
{
    struct fa_desc d = {.chunk = FA_CHUNK_NONE, .len = 0, .gen = GEN, .token = token};

    ck_assert_int_eq(fa_ring_push(&H.req[h], &d), 0);
    fa_doorbell_ring(&fa_seg_py_slot(&H.seg, SLOT)->sleeping, H.py_efd);
}

static int marked(const char *name, char *buf, size_t size)
{
    char path[256];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", getenv("FA_TEST_DIR"), name);
    if ((fd = open(path, O_RDONLY)) < 0)
        return 0;
    n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return 1;
}

/* defer() then respond() from the event loop 50 ms later, with the request
 * body still readable; a plain request sent meanwhile is answered first
 * (the loop is not blocked), and every request chunk comes back. */
START_TEST(test_pyworker__deferred_answered_from_the_loop)
{
    struct msg m;
    uint32_t later, now;

    proto_start();
    later = send_req(0, PROTO_DEFER_LATER, "POST", "/r", NULL, 0, "abc", 3);
    now = send_req(1, PROTO_JSON, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(1, &m, now, PART_WHOLE);
    ck_assert_int_eq(m.status, 200);
    ck_assert_int_eq(recv_msg(0, &m, 0), 0);   /* not yet */
    recv_msg_ok(0, &m, later, PART_WHOLE);
    ck_assert_int_eq(m.status, 200);
    ck_assert_str_eq(m.body, "later:abc");
    ck_assert_uint_eq(free_chunks(fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    ck_assert_uint_eq(free_chunks(fa_seg_py_arena(&H.seg, SLOT)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* A stream written inside dispatch: start (status, headers), parts in
 * order (an empty one too), the last one. */
START_TEST(test_pyworker__stream_messages_in_order)
{
    static const char *parts[] = {"one,", "", "two,"};
    struct msg m;
    uint32_t t;

    proto_start();
    t = send_req(0, PROTO_STREAM_SYNC, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(0, &m, t, PART_START);
    ck_assert_int_eq(m.status, 201);
    ck_assert_uint_eq(m.body_len, 0);
    for (size_t i = 0; i < 3; i++) {
        recv_msg_ok(0, &m, t, PART_MORE);
        ck_assert_str_eq(m.body, parts[i]);
    }
    recv_msg_ok(0, &m, t, PART_LAST);
    ck_assert_str_eq(m.body, "three");
    ck_assert_uint_eq(free_chunks(fa_seg_py_arena(&H.seg, SLOT)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* Backpressure: while the HTTP worker takes nothing, a stream gets 16
 * messages out (the start and 15 parts) and send(block=False) is refused;
 * once they are taken, it goes on. */
START_TEST(test_pyworker__stream_backpressure)
{
    struct msg m;
    uint32_t t;
    int parts = 0;

    proto_start();
    t = send_req(0, PROTO_STREAM_PRESSURE, "GET", "/r", NULL, 0, NULL, 0);
    usleep(300000);
    recv_msg_ok(0, &m, t, PART_START);
    for (;;) {
        recv_msg_ok(0, &m, t, PART_MORE);
        if (strcmp(m.body, "y") == 0)
            break;
        ck_assert_str_eq(m.body, "x");
        parts++;
    }
    recv_msg_ok(0, &m, t, PART_LAST);
    ck_assert_int_eq(parts, 15);
    ck_assert_str_eq(m.body, "15");
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* A disconnect notice calls the request's on_disconnect (which answers);
 * a notice for a request not open is ignored. */
START_TEST(test_pyworker__disconnect_notice)
{
    struct msg m;
    char buf[16];
    uint32_t t;

    proto_start();
    send_notice(1, 12345);                      /* nobody's: ignored */
    t = send_req(0, PROTO_DEFER_GONE, "GET", "/r", NULL, 0, NULL, 0);
    ck_assert_int_eq(recv_msg(0, &m, 100), 0);
    send_notice(0, t);
    recv_msg_ok(0, &m, t, PART_WHOLE);
    ck_assert_int_eq(m.status, 500);            /* abort() before a start */
    ck_assert(marked("gone", buf, sizeof(buf)));
    ck_assert_str_eq(buf, "1");
    ck_assert_uint_eq(free_chunks(fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* A stream sent from inside dispatch learns of the notice while it waits
 * for room (the ring is only peeked: its requests stay in order), stops,
 * and its abort cuts the stream. */
START_TEST(test_pyworker__stream_stops_when_client_gone)
{
    struct msg m;
    char buf[64];
    uint32_t t;

    proto_start();
    t = send_req(0, PROTO_STREAM_UNTIL_GONE, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(0, &m, t, PART_START);
    for (int i = 0; i < 40; i++)
        recv_msg_ok(0, &m, t, PART_MORE);
    send_notice(0, t);
    ck_assert_msg(recv_msg(0, &m, 10000) == 1, "the stream did not end");
    for (int i = 0; m.kind == PART_MORE; i++) {
        ck_assert_int_lt(i, 100);
        ck_assert_msg(recv_msg(0, &m, 10000) == 1, "the stream did not end");
    }
    ck_assert_int_eq(m.kind, PART_ABORT);
    ck_assert(marked("stream-gone", buf, sizeof(buf)));
    ck_assert_ptr_nonnull(strstr(buf, " True"));
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* FASTERAPI_TIMEOUT: a deferred request never answered gets 504 and its
 * on_disconnect is called. */
START_TEST(test_pyworker__deferred_deadline_504)
{
    struct msg m;
    char buf[16];
    uint32_t t;
    double t0;

    setenv("FASTERAPI_TIMEOUT", "1", 1);
    proto_start();
    t0 = now_s();
    t = send_req(0, PROTO_DEFER_FOREVER, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(0, &m, t, PART_WHOLE);
    ck_assert_int_eq(m.status, 504);
    ck_assert(now_s() - t0 >= 0.9);
    ck_assert(marked("deadline", buf, sizeof(buf)));
    ck_assert_uint_eq(free_chunks(fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* FASTERAPI_PY_CONCURRENCY=2: never more than 2 open at once, and 2 are. */
START_TEST(test_pyworker__concurrency_bound)
{
    uint32_t tokens[6];
    int saw_two = 0;
    struct msg m;

    setenv("FASTERAPI_PY_CONCURRENCY", "2", 1);
    proto_start();
    for (int i = 0; i < 6; i++)
        tokens[i] = send_req(0, PROTO_DEFER_COUNT, "GET", "/r", NULL, 0, NULL, 0);
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(recv_msg(0, &m, 10000) == 1, "answer %d missing", i);
        ck_assert_int_eq(m.status, 200);
        ck_assert_msg(strcmp(m.body, "1") == 0 || strcmp(m.body, "2") == 0, "%s open", m.body);
        saw_two |= strcmp(m.body, "2") == 0;
    }
    (void)tokens;
    ck_assert(saw_two);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* flags reach dispatch; defer() twice is refused and respond() inside
 * dispatch answers; dispatch raising after defer() is a 500; an aborted
 * stream is cut and later calls with its rid are ignored. */
START_TEST(test_pyworker__deferred_edges)
{
    struct msg m;
    uint32_t t;

    proto_start();
    t = send_req(0, PROTO_FLAGS, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(0, &m, t, PART_WHOLE);
    ck_assert_str_eq(m.body, "1");              /* send_req_gen's flags: keep-alive */
    t = send_req(0, PROTO_DEFER_TWICE, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(0, &m, t, PART_WHOLE);
    ck_assert_int_eq(m.status, 200);
    ck_assert_ptr_nonnull(strstr(m.body, "already"));
    t = send_req(0, PROTO_DEFER_RAISES, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(0, &m, t, PART_WHOLE);
    ck_assert_int_eq(m.status, 500);
    t = send_req(0, PROTO_STREAM_ABORT, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(0, &m, t, PART_START);
    recv_msg_ok(0, &m, t, PART_MORE);
    ck_assert_str_eq(m.body, "partial");
    recv_msg_ok(0, &m, t, PART_ABORT);
    ck_assert_int_eq(recv_msg(0, &m, 200), 0);
    t = send_req(0, PROTO_JSON, "GET", "/r", NULL, 0, NULL, 0);
    recv_msg_ok(0, &m, t, PART_WHOLE);
    ck_assert_int_eq(m.status, 200);
    ck_assert_uint_eq(free_chunks(fa_seg_http_arena(&H.seg, 0)), CHUNKS);
    ck_assert_uint_eq(free_chunks(fa_seg_py_arena(&H.seg, SLOT)), CHUNKS);
    ck_assert_int_eq(harness_stop(), 0);
}
END_TEST

/* After SIGTERM's drain the worker calls fasterapi._boot.shutdown(). */
START_TEST(test_pyworker__shutdown_hook_after_drain)
{
    char path[256], buf[64] = "";
    struct resp r;
    int fd;

    proto_start();
    proto_get(0, PROTO_JSON, &r);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/shutdown", getenv("FA_TEST_DIR"));
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(harness_stop(), 0);
    fd = open(path, O_RDONLY);
    ck_assert_msg(fd >= 0, "shutdown() did not run");
    ck_assert_int_gt(read(fd, buf, sizeof(buf) - 1), 0);
    close(fd);
    ck_assert_str_eq(buf, "shutdown ran");
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
    int json = getenv("FA_PYW_BENCH_JSON") != NULL && body_len == 0;
    int proto = json && getenv("FA_PYW_BENCH_PROTO") != NULL;
    static const char hello[] = "{\"hello\":\"world\"}";
    const char *what = body_len ? "POST /echo" : json ? "GET /hello" : "GET /plain";
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
    if (proto)
        proto_start();
    else
        harness_start();
    py = fa_seg_py_slot(&H.seg, SLOT);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint64(&pk, body_len ? ROUTE_ECHO : proto ? PROTO_HELLO : json ? ROUTE_HELLO
                                                                          : ROUTE_PLAIN);
    msgpack_pack_str_with_body(&pk, body_len ? "POST" : "GET", body_len ? 4 : 3);
    msgpack_pack_str_with_body(&pk, what + (body_len ? 5 : 4), strlen(what + (body_len ? 5 : 4)));
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
                if (bench_recv(h, body_len ? body : json ? hello : "ok",
                               body_len ? body_len : json ? sizeof(hello) - 1 : 2) < 0)
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
            what, total, dt, (double)total / dt, dt * 1e6 / (double)total,
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

    tc = tcase_create("envelope");
    tcase_add_test(tc, test_pyworker__envelope_reads_every_form);
    tcase_add_test(tc, test_pyworker__envelope_refuses_wrong_types);
    tcase_add_test(tc, test_pyworker__envelope_writes_response_heads);
    suite_add_tcase(s, tc);

    tc = tcase_create("protocol");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pyworker__run_mode);
    tcase_add_test(tc, test_pyworker__json_body_encoded_into_chunks);
    tcase_add_test(tc, test_pyworker__bad_bodies_500_then_serves);
    tcase_add_test(tc, test_pyworker__buffer_bodies);
    tcase_add_test(tc, test_pyworker__after_hook_runs_after_publish);
    tcase_add_test(tc, test_pyworker__sendfile_header_passes);
    tcase_add_test(tc, test_pyworker__shutdown_hook_after_drain);
    tcase_add_test(tc, test_pyworker__headers_list);
    tcase_add_test(tc, test_pyworker__headers_lazy);
    tcase_add_test(tc, test_pyworker__headers_without_pooling);
    tcase_add_test(tc, test_pyworker__describe_packs_extra);
    suite_add_tcase(s, tc);

    tc = tcase_create("deferred");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pyworker__deferred_answered_from_the_loop);
    tcase_add_test(tc, test_pyworker__stream_messages_in_order);
    tcase_add_test(tc, test_pyworker__stream_backpressure);
    tcase_add_test(tc, test_pyworker__disconnect_notice);
    tcase_add_test(tc, test_pyworker__stream_stops_when_client_gone);
    tcase_add_test(tc, test_pyworker__deferred_deadline_504);
    tcase_add_test(tc, test_pyworker__concurrency_bound);
    tcase_add_test(tc, test_pyworker__deferred_edges);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_pyworker__json_encoder_matches_json_dumps);
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
