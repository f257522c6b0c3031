/* native.h - app.native routes: C handlers (include/fasterapi.h) loaded
 * with dlopen in the master and called by the HTTP worker once a request's
 * whole body has arrived.
 */
#ifndef FA_WORKER_NATIVE_H
#define FA_WORKER_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "fasterapi.h"
#include "worker/worker.h"

struct fa_native {
    char *library;          /* absolute path */
    char *symbol;
    void *dl;               /* dlopen handle */
    fa_handler *fn;
};

/* dlopen(library) and dlsym(symbol) for route `route` ("GET /fast").
 * Returns NULL with *cause (malloc'd) naming the route, the library and
 * the symbol when either is missing. */
struct fa_native *fa_native_open(const char *route, const char *library, size_t library_len,
                                 const char *symbol, size_t symbol_len, char **cause);
void fa_native_close(struct fa_native *n);

/* Calls rt's handler for the request (head `req`, match `m`, the whole
 * body) and fills r with its response, or with a 500 (logged with the
 * route) if the handler failed. r is ready on return. */
void fa_native_run(struct fa_worker *w, struct fa_resp *r, const struct fa_route *rt,
                   const struct fa_http_req *req, const struct fa_match *m,
                   const char *client_addr, uint16_t client_port,
                   const char *body, size_t body_len);

#endif
