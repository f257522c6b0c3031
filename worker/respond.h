/* respond.h - see worker.h (the response builders are declared there). */
#ifndef FA_WORKER_RESPOND_H
#define FA_WORKER_RESPOND_H
#include "worker/worker.h"

/* Appends to r->hbuf (grows). */
void fa_resp_append(struct fa_resp *r, const void *data, size_t n);
/* Status line + Server + Date + Content-Length (+ Connection: close).
 * Sets r->status. content_length FA_RESPOND_NO_LENGTH: no Content-Length
 * (a streamed body: chunked, or ended by the close). */
#define FA_RESPOND_NO_LENGTH SIZE_MAX
void fa_respond_head(struct fa_worker *w, struct fa_resp *r, int status, size_t content_length);

/* Response header checks, for every route kind (no header from a handler
 * or an app reaches the wire without them). A field name is a token
 * (RFC 9110 5.6.2); a value has no CR, LF or NUL. */
bool fa_respond_token_ok(const char *s, size_t n);
bool fa_respond_value_ok(const char *s, size_t n);
/* Headers the server writes itself: Content-Length, Transfer-Encoding,
 * Connection, Keep-Alive, Date, Server (any case). */
bool fa_respond_managed_header(const char *name, size_t n);
#endif
