/* fuzz_http.c - libFuzzer target: request parsing and validation
 * (worker/http.c through fa_http_feed).
 *
 * Input: 3 bytes of settings, then the bytes a client sends.
 *   byte 0  bit 0: small limits (so 413/414/431 and the chunk-extension cap
 *                  are reached by short inputs); bit 1: pause after every
 *                  message (on_complete returns 1, the caller feeds the rest)
 *   byte 1-2  split point, little-endian, modulo (length + 1)
 *
 * The bytes are parsed twice, by two parsers: once in one piece, once in two
 * pieces cut at the split point. Each piece lives in its own heap block of
 * exactly its size, freed as soon as fa_http_feed returns, so ASan catches an
 * over-read of a piece and any pointer into the caller's data kept past the
 * call (http.h: the head must be copied; body pieces are valid only during
 * on_body). Both runs must produce the same events (heads, body bytes,
 * completions, the final status): how reads split a request must never
 * change what it means. Every head is also checked against the promises of
 * http.h and DESIGN.md's Hardening list, and read again at on_complete.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http.h"

#define LOG_MAX 4096

struct run {
    struct fa_http *h;
    int pause;
    /* Event log: compared between the two runs. */
    unsigned char log[LOG_MAX];
    size_t log_len;
    uint64_t body;             /* body bytes of the current message */
    struct fa_http_req *req;   /* the current head (valid until the next message) */
    uint64_t req_sum;          /* checksum of the head at on_head */
    int in_body;
};

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_http: %s\n", what);
    abort();
}

static void log_put(struct run *r, const void *p, size_t n)
{
    if (r->log_len + n > LOG_MAX) {
        r->log_len = LOG_MAX;   /* saturates the same way in both runs */
        return;
    }
    memcpy(r->log + r->log_len, p, n);
    r->log_len += n;
}

static uint64_t sum_bytes(uint64_t s, const char *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        s = (s ^ (unsigned char)p[i]) * 1099511628211ull;
    return (s ^ n) * 1099511628211ull;
}

/* Reads every byte the head points at (ASan checks each pointer) and
 * returns a checksum of it. */
static uint64_t head_sum(const struct fa_http_req *q)
{
    uint64_t s = 14695981039346656037ull;

    s = sum_bytes(s, q->target, q->target_len);
    s = sum_bytes(s, q->path, q->path_len);
    s = sum_bytes(s, q->query ? q->query : "", q->query_len);
    s = sum_bytes(s, q->host ? q->host : "", q->host_len);
    for (uint32_t i = 0; i < q->n_headers; i++) {
        s = sum_bytes(s, q->headers[i].name, q->headers[i].name_len);
        s = sum_bytes(s, q->headers[i].value, q->headers[i].value_len);
    }
    return s ^ q->method ^ (uint64_t)q->content_length << 8 ^ (uint64_t)q->keep_alive << 1 ^
           (uint64_t)q->chunked << 2 ^ (uint64_t)q->expect_continue << 3;
}

static int is_tchar_lower(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return 1;
    if (c >= '0' && c <= '9')
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* What http.h and DESIGN.md promise about an accepted head. */
static void check_head(const struct fa_http_req *q)
{
    uint32_t n_host = 0;

    if (q->http_major != 1 || q->http_minor > 1)
        fz_fail("accepted a version other than HTTP/1.0 and 1.1");
    if (q->target == NULL || q->target_len == 0)
        fz_fail("accepted an empty request-target");
    for (uint32_t i = 0; i < q->target_len; i++)
        if ((unsigned char)q->target[i] <= 0x20 || (unsigned char)q->target[i] >= 0x7f)
            fz_fail("request-target with a control byte, space or non-ASCII byte");
    if (q->path == NULL || q->path_len == 0)
        fz_fail("accepted a head without a path");
    if (q->query_len && q->query == NULL)
        fz_fail("query_len without query");
    if (q->chunked && q->has_content_length)
        fz_fail("accepted both Content-Length and Transfer-Encoding: chunked");
    if (q->method == HTTP_CONNECT)
        fz_fail("accepted CONNECT");
    for (uint32_t i = 0; i < q->n_headers; i++) {
        const struct fa_http_header *hd = &q->headers[i];

        if (hd->name_len == 0)
            fz_fail("empty header name");
        for (uint32_t j = 0; j < hd->name_len; j++)
            if (!is_tchar_lower((unsigned char)hd->name[j]))
                fz_fail("header name not a lower-case token");
        for (uint32_t j = 0; j < hd->value_len; j++) {
            unsigned char c = (unsigned char)hd->value[j];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                fz_fail("control byte (CR, LF, NUL, ...) in a header value");
        }
        if (hd->value_len && (hd->value[0] == ' ' || hd->value[0] == '\t' ||
                              hd->value[hd->value_len - 1] == ' ' ||
                              hd->value[hd->value_len - 1] == '\t'))
            fz_fail("header value not trimmed");
        if (hd->name_len == 4 && memcmp(hd->name, "host", 4) == 0)
            n_host++;
    }
    if (n_host > 1)
        fz_fail("accepted two Host headers");
    if (q->http_minor == 1 && n_host == 0)
        fz_fail("accepted HTTP/1.1 without Host");
}

static int on_head(void *ctx, struct fa_http_req *q)
{
    struct run *r = ctx;
    unsigned char ev[16];

    if (r->req != NULL)
        fz_fail("on_head twice without on_complete");
    check_head(q);
    r->req = q;
    r->req_sum = head_sum(q);
    r->body = 0;
    ev[0] = 'H';
    memcpy(ev + 1, &r->req_sum, 8);
    log_put(r, ev, 9);
    return 0;
}

static int on_body(void *ctx, const char *data, size_t len)
{
    struct run *r = ctx;
    uint64_t s = 0;

    if (r->req == NULL)
        fz_fail("on_body outside a message");
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)   /* ASan: the piece must be readable */
        s += (unsigned char)data[i];
    (void)s;
    r->body += len;
    return 0;
}

static int on_complete(void *ctx)
{
    struct run *r = ctx;
    unsigned char ev[16];

    if (r->req == NULL)
        fz_fail("on_complete without on_head");
    /* The head must still be intact: the caller's buffers may be gone. */
    if (head_sum(r->req) != r->req_sum)
        fz_fail("the head changed between on_head and on_complete");
    if (r->req->has_content_length && !r->req->chunked && r->body != r->req->content_length)
        fz_fail("body bytes differ from Content-Length");
    ev[0] = 'C';
    memcpy(ev + 1, &r->body, 8);
    log_put(r, ev, 9);
    r->req = NULL;
    return r->pause;
}

static const struct fa_http_cb cb = {on_head, on_body, on_complete};

/* Feeds one piece (copied into an exact-size block) until it is consumed,
 * the parser stops, or it fails. Returns 1 when the parser takes no more. */
static int feed(struct run *r, const uint8_t *data, size_t len, uint64_t *consumed)
{
    char *copy = malloc(len ? len : 1);
    size_t off = 0;
    int stop = 0;

    memcpy(copy, data, len);
    while (off < len) {
        ssize_t n = fa_http_feed(r->h, copy + off, len - off);

        if (n < 0) {
            stop = 1;
            break;
        }
        if ((size_t)n > len - off)
            fz_fail("fa_http_feed consumed more than it was given");
        off += (size_t)n;
        *consumed += (uint64_t)n;
        if (fa_http_done(r->h)) {
            stop = 1;
            break;
        }
        if (n == 0)
            fz_fail("fa_http_feed made no progress, reported no error and is not done");
    }
    free(copy);
    return stop;
}

static void run_once(struct run *r, const struct fa_http_limits *lim, int pause,
                     const uint8_t *data, size_t len, size_t cut)
{
    uint64_t consumed = 0;
    const char *reason = NULL;
    unsigned char ev[16];
    int status;

    memset(r, 0, sizeof(*r));
    r->pause = pause;
    r->h = fa_http_create(lim, &cb, r);
    if (r->h == NULL)
        fz_fail("fa_http_create failed");
    if (!feed(r, data, cut, &consumed) && cut < len)
        feed(r, data + cut, len - cut, &consumed);
    status = fa_http_error(r->h, &reason);
    if (status && (status < 400 || status > 599))
        fz_fail("error status outside 400..599");
    if (status && reason == NULL)
        fz_fail("error without a reason");
    if (status && !fa_http_done(r->h))
        fz_fail("an error left the parser open");
    /* After an error, how much the earlier pieces had consumed depends on
     * the split: only the status counts. */
    if (status)
        consumed = 0;
    ev[0] = 'E';
    memcpy(ev + 1, &status, sizeof(status));
    memcpy(ev + 1 + sizeof(status), &consumed, 8);
    ev[13] = (unsigned char)fa_http_done(r->h);
    ev[14] = (unsigned char)fa_http_in_message(r->h);
    log_put(r, ev, 15);
    /* After an error or the last message nothing more is taken. */
    if (fa_http_done(r->h) && fa_http_feed(r->h, "GET / HTTP/1.1\r\n", 16) > 0)
        fz_fail("the parser took bytes after it was done");
    fa_http_destroy(r->h);
}

static struct run whole, split;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fa_http_limits lim;
    size_t cut;
    int pause;

    if (size < 3)
        return 0;
    fa_http_limits_default(&lim);
    if (data[0] & 1) {
        lim.max_header_bytes = 200;
        lim.max_uri = 64;
        lim.max_headers = 4;
        lim.max_body = 100;
        lim.max_chunk_ext = 16;
    }
    pause = (data[0] >> 1) & 1;
    cut = (size_t)(data[1] | data[2] << 8);
    data += 3;
    size -= 3;
    cut %= size + 1;

    run_once(&whole, &lim, pause, data, size, size);
    run_once(&split, &lim, pause, data, size, cut);
    if (whole.log_len != split.log_len || memcmp(whole.log, split.log, whole.log_len) != 0)
        fz_fail("splitting the input changed the result");
    return 0;
}
