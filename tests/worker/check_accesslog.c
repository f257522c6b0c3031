/* check_accesslog.c - unit tests for worker/accesslog.c: the combined and
 * JSON lines, escaping, the byte count, one write per line.
 */
#include <check.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <http_parser.h>

#include "worker/accesslog.h"
#include "worker/respond.h"
#include "worker/routes.h"
#include "tests/worker/tkinds.h"

static int fds[2];
static struct tworker tw;

static void setup(void)
{
    ck_assert_int_eq(pipe2(fds, O_NONBLOCK), 0);
    tworker_init(&tw);
    tw.cfg.access_log_fd = fds[1];
}

static void teardown(void)
{
    close(fds[0]);
    close(fds[1]);
}

/* Reads what one write put in the pipe. */
static char *line(void)
{
    static char buf[65536];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    /* exactly one line per write */
    ck_assert_ptr_eq(strchr(buf, '\n'), buf + n - 1);
    char more[8];
    ck_assert_int_eq(read(fds[0], more, sizeof more), -1);
    return buf;
}

static void matches(const char *s, const char *re)
{
    regex_t rx;
    ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    ck_assert_msg(regexec(&rx, s, 0, NULL, 0) == 0, "'%s' does not match /%s/", s, re);
    regfree(&rx);
}

/* A complete response: status, body bytes in hbuf. */
static void answer(struct fa_resp *r, int status, const char *body)
{
    fa_respond_simple(&tw.w, r, status, "text/plain", body, strlen(body), NULL);
}

START_TEST(test_accesslog__combined)
{
    static const char *const h[] = {"referer", "http://x/a b", "user-agent", "curl/8 \"q\" \\ \x01\xe9", NULL};
    struct treq tq;
    struct fa_route rt = {.pattern = "/p/{id}"};
    struct fa_resp *r = tresp_new(false);

    treq_init(&tq, HTTP_GET, "/p/1?x=%22y", h);
    fa_accesslog_begin(&tw.w, r, &tq.req, &rt, "192.0.2.1");
    answer(r, 200, "hello");
    fa_accesslog_end(&tw.w, r);
    matches(line(), "^192\\.0\\.2\\.1 - - \\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [-+][0-9]{4}\\] "
                    "\"GET /p/1\\?x=%22y HTTP/1\\.1\" 200 5 \"http://x/a b\" "
                    "\"curl/8 \\\\\"q\\\\\" \\\\\\\\ \\\\x01\\\\xe9\"\n$");
    fa_accesslog_free(r->alog);
    r->alog = NULL;
    tresp_free(r);
}
END_TEST

START_TEST(test_accesslog__combined_missing_fields_and_head)
{
    struct treq tq;
    struct fa_resp *r = tresp_new(true);

    treq_init(&tq, HTTP_HEAD, "/", NULL);
    tq.req.http_minor = 0;
    fa_accesslog_begin(&tw.w, r, &tq.req, NULL, "::1");
    answer(r, 404, "not here");
    fa_accesslog_end(&tw.w, r);
    matches(line(), "^::1 - - \\[.*\\] \"HEAD / HTTP/1\\.0\" 404 0 \"-\" \"-\"\n$");
    fa_accesslog_free(r->alog);
    r->alog = NULL;
    /* a request that failed before its head was complete */
    fa_accesslog_begin(&tw.w, r, NULL, NULL, "10.0.0.1");
    r->head_only = false;
    answer(r, 408, "{}");
    fa_accesslog_end(&tw.w, r);
    matches(line(), "^10\\.0\\.0\\.1 - - \\[.*\\] \"-\" 408 2 \"-\" \"-\"\n$");
    fa_accesslog_free(r->alog);
    r->alog = NULL;
    tresp_free(r);
}
END_TEST

START_TEST(test_accesslog__json)
{
    static const char *const h[] = {"user-agent", "ua \"x\"\t\xff", NULL};
    struct treq tq;
    struct fa_route rt = {.pattern = "/p/{id}"};
    struct fa_resp *r = tresp_new(false);

    tw.cfg.access_log_json = 1;
    treq_init(&tq, HTTP_POST, "/p/1", h);
    fa_accesslog_begin(&tw.w, r, &tq.req, &rt, "127.0.0.1");
    answer(r, 201, "created!");
    fa_accesslog_end(&tw.w, r);
    matches(line(), "^\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[-+][0-9]{2}:[0-9]{2}\","
                    "\"host\":\"127\\.0\\.0\\.1\",\"method\":\"POST\",\"target\":\"/p/1\","
                    "\"protocol\":\"HTTP/1\\.1\",\"status\":201,\"bytes\":8,\"referer\":null,"
                    "\"user_agent\":\"ua \\\\\"x\\\\\"\\\\u0009\\\\u00ff\","
                    "\"duration_ms\":[0-9]+\\.[0-9]{3},\"route\":\"/p/\\{id\\}\"\\}\n$");
    fa_accesslog_free(r->alog);
    r->alog = NULL;
    fa_accesslog_begin(&tw.w, r, NULL, NULL, "127.0.0.1");
    answer(r, 400, "");
    fa_accesslog_end(&tw.w, r);
    matches(line(), "\"method\":null,\"target\":null,\"protocol\":null,\"status\":400,\"bytes\":0,"
                    "\"referer\":null,\"user_agent\":null,.*\"route\":null\\}\n$");
    fa_accesslog_free(r->alog);
    r->alog = NULL;
    tresp_free(r);
}
END_TEST

START_TEST(test_accesslog__bytes_count_body_pieces_and_files)
{
    struct treq tq;
    struct fa_resp *r = tresp_new(false);

    treq_init(&tq, HTTP_GET, "/", NULL);
    fa_accesslog_begin(&tw.w, r, &tq.req, NULL, "h");
    /* head in hbuf, body in iovecs and a file part, as Python and files responses */
    fa_respond_head(&tw.w, r, 200, 30);
    fa_resp_append(r, "\r\n", 2);
    r->total = r->hlen + 10 + 20;
    fa_accesslog_end(&tw.w, r);
    matches(line(), "\" 200 30 \"-\"");
    fa_accesslog_free(r->alog);
    r->alog = NULL;
    tresp_free(r);
}
END_TEST

START_TEST(test_accesslog__long_line_is_one_write)
{
    char target[9000] = "/";
    struct treq tq;
    struct fa_resp *r = tresp_new(false);
    memset(target + 1, 'a', 8000);
    target[8001] = '\0';
    treq_init(&tq, HTTP_GET, target, NULL);
    fa_accesslog_begin(&tw.w, r, &tq.req, NULL, "h");
    answer(r, 200, "");
    fa_accesslog_end(&tw.w, r);
    char *l = line();
    ck_assert_ptr_nonnull(strstr(l, target));
    fa_accesslog_free(r->alog);
    r->alog = NULL;
    tresp_free(r);
}
END_TEST

static Suite *make_suite_accesslog(void)
{
    Suite *s = suite_create("accesslog");
    TCase *tc = tcase_create("accesslog");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_accesslog__combined);
    tcase_add_test(tc, test_accesslog__combined_missing_fields_and_head);
    tcase_add_test(tc, test_accesslog__json);
    tcase_add_test(tc, test_accesslog__bytes_count_body_pieces_and_files);
    tcase_add_test(tc, test_accesslog__long_line_is_one_write);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(make_suite_accesslog());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
