/* check_native.c - unit tests for worker/native.c: the native handler API
 * of include/fasterapi.h as a handler sees it (request lookups, response
 * setters, the JSON builder) and the response the worker makes of it,
 * including the 500s that a misbehaving handler gets.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>

#include "fasterapi.h"
#include "worker/native.h"
#include "worker/router.h"
#include "worker/routes.h"
#include "tests/worker/tkinds.h"

/* ---- running a handler -------------------------------------------------------- */

static const char *pattern = "/x";
static char *param_names[4];
static uint32_t n_param_names;

/* Runs `fn` for method + target (+ headers, body) as route `pattern`, and
 * returns the response bytes (malloc'd). */
static char *run(fa_handler *fn, unsigned method, const char *target, const char *const *hdrs,
                 const char *body, size_t body_len, struct fa_resp **keep)
{
    struct tworker tw;
    struct treq tq;
    struct fa_native nat = {.library = "/test", .symbol = "test_handler", .fn = fn};
    struct fa_route rt = {.id = 0, .method = method, .kind = FA_ROUTE_NATIVE, .native = &nat};
    struct fa_router *router = fa_router_create();
    struct fa_match m;
    char *cause = NULL;

    tworker_init(&tw);
    treq_init(&tq, method, target, hdrs);
    rt.pattern = (char *)pattern;
    rt.name = "TEST route";
    rt.param_names = param_names;
    rt.n_params = n_param_names;
    ck_assert_int_eq(fa_router_add(router, method, pattern, 0, &cause), 0);
    ck_assert_int_eq(fa_router_match(router, method, tq.req.path, tq.req.path_len, &m), FA_MATCH_OK);
    struct fa_resp *r = tresp_new(method == HTTP_HEAD);
    fa_native_run(&tw.w, r, &rt, &tq.req, &m, "192.0.2.7", 5555, body, body_len);
    char *out = tresp_bytes(r, NULL);
    if (keep)
        *keep = r;
    else
        tresp_free(r);
    fa_router_destroy(router);
    return out;
}

static char *get(fa_handler *fn, const char *target)
{
    return run(fn, HTTP_GET, target, NULL, NULL, 0, NULL);
}

static void set_pattern(const char *p, const char *n0, const char *n1)
{
    pattern = p;
    n_param_names = 0;
    if (n0)
        param_names[n_param_names++] = (char *)n0;
    if (n1)
        param_names[n_param_names++] = (char *)n1;
}

/* ---- the request --------------------------------------------------------------- */

static char seen[4096];

static void seen_add(const char *label, int rc, fa_str v)
{
    size_t n = strlen(seen);
    if (rc < 0)
        snprintf(seen + n, sizeof seen - n, "%s=<none>;", label);
    else
        snprintf(seen + n, sizeof seen - n, "%s=[%.*s];", label, (int)v.len, v.ptr);
}

static int h_params(const fa_request *req, fa_response *res)
{
    fa_str v = {0};
    seen_add("id", fa_request_param(req, "id", &v), v);
    seen_add("rest", fa_request_param(req, "rest", &v), v);
    seen_add("nope", fa_request_param(req, "nope", &v), v);
    seen_add("i", fa_request_param(req, "i", &v), v);    /* a prefix of a name is not it */
    return 0;
}

START_TEST(test_native__params_by_name_decoded)
{
    set_pattern("/u/{id}/f/{rest:path}", "id", "rest");
    seen[0] = '\0';
    free(get(h_params, "/u/a%20b%zz/f/x/y%2Fz"));
    ck_assert_str_eq(seen, "id=[a b%zz];rest=[x/y/z];nope=<none>;i=<none>;");
}
END_TEST

static int h_query(const fa_request *req, fa_response *res)
{
    static const char *const names[] = {"a", "b", "c", "aa", "empty", "missing", "sp ace", "", NULL};
    fa_str v = {0};
    for (int i = 0; names[i]; i++)
        seen_add(names[i], fa_request_query(req, names[i], &v), v);
    seen_add("raw", 0, req->query);
    return 0;
}

START_TEST(test_native__query_lookup)
{
    set_pattern("/x", NULL, NULL);
    seen[0] = '\0';
    free(get(h_query, "/x?a=1&b=x+y%21&c&a=2&%61a=3&empty=&sp+ace=%2B&&=z"));
    ck_assert_str_eq(seen, "a=[1];b=[x y!];c=[];aa=[3];empty=[];missing=<none>;sp ace=[+];=[z];"
                           "raw=[a=1&b=x+y%21&c&a=2&%61a=3&empty=&sp+ace=%2B&&=z];");
    seen[0] = '\0';
    free(get(h_query, "/x"));
    ck_assert_ptr_nonnull(strstr(seen, "a=<none>;"));
    ck_assert_ptr_nonnull(strstr(seen, "raw=[];"));
}
END_TEST

static int h_headers(const fa_request *req, fa_response *res)
{
    fa_str n = {0}, v = {0};
    seen_add("Content-Type", fa_request_header(req, "Content-Type", &v), v);
    seen_add("X-TWO", fa_request_header(req, "X-TWO", &v), v);
    seen_add("x-none", fa_request_header(req, "x-none", &v), v);
    for (size_t i = 0; i <= req->n_headers; i++) {
        int rc = fa_request_header_at(req, i, &n, &v);
        seen_add(rc < 0 ? "at-end" : "at", rc, n);
        if (rc == 0)
            seen_add("v", rc, v);
    }
    return 0;
}

START_TEST(test_native__headers_any_case_first_wins)
{
    static const char *const h[] = {"content-type", "text/x", "x-two", "1", "x-two", "2", NULL};
    set_pattern("/x", NULL, NULL);
    seen[0] = '\0';
    free(run(h_headers, HTTP_GET, "/x", h, NULL, 0, NULL));
    ck_assert_str_eq(seen, "Content-Type=[text/x];X-TWO=[1];x-none=<none>;at=[content-type];v=[text/x];"
                           "at=[x-two];v=[1];at=[x-two];v=[2];at-end=<none>;");
}
END_TEST

static int h_fields(const fa_request *req, fa_response *res)
{
    snprintf(seen, sizeof seen, "%s|%s|%.*s|%.*s|%.*s|%.*s|%s|%u|%d|%zu", req->method, req->route,
             (int)req->target.len, req->target.ptr, (int)req->path.len, req->path.ptr,
             (int)req->query.len, req->query.ptr, (int)req->body.len, req->body.ptr,
             req->client_addr, req->client_port, req->http_minor, req->n_headers);
    return 0;
}

START_TEST(test_native__request_fields)
{
    static const char *const h[] = {"host", "h", NULL};
    set_pattern("/p/{id}", "id", NULL);
    free(run(h_fields, HTTP_POST, "/p/7?q=1", h, "BODY", 4, NULL));
    ck_assert_str_eq(seen, "POST|/p/{id}|/p/7?q=1|/p/7|q=1|BODY|192.0.2.7|5555|1|1");
    free(run(h_fields, HTTP_GET, "/p/7", NULL, NULL, 0, NULL));
    ck_assert_str_eq(seen, "GET|/p/{id}|/p/7|/p/7|||192.0.2.7|5555|1|0");
}
END_TEST

static int h_scratch(const fa_request *req, fa_response *res)
{
    /* Many decoded strings: each stays valid until the handler returns. */
    fa_str v[40];
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(fa_request_query(req, "big", &v[i]), 0);
    for (int i = 0; i < 40; i++) {
        ck_assert_uint_eq(v[i].len, 3000);
        for (size_t k = 0; k < v[i].len; k++)
            ck_assert_int_eq(v[i].ptr[k], ' ');
    }
    return 0;
}

START_TEST(test_native__decoded_strings_stay_valid_during_the_call)
{
    char target[8000] = "/x?big=";
    for (int i = 0; i < 3000; i++)
        strcat(target, "+");
    set_pattern("/x", NULL, NULL);
    char *out = get(h_scratch, target);
    ck_assert_int_eq(tstatus(out), 200);
    free(out);
}
END_TEST

/* ---- the response -------------------------------------------------------------- */

static int h_empty(const fa_request *req, fa_response *res)
{
    return 0;
}

START_TEST(test_native__default_is_200_empty)
{
    char buf[64];
    set_pattern("/x", NULL, NULL);
    char *out = get(h_empty, "/x");
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert_str_eq(theader(out, "Content-Length", buf, sizeof buf), "0");
    ck_assert_ptr_null(theader(out, "Content-Type", buf, sizeof buf));
    ck_assert_ptr_nonnull(strstr(out, "\r\nServer: fasterapi\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "\r\nDate: "));
    ck_assert_str_eq(tbody(out), "");
    free(out);
}
END_TEST

static int h_full(const fa_request *req, fa_response *res)
{
    ck_assert_int_eq(fa_response_status(res, 201), 0);
    ck_assert_int_eq(fa_response_header(res, "Content-Type", "text/plain"), 0);
    ck_assert_int_eq(fa_response_header(res, "X-A", "1"), 0);
    ck_assert_int_eq(fa_response_header_n(res, "X-Bin", 5, "a\tb", 3), 0);
    ck_assert_int_eq(fa_response_body(res, "first", 5), 0);
    ck_assert_int_eq(fa_response_body(res, "hello", 5), 0);     /* replaces */
    ck_assert_int_eq(fa_response_write(res, ", ", 2), 0);       /* appends */
    ck_assert_int_eq(fa_response_write(res, "world", 5), 0);
    return 0;
}

START_TEST(test_native__status_headers_body)
{
    char buf[64];
    set_pattern("/x", NULL, NULL);
    char *out = get(h_full, "/x");
    ck_assert_int_eq(tstatus(out), 201);
    ck_assert_str_eq(theader(out, "Content-Type", buf, sizeof buf), "text/plain");
    ck_assert_str_eq(theader(out, "X-A", buf, sizeof buf), "1");
    ck_assert_str_eq(theader(out, "X-Bin", buf, sizeof buf), "a\tb");
    ck_assert_str_eq(theader(out, "Content-Length", buf, sizeof buf), "12");
    ck_assert_str_eq(tbody(out), "hello, world");
    free(out);
}
END_TEST

static const char static_body[] = "from static memory";

static int h_ref(const fa_request *req, fa_response *res)
{
    return fa_response_body_ref(res, static_body, sizeof static_body - 1);
}

static int h_ref_then_write(const fa_request *req, fa_response *res)
{
    fa_response_body_ref(res, static_body, 4);
    return fa_response_write(res, "!", 1);
}

START_TEST(test_native__body_ref_is_not_copied)
{
    struct fa_resp *r;
    set_pattern("/x", NULL, NULL);
    char *out = run(h_ref, HTTP_GET, "/x", NULL, NULL, 0, &r);
    ck_assert_str_eq(tbody(out), static_body);
    ck_assert_int_eq(r->niov, 1);
    ck_assert_ptr_eq(r->iov[0].iov_base, static_body);
    ck_assert_uint_eq(r->total - r->hlen + r->hbody, sizeof static_body - 1);
    tresp_free(r);
    free(out);
    out = get(h_ref_then_write, "/x");
    ck_assert_str_eq(tbody(out), "from!");
    free(out);
}
END_TEST

static int h_big(const fa_request *req, fa_response *res)
{
    static char chunk[1000];
    memset(chunk, 'b', sizeof chunk);
    for (int i = 0; i < 100; i++)
        fa_response_write(res, chunk, sizeof chunk);
    return 0;
}

START_TEST(test_native__large_body_handed_over)
{
    struct fa_resp *r;
    size_t len;
    set_pattern("/x", NULL, NULL);
    free(run(h_big, HTTP_GET, "/x", NULL, NULL, 0, &r));
    char *out = tresp_bytes(r, &len);
    ck_assert_ptr_nonnull(r->owned);
    ck_assert_uint_eq(strlen(tbody(out)), 100000);
    ck_assert_uint_eq(r->total - r->hlen + r->hbody, 100000);
    tresp_free(r);
    free(out);
    /* and the next call starts clean */
    out = get(h_ref, "/x");
    ck_assert_str_eq(tbody(out), static_body);
    free(out);
}
END_TEST

START_TEST(test_native__head_has_length_no_body)
{
    char buf[64];
    set_pattern("/x", NULL, NULL);
    char *out = run(h_full, HTTP_HEAD, "/x", NULL, NULL, 0, NULL);
    ck_assert_str_eq(theader(out, "Content-Length", buf, sizeof buf), "12");
    ck_assert_str_eq(tbody(out), "");
    free(out);
}
END_TEST

static int h_204(const fa_request *req, fa_response *res)
{
    fa_response_status(res, 204);
    return fa_response_body(res, "ignored", 7);
}

START_TEST(test_native__204_has_no_body_nor_length)
{
    char buf[64];
    set_pattern("/x", NULL, NULL);
    char *out = get(h_204, "/x");
    ck_assert_int_eq(tstatus(out), 204);
    ck_assert_ptr_null(theader(out, "Content-Length", buf, sizeof buf));
    ck_assert_str_eq(tbody(out), "");
    free(out);
}
END_TEST

static int h_managed(const fa_request *req, fa_response *res)
{
    ck_assert_int_eq(fa_response_header(res, "Content-Length", "99"), -1);
    ck_assert_int_eq(fa_response_header(res, "connection", "close"), -1);
    ck_assert_int_eq(fa_response_header(res, "DATE", "x"), -1);
    return fa_response_body(res, "ok", 2);
}

START_TEST(test_native__managed_headers_dropped_not_fatal)
{
    char buf[64];
    set_pattern("/x", NULL, NULL);
    char *out = get(h_managed, "/x");
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert_str_eq(theader(out, "Content-Length", buf, sizeof buf), "2");
    ck_assert_ptr_null(theader(out, "connection", buf, sizeof buf));
    ck_assert_ptr_null(strstr(out, "Connection"));
    free(out);
}
END_TEST

/* Handlers that must end in a 500; _i picks one. */
static int bad_name(const fa_request *q, fa_response *s) { fa_response_header(s, "Bad Name", "v"); return 0; }
static int bad_colon(const fa_request *q, fa_response *s) { fa_response_header(s, "X:Y", "v"); return 0; }
static int bad_empty(const fa_request *q, fa_response *s) { fa_response_header(s, "", "v"); return 0; }
static int bad_crlf(const fa_request *q, fa_response *s) { fa_response_header(s, "X-A", "v\r\nSet-Cookie: x=1"); return 0; }
static int bad_lf(const fa_request *q, fa_response *s) { fa_response_header(s, "X-A", "v\nw"); return 0; }
static int bad_nul(const fa_request *q, fa_response *s) { fa_response_header_n(s, "X-A", 3, "v\0w", 3); return 0; }
static int bad_nul_name(const fa_request *q, fa_response *s) { fa_response_header_n(s, "X\0A", 3, "v", 1); return 0; }
static int bad_rc(const fa_request *q, fa_response *s) { fa_response_body(s, "partial", 7); return -1; }
static int bad_rc_pos(const fa_request *q, fa_response *s) { return 7; }
static int bad_status_low(const fa_request *q, fa_response *s) { fa_response_status(s, 101); return 0; }
static int bad_status_high(const fa_request *q, fa_response *s) { fa_response_status(s, 600); return 0; }
static int bad_null_body(const fa_request *q, fa_response *s) { fa_response_body(s, NULL, 3); return 0; }
static int bad_json_key_top(const fa_request *q, fa_response *s) { fa_json_key(s, "k"); return 0; }
static int bad_json_key_in_array(const fa_request *q, fa_response *s)
{ fa_json_array(s); fa_json_key(s, "k"); fa_json_array_end(s); return 0; }
static int bad_json_value_for_key(const fa_request *q, fa_response *s)
{ fa_json_object(s); fa_json_int(s, 1); fa_json_object_end(s); return 0; }
static int bad_json_two_keys(const fa_request *q, fa_response *s)
{ fa_json_object(s); fa_json_key(s, "a"); fa_json_key(s, "b"); fa_json_null(s); fa_json_object_end(s); return 0; }
static int bad_json_dangling_key(const fa_request *q, fa_response *s)
{ fa_json_object(s); fa_json_key(s, "a"); fa_json_object_end(s); return 0; }
static int bad_json_two_values(const fa_request *q, fa_response *s) { fa_json_int(s, 1); fa_json_int(s, 2); return 0; }
static int bad_json_open(const fa_request *q, fa_response *s) { fa_json_object(s); return 0; }
static int bad_json_mismatch(const fa_request *q, fa_response *s) { fa_json_object(s); fa_json_array_end(s); return 0; }
static int bad_json_end_nothing(const fa_request *q, fa_response *s) { fa_json_object_end(s); return 0; }
static int bad_json_nan(const fa_request *q, fa_response *s) { fa_json_double(s, NAN); return 0; }
static int bad_json_inf(const fa_request *q, fa_response *s) { fa_json_double(s, -INFINITY); return 0; }
static int bad_json_deep(const fa_request *q, fa_response *s)
{
    for (int i = 0; i < 65; i++)
        fa_json_array(s);
    for (int i = 0; i < 65; i++)
        fa_json_array_end(s);
    return 0;
}
static int bad_body_then_json(const fa_request *q, fa_response *s)
{ fa_response_body(s, "x", 1); fa_json_null(s); return 0; }
static int bad_json_then_body(const fa_request *q, fa_response *s)
{ fa_json_null(s); fa_response_body(s, "x", 1); return 0; }

static fa_handler *const bad_handlers[] = {
    bad_name, bad_colon, bad_empty, bad_crlf, bad_lf, bad_nul, bad_nul_name, bad_rc, bad_rc_pos,
    bad_status_low, bad_status_high, bad_null_body, bad_json_key_top, bad_json_key_in_array,
    bad_json_value_for_key, bad_json_two_keys, bad_json_dangling_key, bad_json_two_values,
    bad_json_open, bad_json_mismatch, bad_json_end_nothing, bad_json_nan, bad_json_inf,
    bad_json_deep, bad_body_then_json, bad_json_then_body,
};
#define N_BAD (sizeof bad_handlers / sizeof *bad_handlers)

START_TEST(test_native__misbehaving_handler_gets_500)
{
    char buf[64];
    set_pattern("/x", NULL, NULL);
    char *out = get(bad_handlers[_i], "/x");
    ck_assert_msg(tstatus(out) == 500, "handler %d: %s", _i, out);
    ck_assert_str_eq(tbody(out), "{\"detail\":\"Internal Server Error\"}");
    ck_assert_str_eq(theader(out, "Content-Type", buf, sizeof buf), "application/json");
    /* nothing the handler set leaks into the 500 */
    ck_assert_ptr_null(strstr(out, "Set-Cookie"));
    ck_assert_ptr_null(strstr(out, "X-A"));
    free(out);
    /* and the next call is not affected */
    out = get(h_ref, "/x");
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert_str_eq(tbody(out), static_body);
    free(out);
}
END_TEST

/* ---- JSON ------------------------------------------------------------------------ */

static int h_json(const fa_request *req, fa_response *res)
{
    fa_json_object(res);
    fa_json_key(res, "a");
    fa_json_array(res);
    fa_json_int(res, 1);
    fa_json_int(res, -2);
    fa_json_double(res, 3.5);
    fa_json_bool(res, 1);
    fa_json_bool(res, 0);
    fa_json_null(res);
    fa_json_string(res, "s");
    fa_json_array(res);
    fa_json_array_end(res);
    fa_json_object(res);
    fa_json_object_end(res);
    fa_json_array_end(res);
    fa_json_key(res, "b");
    fa_json_object(res);
    fa_json_key(res, "u");
    fa_json_uint(res, 18446744073709551615ull);
    fa_json_key(res, "min");
    fa_json_int(res, -9223372036854775807ll - 1);
    fa_json_object_end(res);
    fa_json_key_n(res, "k\"\\\n\x01", 5);
    fa_json_string_n(res, "q\"\\\n\r\t\b\f\x01\x1f\x7f", 11);
    fa_json_key(res, "utf8");
    fa_json_string(res, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    fa_json_key(res, "bad");
    /* lone continuation, truncated sequence, overlong, surrogate, > U+10FFFF */
    fa_json_string(res, "\x80|\xc3|\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xff");
    return fa_json_object_end(res);
}

START_TEST(test_native__json_built_and_escaped)
{
    char buf[64];
    set_pattern("/x", NULL, NULL);
    char *out = get(h_json, "/x");
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert_str_eq(theader(out, "Content-Type", buf, sizeof buf), "application/json");
    ck_assert_str_eq(tbody(out),
        "{\"a\":[1,-2,3.5,true,false,null,\"s\",[],{}],"
        "\"b\":{\"u\":18446744073709551615,\"min\":-9223372036854775808},"
        "\"k\\\"\\\\\\n\\u0001\":\"q\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\","
        "\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
        "\"bad\":\"\\ufffd|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\\ufffd|\\ufffd\"}");
    free(out);
}
END_TEST

static double dbl;

static int h_double(const fa_request *req, fa_response *res)
{
    return fa_json_double(res, dbl);
}

START_TEST(test_native__json_double_shortest_roundtrip)
{
    static const double values[] = {0.1, 1.0 / 3, 1e300, -2.5e-308, 123456789012345678.0, 0.0,
                                    5e-324, 1.7976931348623157e308, 100.0};
    set_pattern("/x", NULL, NULL);
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        dbl = values[i];
        char *out = get(h_double, "/x");
        const char *b = tbody(out);
        ck_assert_msg(strtod(b, NULL) == values[i], "%.17g written as %s", values[i], b);
        ck_assert_msg(strlen(b) <= 24, "%s", b);
        if (values[i] == 0.1)
            ck_assert_str_eq(b, "0.1");
        free(out);
    }
}
END_TEST

static int h_json_own_type(const fa_request *req, fa_response *res)
{
    fa_response_header(res, "Content-Type", "application/vnd.x+json");
    return fa_json_string(res, "v");
}

START_TEST(test_native__json_keeps_a_content_type_set_by_the_handler)
{
    set_pattern("/x", NULL, NULL);
    char *out = get(h_json_own_type, "/x");
    ck_assert_ptr_nonnull(strstr(out, "Content-Type: application/vnd.x+json\r\n"));
    ck_assert_ptr_null(strstr(out, "application/json"));
    ck_assert_str_eq(tbody(out), "\"v\"");
    free(out);
}
END_TEST

static int h_json_deep_ok(const fa_request *req, fa_response *res)
{
    for (int i = 0; i < 64; i++)
        fa_json_array(res);
    for (int i = 0; i < 64; i++)
        fa_json_array_end(res);
    return 0;
}

START_TEST(test_native__json_64_levels_allowed)
{
    set_pattern("/x", NULL, NULL);
    char *out = get(h_json_deep_ok, "/x");
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert_uint_eq(strlen(tbody(out)), 128);
    free(out);
}
END_TEST

/* ---- loading ------------------------------------------------------------------------ */

START_TEST(test_native__open_names_library_and_symbol)
{
    char *cause = NULL;
    ck_assert_ptr_null(fa_native_open("GET /f", "/nonexistent/libx.so", 20, "handler_x", 9, &cause));
    ck_assert_ptr_nonnull(strstr(cause, "GET /f"));
    ck_assert_ptr_nonnull(strstr(cause, "/nonexistent/libx.so"));
    ck_assert_ptr_nonnull(strstr(cause, "handler_x"));
    free(cause);
    cause = NULL;
    ck_assert_ptr_null(fa_native_open("GET /f", "libm.so.6", 9, "cos", 3, &cause));
    ck_assert_ptr_nonnull(strstr(cause, "absolute"));
    free(cause);
}
END_TEST

static Suite *make_suite_native(void)
{
    Suite *s = suite_create("native");
    TCase *tc = tcase_create("native");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_native__params_by_name_decoded);
    tcase_add_test(tc, test_native__query_lookup);
    tcase_add_test(tc, test_native__headers_any_case_first_wins);
    tcase_add_test(tc, test_native__request_fields);
    tcase_add_test(tc, test_native__decoded_strings_stay_valid_during_the_call);
    tcase_add_test(tc, test_native__default_is_200_empty);
    tcase_add_test(tc, test_native__status_headers_body);
    tcase_add_test(tc, test_native__body_ref_is_not_copied);
    tcase_add_test(tc, test_native__large_body_handed_over);
    tcase_add_test(tc, test_native__head_has_length_no_body);
    tcase_add_test(tc, test_native__204_has_no_body_nor_length);
    tcase_add_test(tc, test_native__managed_headers_dropped_not_fatal);
    tcase_add_loop_test(tc, test_native__misbehaving_handler_gets_500, 0, N_BAD);
    tcase_add_test(tc, test_native__json_built_and_escaped);
    tcase_add_test(tc, test_native__json_double_shortest_roundtrip);
    tcase_add_test(tc, test_native__json_keeps_a_content_type_set_by_the_handler);
    tcase_add_test(tc, test_native__json_64_levels_allowed);
    tcase_add_test(tc, test_native__open_names_library_and_symbol);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(make_suite_native());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
