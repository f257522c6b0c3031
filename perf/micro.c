/* perf/micro.c - in-process micro-benchmarks of the C hot path, one case per
 * run, for perf/micro.py (which prints the table; see perf/README.md).
 *
 *   perf/fa-micro CASE N          run CASE N times inside micro_run()
 *   perf/fa-micro --time CASE N   ... and print "ns/op" (wall clock, best of 5)
 *   perf/fa-micro --list
 *
 * Instruction counts come from callgrind with --toggle-collect=micro_run
 * (set-up excluded) or, for the two-process hand-off, --toggle-collect on
 * ho_send and ho_recv (the spinning between them excluded), divided by N.
 * Every case runs the project's own code (worker/http.c, worker/router.c,
 * worker/dispatch.c, shm/), never a copy, so the figures follow the code.
 *
 * Cases:
 *   parse           fa_http_feed: wrk's "GET /json" request (Host only)
 *   parse-browser   fa_http_feed: a GET with 10 browser-like headers
 *   route           fa_router_match GET /users/7 among 20 routes
 *   route-static    fa_router_match GET /json among 20 routes
 *   ring            SPSC ring, one process: reserve + commit + pop, 1 descriptor
 *   ring-batch32    ... 32 descriptors per commit and per pop (per descriptor)
 *   envelope-encode fa_dispatch_begin (msgpack into a shm chunk) + abort,
 *                   GET /users/7?verbose=true with wrk's headers
 *   envelope-decode fa_env_parse of that envelope (pyworker/envelope.c, the Python
 *                   worker's reader)
 *   response-decode msgpack_unpack of a response envelope into a zone cleared
 *                   after each (dispatch.c's way)
 *   handoff         two processes: the HTTP side writes a 200-byte envelope in
 *                   chunks and pushes its descriptor (+ doorbell check), the
 *                   Python side pops, validates (fa_msg_iov) and frees it;
 *                   per message, both processes, streaming (ring of 128)
 *   pingpong-spin   two processes, one message each way at a time, both
 *                   spinning: one-way latency = round trip / 2 (--time only)
 *   pingpong-sleep  same, both sleeping on their eventfd doorbell between
 *                   messages: one-way latency with a wake-up (--time only)
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <msgpack.h>

#include "shm/chunk.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "pyworker/envelope.h"
#include "shm/segment.h"
#include "worker/http.h"
#include "worker/router.h"
#include "worker/worker.h"

#define NOINLINE __attribute__((noinline))

static volatile uint64_t sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "fa-micro: %s\n", what);
    exit(1);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ---- parse -------------------------------------------------------------- */

static const char REQ_WRK[] = "GET /json HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
static const char REQ_BROWSER[] =
    "GET /users/7?verbose=true HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=4f2a9c1e7b; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Cache-Control: max-age=0\r\n"
    "X-Request-Id: 2b1f6c0e-8d3a-4c55-9e1b-0a7d2f4c9b31\r\n"
    "\r\n";

static struct {
    struct fa_http *h;
    const char *req;
    size_t len;
    struct fa_http_req last;
    uint64_t heads;
} P;

static int p_on_head(void *ctx, struct fa_http_req *req)
{
    P.last = *req;
    P.heads++;
    return 0;
}
static int p_on_body(void *ctx, const char *d, size_t n) { return 0; }
static int p_on_complete(void *ctx) { return 0; }

static void parse_setup(const char *req)
{
    static const struct fa_http_cb cb = {p_on_head, p_on_body, p_on_complete};
    struct fa_http_limits lim;

    fa_http_limits_default(&lim);
    P.h = fa_http_create(&lim, &cb, NULL);
    P.req = req;
    P.len = strlen(req);
}

static void parse_one(void)
{
    if (fa_http_feed(P.h, P.req, P.len) != (ssize_t)P.len)
        die("parse: the request did not parse");
}

/* ---- route -------------------------------------------------------------- */

static struct fa_router *R;
static const char *route_path;

static void route_setup(const char *path)
{
    static const struct { unsigned m; const char *p; } routes[] = {
        {HTTP_GET, "/plaintext"}, {HTTP_GET, "/json"}, {HTTP_GET, "/users/{user_id}"},
        {HTTP_POST, "/echo"}, {HTTP_GET, "/bytes64k"}, {HTTP_GET, "/async"},
        {HTTP_GET, "/native/plaintext"}, {HTTP_GET, "/items/{item_id}"}, {HTTP_POST, "/items"},
        {HTTP_PUT, "/items/{item_id}"}, {HTTP_DELETE, "/items/{item_id}"},
        {HTTP_GET, "/users/{user_id}/posts"}, {HTTP_GET, "/users/{user_id}/posts/{post_id}"},
        {HTTP_POST, "/users"}, {HTTP_GET, "/health"}, {HTTP_GET, "/orders/{order_id}"},
        {HTTP_POST, "/orders"}, {HTTP_GET, "/search"}, {HTTP_GET, "/static/app.js"},
        {HTTP_GET, "/"},
    };
    char *cause = NULL;

    R = fa_router_create();
    for (uint32_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (fa_router_add(R, routes[i].m, routes[i].p, i, &cause) < 0)
            die(cause);
    route_path = path;
}

static void route_one(void)
{
    struct fa_match m;
    if (fa_router_match(R, HTTP_GET, route_path, strlen(route_path), &m) != FA_MATCH_OK)
        die("route: no match");
    sink += m.route_id;
}

/* ---- segment ------------------------------------------------------------ */

static struct fa_seg SEG;

static void seg_setup(uint32_t ring_cap)
{
    char name[40], *cause = NULL;
    struct fa_seg_params sp = {
        .name = name, .n_http = 1, .max_py = 1, .ring_cap = ring_cap,
        .chunk_size = 16384, .chunks_per_arena = 256,   /* the master's chunk size */
    };

    snprintf(name, sizeof name, "perfmicro%d", (int)getpid());
    if (fa_seg_create(&SEG, &sp, &cause) < 0)
        die(cause);
    fa_seg_unlink(name);   /* the mapping stays; nothing is left behind */
}

/* ---- ring (one process) ------------------------------------------------- */

static struct fa_ring RP, RC;
static uint32_t ring_batch = 1;

static void ring_setup(uint32_t batch)
{
    seg_setup(1024);
    fa_ring_init(&RP, fa_seg_req_ring(&SEG, 0, 0), SEG.hdr->ring_cap);
    fa_ring_init(&RC, fa_seg_req_ring(&SEG, 0, 0), SEG.hdr->ring_cap);
    ring_batch = batch;
}

static void ring_one(void)
{
    struct fa_desc out[64];
    for (uint32_t i = 0; i < ring_batch; i++) {
        struct fa_desc *d = fa_ring_reserve(&RP);
        d->chunk = i;
        d->len = 200;
        d->gen = 1;
        d->token = i;
    }
    fa_ring_commit(&RP);
    if (fa_ring_pop(&RC, out, ring_batch) != ring_batch)
        die("ring: lost a descriptor");
    sink += out[0].token;
}

/* ---- envelopes ---------------------------------------------------------- */

static struct fa_worker W;
static struct fa_resp RESP;
static struct fa_http_req EREQ;
static struct fa_match EMATCH;
static char env_buf[4096];
static size_t env_len;
static msgpack_zone ZONE;
static char resp_env[256];
static size_t resp_env_len;

static void envelope_setup(void)
{
    static const char req[] = "GET /users/7?verbose=true HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

    seg_setup(1024);
    fa_arena_init(&W.arena, &SEG, fa_seg_http_arena(&SEG, 0), 0, 0);
    W.seg = &SEG;
    parse_setup(req);
    parse_one();
    EREQ = P.last;
    route_setup("/users/7");
    if (fa_router_match(R, HTTP_GET, EREQ.path, EREQ.path_len, &EMATCH) != FA_MATCH_OK)
        die("envelope: no route");
    /* One envelope, copied out for the decode cases. */
    if (fa_dispatch_begin(&W, &RESP, &EREQ, &EMATCH, "127.0.0.1", 54321) != 0)
        die("envelope: fa_dispatch_begin failed");
    {
        struct iovec iov[4];
        struct fa_desc d;
        fa_msg_end(&RESP.w, 0, 0, &d);
        int n = fa_msg_iov(&SEG, fa_seg_http_arena(&SEG, 0), 0, &d, iov, 4);
        if (n != 1 || iov[0].iov_len > sizeof env_buf)
            die("envelope: unexpected chain");
        memcpy(env_buf, iov[0].iov_base, iov[0].iov_len);
        env_len = iov[0].iov_len;
        fa_msg_free(&SEG, fa_seg_http_arena(&SEG, 0), d.chunk);
    }
    msgpack_zone_init(&ZONE, 8192);
    /* A response envelope as the Python worker writes it for /users/7. */
    {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint16(&pk, 200);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, "content-type", 12);
        msgpack_pack_str_with_body(&pk, "application/json", 16);
        msgpack_sbuffer_write(&sb, "{\"id\":7,\"verbose\":true}", 23);
        memcpy(resp_env, sb.data, sb.size);
        resp_env_len = sb.size;
        msgpack_sbuffer_destroy(&sb);
    }
}

static void envelope_encode_one(void)
{
    if (fa_dispatch_begin(&W, &RESP, &EREQ, &EMATCH, "127.0.0.1", 54321) != 0)
        die("envelope: fa_dispatch_begin failed");
    sink += RESP.w.len;
    fa_msg_abort(&RESP.w);
}

static void envelope_decode_one(void)
{
    struct fa_env e;
    const char *why;
    if (fa_env_parse(env_buf, env_len, &e, &why) != 0)
        die("envelope-decode: bad envelope");
    sink += e.n_headers + e.head_len;
}

static void response_decode_one(void)
{
    msgpack_object o;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack(resp_env, resp_env_len, &off, &ZONE, &o);
    if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_EXTRA_BYTES)
        die("response-decode: bad envelope");
    sink += o.via.array.ptr[0].via.u64 + off;
    msgpack_zone_clear(&ZONE);
}

/* ---- two processes ------------------------------------------------------ */

static char ho_payload[200];
static struct fa_arena HA;            /* the HTTP side's arena */
static int efd_http, efd_py;

/* HTTP side, one message: envelope into chunks, descriptor onto the ring,
 * doorbell if the consumer sleeps. 0, or -1 when the arena or ring is full
 * (the caller waits outside, uncounted, and retries). */
NOINLINE int ho_send(uint32_t seq)
{
    struct fa_msg_writer w;
    struct fa_desc *slot;

    if ((slot = fa_ring_reserve(&RP)) == NULL)
        return -1;
    if (fa_msg_begin(&w, &HA) < 0)
        return -1;                      /* reserved slot stays uncommitted */
    fa_msg_write(&w, ho_payload, sizeof ho_payload);
    fa_msg_end(&w, 1, 1, slot);
    slot->gen = 1;
    slot->token = seq;
    fa_ring_commit(&RP);
    fa_doorbell_ring(&fa_seg_py_slot(&SEG, 0)->sleeping, efd_py);
    return 0;
}

/* Python side: pops what is there, validates and frees each message.
 * Returns the number taken. Called only when the ring is not empty. */
NOINLINE uint32_t ho_recv(uint64_t *sum)
{
    struct fa_desc d[64];
    struct iovec iov[4];
    uint32_t n = fa_ring_pop(&RC, d, 64);

    for (uint32_t i = 0; i < n; i++) {
        if (fa_msg_iov(&SEG, fa_seg_http_arena(&SEG, 0), 1, &d[i], iov, 4) != 1)
            die("handoff: invalid descriptor");
        *sum += ((unsigned char *)iov[0].iov_base)[0] + d[i].token;
        fa_msg_free(&SEG, fa_seg_http_arena(&SEG, 0), d[i].chunk);
    }
    if (fa_ring_space_wanted(&RC))
        fa_doorbell_ring(&fa_seg_http_slot(&SEG, 0)->sleeping, efd_http);
    return n;
}

static void ho_setup(void)
{
    seg_setup(128);   /* smaller than the arena: the ring fills first */
    memset(ho_payload, 'e', sizeof ho_payload);
    efd_http = fa_doorbell_create();
    efd_py = fa_doorbell_create();
    if (efd_http < 0 || efd_py < 0)
        die("eventfd");
}

/* Waits on our doorbell with the sleeping-flag protocol until ready() holds. */
static void ho_wait(_Atomic uint32_t *sleeping, int efd, int (*ready)(void), int spin)
{
    for (;;) {
        for (int i = 0; i < spin; i++) {
            if (ready())
                return;
            cpu_relax();
        }
        fa_doorbell_sleep_begin(sleeping);
        if (ready()) {
            fa_doorbell_sleep_cancel(sleeping);
            return;
        }
        if (fa_doorbell_wait(efd, 5000) == 0)
            die("handoff: lost wake-up");
        fa_doorbell_sleep_cancel(sleeping);
    }
}

static int ho_req_ready(void) { return !fa_ring_empty(&RC); }
static int ho_space(void) { return fa_ring_depth(RP.sh) < RP.mask + 1; }
static struct fa_ring RESP_P, RESP_C;
static int ho_resp_ready(void) { return !fa_ring_empty(&RESP_C); }

/* Streaming: the child is the Python side; returns when it took n messages. */
static void handoff_run(long n)
{
    pid_t pid;
    int st;

    fa_ring_init(&RP, fa_seg_req_ring(&SEG, 0, 0), SEG.hdr->ring_cap);
    fa_ring_init(&RC, fa_seg_req_ring(&SEG, 0, 0), SEG.hdr->ring_cap);
    fa_arena_init(&HA, &SEG, fa_seg_http_arena(&SEG, 0), 0, 0);
    if ((pid = fork()) < 0)
        die("fork");
    if (pid == 0) {
        uint64_t sum = 0;
        long got = 0;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        while (got < n) {
            ho_wait(&fa_seg_py_slot(&SEG, 0)->sleeping, efd_py, ho_req_ready, 2000);
            got += ho_recv(&sum);
        }
        sink = sum;
        _exit(0);
    }
    for (long i = 0; i < n; i++) {
        /* Ring full (it fills before the arena: 128 slots, 256 chunks):
         * ask for space and sleep until the consumer rings (uncounted). */
        while (ho_send((uint32_t)i) < 0)
            if (!fa_ring_want_space(&RP))
                ho_wait(&fa_seg_http_slot(&SEG, 0)->sleeping, efd_http, ho_space, 0);
    }
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("handoff: the consumer failed");
}

/* Ping-pong: the child echoes each request descriptor on the response ring. */
static void pingpong_run(long n, int spin)
{
    pid_t pid;
    int st;
    struct fa_desc d;

    fa_ring_init(&RP, fa_seg_req_ring(&SEG, 0, 0), SEG.hdr->ring_cap);
    fa_ring_init(&RC, fa_seg_req_ring(&SEG, 0, 0), SEG.hdr->ring_cap);
    fa_ring_init(&RESP_P, fa_seg_resp_ring(&SEG, 0, 0), SEG.hdr->ring_cap);
    fa_ring_init(&RESP_C, fa_seg_resp_ring(&SEG, 0, 0), SEG.hdr->ring_cap);
    if ((pid = fork()) < 0)
        die("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (long i = 0; i < n; i++) {
            ho_wait(&fa_seg_py_slot(&SEG, 0)->sleeping, efd_py, ho_req_ready, spin);
            if (fa_ring_pop(&RC, &d, 1) != 1)
                die("pingpong: empty");
            fa_ring_push(&RESP_P, &d);
            fa_doorbell_ring(&fa_seg_http_slot(&SEG, 0)->sleeping, efd_http);
        }
        _exit(0);
    }
    for (long i = 0; i < n; i++) {
        d.token = (uint32_t)i;
        fa_ring_push(&RP, &d);
        fa_doorbell_ring(&fa_seg_py_slot(&SEG, 0)->sleeping, efd_py);
        ho_wait(&fa_seg_http_slot(&SEG, 0)->sleeping, efd_http, ho_resp_ready, spin);
        if (fa_ring_pop(&RESP_C, &d, 1) != 1 || d.token != (uint32_t)i)
            die("pingpong: wrong answer");
    }
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("pingpong: the echo side failed");
}

/* ---- driver ------------------------------------------------------------- */

enum kind { LOOP, HANDOFF, PING_SPIN, PING_SLEEP };

struct mcase {
    const char *name;
    enum kind kind;
    void (*setup)(void);
    void (*one)(void);
};

static void s_parse(void) { parse_setup(REQ_WRK); }
static void s_parse_browser(void) { parse_setup(REQ_BROWSER); }
static void s_route(void) { route_setup("/users/7"); }
static void s_route_static(void) { route_setup("/json"); }
static void s_ring(void) { ring_setup(1); }
static void s_ring32(void) { ring_setup(32); }

static const struct mcase cases[] = {
    {"parse", LOOP, s_parse, parse_one},
    {"parse-browser", LOOP, s_parse_browser, parse_one},
    {"route", LOOP, s_route, route_one},
    {"route-static", LOOP, s_route_static, route_one},
    {"ring", LOOP, s_ring, ring_one},
    {"ring-batch32", LOOP, s_ring32, ring_one},
    {"envelope-encode", LOOP, envelope_setup, envelope_encode_one},
    {"envelope-decode", LOOP, envelope_setup, envelope_decode_one},
    {"response-decode", LOOP, envelope_setup, response_decode_one},
    {"handoff", HANDOFF, ho_setup, NULL},
    {"pingpong-spin", PING_SPIN, ho_setup, NULL},
    {"pingpong-sleep", PING_SLEEP, ho_setup, NULL},
};

/* The measured region: callgrind counts only inside this function. */
NOINLINE void micro_run(const struct mcase *c, long n)
{
    switch (c->kind) {
    case LOOP:
        for (long i = 0; i < n; i++)
            c->one();
        break;
    case HANDOFF:
        handoff_run(n);
        break;
    case PING_SPIN:
        pingpong_run(n, 1 << 30);
        break;
    case PING_SLEEP:
        pingpong_run(n, 0);
        break;
    }
}

int main(int argc, char **argv)
{
    int timed = 0;

    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--time") == 0) {
        timed = 1;
        argv++;
        argc--;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: fa-micro [--time] CASE N | --list\n");
        return 64;
    }
    const struct mcase *c = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (strcmp(cases[i].name, argv[1]) == 0)
            c = &cases[i];
    if (c == NULL) {
        fprintf(stderr, "fa-micro: unknown case '%s' (--list)\n", argv[1]);
        return 64;
    }
    long n = atol(argv[2]);
    c->setup();
    if (!timed) {
        micro_run(c, n);
        return 0;
    }
    double best = 1e300;
    micro_run(c, n / 10 + 1);   /* warm-up */
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ns();
        micro_run(c, n);
        double dt = (now_ns() - t0) / (double)n;
        if (dt < best)
            best = dt;
    }
    printf("%.2f ns/op\n", best);
    return 0;
}
