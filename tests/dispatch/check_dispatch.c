/* check_dispatch.c - the HTTP worker against a hostile Python worker.
 *
 * A real HTTP worker (fa_worker_run, forked) serves a real socket; this
 * process plays the Python worker on the real segment: it takes the request
 * envelope from the ring and answers with descriptors and envelopes that are
 * valid, corrupt or malicious. Whatever it sends, the HTTP worker must stay
 * inside the segment, answer the client (502 for a broken answer, 500 for
 * a header that would inject), and keep serving.
 *
 * Zero copy: the HTTP worker, traced with ptrace, sends a Python response's
 * body from the shm chunks the Python worker wrote it into (the iovecs of
 * its sendmsg/writev point inside the segment).
 *
 * Streamed answers (PROTOCOL.md, "Deferred and streamed responses"): the
 * bytes on the socket exactly, chunks freed once written (the arena's free
 * count back to full), disconnect notices on the request ring.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <msgpack.h>

#include "shm/chunk.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "worker/router.h"
#include "worker/routes.h"
#include "worker/worker.h"

#define N_HTTP 1
#define MAX_PY 1
#define PY_SELF (N_HTTP + 0)   /* holder id of Python slot 0 */

static struct fa_seg seg;
static char seg_name[64];
static struct fa_routes routes;
static struct fa_worker_config cfg;
static int lfd, port, http_efd[N_HTTP], py_efd[MAX_PY];
static pid_t child;
static struct fa_ring rq, rs;

/* Forks the HTTP worker of slot 0 (again, after a kill: a restart). */
static void spawn_worker(void)
{
    child = fork();
    if (child == 0) {
        struct fa_worker_env env = {&cfg, &seg, &routes, lfd, 0, http_efd, py_efd};
        _exit(fa_worker_run(&env));
    }
}

static void start_server(void)
{
    char *cause = NULL;
    snprintf(seg_name, sizeof seg_name, "ckd%d", (int)getpid());
    struct fa_seg_params sp = {seg_name, N_HTTP, MAX_PY, 16, 4096, 32};
    ck_assert_msg(fa_seg_create(&seg, &sp, &cause) == 0, "%s", cause);

    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_str_with_body(&pk, "GET", 3);
    msgpack_pack_str_with_body(&pk, "/x", 2);
    msgpack_pack_str_with_body(&pk, "python", 6);
    ck_assert_msg(fa_routes_load(&routes, sb.data, sb.size, &cause) == 0, "%s", cause);
    msgpack_sbuffer_destroy(&sb);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(lfd, 16), 0);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    for (int h = 0; h < N_HTTP; h++)
        http_efd[h] = fa_doorbell_create();
    for (int p = 0; p < MAX_PY; p++)
        py_efd[p] = fa_doorbell_create();

    struct fa_slot_sh *ps = fa_seg_py_slot(&seg, 0);
    atomic_store(&ps->gen, 1);
    atomic_store(&ps->state, FA_SLOT_READY);

    fa_http_limits_default(&cfg.limits);
    cfg.max_pipeline = 16;
    cfg.backlog_max = 64;
    cfg.graceful_timeout = 1;
    cfg.header_timeout = 10;
    cfg.body_timeout = 10;
    cfg.max_connections = 100;
    cfg.access_log_fd = -1;
    spawn_worker();
    fa_ring_init(&rq, fa_seg_req_ring(&seg, 0, 0), seg.hdr->ring_cap);
    fa_ring_init(&rs, fa_seg_resp_ring(&seg, 0, 0), seg.hdr->ring_cap);
}

static void stop_server(void)
{
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    fa_seg_unlink(seg_name);
}

static int client_send(const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    return fd;
}

/* Reads one whole response (head + Content-Length body) into buf. */
static void client_read(int fd, char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ck_assert_msg(poll(&p, 1, 5000) == 1, "no answer from the HTTP worker within 5 s (got: %.*s)",
                      (int)n, buf);
        ssize_t r = read(fd, buf + n, size - 1 - n);
        ck_assert_msg(r > 0, "connection closed after %zu bytes: %.*s", n, (int)n, buf);
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "content-length: ");
        if (end && cl && n >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            return;
    }
}

/* Reads until buf holds `needle` (NULL: until EOF). Returns the bytes read;
 * *eof says whether the HTTP worker closed. */
static size_t client_read_until(int fd, char *buf, size_t size, const char *needle, bool *eof)
{
    size_t n = 0;
    *eof = false;
    buf[0] = '\0';
    while (needle == NULL || strstr(buf, needle) == NULL) {
        struct pollfd p = {fd, POLLIN, 0};
        ck_assert_msg(poll(&p, 1, 5000) == 1, "waited 5 s for %s, got: %.*s", needle ? needle : "EOF",
                      (int)n, buf);
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r <= 0) {
            *eof = true;
            ck_assert_msg(needle == NULL, "connection closed before %s: %.*s", needle, (int)n, buf);
            break;
        }
        n += (size_t)r;
        buf[n] = '\0';
    }
    return n;
}

/* Nothing more arrives within ms milliseconds. */
static void client_quiet(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    ck_assert_msg(poll(&p, 1, ms) == 0, "unexpected bytes or close from the HTTP worker");
}

/* The next descriptor on the request ring, whatever it is. */
static struct fa_desc take_desc(void)
{
    struct fa_desc d;
    for (int i = 0; i < 5000; i++) {
        if (fa_ring_pop(&rq, &d, 1) == 1)
            return d;
        usleep(1000);
    }
    ck_abort_msg("the HTTP worker sent nothing within 5 s");
    return d;
}

/* Waits for the request envelope the HTTP worker pushed; frees its chunks
 * as a Python worker does after reading. *flags (if not NULL) gets the
 * envelope's flags (its last element). */
static struct fa_desc take_request_flags(unsigned *flags)
{
    struct fa_desc d = take_desc();
    struct iovec iov[8];
    ck_assert_int_ge(fa_msg_iov(&seg, fa_seg_http_arena(&seg, 0), PY_SELF, &d, iov, 8), 1);
    if (flags) {
        msgpack_unpacked u;
        size_t off = 0;
        msgpack_unpacked_init(&u);
        ck_assert(msgpack_unpack_next(&u, iov[0].iov_base, iov[0].iov_len, &off) == MSGPACK_UNPACK_SUCCESS);
        ck_assert(u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 9);
        *flags = (unsigned)u.data.via.array.ptr[8].via.u64;
        msgpack_unpacked_destroy(&u);
    }
    fa_msg_free(&seg, fa_seg_http_arena(&seg, 0), d.chunk);
    return d;
}

static struct fa_desc take_request(void)
{
    return take_request_flags(NULL);
}

/* As a Python worker publishes: a full response ring is waited out (the
 * HTTP worker drains it), for up to 5 s. */
static void push_response(struct fa_desc d)
{
    int tries = 0;
    while (fa_ring_push(&rs, &d) != 0) {
        ck_assert_msg(++tries < 5000, "the response ring stayed full for 5 s");
        fa_doorbell_ring(&fa_seg_http_slot(&seg, 0)->sleeping, http_efd[0]);
        usleep(1000);
    }
    fa_doorbell_ring(&fa_seg_http_slot(&seg, 0)->sleeping, http_efd[0]);
}

/* A well-formed response message in the Python slot's arena. */
static struct fa_desc make_response(const struct fa_desc *req, int status, const char *hname,
                                    const char *hvalue, const char *body)
{
    struct fa_arena a;
    struct fa_msg_writer w;
    struct fa_desc d;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    fa_arena_init(&a, &seg, fa_seg_py_arena(&seg, 0), PY_SELF, 1);
    ck_assert_int_eq(fa_msg_begin(&w, &a), 0);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, status);
    msgpack_pack_array(&pk, hname ? 2 : 0);
    if (hname) {
        msgpack_pack_str_with_body(&pk, hname, strlen(hname));
        msgpack_pack_str_with_body(&pk, hvalue, strlen(hvalue));
    }
    ck_assert_int_eq(fa_msg_write(&w, sb.data, sb.size), 0);
    ck_assert_int_eq(fa_msg_write(&w, body, strlen(body)), 0);
    msgpack_sbuffer_destroy(&sb);
    fa_msg_end(&w, 0, 1, &d);
    d.gen = 1;
    d.token = req->token;
    return d;
}

/* A message of raw head bytes then body, in the Python slot's arena. */
static struct fa_desc make_msg(const struct fa_desc *req, const void *head, size_t hlen, const char *body)
{
    struct fa_arena a;
    struct fa_msg_writer w;
    struct fa_desc d;

    fa_arena_init(&a, &seg, fa_seg_py_arena(&seg, 0), PY_SELF, 1);
    ck_assert_int_eq(fa_msg_begin(&w, &a), 0);
    ck_assert_int_eq(fa_msg_write(&w, head, hlen), 0);
    ck_assert_int_eq(fa_msg_write(&w, body, strlen(body)), 0);
    fa_msg_end(&w, 0, 1, &d);
    d.gen = 1;
    d.token = req->token;
    return d;
}

/* [status, [hname, hvalue], 1] + the first part. */
static struct fa_desc make_start(const struct fa_desc *req, int status, const char *hname, const char *hvalue,
                                 const char *body)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, status);
    msgpack_pack_array(&pk, hname ? 2 : 0);
    if (hname) {
        msgpack_pack_str_with_body(&pk, hname, strlen(hname));
        msgpack_pack_str_with_body(&pk, hvalue, strlen(hvalue));
    }
    msgpack_pack_int(&pk, 1);
    struct fa_desc d = make_msg(req, sb.data, sb.size, body);
    msgpack_sbuffer_destroy(&sb);
    return d;
}

enum { PART_END = 0, PART_MORE = 1, PART_ABORT = 2 };

/* [kind] + the part's bytes. */
static struct fa_desc make_part(const struct fa_desc *req, int kind, const char *body)
{
    unsigned char head[2] = {0x91, (unsigned char)kind};
    return make_msg(req, head, sizeof head, body);
}

/* Every chunk of the Python arena comes back FREE (the HTTP worker frees
 * each part once written). */
static void wait_arena_free(void)
{
    uint32_t n = seg.hdr->chunks_per_arena, f = 0;
    for (int i = 0; i < 5000 && (f = fa_arena_count_free(&seg, fa_seg_py_arena(&seg, 0))) != n; i++)
        usleep(1000);
    ck_assert_msg(f == n, "%u of %u response chunks free", f, n);
}

/* The body after the head in buf. */
static const char *body_of(const char *buf)
{
    const char *e = strstr(buf, "\r\n\r\n");
    ck_assert_msg(e != NULL, "no head end in: %s", buf);
    return e + 4;
}

/* One request answered with `d` (built by the test from the request). */
static void exchange(struct fa_desc (*answer)(const struct fa_desc *), int want_status,
                     const char *must_not_contain)
{
    char buf[8192];
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    push_response(answer(&req));
    client_read(fd, buf, sizeof buf);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", want_status);
    ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "expected %s, got: %s", want, buf);
    if (must_not_contain)
        ck_assert_msg(strstr(buf, must_not_contain) == NULL, "%s found in: %s", must_not_contain, buf);
    close(fd);
}

static struct fa_desc answer_ok(const struct fa_desc *req)
{
    return make_response(req, 200, "x-ok", "1", "fine");
}

/* After each hostile answer, the worker still serves a normal one. */
static void still_serving(void)
{
    exchange(answer_ok, 200, NULL);
    ck_assert_msg(kill(child, 0) == 0, "the HTTP worker died");
}

static struct fa_desc answer_chunk_out_of_range(const struct fa_desc *req)
{
    struct fa_desc d = make_response(req, 200, NULL, NULL, "x");
    d.chunk = 0xfffffff0u;
    return d;
}

static struct fa_desc answer_len_too_big(const struct fa_desc *req)
{
    struct fa_desc d = make_response(req, 200, NULL, NULL, "x");
    d.len = 0x7fffffffu;
    return d;
}

static struct fa_desc answer_chain_cycle(const struct fa_desc *req)
{
    struct fa_desc d = make_response(req, 200, NULL, NULL, "x");
    fa_seg_chunk_meta(&seg, fa_seg_py_arena(&seg, 0), d.chunk)->next = d.chunk;
    d.len += 4096;
    return d;
}

static struct fa_desc answer_chunk_not_sent(const struct fa_desc *req)
{
    struct fa_desc d = make_response(req, 200, NULL, NULL, "x");
    atomic_store(&fa_seg_chunk_meta(&seg, fa_seg_py_arena(&seg, 0), d.chunk)->state, FA_CHUNK_FREE);
    return d;
}

static struct fa_desc answer_garbage_head(const struct fa_desc *req)
{
    struct fa_desc d = make_response(req, 200, NULL, NULL, "x");
    char *data = fa_seg_chunk_data(&seg, fa_seg_py_arena(&seg, 0), d.chunk);
    data[0] = (char)0xc1;   /* never used in msgpack */
    return d;
}

/* [200, <array of 0x55555555 elements>]: msgpack-c would allocate for all. */
static struct fa_desc answer_huge_array(const struct fa_desc *req)
{
    struct fa_desc d = make_response(req, 200, NULL, NULL, "xxxxxxxxxx");
    unsigned char *data = (unsigned char *)fa_seg_chunk_data(&seg, fa_seg_py_arena(&seg, 0), d.chunk);
    static const unsigned char head[] = {0x92, 0xcd, 0x00, 0xc8, 0xdd, 0x55, 0x55, 0x55, 0x55};
    memcpy(data, head, sizeof head);
    return d;
}

static struct fa_desc answer_crlf_value(const struct fa_desc *req)
{
    return make_response(req, 200, "x-a", "1\r\nSet-Cookie: evil=1", "x");
}

static struct fa_desc answer_bad_name(const struct fa_desc *req)
{
    return make_response(req, 200, "bad name", "1", "x");
}

static struct fa_desc answer_status_0(const struct fa_desc *req)
{
    return make_response(req, 0, NULL, NULL, "x");
}

START_TEST(test_dispatch__valid_answer)
{
    start_server();
    char buf[8192];
    unsigned flags;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request_flags(&flags);
    ck_assert_uint_eq(flags, 1);   /* keep-alive, not HEAD, not HTTP/1.0 */
    push_response(answer_ok(&req));
    client_read(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    ck_assert_msg(strstr(buf, "\r\nx-ok: 1\r\n") && strstr(buf, "\r\n\r\nfine"), "%s", buf);
    close(fd);
    stop_server();
}
END_TEST

START_TEST(test_dispatch__chunk_out_of_range_is_502)
{
    start_server();
    exchange(answer_chunk_out_of_range, 502, NULL);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__length_beyond_chain_is_502)
{
    start_server();
    exchange(answer_len_too_big, 502, NULL);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__chain_cycle_is_502)
{
    start_server();
    exchange(answer_chain_cycle, 502, NULL);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__chunk_not_sent_to_us_is_502)
{
    start_server();
    exchange(answer_chunk_not_sent, 502, NULL);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__garbage_envelope_is_502)
{
    start_server();
    exchange(answer_garbage_head, 502, NULL);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__huge_declared_array_is_502)
{
    start_server();
    exchange(answer_huge_array, 502, NULL);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__crlf_in_header_value_is_500)
{
    start_server();
    exchange(answer_crlf_value, 500, "evil");
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__header_name_not_a_token_is_500)
{
    start_server();
    exchange(answer_bad_name, 500, "bad name");
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__status_out_of_range_is_500)
{
    start_server();
    exchange(answer_status_0, 500, NULL);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__unknown_token_is_ignored)
{
    start_server();
    char buf[8192];
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    struct fa_desc forged = req, other_life = req;
    forged.token ^= 0x5a5a0000u;
    /* Right index and sequence, another incarnation of the HTTP slot (a
     * late answer to a dead predecessor's request). */
    other_life.token ^= 1u << 16;
    push_response(make_response(&forged, 200, "x-forged", "1", "forged"));
    push_response(make_response(&other_life, 200, "x-forged", "1", "forged"));
    push_response(answer_ok(&req));
    client_read(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(buf, "fine") &&
                  !strstr(buf, "forged"), "%s", buf);
    close(fd);
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_chunked)
{
    start_server();
    char buf[8192];
    bool eof;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    push_response(make_start(&req, 200, "content-type", "text/plain", "hello"));
    client_read_until(fd, buf, sizeof buf, "hello\r\n", &eof);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    ck_assert_msg(strstr(buf, "\r\nTransfer-Encoding: chunked\r\n") && strstr(buf, "\r\ncontent-type: text/plain\r\n") &&
                  !strcasestr(buf, "content-length") && !strcasestr(buf, "connection: close"), "%s", buf);
    ck_assert_str_eq(body_of(buf), "5\r\nhello\r\n");
    push_response(make_part(&req, PART_MORE, ""));    /* an empty part writes nothing */
    push_response(make_part(&req, PART_END, "world!"));
    client_read_until(fd, buf, sizeof buf, "0\r\n\r\n", &eof);
    ck_assert_str_eq(buf, "6\r\nworld!\r\n0\r\n\r\n");
    wait_arena_free();
    /* Kept alive: the next request on the same connection is served. */
    ck_assert_int_eq(write(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 28), 28);
    req = take_request();
    push_response(answer_ok(&req));
    client_read(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(buf, "fine"), "%s", buf);
    close(fd);
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_content_length_passthrough)
{
    start_server();
    char buf[8192];
    bool eof;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    push_response(make_start(&req, 200, "Content-Length", "10", "hello"));
    push_response(make_part(&req, PART_END, "world"));
    client_read_until(fd, buf, sizeof buf, "helloworld", &eof);
    ck_assert_msg(strstr(buf, "\r\nContent-Length: 10\r\n") && !strcasestr(buf, "transfer-encoding") &&
                  !strstr(buf, "\r\nContent-Length: 10\r\nContent-Length"), "%s", buf);
    ck_assert_str_eq(body_of(buf), "helloworld");
    client_quiet(fd, 100);     /* still open */
    wait_arena_free();
    /* A body shorter than its length: the connection closes after it. */
    ck_assert_int_eq(write(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 28), 28);
    req = take_request();
    push_response(make_start(&req, 200, "content-length", "10", "short"));
    push_response(make_part(&req, PART_END, ""));
    client_read_until(fd, buf, sizeof buf, NULL, &eof);
    ck_assert_msg(eof && strcmp(body_of(buf), "short") == 0, "%s", buf);
    wait_arena_free();
    close(fd);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_longer_than_content_length_is_cut)
{
    start_server();
    char buf[8192];
    bool eof;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    push_response(make_start(&req, 200, "content-length", "4", "abc"));
    push_response(make_part(&req, PART_MORE, "defgh"));
    client_read_until(fd, buf, sizeof buf, NULL, &eof);
    ck_assert_msg(eof && strcmp(body_of(buf), "abcd") == 0, "%s", buf);
    /* The Python worker is told to stop; what it still sends is freed. */
    struct fa_desc n = take_desc();
    ck_assert_uint_eq(n.chunk, FA_CHUNK_NONE);
    ck_assert_uint_eq(n.token, req.token);
    push_response(make_part(&req, PART_END, "ij"));
    wait_arena_free();
    close(fd);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_http10_closes)
{
    start_server();
    char buf[8192];
    bool eof;
    unsigned flags;
    int fd = client_send("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    struct fa_desc req = take_request_flags(&flags);
    ck_assert_uint_eq(flags, 1 | 4);   /* keep-alive asked, HTTP/1.0 */
    push_response(make_start(&req, 200, NULL, NULL, "abc"));
    push_response(make_part(&req, PART_MORE, "def"));
    push_response(make_part(&req, PART_END, "ghi"));
    client_read_until(fd, buf, sizeof buf, NULL, &eof);
    ck_assert_msg(eof, "%s", buf);
    ck_assert_msg(strstr(buf, "\r\nConnection: close\r\n") && !strcasestr(buf, "transfer-encoding") &&
                  !strcasestr(buf, "content-length"), "%s", buf);
    ck_assert_str_eq(body_of(buf), "abcdefghi");
    wait_arena_free();
    close(fd);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_head)
{
    start_server();
    char buf[8192];
    bool eof;
    unsigned flags;
    int fd = client_send("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request_flags(&flags);
    ck_assert_uint_eq(flags, 1 | 2);
    push_response(make_start(&req, 200, "x-a", "1", "body"));
    push_response(make_part(&req, PART_MORE, "more"));
    push_response(make_part(&req, PART_END, "end"));
    client_read_until(fd, buf, sizeof buf, "\r\n\r\n", &eof);
    ck_assert_msg(strstr(buf, "\r\nx-a: 1\r\n") && strstr(buf, "\r\nTransfer-Encoding: chunked\r\n"), "%s", buf);
    ck_assert_str_eq(body_of(buf), "");
    wait_arena_free();
    /* No body came, and the connection goes on. */
    ck_assert_int_eq(write(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 28), 28);
    req = take_request();
    push_response(answer_ok(&req));
    client_read(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(buf, "\r\n\r\nfine"), "%s", buf);
    close(fd);
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_abort_closes_without_terminator)
{
    start_server();
    char buf[8192];
    bool eof;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    push_response(make_start(&req, 200, NULL, NULL, "hello"));
    push_response(make_part(&req, PART_MORE, "world"));
    push_response(make_part(&req, PART_ABORT, ""));
    client_read_until(fd, buf, sizeof buf, NULL, &eof);
    ck_assert_msg(eof, "%s", buf);
    ck_assert_str_eq(body_of(buf), "5\r\nhello\r\n5\r\nworld\r\n");
    wait_arena_free();
    close(fd);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_pipelined_waits)
{
    start_server();
    char buf[8192];
    bool eof;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc r1 = take_request(), r2 = take_request();
    push_response(make_response(&r2, 200, "x-second", "1", "second"));
    push_response(make_start(&r1, 200, NULL, NULL, "first"));
    client_read_until(fd, buf, sizeof buf, "first\r\n", &eof);
    client_quiet(fd, 100);     /* the second waits for the end of the stream */
    ck_assert_msg(strstr(buf, "second") == NULL, "%s", buf);
    push_response(make_part(&r1, PART_END, ""));
    client_read_until(fd, buf, sizeof buf, "\r\n\r\nsecond", &eof);
    ck_assert_msg(strncmp(buf, "0\r\n\r\nHTTP/1.1 200 OK\r\n", 22) == 0 && strstr(buf, "x-second: 1"), "%s", buf);
    wait_arena_free();
    close(fd);
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_bad_continuations)
{
    start_server();
    char buf[8192];
    /* Parts for no pending request: freed; a non-final one gets a notice
     * (a stream to a request nobody knows should stop). */
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    struct fa_desc forged = req;
    forged.token ^= 0x5a5a0000u;
    push_response(make_part(&forged, PART_MORE, "forged"));
    push_response(make_part(&forged, PART_END, "forged"));
    struct fa_desc n = take_desc();
    ck_assert_uint_eq(n.chunk, FA_CHUNK_NONE);
    ck_assert_uint_eq(n.token, forged.token);
    /* The last part of a stream that never started: 500. */
    push_response(make_part(&req, PART_END, "x"));
    client_read(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 500 ", 13) == 0 && !strstr(buf, "forged"), "%s", buf);
    wait_arena_free();
    close(fd);
    /* A second start for a stream: cut there. */
    bool eof;
    fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    req = take_request();
    push_response(make_start(&req, 200, NULL, NULL, "one"));
    push_response(make_start(&req, 200, NULL, NULL, "two"));
    client_read_until(fd, buf, sizeof buf, NULL, &eof);
    ck_assert_msg(eof && strcmp(body_of(buf), "3\r\none\r\n") == 0, "%s", buf);
    wait_arena_free();
    close(fd);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_client_gone_notice)
{
    start_server();
    char buf[8192];
    bool eof;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    push_response(make_start(&req, 200, NULL, NULL, "hello"));
    client_read_until(fd, buf, sizeof buf, "hello\r\n", &eof);
    close(fd);
    struct fa_desc n = take_desc();
    ck_assert_uint_eq(n.chunk, FA_CHUNK_NONE);
    ck_assert_uint_eq(n.len, 0);
    ck_assert_uint_eq(n.gen, 1);
    ck_assert_uint_eq(n.token, req.token);
    /* Further parts are freed (the write to the closed socket fails, or
     * they are dropped); the notice may be repeated meanwhile, never after
     * the last part. */
    push_response(make_part(&req, PART_MORE, "more"));
    push_response(make_part(&req, PART_END, "end"));
    wait_arena_free();
    usleep(50000);
    while (fa_ring_pop(&rq, &n, 1) == 1) {
        ck_assert_uint_eq(n.chunk, FA_CHUNK_NONE);
        ck_assert_uint_eq(n.token, req.token);
    }
    usleep(50000);
    ck_assert_msg(fa_ring_pop(&rq, &n, 1) == 0, "a notice after the last part");
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__pending_client_gone_notice)
{
    start_server();
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    close(fd);
    struct fa_desc n = take_desc();
    ck_assert_uint_eq(n.chunk, FA_CHUNK_NONE);
    ck_assert_uint_eq(n.token, req.token);
    push_response(answer_ok(&req));
    wait_arena_free();
    still_serving();
    stop_server();
}
END_TEST

/* A client that only shut down its sending side: the Python worker hears
 * of the EOF (notice), and the answer still reaches the client. */
START_TEST(test_dispatch__half_closed_client_still_answered)
{
    start_server();
    char buf[8192];
    bool eof;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    struct fa_desc n = take_desc();
    ck_assert_uint_eq(n.chunk, FA_CHUNK_NONE);
    ck_assert_uint_eq(n.token, req.token);
    push_response(answer_ok(&req));
    client_read_until(fd, buf, sizeof buf, "\r\n\r\n", &eof);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "got: %.80s", buf);
    close(fd);
    wait_arena_free();
    still_serving();
    stop_server();
}
END_TEST

/* An HTTP worker killed after marking an envelope SENT and before
 * publishing it: its successor takes those chunks back (their stamp is at
 * or past the ring's tail), and leaves alone the ones of requests it did
 * publish (a Python worker holds them). */
START_TEST(test_dispatch__restart_takes_back_unpublished_envelopes)
{
    start_server();
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc held = take_desc();          /* published, and held by "Python" */
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(fd);
    uint32_t arena = fa_seg_http_arena(&seg, 0), lost = seg.hdr->chunks_per_arena - 1;
    struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(&seg, arena, lost);
    ck_assert_uint_eq(atomic_load(&m->state), FA_CHUNK_FREE);
    m->next = FA_CHUNK_NONE;
    m->len = 10;
    m->stamp = atomic_load(&fa_seg_req_ring(&seg, 0, 0)->tail);
    atomic_store(&m->state, FA_CHUNK_WORD(FA_CHUNK_SENT, PY_SELF, 1));
    spawn_worker();
    for (int i = 0; i < 500 && atomic_load(&m->state) != FA_CHUNK_FREE; i++)
        usleep(10000);
    ck_assert_uint_eq(atomic_load(&m->state), FA_CHUNK_FREE);
    ck_assert_uint_eq(atomic_load(&fa_seg_chunk_meta(&seg, arena, held.chunk)->state),
                      FA_CHUNK_WORD(FA_CHUNK_SENT, PY_SELF, 1));
    fa_msg_free(&seg, arena, held.chunk);
    still_serving();
    stop_server();
}
END_TEST

START_TEST(test_dispatch__stream_python_death_closes)
{
    start_server();
    char buf[8192];
    bool eof;
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    push_response(make_start(&req, 200, NULL, NULL, "hello"));
    client_read_until(fd, buf, sizeof buf, "hello\r\n", &eof);
    push_response(make_part(&req, PART_MORE, "last words"));
    /* The master's death protocol (master/supervise.c). */
    struct fa_slot_sh *ps = fa_seg_py_slot(&seg, 0);
    atomic_store(&ps->state, FA_SLOT_DEAD);
    atomic_fetch_add(&ps->gen, 1);
    atomic_fetch_add(&fa_seg_http_slot(&seg, 0)->death_seq, 1);
    fa_doorbell_ring_force(http_efd[0]);
    client_read_until(fd, buf, sizeof buf, NULL, &eof);
    ck_assert_msg(eof && strcmp(buf, "a\r\nlast words\r\n") == 0, "%s", buf);
    wait_arena_free();
    close(fd);
    ck_assert_msg(kill(child, 0) == 0, "the HTTP worker died");
    stop_server();
}
END_TEST

START_TEST(test_dispatch__notice_retried_when_ring_full)
{
    start_server();
    char req_txt[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    int fd = client_send(req_txt);
    struct fa_desc req = take_request();
    /* Fill the request ring (16 slots) with requests the Python worker
     * does not take yet. */
    uint32_t cap = seg.hdr->ring_cap;
    int fds[64];
    for (uint32_t i = 0; i < cap; i++)
        fds[i] = client_send(req_txt);
    for (int i = 0; i < 5000 && fa_ring_depth(rq.sh) < cap; i++)
        usleep(1000);
    ck_assert_uint_eq(fa_ring_depth(rq.sh), cap);
    close(fd);                 /* its notice finds the ring full */
    usleep(50000);
    for (uint32_t i = 0; i < cap; i++) {
        struct fa_desc d = take_request();
        push_response(answer_ok(&d));
    }
    struct fa_desc n = take_desc();
    ck_assert_uint_eq(n.chunk, FA_CHUNK_NONE);
    ck_assert_uint_eq(n.token, req.token);
    push_response(answer_ok(&req));
    for (uint32_t i = 0; i < cap; i++)
        close(fds[i]);
    wait_arena_free();
    still_serving();
    stop_server();
}
END_TEST

/* ---- zero copy ------------------------------------------------------------ */

/* Bytes the traced worker handed to sendmsg/writev, by where they were. */
struct sent_from {
    size_t in_seg;      /* iovecs inside the segment mapping */
    size_t outside;     /* anywhere else (a private copy, the head buffer) */
    int calls;
};

/* Reads len bytes at addr in pid's memory. */
static void peek(pid_t pid, uint64_t addr, void *buf, size_t len)
{
    struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
    ck_assert_msg(process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len,
                  "process_vm_readv at %#llx: %s", (unsigned long long)addr, strerror(errno));
}

/* Adds where the iovec array at addr (cnt entries, in pid) points to *sf. */
static void account_iov(pid_t pid, uint64_t addr, size_t cnt, struct sent_from *sf)
{
    struct iovec iov[64];
    ck_assert_msg(cnt <= 64, "%zu iovecs in one call", cnt);
    peek(pid, addr, iov, cnt * sizeof *iov);
    for (size_t i = 0; i < cnt; i++) {
        const char *b = iov[i].iov_base;
        if (b >= seg.base && b + iov[i].iov_len <= seg.base + seg.size)
            sf->in_seg += iov[i].iov_len;
        else
            sf->outside += iov[i].iov_len;
    }
    sf->calls++;
}

/* Runs the already seized, stopped `pid` syscall by syscall until its
 * sendmsg/writev calls have handed over at least `want` bytes, recording
 * where they came from; detaches at that call's entry (it then proceeds). */
static void trace_sends(pid_t pid, size_t want, struct sent_from *sf)
{
    int sig = 0, st;
    for (;;) {
        ck_assert_int_eq(ptrace(PTRACE_SYSCALL, pid, 0, sig), 0);
        sig = 0;
        ck_assert_int_eq(waitpid(pid, &st, __WALL), pid);
        ck_assert_msg(WIFSTOPPED(st), "the traced HTTP worker ended (status %#x)", st);
        if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
            if (st >> 16 == 0)          /* a signal for it: deliver it */
                sig = WSTOPSIG(st);
            continue;
        }
        struct __ptrace_syscall_info si;
        ck_assert_int_gt(ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof si, &si), 0);
        if (si.op != PTRACE_SYSCALL_INFO_ENTRY)
            continue;
        if (si.entry.nr == SYS_sendmsg) {
            struct msghdr mh;
            peek(pid, si.entry.args[1], &mh, sizeof mh);
            account_iov(pid, (uint64_t)(uintptr_t)mh.msg_iov, mh.msg_iovlen, sf);
        } else if (si.entry.nr == SYS_writev) {
            account_iov(pid, si.entry.args[1], si.entry.args[2], sf);
        } else if (si.entry.nr == SYS_sendto || si.entry.nr == SYS_write) {
            if (si.entry.args[2] > 8)  /* not an eventfd's 8 bytes */
                sf->outside += si.entry.args[2], sf->calls++;
        } else {
            continue;
        }
        if (sf->in_seg + sf->outside >= want)
            break;
    }
    ck_assert_int_eq(ptrace(PTRACE_DETACH, pid, 0, 0), 0);
}

START_TEST(test_dispatch__python_body_sent_from_the_segment)
{
    enum { BODY = 6000 };      /* spans two 4 KiB chunks */
    static char body[BODY + 1], buf[16384];
    for (int i = 0; i < BODY; i++)
        body[i] = (char)('a' + i % 26);
    start_server();
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
    struct fa_desc d = make_response(&req, 200, NULL, NULL, body);

    /* Stop the HTTP worker, then let it go on one syscall at a time. */
    int st;
    ck_assert_msg(ptrace(PTRACE_SEIZE, child, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) == 0,
                  "cannot ptrace the HTTP worker (%s): this test needs ptrace", strerror(errno));
    ck_assert_int_eq(ptrace(PTRACE_INTERRUPT, child, 0, 0), 0);
    ck_assert_int_eq(waitpid(child, &st, __WALL), child);
    ck_assert(WIFSTOPPED(st));
    push_response(d);
    struct sent_from sf = {0, 0, 0};
    trace_sends(child, BODY, &sf);

    client_read(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.200s", buf);
    ck_assert_msg(strcmp(body_of(buf), body) == 0, "the body arrived changed");
    /* Every body byte from the chunks, only the head (short) from elsewhere. */
    ck_assert_msg(sf.in_seg >= BODY && sf.outside < 512,
                  "%d send calls: %zu bytes from the segment, %zu from elsewhere (body %d): "
                  "the body was copied out of shm", sf.calls, sf.in_seg, sf.outside, BODY);
    close(fd);
    wait_arena_free();
    stop_server();
}
END_TEST

static Suite *make_suite_dispatch(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("hostile Python worker");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_dispatch__valid_answer);
    tcase_add_test(tc, test_dispatch__chunk_out_of_range_is_502);
    tcase_add_test(tc, test_dispatch__length_beyond_chain_is_502);
    tcase_add_test(tc, test_dispatch__chain_cycle_is_502);
    tcase_add_test(tc, test_dispatch__chunk_not_sent_to_us_is_502);
    tcase_add_test(tc, test_dispatch__garbage_envelope_is_502);
    tcase_add_test(tc, test_dispatch__huge_declared_array_is_502);
    tcase_add_test(tc, test_dispatch__crlf_in_header_value_is_500);
    tcase_add_test(tc, test_dispatch__header_name_not_a_token_is_500);
    tcase_add_test(tc, test_dispatch__status_out_of_range_is_500);
    tcase_add_test(tc, test_dispatch__unknown_token_is_ignored);
    tcase_add_test(tc, test_dispatch__python_body_sent_from_the_segment);
    suite_add_tcase(s, tc);
    tc = tcase_create("streamed responses");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_dispatch__stream_chunked);
    tcase_add_test(tc, test_dispatch__stream_content_length_passthrough);
    tcase_add_test(tc, test_dispatch__stream_longer_than_content_length_is_cut);
    tcase_add_test(tc, test_dispatch__stream_http10_closes);
    tcase_add_test(tc, test_dispatch__stream_head);
    tcase_add_test(tc, test_dispatch__stream_abort_closes_without_terminator);
    tcase_add_test(tc, test_dispatch__stream_pipelined_waits);
    tcase_add_test(tc, test_dispatch__stream_bad_continuations);
    tcase_add_test(tc, test_dispatch__stream_client_gone_notice);
    tcase_add_test(tc, test_dispatch__pending_client_gone_notice);
    tcase_add_test(tc, test_dispatch__notice_retried_when_ring_full);
    tcase_add_test(tc, test_dispatch__half_closed_client_still_answered);
    tcase_add_test(tc, test_dispatch__restart_takes_back_unpublished_envelopes);
    tcase_add_test(tc, test_dispatch__stream_python_death_closes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(make_suite_dispatch());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
