/* respond.h - see worker.h (the response builders are declared there). */
#ifndef FA_WORKER_RESPOND_H
#define FA_WORKER_RESPOND_H
#include "worker/worker.h"

/* Appends to r->hbuf (grows). */
void fa_resp_append(struct fa_resp *r, const void *data, size_t n);
/* Status line + Server + Date + Content-Length (+ Connection: close). */
void fa_respond_head(struct fa_worker *w, struct fa_resp *r, int status, size_t content_length);
#endif
