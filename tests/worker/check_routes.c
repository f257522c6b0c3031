/* check_routes.c - unit tests for worker/routes.c and worker/static.c: the
 * describe output (4- and 5-element entries, every kind) loaded into the
 * route table, each refusal naming the route, the --metrics route, and the
 * bytes of a static response.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <http_parser.h>
#include <msgpack.h>

#include "worker/files.h"
#include "worker/native.h"
#include "worker/router.h"
#include "worker/routes.h"
#include "worker/static.h"
#include "tests/worker/tkinds.h"

/* ---- building a route table ------------------------------------------------------ */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void str(const char *s)
{
    msgpack_pack_str_with_body(&pk, s, strlen(s));
}

static void table(size_t n)
{
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
}

/* Starts an entry; with extra, the caller packs the map that follows. */
static void entry(uint32_t id, const char *method, const char *pattern, const char *kind, bool extra)
{
    msgpack_pack_array(&pk, extra ? 5 : 4);
    msgpack_pack_uint32(&pk, id);
    str(method);
    str(pattern);
    str(kind);
}

static void static_extra(int status, const char *ctype, const char *const *headers, const char *body)
{
    size_t nh = 0;
    while (headers && headers[2 * nh])
        nh++;
    msgpack_pack_map(&pk, 4);
    str("status");
    msgpack_pack_int(&pk, status);
    str("content_type");
    if (ctype)
        str(ctype);
    else
        msgpack_pack_nil(&pk);
    str("headers");
    msgpack_pack_array(&pk, nh);
    for (size_t i = 0; i < nh; i++) {
        msgpack_pack_array(&pk, 2);
        str(headers[2 * i]);
        str(headers[2 * i + 1]);
    }
    str("body");
    msgpack_pack_bin_with_body(&pk, body, strlen(body));
}

/* Loads what was packed; returns 0 or -1 with the cause in *cause. */
static int load(struct fa_routes *rt, char **cause)
{
    *cause = NULL;
    int rc = fa_routes_load(rt, sb.data, sb.size, cause);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* libc's path, for a native route that loads (never called). */
static const char *libc_path(void)
{
    Dl_info info;
    ck_assert(dladdr((void *)strlen, &info) != 0);
    ck_assert_ptr_nonnull(info.dli_fname);
    ck_assert_int_eq(info.dli_fname[0], '/');
    return info.dli_fname;
}

static char tmpdir[64];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/check_routes.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    rmdir(tmpdir);
}

/* ---- loading ------------------------------------------------------------------------ */

START_TEST(test_routes__every_kind)
{
    struct fa_routes rt;
    char *cause;
    struct fa_match m;

    table(6);
    entry(0, "GET", "/py/{a}/{b}", "python", false);              /* the older 4-element form */
    entry(1, "POST", "/py2", "python", true);
    msgpack_pack_map(&pk, 0);
    entry(2, "GET", "/health", "static", true);
    static_extra(200, "text/plain", (const char *const[]){"x-a", "1", "Cache-Control", "no-store", NULL},
                 "ok");
    entry(3, "PUT", "/fast/{id}", "native", true);
    msgpack_pack_map(&pk, 3);
    str("library");
    str(libc_path());
    str("symbol");
    str("strlen");
    str("some_future_key");     /* ignored */
    msgpack_pack_true(&pk);
    entry(4, "GET", "/files/{path:path}", "files", true);
    msgpack_pack_map(&pk, 1);
    str("directory");
    str(tmpdir);
    entry(5, "GET", "/py3", "python", true);
    msgpack_pack_nil(&pk);
    ck_assert_msg(load(&rt, &cause) == 0, "%s", cause);
    ck_assert_uint_eq(rt.n, 6);

    ck_assert_int_eq(rt.v[0].kind, FA_ROUTE_PYTHON);
    ck_assert_uint_eq(rt.v[0].n_params, 2);
    ck_assert_str_eq(rt.v[0].param_names[0], "a");
    ck_assert_str_eq(rt.v[0].param_names[1], "b");
    ck_assert_str_eq(rt.v[0].name, "GET /py/{a}/{b}");
    ck_assert_int_eq(rt.v[1].kind, FA_ROUTE_PYTHON);
    ck_assert_int_eq(rt.v[2].kind, FA_ROUTE_STATIC);
    ck_assert_ptr_nonnull(rt.v[2].stat);
    ck_assert_int_eq(rt.v[3].kind, FA_ROUTE_NATIVE);
    ck_assert_ptr_eq((void *)rt.v[3].native->fn, dlsym(RTLD_DEFAULT, "strlen"));
    ck_assert_str_eq(rt.v[3].native->symbol, "strlen");
    ck_assert_str_eq(rt.v[3].param_names[0], "id");
    ck_assert_int_eq(rt.v[4].kind, FA_ROUTE_FILES);
    ck_assert_str_eq(rt.v[4].param_names[0], "path");
    ck_assert_int_ge(rt.v[4].files->dirfd, 0);
    ck_assert_int_eq(rt.v[5].kind, FA_ROUTE_PYTHON);

    ck_assert_int_eq(fa_router_match(rt.router, HTTP_GET, "/files/a/b.css", 14, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 4);
    ck_assert_int_eq(fa_router_match(rt.router, HTTP_PUT, "/fast/9", 7, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 3);
    ck_assert_int_eq(fa_router_match(rt.router, HTTP_HEAD, "/health", 7, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 2);
    ck_assert_ptr_eq(fa_routes_get(&rt, 4), &rt.v[4]);
    ck_assert_ptr_null(fa_routes_get(&rt, 6));
    fa_routes_free(&rt);
    ck_assert_uint_eq(rt.n, 0);
}
END_TEST

START_TEST(test_routes__empty_table)
{
    struct fa_routes rt;
    char *cause;
    struct fa_match m;
    table(0);
    ck_assert_int_eq(load(&rt, &cause), 0);
    ck_assert_int_eq(fa_router_match(rt.router, HTTP_GET, "/", 1, &m), FA_MATCH_NOT_FOUND);
    fa_routes_free(&rt);
}
END_TEST

/* Each case packs one bad table; the cause must contain every `want`. */
static void bad_native_lib(void)
{
    table(1);
    entry(0, "GET", "/fast", "native", true);
    msgpack_pack_map(&pk, 2);
    str("library");
    str("/nonexistent/libfast.so");
    str("symbol");
    str("fast_handler");
}

static void bad_native_sym(void)
{
    table(1);
    entry(0, "GET", "/fast", "native", true);
    msgpack_pack_map(&pk, 2);
    str("library");
    str(libc_path());
    str("symbol");
    str("no_such_symbol_here");
}

static void bad_native_relative(void)
{
    table(1);
    entry(0, "GET", "/fast", "native", true);
    msgpack_pack_map(&pk, 2);
    str("library");
    str("libfast.so");
    str("symbol");
    str("f");
}

static void bad_native_no_symbol(void)
{
    table(1);
    entry(0, "GET", "/fast", "native", true);
    msgpack_pack_map(&pk, 1);
    str("library");
    str("/x.so");
}

static void bad_native_no_extra(void)
{
    table(1);
    entry(0, "GET", "/fast", "native", false);
}

static void bad_files_dir(void)
{
    table(1);
    entry(0, "GET", "/s/{path:path}", "files", true);
    msgpack_pack_map(&pk, 1);
    str("directory");
    str("/nonexistent/static");
}

static void bad_files_pattern(void)
{
    table(1);
    entry(0, "GET", "/s/{name}", "files", true);
    msgpack_pack_map(&pk, 1);
    str("directory");
    str("/tmp");
}

static void bad_files_method(void)
{
    table(1);
    entry(0, "POST", "/s/{path:path}", "files", true);
    msgpack_pack_map(&pk, 1);
    str("directory");
    str("/tmp");
}

static void bad_static_header_name(void)
{
    table(1);
    entry(0, "GET", "/h", "static", true);
    static_extra(200, NULL, (const char *const[]){"bad name", "v", NULL}, "");
}

static void bad_static_header_value(void)
{
    table(1);
    entry(0, "GET", "/h", "static", true);
    static_extra(200, NULL, (const char *const[]){"x-a", "v\r\nx-b: 1", NULL}, "");
}

static void bad_static_managed(void)
{
    table(1);
    entry(0, "GET", "/h", "static", true);
    static_extra(200, NULL, (const char *const[]){"Content-Length", "5", NULL}, "");
}

static void bad_static_ctype_twice(void)
{
    table(1);
    entry(0, "GET", "/h", "static", true);
    static_extra(200, "text/plain", (const char *const[]){"content-type", "text/html", NULL}, "");
}

static void bad_static_status(void)
{
    table(1);
    entry(0, "GET", "/h", "static", true);
    static_extra(101, NULL, NULL, "");
}

static void bad_static_204_body(void)
{
    table(1);
    entry(0, "GET", "/h", "static", true);
    static_extra(204, NULL, NULL, "x");
}

static void bad_static_ctype_crlf(void)
{
    table(1);
    entry(0, "GET", "/h", "static", true);
    static_extra(200, "text/plain\r\nx: y", NULL, "x");
}

static void bad_static_no_body(void)
{
    table(1);
    entry(0, "GET", "/h", "static", true);
    msgpack_pack_map(&pk, 1);
    str("status");
    msgpack_pack_int(&pk, 200);
}

static void bad_kind(void)
{
    table(1);
    entry(0, "GET", "/k", "wasm", false);
}

static void bad_extra_type(void)
{
    table(1);
    entry(0, "GET", "/k", "python", true);
    msgpack_pack_array(&pk, 0);
}

static void bad_id_order(void)
{
    table(2);
    entry(0, "GET", "/a", "python", false);
    entry(2, "GET", "/b", "python", false);
}

static void bad_method(void)
{
    table(1);
    entry(0, "FETCH", "/a", "python", false);
}

static void bad_duplicate(void)
{
    table(2);
    entry(0, "GET", "/a/{x}", "python", false);
    entry(1, "GET", "/a/{y}", "static", true);
    static_extra(200, NULL, NULL, "");
}

static void bad_shape(void)
{
    table(1);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, 0);
    str("GET");
    str("/a");
}

static void bad_six(void)
{
    table(1);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint32(&pk, 0);
    str("GET");
    str("/a");
    str("python");
    msgpack_pack_map(&pk, 0);
    msgpack_pack_nil(&pk);
}

static const struct bad_case {
    void (*pack)(void);
    const char *want[3];
} bad[] = {
    {bad_native_lib, {"GET /fast", "/nonexistent/libfast.so", "fast_handler"}},
    {bad_native_sym, {"GET /fast", "no_such_symbol_here", "@libc"}},
    {bad_native_relative, {"GET /fast", "absolute", "libfast.so"}},
    {bad_native_no_symbol, {"GET /fast", "'symbol'", NULL}},
    {bad_native_no_extra, {"GET /fast", "'library'", NULL}},
    {bad_files_dir, {"GET /s/{path:path}", "/nonexistent/static", NULL}},
    {bad_files_pattern, {"GET /s/{name}", "{name:path}", NULL}},
    {bad_files_method, {"POST /s/{path:path}", "GET", NULL}},
    {bad_static_header_name, {"GET /h", "bad name", "token"}},
    {bad_static_header_value, {"GET /h", "x-a", "CR"}},
    {bad_static_managed, {"GET /h", "Content-Length", "server"}},
    {bad_static_ctype_twice, {"GET /h", "Content-Type", "twice"}},
    {bad_static_status, {"GET /h", "101", NULL}},
    {bad_static_204_body, {"GET /h", "204", NULL}},
    {bad_static_ctype_crlf, {"GET /h", "content_type", NULL}},
    {bad_static_no_body, {"GET /h", "'body'", NULL}},
    {bad_kind, {"GET /k", "unknown kind 'wasm'", NULL}},
    {bad_extra_type, {"GET /k", "not a map", NULL}},
    {bad_id_order, {"GET /b", "id 2", NULL}},
    {bad_method, {"/a", "FETCH", NULL}},
    {bad_duplicate, {"GET /a/{y}", "duplicate", NULL}},
    {bad_shape, {"entry 0", NULL, NULL}},
    {bad_six, {"entry 0", NULL, NULL}},
};
#define N_BAD (sizeof bad / sizeof *bad)

START_TEST(test_routes__refused_with_a_cause_naming_the_route)
{
    struct fa_routes rt;
    char *cause;
    bad[_i].pack();
    ck_assert_int_eq(load(&rt, &cause), -1);
    ck_assert_ptr_nonnull(cause);
    for (int k = 0; k < 3 && bad[_i].want[k]; k++) {
        const char *want = strcmp(bad[_i].want[k], "@libc") == 0 ? libc_path() : bad[_i].want[k];
        ck_assert_msg(strstr(cause, want), "case %d: cause '%s' lacks '%s'", _i, cause, want);
    }
    free(cause);
    ck_assert_ptr_null(rt.v);
    ck_assert_uint_eq(rt.n, 0);
}
END_TEST

START_TEST(test_routes__not_msgpack)
{
    struct fa_routes rt;
    char *cause = NULL;
    ck_assert_int_eq(fa_routes_load(&rt, "\xc1", 1, &cause), -1);
    ck_assert_ptr_nonnull(strstr(cause, "not a msgpack array"));
    free(cause);
}
END_TEST

/* ---- --metrics ------------------------------------------------------------------------ */

START_TEST(test_routes__add_metrics)
{
    struct fa_routes rt;
    char *cause;
    struct fa_match m;

    table(2);
    entry(0, "GET", "/a", "python", false);
    entry(1, "GET", "/metrics", "python", false);
    ck_assert_int_eq(load(&rt, &cause), 0);
    ck_assert_int_eq(fa_routes_add_metrics(&rt, "/stats", &cause), 0);
    ck_assert_uint_eq(rt.n, 3);
    ck_assert_int_eq(rt.v[2].kind, FA_ROUTE_METRICS);
    ck_assert_uint_eq(rt.v[2].id, 2);
    ck_assert_str_eq(rt.v[2].pattern, "/stats");
    ck_assert_int_eq(fa_router_match(rt.router, HTTP_GET, "/stats", 6, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 2);
    ck_assert_int_eq(fa_router_match(rt.router, HTTP_HEAD, "/stats", 6, &m), FA_MATCH_OK);
    /* the app's own /metrics and a pattern are refused, naming --metrics */
    ck_assert_int_eq(fa_routes_add_metrics(&rt, "/metrics", &cause), -1);
    ck_assert_ptr_nonnull(strstr(cause, "--metrics /metrics"));
    ck_assert_ptr_nonnull(strstr(cause, "duplicate"));
    free(cause);
    ck_assert_int_eq(fa_routes_add_metrics(&rt, "/m/{x}", &cause), -1);
    ck_assert_ptr_nonnull(strstr(cause, "--metrics"));
    free(cause);
    ck_assert_uint_eq(rt.n, 3);
    /* many more: the table grows */
    for (int i = 0; i < 20; i++) {
        char p[32];
        snprintf(p, sizeof p, "/m%d", i);
        ck_assert_int_eq(fa_routes_add_metrics(&rt, p, &cause), 0);
    }
    ck_assert_int_eq(fa_router_match(rt.router, HTTP_GET, "/m19", 4, &m), FA_MATCH_OK);
    ck_assert_int_eq(fa_routes_get(&rt, m.route_id)->kind, FA_ROUTE_METRICS);
    fa_routes_free(&rt);
}
END_TEST

/* ---- static responses -------------------------------------------------------------------- */

static char *static_response(struct fa_static *s, bool head, bool keep_alive)
{
    struct tworker tw;
    tworker_init(&tw);
    struct fa_resp *r = tresp_new(head);
    r->keep_alive = keep_alive;
    fa_static_respond(&tw.w, r, s);
    ck_assert_uint_eq(r->status, (unsigned)s->status);
    char *out = tresp_bytes(r, NULL);
    tresp_free(r);
    return out;
}

START_TEST(test_routes__static_response_bytes)
{
    char *cause = NULL;
    struct fa_static_header h[] = {{"x-a", "1", 3, 1}, {"Cache-Control", "no-store", 13, 8}};
    struct fa_static *s = fa_static_create("GET /h", 201, "text/plain", 10, h, 2, "ok!", 3, &cause);
    ck_assert_ptr_nonnull(s);
    char *out = static_response(s, false, true);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y", gmtime_r(&now, &tm));
    ck_assert_msg(strncmp(out, "HTTP/1.1 201 Created\r\nServer: fasterapi\r\nDate: ", 47) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, date));
    ck_assert_ptr_nonnull(strstr(out, " GMT\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n"
                                      "x-a: 1\r\nCache-Control: no-store\r\n\r\nok!"));
    ck_assert_ptr_null(strstr(out, "Connection"));
    free(out);
    out = static_response(s, true, false);   /* HEAD, last request of the connection */
    ck_assert_ptr_nonnull(strstr(out, "Content-Length: 3\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "Connection: close\r\n\r\n"));
    ck_assert_str_eq(tbody(out), "");
    free(out);
    fa_static_destroy(s);

    s = fa_static_create("GET /e", 204, NULL, 0, NULL, 0, "", 0, &cause);
    out = static_response(s, false, true);
    ck_assert_ptr_null(strstr(out, "Content-Length"));
    ck_assert_ptr_null(strstr(out, "Content-Type"));
    free(out);
    fa_static_destroy(s);
    fa_static_destroy(NULL);
}
END_TEST

static Suite *make_suite_routes(void)
{
    Suite *s = suite_create("routes");
    TCase *tc = tcase_create("routes");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_routes__every_kind);
    tcase_add_test(tc, test_routes__empty_table);
    tcase_add_loop_test(tc, test_routes__refused_with_a_cause_naming_the_route, 0, N_BAD);
    tcase_add_test(tc, test_routes__not_msgpack);
    tcase_add_test(tc, test_routes__add_metrics);
    tcase_add_test(tc, test_routes__static_response_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(make_suite_routes());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
