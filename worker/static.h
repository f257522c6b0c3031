/* static.h - app.static routes: a whole response computed once, in the
 * master, and sent by the HTTP worker from on_head with no Python.
 *
 * The head is kept in two parts around the Date header, which must be the
 * current one: pre (status line, Server) + Date + post (Content-Length,
 * Content-Type, the app's headers). The body is sent from the route's own
 * memory, never copied per request.
 */
#ifndef FA_WORKER_STATIC_H
#define FA_WORKER_STATIC_H

#include <stddef.h>

#include "worker/worker.h"

struct fa_static {
    int status;
    char *pre;              /* "HTTP/1.1 200 OK\r\nServer: fasterapi\r\n" */
    size_t pre_len;
    char *post;             /* "Content-Length: 2\r\nContent-Type: ...\r\n..." */
    size_t post_len;
    char *body;
    size_t body_len;
};

struct fa_static_header {
    const char *name, *value;
    size_t name_len, value_len;
};

/* Builds the response of route `route` ("GET /health", for messages).
 * content_type may be NULL (no Content-Type). Refuses a status outside
 * 200..599, a body with 204 or 304, a header name that is not a token, CR,
 * LF or NUL in a value, and the headers the server writes itself: NULL with
 * *cause (malloc'd) naming the route. */
struct fa_static *fa_static_create(const char *route, int status,
                                   const char *content_type, size_t content_type_len,
                                   const struct fa_static_header *h, size_t n_h,
                                   const void *body, size_t body_len, char **cause);
void fa_static_destroy(struct fa_static *s);

/* Fills r with the response (no body for HEAD) and marks it ready. */
void fa_static_respond(struct fa_worker *w, struct fa_resp *r, const struct fa_static *s);

#endif
