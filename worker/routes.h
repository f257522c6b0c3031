/* routes.h - the app's route table, as described by the Python app
 * (fasterapi-pyworker --describe) and compiled into the C router.
 *
 * Built in the master before the HTTP workers fork; read-only afterwards.
 */
#ifndef FA_WORKER_ROUTES_H
#define FA_WORKER_ROUTES_H

#include <stddef.h>
#include <stdint.h>

enum fa_route_kind { FA_ROUTE_PYTHON = 0 };

struct fa_route {
    uint32_t id;
    unsigned method;          /* enum http_method */
    char *pattern;
    enum fa_route_kind kind;
};

struct fa_routes {
    struct fa_route *v;
    size_t n;
    struct fa_router *router;
};

/* Decodes the msgpack route table (array of [id, method, pattern, kind]) and
 * builds the router. Returns 0, or -1 with *cause naming the bad entry. */
int fa_routes_load(struct fa_routes *rt, const char *buf, size_t len, char **cause);
void fa_routes_free(struct fa_routes *rt);

/* The route with that id, or NULL. */
const struct fa_route *fa_routes_get(const struct fa_routes *rt, uint32_t id);

#endif
