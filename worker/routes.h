/* routes.h - the app's route table, as described by the Python app
 * (fasterapi-pyworker --describe) and compiled into the C router.
 *
 * Built in the master before the HTTP workers fork; read-only afterwards.
 * Everything a route kind needs that can fail is done here, in the master:
 * a native library is dlopen()ed and its symbol looked up, a files
 * directory is opened, a static response is built and checked, so that a
 * mistake stops start-up with a message naming the route, and the workers
 * inherit the handles.
 */
#ifndef FA_WORKER_ROUTES_H
#define FA_WORKER_ROUTES_H

#include <stddef.h>
#include <stdint.h>

enum fa_route_kind {
    FA_ROUTE_PYTHON = 0,    /* sent to a Python worker */
    FA_ROUTE_STATIC,        /* app.static: a precomputed response (static.c) */
    FA_ROUTE_NATIVE,        /* app.native: a C handler (native.c, include/fasterapi.h) */
    FA_ROUTE_FILES,         /* app.mount_static: files from a directory (files.c) */
    FA_ROUTE_METRICS,       /* --metrics PATH: Prometheus text (metrics.c) */
};

struct fa_static;
struct fa_native;
struct fa_files;

struct fa_route {
    uint32_t id;
    unsigned method;          /* enum http_method */
    char *pattern;
    enum fa_route_kind kind;
    uint32_t n_params;
    char **param_names;       /* [n_params], in pattern order */
    char *name;               /* "GET /users/{id}", for messages and the access log */
    struct fa_static *stat;   /* FA_ROUTE_STATIC */
    struct fa_native *native; /* FA_ROUTE_NATIVE */
    struct fa_files *files;   /* FA_ROUTE_FILES */
};

struct fa_routes {
    struct fa_route *v;
    size_t n, cap;
    struct fa_router *router;
};

/* Decodes the msgpack route table (array of [id, method, pattern, kind] or
 * [id, method, pattern, kind, extra]; see pyworker/PROTOCOL.md), prepares
 * each route's kind and builds the router. Returns 0, or -1 with *cause
 * (malloc'd) naming the bad entry. */
int fa_routes_load(struct fa_routes *rt, const char *buf, size_t len, char **cause);
/* Releases everything, closing native libraries and directories. */
void fa_routes_free(struct fa_routes *rt);

/* Adds GET `path` served by fa_metrics_render(), with the next route id
 * (after the app's, so Python never sees it). Returns 0, or -1 with *cause
 * naming --metrics (a path with a parameter, or one the app already has). */
int fa_routes_add_metrics(struct fa_routes *rt, const char *path, char **cause);

/* The route with that id, or NULL. */
const struct fa_route *fa_routes_get(const struct fa_routes *rt, uint32_t id);

#endif
