/* router.c - segment trie from route patterns to route ids.
 *
 *   routes: GET /users/me, GET+DELETE /users/{id}, GET /users/{id}/posts
 *
 *   root --"users"--> n1 --"me"------> n2 [GET]
 *                        \--{param}--> n3 [GET, DELETE]
 *                                        \--"posts"--> n4 [GET]
 *
 * A walk tries the static child first and backs up into the parameter child
 * when the static branch dead-ends: /users/me/posts takes {id} = "me". It
 * backs up the same way when the path ends on a node without the method
 * (DELETE /users/me matches n3), so 405 comes only when no node the path
 * reaches has the method; Allow is then the union of their methods.
 *
 * Each node has its static children in an array sorted by label (binary
 * search), at most one parameter child and at most one rest child (a last
 * segment "{name:path}": it matches the whole rest of the path, one byte or
 * more, slashes included). Priority at each node: static, then parameter,
 * then rest. Parameter names are not kept:
 * the Python side binds values by position for a route id, so /u/{id} and
 * /u/{uid} share a node (and the same method on both is a duplicate).
 * A node that ends a pattern has a method mask and a 64-entry id table.
 *
 * Paths and patterns split the same way: drop the leading '/', split the rest
 * on '/'. "/" is one empty segment, "/a/" is "a" then "", so a trailing slash
 * is significant and "/" is matched by the pattern "/" only (parameters never
 * match an empty segment).
 *
 * Built in the master before fork, read-only afterwards. Matching allocates
 * nothing and recurses no deeper than the trie, whatever the length of the
 * path; backtracking visits at most 2^depth nodes, when every level has both
 * a matching static child and a parameter child (route tables are shallow).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>

#include "worker/router.h"

#define ROUTER_METHODS 64

struct rnode;

struct rchild {
    char *label;
    uint32_t len;
    struct rnode *node;
};

struct rnode {
    struct rchild *kids;      /* sorted by (label bytes, len) */
    uint32_t n_kids, cap_kids;
    struct rnode *param;      /* the one "{name}" child, or NULL */
    struct rnode *rest;       /* the one "{name:path}" child (a leaf), or NULL */
    uint64_t methods;         /* bit m: a route for method m ends here */
    uint32_t *ids;            /* ROUTER_METHODS entries once methods != 0 */
};

struct fa_router {
    struct rnode root;
};

/* ---- building ---------------------------------------------------------- */

struct fa_router *fa_router_create(void)
{
    return calloc(1, sizeof(struct fa_router));
}

static void router__free_node(struct rnode *n)
{
    for (uint32_t i = 0; i < n->n_kids; i++) {
        router__free_node(n->kids[i].node);
        free(n->kids[i].node);
        free(n->kids[i].label);
    }
    free(n->kids);
    if (n->param) {
        router__free_node(n->param);
        free(n->param);
    }
    if (n->rest) {
        router__free_node(n->rest);
        free(n->rest);
    }
    free(n->ids);
}

void fa_router_destroy(struct fa_router *r)
{
    if (!r)
        return;
    router__free_node(&r->root);
    free(r);
}

/* Sets *cause (if wanted) to "route METHOD PATTERN: <why>". Returns -1 with
 * errno = err, so callers can `return router__refuse(...)`. */
__attribute__((format(printf, 5, 6)))
static int router__refuse(char **cause, int err, unsigned method,
                          const char *pattern, const char *fmt, ...)
{
    if (cause) {
        char *why = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&why, fmt, ap) < 0)
            why = NULL;
        va_end(ap);
        if (asprintf(cause, "route %s %s: %s",
                     method < ROUTER_METHODS ? http_method_str(method) : "?",
                     pattern ? pattern : "(null)",
                     why ? why : "refused") < 0)
            *cause = NULL;
        free(why);
    }
    errno = err;
    return -1;
}

/* Compares a segment with a child label the way the sorted array is kept. */
static int router__cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Index of the child labelled seg, or -(insertion point) - 1. */
static long router__find_kid(const struct rnode *n, const char *seg, uint32_t len)
{
    uint32_t lo = 0, hi = n->n_kids;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = router__cmp(seg, len, n->kids[mid].label, n->kids[mid].len);

        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -(long)lo - 1;
}

static struct rnode *router__static_child(struct rnode *n, const char *seg, uint32_t len)
{
    long at = router__find_kid(n, seg, len);
    struct rnode *child;
    char *label;

    if (at >= 0)
        return n->kids[at].node;
    at = -at - 1;
    if (n->n_kids == n->cap_kids) {
        uint32_t cap = n->cap_kids ? n->cap_kids * 2 : 4;
        struct rchild *k = realloc(n->kids, cap * sizeof(*k));

        if (!k)
            return NULL;
        n->kids = k;
        n->cap_kids = cap;
    }
    child = calloc(1, sizeof(*child));
    label = malloc(len + 1);
    if (!child || !label) {
        free(child);
        free(label);
        return NULL;
    }
    memcpy(label, seg, len);
    label[len] = '\0';
    memmove(&n->kids[at + 1], &n->kids[at], (n->n_kids - (uint32_t)at) * sizeof(n->kids[0]));
    n->kids[at] = (struct rchild){ label, len, child };
    n->n_kids++;
    return child;
}

static int router__is_name_char(unsigned char c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    return !first && c >= '0' && c <= '9';
}

/* 1 if the segment [s, s + len) is "{name:path}". */
static int router__is_rest(const char *s, uint32_t len)
{
    return len > 7 && s[0] == '{' && memcmp(s + len - 6, ":path}", 6) == 0;
}

/* Validates a whole pattern before anything is inserted, so a refused route
 * leaves the trie as it was. Returns 0 or -1 with *cause set. */
static int router__check(unsigned method, const char *pattern, char **cause)
{
    struct { const char *p; uint32_t len; } names[FA_ROUTER_MAX_PARAMS];
    uint32_t n_names = 0;
    const char *s;

    if (!pattern || pattern[0] != '/')
        return router__refuse(cause, EINVAL, method, pattern, "a pattern must start with '/'");
    for (s = pattern + 1;;) {
        const char *end = strchrnul(s, '/');
        uint32_t len = (uint32_t)(end - s);

        if (len > 0 && s[0] == '{') {
            const char *colon, *name = s + 1;
            uint32_t name_len;

            if (s[len - 1] != '}' || len < 2)
                return router__refuse(cause, EINVAL, method, pattern,
                                      "'{' must open a segment that '}' closes, as in /{id}/");
            colon = memchr(name, ':', len - 2);
            name_len = (uint32_t)((colon ? colon : s + len - 1) - name);
            if (name_len == 0)
                return router__refuse(cause, EINVAL, method, pattern, "empty parameter name");
            for (uint32_t i = 0; i < name_len; i++)
                if (!router__is_name_char((unsigned char)name[i], i == 0))
                    return router__refuse(cause, EINVAL, method, pattern,
                                          "parameter name '%.*s' is not an identifier",
                                          (int)name_len, name);
            if (colon && colon + 1 == s + len - 1)
                return router__refuse(cause, EINVAL, method, pattern,
                                      "empty type after ':' in '{%.*s:}'", (int)name_len, name);
            if (router__is_rest(s, len) && *end != '\0')
                return router__refuse(cause, EINVAL, method, pattern,
                                      "'{%.*s:path}' matches the rest of the path: it must be the last segment",
                                      (int)name_len, name);
            for (const char *q = name; q < s + len - 1; q++)
                if (*q == '{' || *q == '}')
                    return router__refuse(cause, EINVAL, method, pattern,
                                          "nested braces in a parameter");
            for (uint32_t i = 0; i < n_names; i++)
                if (names[i].len == name_len && memcmp(names[i].p, name, name_len) == 0)
                    return router__refuse(cause, EINVAL, method, pattern,
                                          "duplicate parameter name '%.*s'", (int)name_len, name);
            if (n_names == FA_ROUTER_MAX_PARAMS)
                return router__refuse(cause, E2BIG, method, pattern,
                                      "more than %d parameters", FA_ROUTER_MAX_PARAMS);
            names[n_names].p = name;
            names[n_names].len = name_len;
            n_names++;
        } else {
            for (uint32_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c == '{' || c == '}')
                    return router__refuse(cause, EINVAL, method, pattern,
                                          "'%c' inside a static segment: a parameter is a whole segment, as in /{id}/",
                                          c);
                /* Such a route could never match: request targets are
                 * printable ASCII (http.c), the rest arrives percent-encoded. */
                if (c <= ' ' || c >= 0x7f || c == '?' || c == '#')
                    return router__refuse(cause, EINVAL, method, pattern,
                                          "byte 0x%02x cannot appear in a raw request path%s", c,
                                          c >= 0x80 ? " (percent-encode it)" : "");
            }
        }
        if (*end == '\0')
            break;
        s = end + 1;
    }
    return 0;
}

int fa_router_add(struct fa_router *r, unsigned method, const char *pattern,
                  uint32_t route_id, char **cause)
{
    struct rnode *n = &r->root;
    const char *s;

    if (cause)
        *cause = NULL;
    if (method >= ROUTER_METHODS || strcmp(http_method_str(method), "<unknown>") == 0)
        return router__refuse(cause, EINVAL, method, pattern, "unknown method number %u", method);
    if (router__check(method, pattern, cause) < 0)
        return -1;

    for (s = pattern + 1;;) {
        const char *end = strchrnul(s, '/');
        uint32_t len = (uint32_t)(end - s);

        if (router__is_rest(s, len)) {
            if (!n->rest && !(n->rest = calloc(1, sizeof(*n->rest))))
                goto nomem;
            n = n->rest;
        } else if (len > 0 && s[0] == '{') {
            if (!n->param && !(n->param = calloc(1, sizeof(*n->param))))
                goto nomem;
            n = n->param;
        } else if (!(n = router__static_child(n, s, len))) {
            goto nomem;
        }
        if (*end == '\0')
            break;
        s = end + 1;
    }

    if (n->methods & (UINT64_C(1) << method))
        return router__refuse(cause, EEXIST, method, pattern,
                              "duplicate: route %u already has this method and path shape",
                              n->ids[method]);
    if (!n->ids && !(n->ids = calloc(ROUTER_METHODS, sizeof(*n->ids))))
        goto nomem;
    n->ids[method] = route_id;
    n->methods |= UINT64_C(1) << method;
    return 0;

nomem:
    /* Nodes created so far stay: empty nodes match nothing. */
    return router__refuse(cause, ENOMEM, method, pattern, "out of memory");
}

/* ---- matching ---------------------------------------------------------- */

/* A path ends at node n: take the route for method (or GET for HEAD), or
 * record n's methods for the 405 Allow. Returns 1 when m is filled. */
static int router__take(const struct rnode *n, unsigned method, uint32_t n_params,
                        struct fa_match *m, uint64_t *allow)
{
    uint64_t bit = method < ROUTER_METHODS ? UINT64_C(1) << method : 0;

    if (!n->methods)
        return 0;
    if (n->methods & bit) {
        m->route_id = n->ids[method];
    } else if (method == HTTP_HEAD && (n->methods & (UINT64_C(1) << HTTP_GET))) {
        m->route_id = n->ids[HTTP_GET];
    } else {
        *allow |= n->methods;
        return 0;
    }
    m->n_params = n_params;
    return 1;
}

/* Matches the path rest [p, end), which starts a segment, below n: static
 * child first, then the parameter child (backtracking into it when the
 * static branch dead-ends), then the rest child, which takes [p, end) whole
 * if it is not empty. Returns 1 on a full match. */
static int router__walk(const struct rnode *n, const char *p, const char *end,
                        unsigned method, uint32_t n_params, struct fa_match *m,
                        uint64_t *allow)
{
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *seg_end = slash ? slash : end;
    size_t len = (size_t)(seg_end - p);

    if (n->n_kids && len <= UINT32_MAX) {
        long at = router__find_kid(n, p, (uint32_t)len);

        if (at >= 0) {
            const struct rnode *c = n->kids[at].node;

            if (slash ? router__walk(c, slash + 1, end, method, n_params, m, allow)
                      : router__take(c, method, n_params, m, allow))
                return 1;
        }
    }
    if (n->param && len > 0 && len <= UINT32_MAX && n_params < FA_ROUTER_MAX_PARAMS) {
        m->params[n_params].p = p;
        m->params[n_params].len = (uint32_t)len;
        if (slash ? router__walk(n->param, slash + 1, end, method, n_params + 1, m, allow)
                  : router__take(n->param, method, n_params + 1, m, allow))
            return 1;
    }
    if (n->rest && p < end && (size_t)(end - p) <= UINT32_MAX && n_params < FA_ROUTER_MAX_PARAMS) {
        m->params[n_params].p = p;
        m->params[n_params].len = (uint32_t)(end - p);
        if (router__take(n->rest, method, n_params + 1, m, allow))
            return 1;
    }
    return 0;
}

int fa_router_match(const struct fa_router *r, unsigned method,
                    const char *path, size_t path_len, struct fa_match *m)
{
    uint64_t allow = 0;

    m->route_id = 0;
    m->n_params = 0;
    m->allow = 0;
    if (path_len == 0 || path[0] != '/')
        return FA_MATCH_NOT_FOUND;
    if (router__walk(&r->root, path + 1, path + path_len, method, 0, m, &allow))
        return FA_MATCH_OK;
    if (!allow)
        return FA_MATCH_NOT_FOUND;
    m->allow = allow;
    return FA_MATCH_BAD_METHOD;
}

size_t fa_router_allow_str(uint64_t allow, char *buf, size_t size)
{
    size_t len = 0;

    if (size == 0)
        return 0;
    buf[0] = '\0';
    if (allow & (UINT64_C(1) << HTTP_GET))
        allow |= UINT64_C(1) << HTTP_HEAD;
    for (unsigned m = 0; m < ROUTER_METHODS; m++) {
        const char *name;
        size_t need;

        if (!(allow & (UINT64_C(1) << m)))
            continue;
        name = http_method_str(m);
        if (strcmp(name, "<unknown>") == 0)
            continue;
        need = strlen(name) + (len ? 2 : 0);
        /* Whole names only: a cut "GE" in an Allow header helps nobody. */
        if (len + need >= size)
            break;
        if (len) {
            buf[len++] = ',';
            buf[len++] = ' ';
        }
        memcpy(buf + len, name, strlen(name));
        len += strlen(name);
        buf[len] = '\0';
    }
    return len;
}
