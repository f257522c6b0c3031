/* check_router.c - unit tests for worker/router.c: a table of routes, a
 * table of (method, path) -> expected match, a table of refused patterns;
 * paths are also matched from the very end of a page followed by a
 * PROT_NONE page, so reading one byte past the path crashes the test.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <http_parser.h>

#include "worker/router.h"

#define BIT(m) (UINT64_C(1) << (m))

static const struct route {
    unsigned method;
    const char *pattern;
    uint32_t id;
} routes[] = {
    { HTTP_GET,    "/",                             1 },
    { HTTP_GET,    "/users",                        2 },
    { HTTP_GET,    "/users/",                       3 },
    { HTTP_GET,    "/users/me",                     4 },
    { HTTP_GET,    "/users/{id}",                   5 },
    { HTTP_DELETE, "/users/{user_id}",              6 },   /* same node, other name */
    { HTTP_GET,    "/users/{id}/posts",             7 },
    { HTTP_GET,    "/users/{id}/posts/{post:int}",  8 },
    { HTTP_POST,   "/users",                        9 },
    { HTTP_HEAD,   "/only-head",                   10 },
    { HTTP_PUT,    "/items/{a}/{b}/{c}",           11 },
    { HTTP_GET,    "/files/{name}",                12 },
    { HTTP_GET,    "/files/special/x",             13 },
    { HTTP_GET,    "/a/b/c",                       14 },
    { HTTP_GET,    "/a/{x}/d",                     15 },
    { HTTP_GET,    "/head",                        16 },
    { HTTP_HEAD,   "/head",                        17 },
    { HTTP_POST,   "/users/me",                    18 },
    { HTTP_GET,    "/enc/{v}",                     19 },
    { HTTP_GET,    "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{q}", 20 },
    { HTTP_GET,    "/x//y",                        21 },   /* empty static segment */
    { HTTP_PATCH,  "/{a}/edit",                    22 },
    { HTTP_GET,    "/deep/{a}/x/{b}/y",            23 },
    { HTTP_GET,    "/deep/{a}/x/z/y",              24 },
    { HTTP_GET,    "/static/{file:path}",          25 },   /* rest of the path */
    { HTTP_GET,    "/static/special",              26 },
    { HTTP_POST,   "/static/{other:path}",         27 },   /* same node, other name */
    { HTTP_GET,    "/mix/{a}/{rest:path}",         28 },
    { HTTP_GET,    "/mix/{a}/fixed",               29 },
    { HTTP_GET,    "/mix/{a}/p/{b}",               30 },
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static const struct match_case {
    unsigned method;
    const char *path;
    int rc;
    uint32_t id;
    const char *params;     /* values joined with '|' */
    uint64_t allow;
} matches[] = {
#define OK(m, path, id, params)  { m, path, FA_MATCH_OK, id, params, 0 }
#define NF(m, path)              { m, path, FA_MATCH_NOT_FOUND, 0, NULL, 0 }
#define BAD(m, path, allow)      { m, path, FA_MATCH_BAD_METHOD, 0, NULL, allow }
    OK(HTTP_GET, "/", 1, ""),
    OK(HTTP_GET, "/users", 2, ""),
    OK(HTTP_GET, "/users/", 3, ""),
    OK(HTTP_GET, "/users/me", 4, ""),
    OK(HTTP_GET, "/users/42", 5, "42"),
    OK(HTTP_DELETE, "/users/42", 6, "42"),
    /* the static node has no DELETE: the parameter route matches */
    OK(HTTP_DELETE, "/users/me", 6, "me"),
    OK(HTTP_GET, "/users/42/posts", 7, "42"),
    /* static "me" dead-ends at /posts: backtrack into {id} */
    OK(HTTP_GET, "/users/me/posts", 7, "me"),
    OK(HTTP_GET, "/users/42/posts/7", 8, "42|7"),
    OK(HTTP_GET, "/users/me/posts/7", 8, "me|7"),
    OK(HTTP_POST, "/users", 9, ""),
    OK(HTTP_HEAD, "/users", 2, ""),   /* HEAD -> GET */
    OK(HTTP_HEAD, "/users/42/posts", 7, "42"),
    OK(HTTP_HEAD, "/only-head", 10, ""),
    OK(HTTP_HEAD, "/head", 17, ""),   /* own HEAD wins */
    OK(HTTP_GET, "/head", 16, ""),
    OK(HTTP_PUT, "/items/1/2/3", 11, "1|2|3"),
    OK(HTTP_GET, "/files/special", 12, "special"),
    OK(HTTP_GET, "/files/special/x", 13, ""),
    OK(HTTP_GET, "/a/b/c", 14, ""),
    OK(HTTP_GET, "/a/b/d", 15, "b"),
    OK(HTTP_GET, "/a/zz/d", 15, "zz"),
    OK(HTTP_POST, "/users/me", 18, ""),
    OK(HTTP_GET, "/enc/a%2Fb", 19, "a%2Fb"),   /* raw, not decoded */
    OK(HTTP_GET, "/p/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16", 20,
       "1|2|3|4|5|6|7|8|9|10|11|12|13|14|15|16"),
    OK(HTTP_GET, "/x//y", 21, ""),
    OK(HTTP_PATCH, "/anything/edit", 22, "anything"),
    /* users/{id} has GET/DELETE only: back up two levels into /{a}/edit */
    OK(HTTP_PATCH, "/users/edit", 22, "users"),
    OK(HTTP_GET, "/users/edit", 5, "edit"),
    OK(HTTP_GET, "/deep/1/x/z/y", 24, "1"),
    OK(HTTP_GET, "/deep/1/x/w/y", 23, "1|w"),
    OK(HTTP_GET, "/static/a.css", 25, "a.css"),
    OK(HTTP_GET, "/static/a/b/c.js", 25, "a/b/c.js"),
    OK(HTTP_GET, "/static/special", 26, ""),
    /* the static branch dead-ends: the rest takes it all */
    OK(HTTP_GET, "/static/special/x", 25, "special/x"),
    OK(HTTP_GET, "/static/a/", 25, "a/"),
    OK(HTTP_GET, "/static//x", 25, "/x"),
    OK(HTTP_GET, "/static/%2e%2e/x", 25, "%2e%2e/x"),   /* raw */
    OK(HTTP_HEAD, "/static/x", 25, "x"),
    OK(HTTP_POST, "/static/x/y", 27, "x/y"),
    OK(HTTP_GET, "/mix/1/fixed", 29, "1"),
    OK(HTTP_GET, "/mix/1/fixed/more", 28, "1|fixed/more"),
    OK(HTTP_GET, "/mix/1/p/2", 30, "1|2"),
    /* {b} cannot take "2/3": back up into the rest */
    OK(HTTP_GET, "/mix/1/p/2/3", 28, "1|p/2/3"),
    OK(HTTP_GET, "/mix/1/x", 28, "1|x"),
    NF(HTTP_GET, "/static/"),    /* the rest is one byte or more */
    NF(HTTP_GET, "/static"),
    NF(HTTP_GET, "/mix/1/"),
    NF(HTTP_GET, "/mix/1"),
    BAD(HTTP_PUT, "/static/x", BIT(HTTP_GET) | BIT(HTTP_POST)),
    OK(HTTP_POST, "/static/special", 27, "special"),
    BAD(HTTP_DELETE, "/static/special", BIT(HTTP_GET) | BIT(HTTP_POST)),

    NF(HTTP_GET, ""),
    NF(HTTP_GET, "users"),
    NF(HTTP_OPTIONS, "*"),
    NF(HTTP_GET, "/nope"),
    NF(HTTP_GET, "/users//posts"),    /* params are never empty */
    NF(HTTP_GET, "/users/42/"),    /* trailing slash counts */
    NF(HTTP_GET, "/users/42/posts/"),
    OK(HTTP_GET, "/users/m", 5, "m"),   /* prefix of a label */
    NF(HTTP_GET, "/files/other/x"),
    NF(HTTP_GET, "/files/"),
    NF(HTTP_PUT, "/items/1/2"),
    NF(HTTP_PUT, "/items/1/2/3/4"),
    NF(HTTP_GET, "/p/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15"),
    NF(HTTP_GET, "//"),
    NF(HTTP_GET, "/x/y"),

    BAD(HTTP_PUT, "/users", BIT(HTTP_GET) | BIT(HTTP_POST)),
    BAD(HTTP_GET, "/only-head", BIT(HTTP_HEAD)),
    /* union over every node the path reaches: static "me" and {id} */
    BAD(HTTP_PUT, "/users/me",
        BIT(HTTP_GET) | BIT(HTTP_POST) | BIT(HTTP_DELETE)),
    BAD(HTTP_POST, "/users/42/posts", BIT(HTTP_GET)),
    BAD(HTTP_DELETE, "/", BIT(HTTP_GET)),
    BAD(HTTP_POST, "/head", BIT(HTTP_GET) | BIT(HTTP_HEAD)),
    BAD(HTTP_GET, "/anything/edit", BIT(HTTP_PATCH)),
    OK(HTTP_DELETE, "/users/edit", 6, "edit"),
    BAD(HTTP_PUT, "/users/edit",
        BIT(HTTP_GET) | BIT(HTTP_DELETE) | BIT(HTTP_PATCH)),
};
#define N_MATCHES (sizeof(matches) / sizeof(matches[0]))

static struct fa_router *build(void)
{
    struct fa_router *r = fa_router_create();

    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < N_ROUTES; i++) {
        char *cause = NULL;
        int rc = fa_router_add(r, routes[i].method, routes[i].pattern, routes[i].id, &cause);

        ck_assert_msg(rc == 0, "add %s: %s", routes[i].pattern, cause ? cause : "?");
        ck_assert_ptr_null(cause);
    }
    return r;
}

/* Copies path to the end of a page whose successor is PROT_NONE. */
static char *guard_base;
static size_t guard_page;

static const char *guarded(const char *s, size_t len)
{
    if (!guard_base) {
        guard_page = (size_t)sysconf(_SC_PAGESIZE);
        guard_base = mmap(NULL, 2 * guard_page, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(guard_base, MAP_FAILED);
        ck_assert_int_eq(mprotect(guard_base + guard_page, guard_page, PROT_NONE), 0);
    }
    ck_assert_uint_le(len, guard_page);
    memcpy(guard_base + guard_page - len, s, len);
    return guard_base + guard_page - len;
}

static void check_match(const struct fa_router *r, const struct match_case *c, const char *path)
{
    struct fa_match m;
    char got[512] = "";
    size_t len = strlen(c->path);
    int rc;

    memset(&m, 0x5a, sizeof(m));
    rc = fa_router_match(r, c->method, path, len, &m);
    ck_assert_msg(rc == c->rc, "%s %s: rc %d, want %d", http_method_str(c->method), c->path, rc, c->rc);
    if (rc == FA_MATCH_OK) {
        ck_assert_msg(m.route_id == c->id, "%s %s: route %u, want %u",
                      http_method_str(c->method), c->path, m.route_id, c->id);
        for (uint32_t i = 0; i < m.n_params; i++) {
            /* values point into the path */
            ck_assert(m.params[i].p >= path && m.params[i].p + m.params[i].len <= path + len);
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%.*s",
                     i ? "|" : "", (int)m.params[i].len, m.params[i].p);
        }
        ck_assert_msg(strcmp(got, c->params) == 0, "%s %s: params '%s', want '%s'",
                      http_method_str(c->method), c->path, got, c->params);
    } else if (rc == FA_MATCH_BAD_METHOD) {
        ck_assert_msg(m.allow == c->allow, "%s %s: allow %#llx, want %#llx",
                      http_method_str(c->method), c->path,
                      (unsigned long long)m.allow, (unsigned long long)c->allow);
    }
}

START_TEST(test_router__match_table)
{
    struct fa_router *r = build();

    check_match(r, &matches[_i], matches[_i].path);
    fa_router_destroy(r);
}
END_TEST

START_TEST(test_router__match_against_guard_page)
{
    struct fa_router *r = build();
    const struct match_case *c = &matches[_i];

    check_match(r, c, guarded(c->path, strlen(c->path)));
    fa_router_destroy(r);
}
END_TEST

START_TEST(test_router__match_path_prefix_only)
{
    /* The length is what counts, not a NUL: "/users/42" given as 6 bytes. */
    struct fa_router *r = build();
    struct fa_match m;

    ck_assert_int_eq(fa_router_match(r, HTTP_GET, "/users/42", 6, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 2);
    ck_assert_int_eq(fa_router_match(r, HTTP_GET, "/users/42?x=/", 9, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 5);
    ck_assert_uint_eq(m.params[0].len, 2);
    fa_router_destroy(r);
}
END_TEST

static const struct bad_pattern {
    unsigned method;
    const char *pattern;
    const char *cause;      /* substring expected in the cause */
} bad_patterns[] = {
    { HTTP_GET, "",                    "must start with '/'" },
    { HTTP_GET, "users",               "must start with '/'" },
    { HTTP_GET, NULL,                  "must start with '/'" },
    { HTTP_GET, "/{}",                 "empty parameter name" },
    { HTTP_GET, "/a/{:int}",           "empty parameter name" },
    { HTTP_GET, "/{id",                "'{' must open a segment that '}' closes" },
    { HTTP_GET, "/{id/x}",             "'{' must open a segment that '}' closes" },
    { HTTP_GET, "/{id}x",              "'{' must open a segment that '}' closes" },
    { HTTP_GET, "/{",                  "'{' must open a segment that '}' closes" },
    { HTTP_GET, "/x{id}",              "inside a static segment" },
    { HTTP_GET, "/a}b",                "inside a static segment" },
    { HTTP_GET, "/{a}{b}",             "not an identifier" },
    { HTTP_GET, "/{1a}",               "not an identifier" },
    { HTTP_GET, "/{a-b}",              "not an identifier" },
    { HTTP_GET, "/{id:}",              "empty type" },
    { HTTP_GET, "/{id}/{id}",          "duplicate parameter name 'id'" },
    { HTTP_GET, "/{id}/x/{id:int}",    "duplicate parameter name 'id'" },
    { HTTP_GET, "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{q}/{r}",
      "more than 16 parameters" },
    { HTTP_GET, "/a b",                "byte 0x20" },
    { HTTP_GET, "/a?b",                "byte 0x3f" },
    { HTTP_GET, "/a#b",                "byte 0x23" },
    { HTTP_GET, "/caf\xc3\xa9",        "percent-encode" },
    { 64,       "/m",                  "unknown method" },
    { 40,       "/m",                  "unknown method" },
    /* duplicates of the routes table */
    { HTTP_GET, "/users",              "duplicate" },
    { HTTP_GET, "/users/{other}",      "duplicate" },
    { HTTP_HEAD, "/head",              "duplicate" },
    { HTTP_GET, "/static/{f:path}",    "duplicate" },
    { HTTP_GET, "/a/{p:path}/b",       "must be the last segment" },
    { HTTP_GET, "/a/{p:path}/",        "must be the last segment" },
    { HTTP_GET, "/{p:path}/{q:path}",  "must be the last segment" },
    { HTTP_GET, "/a/{p:path}x",        "'{' must open a segment that '}' closes" },
};
#define N_BAD_PATTERNS (sizeof(bad_patterns) / sizeof(bad_patterns[0]))

START_TEST(test_router__bad_pattern_refused)
{
    const struct bad_pattern *b = &bad_patterns[_i];
    struct fa_router *r = build();
    struct fa_match m;
    char *cause = NULL;

    ck_assert_int_eq(fa_router_add(r, b->method, b->pattern, 99, &cause), -1);
    ck_assert_ptr_nonnull(cause);
    ck_assert_msg(strstr(cause, b->cause), "cause '%s' lacks '%s'", cause, b->cause);
    /* the cause names the route, so the user can find it */
    ck_assert_msg(strstr(cause, b->pattern ? b->pattern : "(null)"), "cause '%s' does not name the pattern", cause);
    free(cause);
    /* refusing with no cause wanted works too */
    ck_assert_int_eq(fa_router_add(r, b->method, b->pattern, 99, NULL), -1);
    /* and the table still answers as before */
    for (size_t i = 0; i < N_MATCHES; i++)
        check_match(r, &matches[i], matches[i].path);
    ck_assert_int_ne(fa_router_match(r, HTTP_GET, "/p/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17",
                                     strlen("/p/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17"), &m),
                     FA_MATCH_OK);
    fa_router_destroy(r);
}
END_TEST

START_TEST(test_router__refused_pattern_leaves_no_route)
{
    struct fa_router *r = fa_router_create();
    struct fa_match m;

    ck_assert_int_eq(fa_router_add(r, HTTP_GET, "/new/{a}/{a}", 1, NULL), -1);
    ck_assert_int_eq(fa_router_match(r, HTTP_GET, "/new/x/y", 8, &m), FA_MATCH_NOT_FOUND);
    ck_assert_int_eq(fa_router_add(r, HTTP_GET, "/new/{a}/{b}", 2, NULL), 0);
    ck_assert_int_eq(fa_router_match(r, HTTP_GET, "/new/x/y", 8, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 2);
    ck_assert_uint_eq(m.n_params, 2);
    fa_router_destroy(r);
}
END_TEST

START_TEST(test_router__many_static_children)
{
    /* Inserted in a scrambled order: the sorted array must stay sorted. */
    struct fa_router *r = fa_router_create();
    char path[64];
    struct fa_match m;

    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t k = (i * 7919) % 1000;

        snprintf(path, sizeof(path), "/r/n%u", k);
        ck_assert_int_eq(fa_router_add(r, HTTP_GET, path, k + 1, NULL), 0);
    }
    ck_assert_int_eq(fa_router_add(r, HTTP_GET, "/r/{other}", 5000, NULL), 0);
    for (uint32_t k = 0; k < 1000; k++) {
        snprintf(path, sizeof(path), "/r/n%u", k);
        ck_assert_int_eq(fa_router_match(r, HTTP_GET, path, strlen(path), &m), FA_MATCH_OK);
        ck_assert_uint_eq(m.route_id, k + 1);
        ck_assert_uint_eq(m.n_params, 0);
    }
    ck_assert_int_eq(fa_router_match(r, HTTP_GET, "/r/n1000", 8, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 5000);
    ck_assert_int_eq(fa_router_match(r, HTTP_GET, "/r/n", 4, &m), FA_MATCH_OK);
    ck_assert_uint_eq(m.route_id, 5000);
    fa_router_destroy(r);
}
END_TEST

START_TEST(test_router__long_path_no_deep_recursion)
{
    /* A path far deeper than any route: matching stops at the trie depth. */
    struct fa_router *r = build();
    size_t len = 200000;
    char *path = malloc(len);
    struct fa_match m;

    for (size_t i = 0; i < len; i += 2) {
        path[i] = '/';
        path[i + 1] = 'a';
    }
    ck_assert_int_eq(fa_router_match(r, HTTP_PATCH, path, len, &m), FA_MATCH_NOT_FOUND);
    free(path);
    fa_router_destroy(r);
}
END_TEST

START_TEST(test_router__allow_str)
{
    char buf[256], big[1024];

    ck_assert_uint_eq(fa_router_allow_str(BIT(HTTP_GET) | BIT(HTTP_POST), buf, sizeof(buf)), 15);
    ck_assert_str_eq(buf, "GET, HEAD, POST");
    ck_assert_uint_eq(fa_router_allow_str(BIT(HTTP_DELETE) | BIT(HTTP_PUT), buf, sizeof(buf)), 11);
    ck_assert_str_eq(buf, "DELETE, PUT");
    ck_assert_uint_eq(fa_router_allow_str(BIT(HTTP_HEAD), buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "HEAD");
    ck_assert_uint_eq(fa_router_allow_str(BIT(HTTP_MSEARCH), buf, sizeof(buf)), 8);
    ck_assert_str_eq(buf, "M-SEARCH");
    ck_assert_uint_eq(fa_router_allow_str(0, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "");
    /* truncation keeps whole names and the NUL */
    ck_assert_uint_eq(fa_router_allow_str(BIT(HTTP_GET) | BIT(HTTP_POST), buf, 10), 9);
    ck_assert_str_eq(buf, "GET, HEAD");
    ck_assert_uint_eq(fa_router_allow_str(BIT(HTTP_GET) | BIT(HTTP_POST), buf, 9), 3);
    ck_assert_str_eq(buf, "GET");
    ck_assert_uint_eq(fa_router_allow_str(BIT(HTTP_GET), buf, 1), 0);
    ck_assert_str_eq(buf, "");
    buf[0] = 'x';
    ck_assert_uint_eq(fa_router_allow_str(BIT(HTTP_GET), buf, 0), 0);
    ck_assert_int_eq(buf[0], 'x');
    /* every bit: the known names, in method order, nothing for the rest */
    ck_assert_uint_eq(fa_router_allow_str(~UINT64_C(0), big, sizeof(big)), strlen(big));
    ck_assert_ptr_eq(strstr(big, "DELETE, GET, HEAD, POST, PUT, CONNECT"), big);
    ck_assert_ptr_nonnull(strstr(big, ", UNLINK, SOURCE"));
    ck_assert_int_eq(big[strlen(big) - 1], 'E');
    ck_assert_ptr_null(strstr(big, "unknown"));
}
END_TEST

START_TEST(test_router__match_allow_str_roundtrip)
{
    struct fa_router *r = build();
    struct fa_match m;
    char buf[128];

    ck_assert_int_eq(fa_router_match(r, HTTP_PUT, "/users", 6, &m), FA_MATCH_BAD_METHOD);
    fa_router_allow_str(m.allow, buf, sizeof(buf));
    ck_assert_str_eq(buf, "GET, HEAD, POST");
    fa_router_destroy(r);
}
END_TEST

START_TEST(test_router__destroy_null)
{
    fa_router_destroy(NULL);
    fa_router_destroy(fa_router_create());
}
END_TEST

static Suite *make_suite_router(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("router");

    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_router__match_table, 0, N_MATCHES);
    tcase_add_loop_test(tc, test_router__match_against_guard_page, 0, N_MATCHES);
    tcase_add_test(tc, test_router__match_path_prefix_only);
    tcase_add_loop_test(tc, test_router__bad_pattern_refused, 0, N_BAD_PATTERNS);
    tcase_add_test(tc, test_router__refused_pattern_leaves_no_route);
    tcase_add_test(tc, test_router__many_static_children);
    tcase_add_test(tc, test_router__long_path_no_deep_recursion);
    tcase_add_test(tc, test_router__allow_str);
    tcase_add_test(tc, test_router__match_allow_str_roundtrip);
    tcase_add_test(tc, test_router__destroy_null);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(make_suite_router());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
