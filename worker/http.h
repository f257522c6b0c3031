/* http.h - HTTP/1.1 request parsing: nodejs http-parser plus the checks it
 * lacks (Debian builds it non-strict; DESIGN.md, Hardening).
 *
 * One struct fa_http per connection. fa_http_feed() takes bytes as they come
 * from the socket (any split), calls on_head once the head of a message is
 * complete and valid, on_body for each piece of (de-chunked) body, and
 * on_complete at the end of the message. The head (target, header names and
 * values) is copied into the parser's own storage, so `req` stays valid until
 * the next message starts, whatever the caller does with its read buffer.
 * Body pieces point into the caller's data and are valid only during the call.
 */
#ifndef FA_WORKER_HTTP_H
#define FA_WORKER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <http_parser.h>

struct fa_http_header {
    const char *name;   /* lowercased */
    uint32_t name_len;
    const char *value;  /* surrounding whitespace trimmed */
    uint32_t value_len;
};

#define FA_HTTP_MAX_HEADERS_CAP 256

struct fa_http_req {
    unsigned method;              /* enum http_method */
    uint8_t http_major, http_minor;
    bool keep_alive;              /* false: close after this response */
    bool chunked;                 /* body uses chunked transfer coding */
    bool expect_continue;         /* "Expect: 100-continue" was sent */
    bool has_content_length;
    uint64_t content_length;
    const char *target; uint32_t target_len;  /* raw request-target */
    const char *path;   uint32_t path_len;    /* target up to '?' (origin-form) */
    const char *query;  uint32_t query_len;   /* after '?', 0 if none */
    const char *host;   uint32_t host_len;    /* the Host header value */
    struct fa_http_header *headers;
    uint32_t n_headers;
};

struct fa_http_limits {
    uint32_t max_header_bytes;    /* request line + headers; over -> 431 (414 if the target alone) */
    uint32_t max_uri;             /* request-target bytes; over -> 414 */
    uint32_t max_headers;         /* header fields; over -> 431 */
    uint64_t max_body;            /* body bytes; over -> 413 */
    uint32_t max_chunk_ext;       /* chunk-extension bytes per chunk; over -> 400 */
};
void fa_http_limits_default(struct fa_http_limits *l);   /* 16 KiB, 8 KiB, 100, 1 MiB, 256 */

struct fa_http_cb {
    /* Head complete and valid. Return 0 to go on, or an HTTP status (>= 400)
     * to fail the message (fa_http_feed then returns -1 with that status). */
    int (*on_head)(void *ctx, struct fa_http_req *req);
    /* Return 0, or a status >= 400 to fail. */
    int (*on_body)(void *ctx, const char *data, size_t len);
    /* Message complete. Return 0 to continue parsing the next pipelined
     * message in the same call, 1 to pause: fa_http_feed returns the bytes
     * consumed up to the end of this message. */
    int (*on_complete)(void *ctx);
};

struct fa_http;

struct fa_http *fa_http_create(const struct fa_http_limits *lim, const struct fa_http_cb *cb, void *ctx);
void fa_http_destroy(struct fa_http *h);

/* Returns bytes consumed (may be < len when paused or when the message was
 * the last one of a non-keep-alive connection: nothing after it is parsed),
 * or -1 on error: fa_http_error() gives the status (400, 408, 413, 414, 431,
 * 501, 505) and a short reason. After an error or after a message with
 * keep_alive == false the parser accepts nothing more (returns 0). */
ssize_t fa_http_feed(struct fa_http *h, const char *data, size_t len);

/* 1 between a message's first byte and its completion (for timeouts and
 * for "connection closed mid-request"). */
int fa_http_in_message(const struct fa_http *h);
/* 1 once the parser will not take more input (error or last message done). */
int fa_http_done(const struct fa_http *h);
int fa_http_error(const struct fa_http *h, const char **reason);

#endif
