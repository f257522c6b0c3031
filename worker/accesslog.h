/* accesslog.h - --access-log FILE|- [--access-log-format combined|json]:
 * one line per completed response, written by the HTTP worker.
 *
 *   combined: 127.0.0.1 - - [26/Nov/2026:21:49:15 +0000] "GET /x?y=1 HTTP/1.1" 200 13 "referer" "user-agent"
 *   json:     {"time":"2026-11-26T21:49:15+00:00","host":"127.0.0.1","method":"GET",
 *              "target":"/x?y=1","protocol":"HTTP/1.1","status":200,"bytes":13,
 *              "referer":null,"user_agent":"curl/7.88.1","duration_ms":0.412,
 *              "route":"/x"}
 *
 * bytes counts the body only (0 for HEAD, 304); time is when the request
 * head arrived (local time in the combined format, as Apache and nginx do);
 * duration_ms runs from then to the response's last byte written; route is
 * the pattern that matched (null for 404 and errors before routing). A
 * request that failed before its head was complete logs "-" (combined) or
 * null fields (json) for what it never said. Quotes, backslashes and bytes
 * outside printable ASCII are escaped (\" \\ \xHH; JSON: \" \\ \u00HH).
 *
 * Each line goes out with one write() on the log's fd, which the master
 * opened with O_APPEND: lines from several workers never interleave.
 */
#ifndef FA_WORKER_ACCESSLOG_H
#define FA_WORKER_ACCESSLOG_H

#include "worker/worker.h"

struct fa_alog_rec;

/* Copies from the request head what the line needs into r->alog (the head
 * is gone by the time the response is written). req NULL: a request that
 * failed before its head was complete. rt: the matched route or NULL. */
void fa_accesslog_begin(struct fa_worker *w, struct fa_resp *r, const struct fa_http_req *req,
                        const struct fa_route *rt, const char *client_host);
/* r was written whole: writes its line. */
void fa_accesslog_end(struct fa_worker *w, const struct fa_resp *r);
void fa_accesslog_free(struct fa_alog_rec *a);

#endif
