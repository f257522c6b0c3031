/* check_files.c - unit tests for worker/files.c: which names are served
 * from a mounted directory and which are refused (.., encoded forms, NUL,
 * symlinks leading out), both with openat2(RESOLVE_BENEATH) and with the
 * check under /proc used where the kernel lacks it; validators and 304;
 * ranges, 206 and 416; HEAD; Content-Type; FileResponse's attach.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <http_parser.h>

#include "worker/files.h"
#include "worker/router.h"
#include "worker/routes.h"
#include "tests/worker/tkinds.h"

static char top[64];        /* a temporary directory */
static char root[128];      /* top/root: the mounted one */

static void put(const char *rel, const char *content)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", top, rel);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
}

static void link_(const char *target, const char *rel)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", top, rel);
    ck_assert_int_eq(symlink(target, p), 0);
}

static void dir_(const char *rel)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", top, rel);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void setup(void)
{
    strcpy(top, "/tmp/check_files.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    snprintf(root, sizeof root, "%s/root", top);
    dir_("root");
    dir_("root/sub");
    dir_("root/sub/deep");
    dir_("root/dir");
    put("secret.txt", "outside\n");
    put("root/a.txt", "hello file\n");
    put("root/sub/i.html", "<p>hi</p>");
    put("root/sub/deep/x.css", "p{}");
    put("root/sp ace.txt", "spaced");
    put("root/empty.bin", "");
    put("root/pic.PNG", "png");
    put("root/noext", "n");
    link_("a.txt", "root/in-link");
    link_("/etc/passwd", "root/out-link");
    link_("../secret.txt", "root/out-rel");
    link_("..", "root/sub/up");
    link_("../..", "root/sub/up2");
    link_(top, "root/abs-top");
    char p[256];
    snprintf(p, sizeof p, "%s/root/fifo", top);
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    /* a.txt an hour old, to the second: Last-Modified comparisons are exact */
    struct timespec ts[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    snprintf(p, sizeof p, "%s/root/a.txt", top);
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    ck_assert_int_eq(system(cmd), 0);
}

/* GET (or method) prefix/<rest> with headers; returns the response bytes. */
static char *serve(unsigned method, const char *rest, const char *const *hdrs, struct fa_resp **keep)
{
    struct tworker tw;
    struct treq tq;
    char *cause = NULL;
    char target[1024];
    struct fa_route rt = {.id = 0, .method = HTTP_GET, .kind = FA_ROUTE_FILES,
                          .pattern = "/s/{path:path}", .name = "GET /s/{path:path}"};
    struct fa_router *router = fa_router_create();
    struct fa_match m;

    rt.files = fa_files_open(rt.name, root, strlen(root), &cause);
    ck_assert_msg(rt.files != NULL, "%s", cause);
    tworker_init(&tw);
    snprintf(target, sizeof target, "/s/%s", rest);
    treq_init(&tq, method, target, hdrs);
    ck_assert_int_eq(fa_router_add(router, HTTP_GET, rt.pattern, 0, NULL), 0);
    ck_assert_int_eq(fa_router_match(router, method, tq.req.path, tq.req.path_len, &m), FA_MATCH_OK);
    struct fa_resp *r = tresp_new(method == HTTP_HEAD);
    fa_files_respond(&tw.w, r, &rt, &tq.req, &m);
    char *out = tresp_bytes(r, NULL);
    if (keep)
        *keep = r;
    else
        tresp_free(r);
    fa_files_close(rt.files);
    fa_router_destroy(router);
    return out;
}

static char *get(const char *rest, const char *const *hdrs)
{
    return serve(HTTP_GET, rest, hdrs, NULL);
}

/* ---- what is served, what is not -------------------------------------------- */

static const struct name_case {
    const char *rest;
    int status;
    const char *body;     /* NULL: do not check */
} names[] = {
    {"a.txt", 200, "hello file\n"},
    {"sub/i.html", 200, "<p>hi</p>"},
    {"sub/deep/x.css", 200, "p{}"},
    {"in-link", 200, "hello file\n"},
    {"sub/up/a.txt", 200, "hello file\n"},      /* a symlink that stays inside */
    {"sp%20ace.txt", 200, "spaced"},
    {"sub//i.html", 200, "<p>hi</p>"},
    {"./a.txt", 200, "hello file\n"},
    {"%61.txt", 200, "hello file\n"},
    {"out-link", 404, NULL},                      /* symlinks that lead out */
    {"out-rel", 404, NULL},
    {"sub/up2/secret.txt", 404, NULL},
    {"abs-top/secret.txt", 404, NULL},
    {"../secret.txt", 404, NULL},                 /* .., raw and encoded */
    {"sub/../a.txt", 404, NULL},
    {"sub/..", 404, NULL},
    {"..", 404, NULL},
    {"%2e%2e/secret.txt", 404, NULL},
    {"%2E%2E%2Fsecret.txt", 404, NULL},
    {"..%2fsecret.txt", 404, NULL},
    {".%2e/secret.txt", 404, NULL},
    {"%2e./secret.txt", 404, NULL},
    {"sub%2f..%2f..%2fsecret.txt", 404, NULL},
    {"sub/%2e%2e", 404, NULL},
    {"%2fetc/passwd", 404, NULL},                 /* absolute after decoding */
    {"/etc/passwd", 404, NULL},                   /* "/s//etc/passwd" */
    {"%2Fetc%2Fpasswd", 404, NULL},
    {"a.txt%00.html", 404, NULL},                 /* NUL */
    {"sub\\..\\a.txt", 404, NULL},
    {"dir", 404, NULL},                           /* directories: no listing */
    {"dir/", 404, NULL},
    {"sub", 404, NULL},
    {".", 404, NULL},
    {"fifo", 404, NULL},                          /* not a regular file (and no hang) */
    {"missing.txt", 404, NULL},
    {"a.txt/", 404, NULL},
    {"a.txt/x", 404, NULL},
    {"%zz", 400, NULL},                           /* bad escapes */
    {"a%2", 400, NULL},
    {"a%", 400, NULL},
};
#define N_NAMES (sizeof names / sizeof *names)

START_TEST(test_files__names_served_and_refused)
{
    const struct name_case *nc = &names[_i % N_NAMES];
    fa_files_openat2 = _i < (int)N_NAMES ? -1 : 0;    /* second round: without openat2 */
    char *out = get(nc->rest, NULL);
    ck_assert_msg(tstatus(out) == nc->status, "%s (openat2 %d): %s", nc->rest, fa_files_openat2, out);
    if (nc->body)
        ck_assert_str_eq(tbody(out), nc->body);
    if (nc->status != 200)
        ck_assert_ptr_null(strstr(out, "outside"));
    free(out);
}
END_TEST

/* ---- headers, validators, conditionals ------------------------------------- */

START_TEST(test_files__headers)
{
    char buf[128];
    struct stat st;
    char p[256];
    snprintf(p, sizeof p, "%s/a.txt", root);
    ck_assert_int_eq(stat(p, &st), 0);
    char *out = get("a.txt", NULL);
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert_str_eq(theader(out, "Content-Length", buf, sizeof buf), "11");
    ck_assert_str_eq(theader(out, "Content-Type", buf, sizeof buf), "text/plain; charset=utf-8");
    ck_assert_str_eq(theader(out, "Accept-Ranges", buf, sizeof buf), "bytes");
    ck_assert_ptr_nonnull(theader(out, "ETag", buf, sizeof buf));
    ck_assert_int_eq(buf[0], '"');
    ck_assert_int_eq(buf[strlen(buf) - 1], '"');
    char lm[64];
    struct tm tm;
    strftime(lm, sizeof lm, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&st.st_mtime, &tm));
    ck_assert_str_eq(theader(out, "Last-Modified", buf, sizeof buf), lm);
    free(out);
    out = get("sub/i.html", NULL);
    ck_assert_str_eq(theader(out, "Content-Type", buf, sizeof buf), "text/html; charset=utf-8");
    free(out);
}
END_TEST

START_TEST(test_files__etag_changes_with_the_file)
{
    char e1[128], e2[128], p[256];
    char *out = get("a.txt", NULL);
    theader(out, "ETag", e1, sizeof e1);
    free(out);
    snprintf(p, sizeof p, "%s/a.txt", root);
    FILE *f = fopen(p, "a");
    fputs("more", f);
    fclose(f);
    out = get("a.txt", NULL);
    theader(out, "ETag", e2, sizeof e2);
    ck_assert_str_ne(e1, e2);
    free(out);
}
END_TEST

/* The file's ETag and Last-Modified, for the conditionals below. */
static char etag[128], lastmod[128];

static void validators(void)
{
    char *out = get("a.txt", NULL);
    ck_assert_ptr_nonnull(theader(out, "ETag", etag, sizeof etag));
    ck_assert_ptr_nonnull(theader(out, "Last-Modified", lastmod, sizeof lastmod));
    free(out);
}

static int status_with(const char *name, const char *value, char **out_keep)
{
    const char *h[] = {name, value, NULL};
    char *out = get("a.txt", h);
    int st = tstatus(out);
    if (out_keep)
        *out_keep = out;
    else
        free(out);
    return st;
}

START_TEST(test_files__if_none_match)
{
    char v[300], buf[128];
    char *out;
    validators();
    ck_assert_int_eq(status_with("if-none-match", etag, &out), 304);
    ck_assert_str_eq(theader(out, "ETag", buf, sizeof buf), etag);
    ck_assert_ptr_null(theader(out, "Content-Length", buf, sizeof buf));
    ck_assert_str_eq(tbody(out), "");
    free(out);
    snprintf(v, sizeof v, "W/%s", etag);
    ck_assert_int_eq(status_with("if-none-match", v, NULL), 304);       /* weak comparison */
    snprintf(v, sizeof v, "\"other\", %s", etag);
    ck_assert_int_eq(status_with("if-none-match", v, NULL), 304);
    snprintf(v, sizeof v, "\"other\",W/\"x\" ,%s", etag);
    ck_assert_int_eq(status_with("if-none-match", v, NULL), 304);
    ck_assert_int_eq(status_with("if-none-match", "*", NULL), 304);
    ck_assert_int_eq(status_with("if-none-match", "\"other\"", NULL), 200);
    ck_assert_int_eq(status_with("if-none-match", "", NULL), 200);
    ck_assert_int_eq(status_with("if-none-match", "\"unterminated", NULL), 200);
}
END_TEST

START_TEST(test_files__if_modified_since)
{
    validators();
    ck_assert_int_eq(status_with("if-modified-since", lastmod, NULL), 304);
    ck_assert_int_eq(status_with("if-modified-since", "Fri, 31 Dec 2100 23:59:59 GMT", NULL), 304);
    ck_assert_int_eq(status_with("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT", NULL), 200);
    ck_assert_int_eq(status_with("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT", NULL), 200);
    ck_assert_int_eq(status_with("if-modified-since", "Sun Nov  6 08:49:37 1994", NULL), 200);
    ck_assert_int_eq(status_with("if-modified-since", "not a date", NULL), 200);
    /* If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3) */
    const char *h[] = {"if-none-match", "\"other\"", "if-modified-since", lastmod, NULL};
    char *out = get("a.txt", h);
    ck_assert_int_eq(tstatus(out), 200);
    free(out);
}
END_TEST

/* ---- ranges ------------------------------------------------------------------- */

static const struct range_case {
    const char *range;
    int status;
    const char *body;
    const char *content_range;
} ranges[] = {
    {"bytes=0-4", 206, "hello", "bytes 0-4/11"},
    {"bytes=6-", 206, "file\n", "bytes 6-10/11"},
    {"bytes=-5", 206, "file\n", "bytes 6-10/11"},
    {"bytes=-100", 206, "hello file\n", "bytes 0-10/11"},
    {"bytes=3-1000", 206, "lo file\n", "bytes 3-10/11"},
    {"bytes=10-10", 206, "\n", "bytes 10-10/11"},
    {"bytes=0-0", 206, "h", "bytes 0-0/11"},
    {"BYTES= 1-2 ", 206, "el", "bytes 1-2/11"},
    {"bytes=0-99999999999999999999999", 206, "hello file\n", "bytes 0-10/11"},
    {"bytes=11-", 416, NULL, "bytes */11"},
    {"bytes=11-20", 416, NULL, "bytes */11"},
    {"bytes=-0", 416, NULL, "bytes */11"},
    {"bytes=5-2", 200, "hello file\n", NULL},       /* invalid: ignored */
    {"bytes=0-1,3-4", 200, "hello file\n", NULL},   /* several: whole file */
    {"items=0-1", 200, "hello file\n", NULL},
    {"bytes=abc", 200, "hello file\n", NULL},
    {"bytes=-", 200, "hello file\n", NULL},
    {"bytes=1-2x", 200, "hello file\n", NULL},
    {"bytes=", 200, "hello file\n", NULL},
};
#define N_RANGES (sizeof ranges / sizeof *ranges)

START_TEST(test_files__range)
{
    const struct range_case *rc = &ranges[_i];
    const char *h[] = {"range", rc->range, NULL};
    char buf[128];
    char *out = get("a.txt", h);
    ck_assert_msg(tstatus(out) == rc->status, "%s: %s", rc->range, out);
    if (rc->body)
        ck_assert_str_eq(tbody(out), rc->body);
    if (rc->content_range)
        ck_assert_str_eq(theader(out, "Content-Range", buf, sizeof buf), rc->content_range);
    else
        ck_assert_ptr_null(theader(out, "Content-Range", buf, sizeof buf));
    if (rc->status == 206) {
        snprintf(buf, sizeof buf, "%zu", strlen(rc->body));
        char cl[32];
        ck_assert_str_eq(theader(out, "Content-Length", cl, sizeof cl), buf);
    }
    free(out);
}
END_TEST

START_TEST(test_files__if_range)
{
    char v[300];
    validators();
    const char *h1[] = {"range", "bytes=0-1", "if-range", etag, NULL};
    char *out = get("a.txt", h1);
    ck_assert_int_eq(tstatus(out), 206);
    free(out);
    const char *h2[] = {"range", "bytes=0-1", "if-range", "\"old\"", NULL};
    out = get("a.txt", h2);
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert_str_eq(tbody(out), "hello file\n");
    free(out);
    snprintf(v, sizeof v, "W/%s", etag);            /* weak tags never match If-Range */
    const char *h3[] = {"range", "bytes=0-1", "if-range", v, NULL};
    out = get("a.txt", h3);
    ck_assert_int_eq(tstatus(out), 200);
    free(out);
    const char *h4[] = {"range", "bytes=0-1", "if-range", lastmod, NULL};
    out = get("a.txt", h4);
    ck_assert_int_eq(tstatus(out), 206);
    free(out);
    const char *h5[] = {"range", "bytes=0-1", "if-range", "Sun, 06 Nov 1994 08:49:37 GMT", NULL};
    out = get("a.txt", h5);
    ck_assert_int_eq(tstatus(out), 200);
    free(out);
}
END_TEST

START_TEST(test_files__head)
{
    char buf[64];
    struct fa_resp *r;
    char *out = serve(HTTP_HEAD, "a.txt", NULL, &r);
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert_str_eq(theader(out, "Content-Length", buf, sizeof buf), "11");
    ck_assert_str_eq(tbody(out), "");
    ck_assert(!r->file);                 /* the file is not kept open for nothing */
    tresp_free(r);
    free(out);
    const char *h[] = {"range", "bytes=0-1", NULL};
    out = serve(HTTP_HEAD, "a.txt", h, NULL);
    ck_assert_int_eq(tstatus(out), 206);
    ck_assert_str_eq(theader(out, "Content-Length", buf, sizeof buf), "2");
    ck_assert_str_eq(tbody(out), "");
    free(out);
}
END_TEST

START_TEST(test_files__file_part_is_sendfile_ready)
{
    struct fa_resp *r;
    const char *h[] = {"range", "bytes=2-5", NULL};
    char *out = serve(HTTP_GET, "a.txt", h, &r);
    ck_assert(r->file);
    ck_assert_uint_eq(r->file_off, 2);
    ck_assert_uint_eq(r->file_len, 4);
    ck_assert_uint_eq(r->total, r->hlen + 4);
    ck_assert_int_eq(fcntl(r->file_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    tresp_free(r);
    free(out);
    out = serve(HTTP_GET, "empty.bin", NULL, &r);
    ck_assert_int_eq(tstatus(out), 200);
    ck_assert(!r->file);
    tresp_free(r);
    free(out);
}
END_TEST

/* ---- Content-Type ----------------------------------------------------------------- */

START_TEST(test_files__content_type)
{
    ck_assert_str_eq(fa_files_content_type("a.txt", 5), "text/plain; charset=utf-8");
    ck_assert_str_eq(fa_files_content_type("x/y/app.JS", 10), "text/javascript; charset=utf-8");
    ck_assert_str_eq(fa_files_content_type("pic.PNG", 7), "image/png");
    ck_assert_str_eq(fa_files_content_type("f.woff2", 7), "font/woff2");
    ck_assert_str_eq(fa_files_content_type("noext", 5), "application/octet-stream");
    ck_assert_str_eq(fa_files_content_type("trailing.", 9), "application/octet-stream");
    ck_assert_str_eq(fa_files_content_type("dir.d/noext", 11), "application/octet-stream");
    ck_assert_str_eq(fa_files_content_type("x.unknownext", 12), "application/octet-stream");
    /* the length counts, not a NUL */
    ck_assert_str_eq(fa_files_content_type("a.html.txt", 6), "text/html; charset=utf-8");
    if (access("/etc/mime.types", R_OK) == 0)
        ck_assert_str_eq(fa_files_content_type("p.deb", 5), "application/vnd.debian.binary-package");
}
END_TEST

/* ---- opening a directory, FileResponse ---------------------------------------------- */

START_TEST(test_files__open_errors_name_route_and_directory)
{
    char *cause = NULL;
    char p[256];
    ck_assert_ptr_null(fa_files_open("GET /s/{p:path}", "/nonexistent/dir", 16, &cause));
    ck_assert_ptr_nonnull(strstr(cause, "GET /s/{p:path}"));
    ck_assert_ptr_nonnull(strstr(cause, "/nonexistent/dir"));
    free(cause);
    snprintf(p, sizeof p, "%s/a.txt", root);
    ck_assert_ptr_null(fa_files_open("GET /s/{p:path}", p, strlen(p), &cause));
    ck_assert_ptr_nonnull(strstr(cause, p));
    free(cause);
    ck_assert_ptr_null(fa_files_open("GET /s/{p:path}", "relative", 8, &cause));
    ck_assert_ptr_nonnull(strstr(cause, "absolute"));
    free(cause);
}
END_TEST

START_TEST(test_files__attach)
{
    struct tworker tw;
    struct fa_resp *r = tresp_new(false);
    uint64_t size = 0;
    char p[256];

    tworker_init(&tw);
    snprintf(p, sizeof p, "%s/a.txt", root);
    ck_assert_int_eq(fa_files_attach(&tw.w, r, p, strlen(p), &size), 0);
    ck_assert_uint_eq(size, 11);
    ck_assert(r->file);
    ck_assert_uint_eq(r->file_len, 11);
    ck_assert_uint_eq(r->file_off, 0);
    fa_files_detach(r);
    ck_assert(!r->file);
    fa_files_detach(r);
    /* the length counts: "a.txtXYZ" given as its first bytes */
    snprintf(p, sizeof p, "%s/a.txtXYZ", root);
    ck_assert_int_eq(fa_files_attach(&tw.w, r, p, strlen(p) - 3, &size), 0);
    fa_files_detach(r);
    snprintf(p, sizeof p, "%s/missing", root);
    ck_assert_int_eq(fa_files_attach(&tw.w, r, p, strlen(p), &size), 404);
    ck_assert_int_eq(fa_files_attach(&tw.w, r, root, strlen(root), &size), 404);
    ck_assert_int_eq(fa_files_attach(&tw.w, r, "rel/x", 5, &size), 500);
    ck_assert(!r->file);
    tresp_free(r);
}
END_TEST

static Suite *make_suite_files(void)
{
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("files");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_files__names_served_and_refused, 0, 2 * N_NAMES);
    tcase_add_test(tc, test_files__headers);
    tcase_add_test(tc, test_files__etag_changes_with_the_file);
    tcase_add_test(tc, test_files__if_none_match);
    tcase_add_test(tc, test_files__if_modified_since);
    tcase_add_loop_test(tc, test_files__range, 0, N_RANGES);
    tcase_add_test(tc, test_files__if_range);
    tcase_add_test(tc, test_files__head);
    tcase_add_test(tc, test_files__file_part_is_sendfile_ready);
    tcase_add_test(tc, test_files__content_type);
    tcase_add_test(tc, test_files__open_errors_name_route_and_directory);
    tcase_add_test(tc, test_files__attach);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(make_suite_files());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
