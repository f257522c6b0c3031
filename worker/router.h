/* router.h - the C router: method + raw path -> route id and path parameters.
 *
 * Built once in the master from the app's route table, before the HTTP
 * workers fork; read-only afterwards (each worker uses its inherited copy).
 * Patterns are "/", "/a/b", "/users/{user_id}", "/u/{id}/posts/{post}" :
 * segments split on '/', a segment that is exactly "{name}" (optionally
 * "{name:type}", the type is ignored here) matches one non-empty path segment.
 * A last segment "{name:path}" matches the rest of the path: one or more
 * bytes, slashes included ("/static/{file:path}" matches "/static/a/b.css").
 * Static segments win over a parameter at the same depth (with backtracking).
 * Matching is on the raw (still percent-encoded) path; values are returned
 * raw and decoded by the Python side.
 */
#ifndef FA_WORKER_ROUTER_H
#define FA_WORKER_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#define FA_ROUTER_MAX_PARAMS 16

struct fa_router;

struct fa_match {
    uint32_t route_id;
    uint32_t n_params;
    struct { const char *p; uint32_t len; } params[FA_ROUTER_MAX_PARAMS];  /* point into the path */
    uint64_t allow;   /* FA_MATCH_BAD_METHOD: bit m set for each http_parser method m that the path has */
};

enum { FA_MATCH_OK = 0, FA_MATCH_NOT_FOUND = 1, FA_MATCH_BAD_METHOD = 2 };

struct fa_router *fa_router_create(void);
void fa_router_destroy(struct fa_router *r);

/* method: an http_parser `enum http_method` value. A duplicate (method,
 * pattern), a malformed pattern or too many parameters is refused: -1 and
 * *cause (malloc'd) names the pattern and the problem. */
int fa_router_add(struct fa_router *r, unsigned method, const char *pattern,
                  uint32_t route_id, char **cause);

/* Matches; HEAD falls back to GET when the path has no HEAD route.
 * Returns FA_MATCH_OK (m filled), FA_MATCH_NOT_FOUND or FA_MATCH_BAD_METHOD
 * (m->allow filled). No allocation. */
int fa_router_match(const struct fa_router *r, unsigned method,
                    const char *path, size_t path_len, struct fa_match *m);

/* Writes "GET, HEAD, POST" for an allow mask into buf (NUL-terminated,
 * truncated to size). Returns the length written. HEAD is listed when GET is. */
size_t fa_router_allow_str(uint64_t allow, char *buf, size_t size);

#endif
