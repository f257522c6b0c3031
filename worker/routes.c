/* routes.c - decode the describe output (msgpack) into the route table and
 * prepare each route's kind (pyworker/PROTOCOL.md, "Describe mode"):
 *
 *   [id, method, pattern, kind]            older packages: kind "python"
 *   [id, method, pattern, kind, extra]     extra is a map:
 *      "python"  {}
 *      "static"  {"status": int, "content_type": str|nil,
 *                 "headers": [[name, value], ...], "body": bin|str}
 *      "native"  {"library": absolute path, "symbol": str}
 *      "files"   {"directory": absolute path}, pattern PREFIX/{path:path}, GET
 *
 * Unknown keys in extra are ignored (a newer package may add some).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>
#include <msgpack.h>

#include "worker/files.h"
#include "worker/native.h"
#include "worker/routes.h"
#include "worker/router.h"
#include "worker/static.h"
#include "worker/util.h"

/* Method name -> enum http_method, or -1. */
static int routes__method(const char *s, size_t n)
{
    for (int m = 0; m < 64; m++) {
        const char *name = http_method_str((enum http_method)m);
        if (name == NULL || strcmp(name, "<unknown>") == 0)
            break;
        if (strlen(name) == n && memcmp(name, s, n) == 0)
            return m;
    }
    return -1;
}

static bool routes__is(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* The value of key in map, or NULL. */
static const msgpack_object *routes__get(const msgpack_object *map, const char *key)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (routes__is(&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}

/* A str value of extra, or -1 with *cause. */
static int routes__str(const msgpack_object *extra, const char *key, const struct fa_route *r,
                       const char *kind, const char **p, size_t *n, char **cause)
{
    const msgpack_object *o = routes__get(extra, key);
    if (o == NULL || o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0) {
        fa_xasprintf(cause, "route %s (%s): the route table entry has no '%s' string", r->name, kind, key);
        return -1;
    }
    *p = o->via.str.ptr;
    *n = o->via.str.size;
    return 0;
}

/* The parameter names of a pattern the router accepted. */
static void routes__params(struct fa_route *r)
{
    for (const char *s = strchr(r->pattern, '{'); s; s = strchr(s + 1, '{'))
        r->n_params++;
    r->param_names = fa_xcalloc(r->n_params ? r->n_params : 1, sizeof *r->param_names);
    uint32_t i = 0;
    for (const char *s = strchr(r->pattern, '{'); s && i < r->n_params; s = strchr(s + 1, '{')) {
        size_t len = strcspn(s + 1, ":}");
        r->param_names[i++] = fa_xstrndup(s + 1, len);
    }
}

static int routes__static(struct fa_route *r, const msgpack_object *extra, char **cause)
{
    const msgpack_object *st = routes__get(extra, "status");
    const msgpack_object *ct = routes__get(extra, "content_type");
    const msgpack_object *hs = routes__get(extra, "headers");
    const msgpack_object *body = routes__get(extra, "body");
    struct fa_static_header *h = NULL;
    size_t n_h = 0;
    int rc = -1;

    if (st == NULL || st->type != MSGPACK_OBJECT_POSITIVE_INTEGER || st->via.u64 > 999) {
        fa_xasprintf(cause, "route %s (static): the route table entry has no 'status' (an int)", r->name);
        return -1;
    }
    if (ct && ct->type != MSGPACK_OBJECT_STR && ct->type != MSGPACK_OBJECT_NIL) {
        fa_xasprintf(cause, "route %s (static): 'content_type' is not a str", r->name);
        return -1;
    }
    if (body == NULL || (body->type != MSGPACK_OBJECT_BIN && body->type != MSGPACK_OBJECT_STR)) {
        fa_xasprintf(cause, "route %s (static): the route table entry has no 'body' (bytes)", r->name);
        return -1;
    }
    if (hs && hs->type != MSGPACK_OBJECT_NIL) {
        if (hs->type != MSGPACK_OBJECT_ARRAY) {
            fa_xasprintf(cause, "route %s (static): 'headers' is not a list of [name, value]", r->name);
            return -1;
        }
        h = fa_xcalloc(hs->via.array.size ? hs->via.array.size : 1, sizeof *h);
        for (uint32_t i = 0; i < hs->via.array.size; i++) {
            const msgpack_object *e = &hs->via.array.ptr[i];
            if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
                e->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
                e->via.array.ptr[1].type != MSGPACK_OBJECT_STR) {
                fa_xasprintf(cause, "route %s (static): header %u is not a [name, value] pair of str",
                             r->name, i);
                goto bail;
            }
            h[n_h].name = e->via.array.ptr[0].via.str.ptr;
            h[n_h].name_len = e->via.array.ptr[0].via.str.size;
            h[n_h].value = e->via.array.ptr[1].via.str.ptr;
            h[n_h].value_len = e->via.array.ptr[1].via.str.size;
            n_h++;
        }
    }
    bool has_ct = ct && ct->type == MSGPACK_OBJECT_STR;
    r->stat = fa_static_create(r->name, (int)st->via.u64,
                               has_ct ? ct->via.str.ptr : NULL, has_ct ? ct->via.str.size : 0,
                               h, n_h, body->via.bin.ptr, body->via.bin.size, cause);
    if (r->stat)
        rc = 0;
bail:
    free(h);
    return rc;
}

static int routes__native(struct fa_route *r, const msgpack_object *extra, char **cause)
{
    const char *lib, *sym;
    size_t lib_len, sym_len;

    if (routes__str(extra, "library", r, "native", &lib, &lib_len, cause) < 0 ||
        routes__str(extra, "symbol", r, "native", &sym, &sym_len, cause) < 0)
        return -1;
    r->native = fa_native_open(r->name, lib, lib_len, sym, sym_len, cause);
    return r->native ? 0 : -1;
}

static int routes__files(struct fa_route *r, const msgpack_object *extra, char **cause)
{
    const char *dir;
    size_t dir_len;
    size_t plen = strlen(r->pattern);

    if (routes__str(extra, "directory", r, "files", &dir, &dir_len, cause) < 0)
        return -1;
    if (r->method != HTTP_GET) {
        fa_xasprintf(cause, "route %s (files): files are served for GET (and HEAD) only", r->name);
        return -1;
    }
    if (plen < 8 || memcmp(r->pattern + plen - 6, ":path}", 6) != 0 || r->n_params != 1) {
        fa_xasprintf(cause, "route %s (files): the pattern must be PREFIX/{name:path}", r->name);
        return -1;
    }
    r->files = fa_files_open(r->name, dir, dir_len, cause);
    return r->files ? 0 : -1;
}

/* Fills rt->v[rt->n] from a route table entry and adds it to the router. */
static int routes__entry(struct fa_routes *rt, uint32_t i, const msgpack_object *e, char **cause)
{
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 4 || e->via.array.size > 5 ||
        e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        e->via.array.ptr[1].type != MSGPACK_OBJECT_STR ||
        e->via.array.ptr[2].type != MSGPACK_OBJECT_STR ||
        e->via.array.ptr[3].type != MSGPACK_OBJECT_STR) {
        fa_xasprintf(cause, "route table entry %u is not [id, method, pattern, kind(, extra)]", i);
        return -1;
    }
    const msgpack_object *f = e->via.array.ptr;
    const msgpack_object *extra = e->via.array.size == 5 ? &f[4] : NULL;
    struct fa_route *r = &rt->v[rt->n];
    const msgpack_object_str *kind = &f[3].via.str;

    memset(r, 0, sizeof *r);
    r->id = (uint32_t)f[0].via.u64;
    r->pattern = fa_xstrndup(f[2].via.str.ptr, f[2].via.str.size);
    fa_xasprintf(&r->name, "%.*s %s", (int)f[1].via.str.size, f[1].via.str.ptr, r->pattern);
    rt->n++;   /* from here fa_routes_free releases it */
    int m = routes__method(f[1].via.str.ptr, f[1].via.str.size);
    if (m < 0) {
        fa_xasprintf(cause, "route %s: unknown HTTP method '%.*s'", r->pattern,
                     (int)f[1].via.str.size, f[1].via.str.ptr);
        return -1;
    }
    r->method = (unsigned)m;
    if (r->id != i || f[0].via.u64 > UINT32_MAX) {
        fa_xasprintf(cause, "route %s: id %llu out of order (expected %u)", r->name,
                     (unsigned long long)f[0].via.u64, i);
        return -1;
    }
    if (extra && extra->type != MSGPACK_OBJECT_MAP && extra->type != MSGPACK_OBJECT_NIL) {
        fa_xasprintf(cause, "route %s: the 5th element of its route table entry is not a map", r->name);
        return -1;
    }
    /* The router first: a bad pattern is reported as such, and the
     * parameter names below come from a pattern it accepted. */
    if (fa_router_add(rt->router, r->method, r->pattern, r->id, cause) < 0)
        return -1;
    routes__params(r);
    if (kind->size == 6 && memcmp(kind->ptr, "python", 6) == 0) {
        r->kind = FA_ROUTE_PYTHON;
        return 0;
    }
    if (kind->size == 6 && memcmp(kind->ptr, "static", 6) == 0) {
        r->kind = FA_ROUTE_STATIC;
        return routes__static(r, extra, cause);
    }
    if (kind->size == 6 && memcmp(kind->ptr, "native", 6) == 0) {
        r->kind = FA_ROUTE_NATIVE;
        return routes__native(r, extra, cause);
    }
    if (kind->size == 5 && memcmp(kind->ptr, "files", 5) == 0) {
        r->kind = FA_ROUTE_FILES;
        return routes__files(r, extra, cause);
    }
    fa_xasprintf(cause, "route %s: unknown kind '%.*s' (expected python, static, native or files; "
                 "is the fasterapi package newer than this server?)",
                 r->name, (int)kind->size, kind->ptr);
    return -1;
}

int fa_routes_load(struct fa_routes *rt, const char *buf, size_t len, char **cause)
{
    msgpack_unpacked u;
    size_t off = 0;
    int rc = -1;

    memset(rt, 0, sizeof *rt);
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_ARRAY) {
        fa_xasprintf(cause, "the route table from the app is not a msgpack array (%zu bytes)", len);
        goto bail;
    }
    const msgpack_object_array *a = &u.data.via.array;
    rt->router = fa_router_create();
    rt->cap = a->size + 1;    /* room for --metrics */
    rt->v = fa_xcalloc(rt->cap, sizeof *rt->v);
    for (uint32_t i = 0; i < a->size; i++)
        if (routes__entry(rt, i, &a->ptr[i], cause) < 0)
            goto bail;
    rc = 0;
bail:
    msgpack_unpacked_destroy(&u);
    if (rc < 0)
        fa_routes_free(rt);
    return rc;
}

int fa_routes_add_metrics(struct fa_routes *rt, const char *path, char **cause)
{
    char *why = NULL;

    if (path[0] != '/' || strchr(path, '{') || strchr(path, '}')) {
        fa_xasprintf(cause, "--metrics %s: expected a fixed path such as /metrics", path);
        return -1;
    }
    if (rt->router == NULL)
        rt->router = fa_router_create();
    if (rt->n == rt->cap) {
        rt->cap = rt->cap ? rt->cap * 2 : 4;
        rt->v = fa_xrealloc(rt->v, rt->cap * sizeof *rt->v);
    }
    if (fa_router_add(rt->router, HTTP_GET, path, (uint32_t)rt->n, &why) < 0) {
        fa_xasprintf(cause, "--metrics %s: %s", path, why ? why : "refused by the router");
        free(why);
        return -1;
    }
    struct fa_route *r = &rt->v[rt->n];
    memset(r, 0, sizeof *r);
    r->id = (uint32_t)rt->n;
    r->method = HTTP_GET;
    r->pattern = fa_xstrdup(path);
    fa_xasprintf(&r->name, "GET %s", path);
    r->kind = FA_ROUTE_METRICS;
    r->param_names = fa_xcalloc(1, sizeof *r->param_names);
    rt->n++;
    return 0;
}

void fa_routes_free(struct fa_routes *rt)
{
    for (size_t i = 0; i < rt->n; i++) {
        struct fa_route *r = &rt->v[i];
        for (uint32_t k = 0; k < r->n_params; k++)
            free(r->param_names[k]);
        free(r->param_names);
        free(r->pattern);
        free(r->name);
        fa_static_destroy(r->stat);
        fa_native_close(r->native);
        fa_files_close(r->files);
    }
    free(rt->v);
    if (rt->router)
        fa_router_destroy(rt->router);
    memset(rt, 0, sizeof *rt);
}

const struct fa_route *fa_routes_get(const struct fa_routes *rt, uint32_t id)
{
    return id < rt->n ? &rt->v[id] : NULL;
}
