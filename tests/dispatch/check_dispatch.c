/* check_dispatch.c - the HTTP worker against a hostile Python worker.
 *
 * A real HTTP worker (fa_worker_run, forked) serves a real socket; this
 * process plays the Python worker on the real segment: it takes the request
 * envelope from the ring and answers with descriptors and envelopes that are
 * valid, corrupt or malicious. Whatever it sends, the HTTP worker must stay
 * inside the segment, answer the client (502 for a broken answer, 500 for
 * a header that would inject), and keep serving.
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
#include <sys/socket.h>
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
    child = fork();
    if (child == 0) {
        struct fa_worker_env env = {&cfg, &seg, &routes, lfd, 0, http_efd, py_efd};
        _exit(fa_worker_run(&env));
    }
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

/* Waits for the request envelope the HTTP worker pushed; frees its chunks
 * as a Python worker does after reading. */
static struct fa_desc take_request(void)
{
    struct fa_desc d;
    struct iovec iov[8];
    for (int i = 0; i < 5000; i++) {
        if (fa_ring_pop(&rq, &d, 1) == 1) {
            ck_assert_int_ge(fa_msg_iov(&seg, fa_seg_http_arena(&seg, 0), PY_SELF, &d, iov, 8), 1);
            fa_msg_free(&seg, fa_seg_http_arena(&seg, 0), d.chunk);
            return d;
        }
        usleep(1000);
    }
    ck_abort_msg("the HTTP worker sent no request within 5 s");
    return d;
}

static void push_response(struct fa_desc d)
{
    ck_assert_int_eq(fa_ring_push(&rs, &d), 0);
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
    int fd = client_send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    struct fa_desc req = take_request();
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
    struct fa_desc forged = req;
    forged.token ^= 0x5a5a0000u;
    push_response(make_response(&forged, 200, "x-forged", "1", "forged"));
    push_response(answer_ok(&req));
    client_read(fd, buf, sizeof buf);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(buf, "fine") &&
                  !strstr(buf, "forged"), "%s", buf);
    close(fd);
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
