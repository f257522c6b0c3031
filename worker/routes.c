/* routes.c - decode the describe output (msgpack) into the route table. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>
#include <msgpack.h>

#include "worker/routes.h"
#include "worker/router.h"
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

static char *routes__str(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return NULL;
    return fa_xstrndup(o->via.str.ptr, o->via.str.size);
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
    rt->v = fa_xcalloc(a->size ? a->size : 1, sizeof *rt->v);
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *e = &a->ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 4 ||
            e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            e->via.array.ptr[1].type != MSGPACK_OBJECT_STR ||
            e->via.array.ptr[2].type != MSGPACK_OBJECT_STR ||
            e->via.array.ptr[3].type != MSGPACK_OBJECT_STR) {
            fa_xasprintf(cause, "route table entry %u is not [id, method, pattern, kind]", i);
            goto bail;
        }
        const msgpack_object *f = e->via.array.ptr;
        struct fa_route *r = &rt->v[rt->n];
        r->id = (uint32_t)f[0].via.u64;
        int m = routes__method(f[1].via.str.ptr, f[1].via.str.size);
        r->pattern = routes__str(&f[2]);
        if (m < 0) {
            fa_xasprintf(cause, "route %s: unknown HTTP method '%.*s'", r->pattern,
                         (int)f[1].via.str.size, f[1].via.str.ptr);
            free(r->pattern);
            goto bail;
        }
        r->method = (unsigned)m;
        if (f[3].via.str.size == 6 && memcmp(f[3].via.str.ptr, "python", 6) == 0) {
            r->kind = FA_ROUTE_PYTHON;
        } else {
            fa_xasprintf(cause, "route %s %s: unknown kind '%.*s'", f[1].via.str.size ? http_method_str(r->method) : "",
                         r->pattern, (int)f[3].via.str.size, f[3].via.str.ptr);
            free(r->pattern);
            goto bail;
        }
        if (r->id != rt->n) {
            fa_xasprintf(cause, "route %s: id %u out of order (expected %zu)", r->pattern, r->id, rt->n);
            free(r->pattern);
            goto bail;
        }
        rt->n++;
        if (fa_router_add(rt->router, r->method, r->pattern, r->id, cause) < 0)
            goto bail;
    }
    rc = 0;
bail:
    msgpack_unpacked_destroy(&u);
    if (rc < 0)
        fa_routes_free(rt);
    return rc;
}

void fa_routes_free(struct fa_routes *rt)
{
    for (size_t i = 0; i < rt->n; i++)
        free(rt->v[i].pattern);
    free(rt->v);
    if (rt->router)
        fa_router_destroy(rt->router);
    memset(rt, 0, sizeof *rt);
}

const struct fa_route *fa_routes_get(const struct fa_routes *rt, uint32_t id)
{
    return id < rt->n ? &rt->v[id] : NULL;
}
