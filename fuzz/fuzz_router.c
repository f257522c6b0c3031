/* fuzz_router.c - libFuzzer target: the C router (worker/router.c),
 * fa_router_add of fuzzed patterns and fa_router_match of fuzzed paths.
 *
 * Input: lines ('\n'). A line "+M/pattern" adds a route for method number
 * (M - '0') (any byte: unknown methods must be refused); any other line
 * "M/path" matches the path (the bytes after M, in an exact-size heap block,
 * not NUL-terminated) with method (M - '0'). Route ids are the line numbers.
 *
 * Every answer is checked against a slow reference kept beside the trie:
 * the list of accepted (method, pattern) pairs, matched segment by segment.
 *   - an add is refused as a duplicate exactly when the same method already
 *     has a pattern of the same shape (parameter names do not count);
 *   - FA_MATCH_OK names a route of that method (or GET for HEAD) whose
 *     pattern matches the path, the first in the walk's order (static, then
 *     parameter, then a last "{name:path}" taking the rest of the path),
 *     and its parameters are the path's segments at the parameter places;
 *   - FA_MATCH_NOT_FOUND: no pattern of any method matches the path;
 *   - FA_MATCH_BAD_METHOD: patterns match but none for this method, and
 *     allow is the union of their methods.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>

#include "worker/router.h"

#define MAX_ROUTES  256
#define MAX_LINE    512

struct ref_route {
    unsigned method;
    uint32_t id;
    char *pattern;     /* NUL-terminated */
};

static struct ref_route routes[MAX_ROUTES];
static uint32_t n_routes;

static const char *cur_path;   /* for the failure message */
static size_t cur_len;
static unsigned cur_method;

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_router: %s\n", what);
    if (cur_path)
        fprintf(stderr, "fuzz_router: matching method %u path '%.*s' against:\n", cur_method,
                (int)cur_len, cur_path);
    for (uint32_t i = 0; cur_path && i < n_routes; i++)
        fprintf(stderr, "  route %u: method %u '%s'\n", routes[i].id, routes[i].method,
                routes[i].pattern);
    abort();
}

/* Segment i of a '/'-separated string after its leading '/': start and length. */
struct seg { const char *p; size_t len; };

static size_t split(const char *s, size_t len, struct seg *out, size_t max)
{
    size_t n = 0;
    const char *p = s + 1, *end = s + len;

    if (len == 0 || s[0] != '/')
        return max + 1;   /* not a path: matches nothing */
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *e = slash ? slash : end;

        if (n == max)
            return max + 1;   /* too deep for the reference: treated as "no match" */
        out[n].p = p;
        out[n].len = (size_t)(e - p);
        n++;
        if (!slash)
            return n;
        p = slash + 1;
    }
}

/* Segment kinds, in the order the walk tries them at one node. */
enum { K_STATIC = 0, K_PARAM = 1, K_REST = 2 };

/* "{name:path}": the rest of the path, slashes included (router.h). */
static int is_rest(const struct seg *s)
{
    return s->len > 7 && s->p[0] == '{' && memcmp(s->p + s->len - 6, ":path}", 6) == 0;
}

static int kind(const struct seg *s)
{
    if (is_rest(s))
        return K_REST;
    return s->len > 0 && s->p[0] == '{' ? K_PARAM : K_STATIC;
}

static int is_param(const struct seg *s)
{
    return kind(s) != K_STATIC;
}

#define MAX_SEGS (MAX_LINE + 8)   /* a line cannot hold more segments */

/* Shape key of a pattern: "s<label>" / "p" per segment, compared for
 * duplicates. 1 if a and b have the same shape. */
static int same_shape(const char *a, const char *b)
{
    struct seg sa[MAX_SEGS], sb[MAX_SEGS];
    size_t na = split(a, strlen(a), sa, MAX_SEGS), nb = split(b, strlen(b), sb, MAX_SEGS);

    if (na != nb || na > MAX_SEGS)
        return 0;
    for (size_t i = 0; i < na; i++) {
        if (kind(&sa[i]) != kind(&sb[i]))
            return 0;
        if (!is_param(&sa[i]) && (sa[i].len != sb[i].len || memcmp(sa[i].p, sb[i].p, sa[i].len) != 0))
            return 0;
    }
    return 1;
}

/* 1 if pattern matches the path (which ends at path_end); fills key[i]
 * (the segment kinds) for the precedence order. */
static int ref_match(const char *pattern, const struct seg *ps, size_t np, const char *path_end,
                     unsigned char *key)
{
    struct seg s[MAX_SEGS];
    size_t n = split(pattern, strlen(pattern), s, MAX_SEGS);

    if (n > MAX_SEGS)
        return 0;
    memset(key, 0, MAX_SEGS);
    if (kind(&s[n - 1]) == K_REST) {
        /* The first n - 1 segments as usual, then one byte or more. */
        if (np < n || path_end - ps[n - 1].p <= 0)
            return 0;
        key[n - 1] = K_REST;
        n--;
    } else if (n != np) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (is_param(&s[i])) {
            if (ps[i].len == 0)
                return 0;
            key[i] = K_PARAM;
        } else {
            if (s[i].len != ps[i].len || memcmp(s[i].p, ps[i].p, s[i].len) != 0)
                return 0;
            key[i] = K_STATIC;
        }
    }
    return 1;
}

static void do_add(struct fa_router *r, unsigned method, const char *pattern, uint32_t id)
{
    char *cause = NULL;
    int rc = fa_router_add(r, method, pattern, id, &cause);
    int dup = 0;

    if (rc == 0 && cause != NULL)
        fz_fail("an accepted route came with a cause");
    if (rc < 0 && cause == NULL)
        fz_fail("a refused route came without a cause");
    free(cause);
    for (uint32_t i = 0; i < n_routes; i++)
        if (routes[i].method == method && same_shape(routes[i].pattern, pattern))
            dup = 1;
    if (rc < 0) {
        if (errno == EEXIST && !dup)
            fz_fail("refused as a duplicate, but no route of that method has this shape");
        return;
    }
    if (dup)
        fz_fail("accepted a duplicate (same method, same shape)");
    if (pattern[0] != '/')
        fz_fail("accepted a pattern that does not start with '/'");
    if (method >= 64 || strcmp(http_method_str(method), "<unknown>") == 0)
        fz_fail("accepted an unknown method");
    if (n_routes < MAX_ROUTES) {
        routes[n_routes].method = method;
        routes[n_routes].id = id;
        routes[n_routes].pattern = strdup(pattern);
        n_routes++;
    }
}

static void do_match(const struct fa_router *r, unsigned method, const char *path, size_t len)
{
    struct fa_match m;
    struct seg ps[MAX_SEGS];
    unsigned char key[MAX_SEGS], best_key[MAX_SEGS];
    size_t np = 0;
    uint64_t allow = 0;
    int best = -1, best_exact = 0, any = 0;
    char buf[512];
    int rc;

    cur_path = path;
    cur_len = len;
    cur_method = method;
    memset(&m, 0xa5, sizeof(m));
    rc = fa_router_match(r, method, path, len, &m);
    if (len > 0 && path[0] == '/')
        np = split(path, len, ps, MAX_SEGS);
    if (np > MAX_SEGS)
        return;   /* deeper than any pattern the reference keeps */
    for (uint32_t i = 0; i < n_routes; i++) {
        int exact;

        if (np == 0 || !ref_match(routes[i].pattern, ps, np, path + len, key))
            continue;
        any = 1;
        allow |= UINT64_C(1) << routes[i].method;
        exact = routes[i].method == method;
        if (!exact && !(method == HTTP_HEAD && routes[i].method == HTTP_GET))
            continue;
        /* First in static-before-parameter order; on the same node HEAD wins
         * over its GET fallback. */
        if (best < 0) {
            best = (int)i;
        } else {
            int c = memcmp(key, best_key, MAX_SEGS);
            if (c > 0 || (c == 0 && !(exact && !best_exact)))
                continue;
            best = (int)i;
        }
        best_exact = exact;
        memcpy(best_key, key, MAX_SEGS);
    }

    switch (rc) {
    case FA_MATCH_OK: {
        struct seg s[MAX_SEGS];
        size_t n;
        uint32_t k = 0;

        if (best < 0)
            fz_fail("FA_MATCH_OK where no route of this method matches");
        if (m.route_id != routes[best].id)
            fz_fail("FA_MATCH_OK picked another route than static-first order says");
        n = split(routes[best].pattern, strlen(routes[best].pattern), s, MAX_SEGS);
        for (size_t i = 0; i < n; i++) {
            if (!is_param(&s[i]))
                continue;
            size_t want = kind(&s[i]) == K_REST ? (size_t)(path + len - ps[i].p) : ps[i].len;

            if (k >= m.n_params)
                fz_fail("fewer parameters than the pattern has");
            if (m.params[k].p != ps[i].p || m.params[k].len != want)
                fz_fail("a parameter is not the path segment (or rest) at its place");
            k++;
        }
        if (k != m.n_params)
            fz_fail("more parameters than the pattern has");
        break;
    }
    case FA_MATCH_NOT_FOUND:
        if (any)
            fz_fail("FA_MATCH_NOT_FOUND although a pattern matches");
        break;
    case FA_MATCH_BAD_METHOD:
        if (!any || best >= 0)
            fz_fail("FA_MATCH_BAD_METHOD where a route of this method matches, or none at all");
        if (m.allow != allow)
            fz_fail("Allow is not the union of the matching patterns' methods");
        fa_router_allow_str(m.allow, buf, sizeof(buf));
        if (strlen(buf) >= sizeof(buf))
            fz_fail("allow string overflow");
        fa_router_allow_str(m.allow, buf, 5);   /* truncation path */
        if (strlen(buf) >= 5)
            fz_fail("allow string not truncated to its buffer");
        break;
    default:
        fz_fail("unknown fa_router_match result");
    }
    cur_path = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fa_router *r = fa_router_create();
    size_t off = 0;
    uint32_t line_no = 0;

    if (r == NULL)
        return 0;
    while (off < size && line_no < 256) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        const uint8_t *line = data + off;

        off += len + (nl != NULL);
        line_no++;
        if (len > MAX_LINE)
            continue;
        if (len >= 2 && line[0] == '+') {
            char pattern[MAX_LINE + 1];
            unsigned method = (unsigned)(uint8_t)(line[1] - '0');

            memcpy(pattern, line + 2, len - 2);
            pattern[len - 2] = '\0';
            if (memchr(line + 2, '\0', len - 2))
                continue;   /* a C string cannot hold it */
            do_add(r, method, pattern, line_no);
        } else if (len >= 1) {
            unsigned method = (unsigned)(uint8_t)(line[0] - '0');
            char *path = malloc(len - 1 ? len - 1 : 1);

            memcpy(path, line + 1, len - 1);
            do_match(r, method, path, len - 1);
            free(path);
        }
    }
    fa_router_destroy(r);
    for (uint32_t i = 0; i < n_routes; i++)
        free(routes[i].pattern);
    n_routes = 0;
    return 0;
}
