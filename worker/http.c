/* http.c - HTTP/1.1 request parsing: nodejs http-parser 2.9.4 plus the
 * checks that Debian's non-strict build leaves out (DESIGN.md, Hardening).
 *
 * http-parser does the tokenising (request line, header fields, chunked
 * decoding); what it lets through is checked twice. Before any byte reaches
 * it, a small framing scanner of ours walks the same bytes; once the head is
 * complete, http__check_head() applies the RFC 9110/9112 rules to it:
 *
 *   socket bytes --> framing scanner --> http-parser --> callbacks (below)
 *                    (head/trailer lines:  on_url, on_header_*: record
 *                     CRLF, obs-fold,      on_headers_complete: validate,
 *                     size; chunk lines:   call on_head; on_body;
 *                     hex, ext, CRLF)      on_message_complete: pause
 *
 * Why a scanner and not callbacks alone: non-strict http-parser takes any
 * byte for the LF of "\r\n\r" (so "\r\n\rX" ends the head), any two bytes
 * for the CRLF after chunk data, LF and NUL inside chunk extensions, and
 * reports an obs-fold continuation as just another on_header_value call,
 * which split reads also produce. The scanner sees raw bytes, so it catches
 * these regardless of how reads split them, and it knows where each message
 * ends; http-parser is then run on exactly that extent and must agree (its
 * on_message_complete must land on the same byte, or the message is refused
 * as ambiguous). Every error is tied to one byte offset, with http-parser run
 * up to it first, so the status never depends on how the reads were split.
 *
 * The head is copied into h->buf as it is scanned and http-parser is run on
 * the copy, so every callback pointer of the head lies in h->buf, a field or
 * target split over many reads is contiguous there, and req stays valid
 * until the next message starts. Body bytes are parsed in place (the caller's
 * buffer) and passed to on_body.
 *
 * Choices (see also http.h): CONNECT -> 501 (no proxying, so not
 * implemented rather than 405, which would promise an Allow list); bare LF
 * line ends are accepted in the head and in trailers (RFC 9112 2.2), never in
 * chunk framing; the request-target must be printable ASCII without '#';
 * Transfer-Encoding in an HTTP/1.0 request -> 400; Expect other than
 * 100-continue is ignored, and so is 100-continue from HTTP/1.0 (RFC 9110
 * 10.1.1); an unknown method -> 400 (http-parser cannot tell it from junk).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "worker/http.h"

enum { PH_HEAD, PH_BODY_LEN, PH_BODY_CHUNKED };
/* chunked framing: SIZE0 first hex digit, SIZE more digits, WS blanks before
 * ';', EXT extension up to CR, LF after the size line, DATA, DATA_CR/LF the
 * CRLF after data, TRAILER the trailer section (line rules as the head). */
enum { CK_SIZE0, CK_SIZE, CK_WS, CK_EXT, CK_LF, CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_TRAILER };
enum { CB_NONE, CB_FIELD, CB_VALUE };
enum { RL_METHOD, RL_GAP, RL_TARGET, RL_VERSION };

struct fa_http {
    http_parser p;                /* p.data = this */
    struct fa_http_limits lim;
    struct fa_http_cb cb;
    void *ctx;

    struct fa_http_req req;       /* what on_head sees; points into buf */
    char *buf;                    /* the head, cap lim.max_header_bytes */
    uint32_t buf_len;
    struct fa_http_header *hdrs;  /* cap lim.max_headers */

    /* line scanner, head and trailers */
    uint32_t line_len;            /* bytes of the current line, CR excluded */
    uint32_t n_lines;
    uint32_t rl_len;              /* request line length, CR excluded */
    uint8_t rl;                   /* RL_*: where in the request line */
    bool rl_connect;              /* the method so far is a prefix of CONNECT */
    uint32_t rl_target;           /* request-target bytes so far */
    uint32_t lead;                /* blank-line bytes before this message */
    uint32_t trailer_bytes;
    uint8_t cr;                   /* last byte was a CR */

    /* body framing */
    uint8_t phase, ck, ck_digits;
    uint32_t ext_len;
    uint64_t left;                /* identity: body bytes to come; chunked: of this chunk */
    uint64_t body_bytes;          /* chunked: sum of the chunk sizes so far */

    uint8_t last_cb;              /* to join split field/value callbacks */
    bool in_message, head_done, msg_done, trailers, done;
    int status;
    const char *reason;
};

/* tchar (RFC 9110 5.6.2), lowercased; 0 for anything else. */
static const uint8_t http__tchar[256] = {
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,
      0,  33,   0,  35,  36,  37,  38,  39,   0,   0,  42,  43,   0,  45,  46,   0,
     48,  49,  50,  51,  52,  53,  54,  55,  56,  57,   0,   0,   0,   0,   0,   0,
      0,  97,  98,  99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122,   0,   0,   0,  94,  95,
     96,  97,  98,  99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122,   0, 124,   0, 126,   0,
};

/* Field-value bytes: VCHAR, SP, HTAB, obs-text. */
#define HTTP_BAD_VALUE_BYTE(c) (((c) < 0x20 && (c) != '\t') || (c) == 0x7f)

void fa_http_limits_default(struct fa_http_limits *l)
{
    l->max_header_bytes = 16 * 1024;
    l->max_uri = 8 * 1024;
    l->max_headers = 100;
    l->max_body = 1024 * 1024;
    l->max_chunk_ext = 256;
}

/* Sets the reason that goes with status and returns status, so that checks
 * read `return http__err(h, 400, "why");`. */
static int http__err(struct fa_http *h, int status, const char *reason)
{
    h->reason = reason;
    return status;
}

/* Records a failure from inside an http-parser callback; the callback then
 * returns -1 and fa_http_feed() reports this status. */
static int http__cb_fail(struct fa_http *h, int status, const char *reason)
{
    if (!h->status) {
        h->status = status;
        h->reason = reason;
    }
    return -1;
}

/* ---- http-parser callbacks -------------------------------------------- */

static int http__on_url(http_parser *p, const char *at, size_t n)
{
    struct fa_http *h = p->data;
    struct fa_http_req *q = &h->req;

    /* CONNECT and the length are refused by the scanner first (see
     * http__lines); these checks only back it up. */
    if (q->target_len == 0) {
        if (p->method == HTTP_CONNECT)
            return http__cb_fail(h, 501, "CONNECT is not implemented");
        q->target = at;
    } else if (at != q->target + q->target_len) {
        return http__cb_fail(h, 400, "request-target split unexpectedly");
    }
    if (n > h->lim.max_uri || q->target_len + n > h->lim.max_uri)
        return http__cb_fail(h, 414, "request-target too long");
    q->target_len += (uint32_t)n;
    return 0;
}

static int http__trailer_bytes_ok(const char *at, size_t n, int name)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)at[i];

        if (name ? !http__tchar[c] : HTTP_BAD_VALUE_BYTE(c))
            return 0;
    }
    return 1;
}

static int http__on_header_field(http_parser *p, const char *at, size_t n)
{
    struct fa_http *h = p->data;
    struct fa_http_header *hd;

    /* Trailers are checked and dropped: nothing downstream reads them. */
    if (h->trailers)
        return http__trailer_bytes_ok(at, n, 1) ? 0
               : http__cb_fail(h, 400, "invalid trailer field name");
    if (h->last_cb != CB_FIELD) {
        if (h->req.n_headers >= h->lim.max_headers)   /* backstop: http__lines counts */
            return http__cb_fail(h, 431, "too many header fields");
        hd = &h->hdrs[h->req.n_headers++];
        hd->name = at;
        hd->name_len = 0;
        hd->value = "";
        hd->value_len = 0;
        h->last_cb = CB_FIELD;
    } else {
        hd = &h->hdrs[h->req.n_headers - 1];
        if (at != hd->name + hd->name_len)
            return http__cb_fail(h, 400, "header name split unexpectedly");
    }
    hd->name_len += (uint32_t)n;
    return 0;
}

static int http__on_header_value(http_parser *p, const char *at, size_t n)
{
    struct fa_http *h = p->data;
    struct fa_http_header *hd;

    if (h->trailers)
        return http__trailer_bytes_ok(at, n, 0) ? 0
               : http__cb_fail(h, 400, "control byte in a trailer field value");
    if (h->req.n_headers == 0)
        return http__cb_fail(h, 400, "header value without a name");
    hd = &h->hdrs[h->req.n_headers - 1];
    if (h->last_cb != CB_VALUE) {
        hd->value = at;
        hd->value_len = 0;
        h->last_cb = CB_VALUE;
    } else if (at != hd->value + hd->value_len) {
        /* The scanner refuses obs-fold first; this is the backstop. */
        return http__cb_fail(h, 400, "folded header value");
    }
    hd->value_len += (uint32_t)n;
    return 0;
}

static int http__authority_char(unsigned char c)
{
    unsigned char l = c | 0x20;

    if ((l >= 'a' && l <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '-': case '.': case '_': case '~': case '%': case '!': case '$':
    case '&': case '\'': case '(': case ')': case '*': case '+': case ',':
    case ';': case '=': case ':': case '[': case ']':
        return 1;
    }
    return 0;
}

static int http__authority_ok(const char *s, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if (!http__authority_char((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Splits path?query starting at s (which begins with '/' or '?', or is
 * empty for "http://host"). */
static void http__split_origin(struct fa_http_req *q, const char *s, uint32_t len)
{
    const char *qm = memchr(s, '?', len);
    uint32_t plen = qm ? (uint32_t)(qm - s) : len;

    if (plen == 0) {
        q->path = "/";
        q->path_len = 1;
    } else {
        q->path = s;
        q->path_len = plen;
    }
    if (qm) {
        q->query = qm + 1;
        q->query_len = len - plen - 1;
    }
}

/* origin-form, absolute-form (http/https; path = its origin part, host = its
 * authority, per RFC 9112 3.2.2), or "*" for OPTIONS. Returns 0 or 400. */
static int http__check_target(struct fa_http *h)
{
    struct fa_http_req *q = &h->req;
    const char *t = q->target;
    uint32_t len = q->target_len, skip, a;

    if (len == 0)
        return http__err(h, 400, "empty request-target");
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];

        if (c <= 0x20 || c >= 0x7f || c == '#')
            return http__err(h, 400, "invalid byte in the request-target");
    }
    if (t[0] == '/') {
        http__split_origin(q, t, len);
        return 0;
    }
    if (len == 1 && t[0] == '*') {
        if (q->method != HTTP_OPTIONS)
            return http__err(h, 400, "'*' target on a method other than OPTIONS");
        q->path = t;
        q->path_len = 1;
        return 0;
    }
    if (len > 7 && strncasecmp(t, "http://", 7) == 0)
        skip = 7;
    else if (len > 8 && strncasecmp(t, "https://", 8) == 0)
        skip = 8;
    else
        return http__err(h, 400, "request-target is neither origin-form nor absolute http(s)");
    for (a = skip; a < len && t[a] != '/' && t[a] != '?'; a++)
        ;
    if (a == skip)
        return http__err(h, 400, "absolute-form target without a host");
    if (memchr(t + skip, '@', a - skip))
        return http__err(h, 400, "userinfo in the request-target");
    if (!http__authority_ok(t + skip, a - skip))
        return http__err(h, 400, "invalid authority in the request-target");
    q->host = t + skip;
    q->host_len = a - skip;
    http__split_origin(q, t + a, len - a);
    return 0;
}

/* Exactly one coding, "chunked", is accepted. Returns 0, 400 (malformed,
 * chunked twice, with parameters or not last) or 501 (other codings). */
static int http__check_te(struct fa_http *h, const char *v, uint32_t len)
{
    uint32_t i = 0, n_chunked = 0;
    int last_chunked = 0, unknown = 0;

    for (;;) {
        uint32_t start = i;
        int params = 0, chunked;

        while (i < len && http__tchar[(unsigned char)v[i]])
            i++;
        if (i == start)
            return http__err(h, 400, "malformed Transfer-Encoding");
        chunked = i - start == 7 && strncasecmp(v + start, "chunked", 7) == 0;
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i < len && v[i] == ';') {
            /* Only unknown codings take parameters, and those fail anyway. */
            params = 1;
            while (i < len && v[i] != ',')
                i++;
        }
        if (chunked) {
            if (params)
                return http__err(h, 400, "parameters on the chunked coding");
            n_chunked++;
        } else {
            unknown = 1;
        }
        last_chunked = chunked;
        if (i == len)
            break;
        if (v[i] != ',')
            return http__err(h, 400, "malformed Transfer-Encoding");
        i++;
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
    }
    if (n_chunked > 1)
        return http__err(h, 400, "chunked applied more than once");
    if (n_chunked && !last_chunked)
        return http__err(h, 400, "chunked is not the final transfer coding");
    if (unknown)
        return http__err(h, 501, "unsupported transfer coding");
    return 0;
}

/* Finishes req from the recorded head and applies the RFC 9110/9112 rules.
 * Returns 0 or a status, with h->reason set. */
static int http__check_head(struct fa_http *h)
{
    struct fa_http_req *q = &h->req;
    http_parser *p = &h->p;
    const struct fa_http_header *host = NULL, *cl = NULL, *te = NULL;
    uint32_t n_host = 0, n_cl = 0, n_te = 0;
    int st;

    q->method = p->method;
    q->http_major = (uint8_t)p->http_major;
    q->http_minor = (uint8_t)p->http_minor;
    /* Non-strict http-parser takes any 4 letters for "HTTP" (even "ICE"). */
    if (h->rl_len < 10 || memcmp(h->buf + h->rl_len - 9, " HTTP/", 6) != 0)
        return http__err(h, 400, "malformed request line");
    if (p->http_major != 1 || p->http_minor > 1)
        return http__err(h, 505, "only HTTP/1.0 and HTTP/1.1 are supported");

    for (uint32_t i = 0; i < q->n_headers; i++) {
        struct fa_http_header *hd = &h->hdrs[i];
        /* Names lie in h->buf, which we own: lowercase in place. */
        char *name = h->buf + (hd->name - h->buf);
        const char *v = hd->value;
        uint32_t vl = hd->value_len;

        if (hd->name_len == 0)
            return http__err(h, 400, "empty header name");
        for (uint32_t j = 0; j < hd->name_len; j++) {
            uint8_t lc = http__tchar[(unsigned char)name[j]];

            if (!lc)
                return http__err(h, 400, "invalid byte in a header name");
            name[j] = (char)lc;
        }
        while (vl && (v[0] == ' ' || v[0] == '\t')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        for (uint32_t j = 0; j < vl; j++)
            if (HTTP_BAD_VALUE_BYTE((unsigned char)v[j]))
                return http__err(h, 400, "control byte in a header value");
        hd->value = v;
        hd->value_len = vl;

        switch (hd->name_len) {
        case 4:
            if (memcmp(name, "host", 4) == 0) {
                host = hd;
                n_host++;
            }
            break;
        case 6:
            if (memcmp(name, "expect", 6) == 0 && p->http_minor == 1
                && vl == 12 && strncasecmp(v, "100-continue", 12) == 0)
                q->expect_continue = true;
            break;
        case 14:
            if (memcmp(name, "content-length", 14) == 0) {
                cl = hd;
                n_cl++;
            }
            break;
        case 17:
            if (memcmp(name, "transfer-encoding", 17) == 0) {
                te = hd;
                n_te++;
            }
            break;
        }
    }

    if (n_host > 1)
        return http__err(h, 400, "more than one Host header");
    if (n_host == 0 && p->http_minor == 1)
        return http__err(h, 400, "HTTP/1.1 request without Host");
    if (host && !http__authority_ok(host->value, host->value_len))
        return http__err(h, 400, "invalid Host header");
    if (host) {
        q->host = host->value;
        q->host_len = host->value_len;
    }
    if ((st = http__check_target(h)) != 0)
        return st;

    if (te) {
        if (n_te > 1)
            return http__err(h, 400, "repeated Transfer-Encoding");
        if (cl)
            return http__err(h, 400, "both Content-Length and Transfer-Encoding");
        if (p->http_minor == 0)
            return http__err(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if ((st = http__check_te(h, te->value, te->value_len)) != 0)
            return st;
        q->chunked = true;
    } else if (cl) {
        uint64_t v = 0;

        if (n_cl > 1)
            return http__err(h, 400, "more than one Content-Length");
        if (cl->value_len == 0)
            return http__err(h, 400, "invalid Content-Length");
        for (uint32_t j = 0; j < cl->value_len; j++) {
            unsigned d = (unsigned char)cl->value[j] - '0';

            if (d > 9 || v > (UINT64_MAX - d) / 10)
                return http__err(h, 400, "invalid Content-Length");
            v = v * 10 + d;
        }
        if (v > h->lim.max_body)
            return http__err(h, 413, "body too large");
        q->has_content_length = true;
        q->content_length = v;
    }
    /* http-parser must frame the body as we do, or the two disagree on
     * where the next request starts. */
    if (q->chunked != !!(p->flags & F_CHUNKED)
        || p->content_length != (q->has_content_length ? q->content_length : UINT64_MAX))
        return http__err(h, 400, "ambiguous message framing");
    q->keep_alive = http_should_keep_alive(p) != 0;
    return 0;
}

static int http__on_headers_complete(http_parser *p)
{
    struct fa_http *h = p->data;
    int st = http__check_head(h);

    if (st)
        return http__cb_fail(h, st, h->reason);
    h->head_done = true;
    h->trailers = h->req.chunked;
    if (h->cb.on_head && (st = h->cb.on_head(h->ctx, &h->req)) != 0)
        return http__cb_fail(h, st >= 400 ? st : 500, "refused by on_head");
    return 0;
}

static int http__on_body(http_parser *p, const char *at, size_t n)
{
    struct fa_http *h = p->data;
    int st;

    if (h->cb.on_body && (st = h->cb.on_body(h->ctx, at, n)) != 0)
        return http__cb_fail(h, st >= 400 ? st : 500, "refused by on_body");
    return 0;
}

static int http__on_message_complete(http_parser *p)
{
    struct fa_http *h = p->data;

    /* Stop right here even if more bytes were given: the caller decides
     * whether the next pipelined message is parsed now. */
    h->msg_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings http__settings = {
    .on_url = http__on_url,
    .on_header_field = http__on_header_field,
    .on_header_value = http__on_header_value,
    .on_headers_complete = http__on_headers_complete,
    .on_body = http__on_body,
    .on_message_complete = http__on_message_complete,
};

/* ---- the framing scanner ---------------------------------------------- */

/* Request-line byte c (not CR/LF) at position h->line_len: finds the target
 * to refuse CONNECT at its first byte and an over-long target at byte
 * max_uri + 1. Returns 0 or a status. */
static inline int http__request_line(struct fa_http *h, char c)
{
    static const char connect[] = "CONNECT";

    switch (h->rl) {
    case RL_METHOD:
        if (c == ' ') {
            h->rl = RL_GAP;
            h->rl_connect = h->rl_connect && h->line_len == sizeof(connect) - 1;
        } else if (h->line_len >= sizeof(connect) - 1 || c != connect[h->line_len])
            h->rl_connect = false;
        return 0;
    case RL_GAP:
        if (c == ' ')
            return 0;
        /* Authority-form follows: we are no proxy. */
        if (h->rl_connect)
            return http__err(h, 501, "CONNECT is not implemented");
        h->rl = RL_TARGET;
        /* fall through */
    case RL_TARGET:
        if (c == ' ')
            h->rl = RL_VERSION;
        else if (++h->rl_target > h->lim.max_uri)
            return http__err(h, 414, "request-target too long");
        return 0;
    default:
        return 0;
    }
}

/* Header-section lines (head and trailers): CRLF or a bare LF ends a line,
 * a CR not followed by LF is refused, and so is a line that starts with SP
 * or HTAB (obs-fold, or whitespace before the first field). Scans s[0..n),
 * stopping after the empty line that ends the section (*end = 1) or before a
 * bad byte. *used: bytes accepted. Returns 0 or a status.
 *
 * The head's field count, target length and CONNECT are checked here too,
 * not in http-parser callbacks: a data callback also fires where a read
 * ends, so its verdict would race http-parser's own errors and the status
 * would depend on how the reads were split. Here every verdict belongs to
 * one byte offset, and http-parser has seen exactly the bytes before it. */
static int http__lines(struct fa_http *h, const char *s, size_t n, size_t *used, int *end)
{
    bool head = h->phase == PH_HEAD;
    size_t i;
    int st = 0;

    for (i = 0; i < n; i++) {
        char c = s[i];

        /* Inside a field line (past its first byte, not the request line,
         * no CR pending) only CR and LF mean anything here: skip to one.
         * (The bytes themselves are http-parser's to check.) */
        if (h->line_len != 0 && !h->cr && !(head && h->n_lines == 0)) {
            size_t j = i;
            while (j < n && s[j] != '\r' && s[j] != '\n')
                j++;
            h->line_len += (uint32_t)(j - i);
            i = j;
            if (i == n)
                break;
            c = s[i];
        }
        if (c == '\n') {
            h->cr = 0;
            if (h->line_len == 0) {
                *end = 1;
                *used = i + 1;
                return 0;
            }
            if (h->n_lines++ == 0 && head)
                h->rl_len = h->line_len;
            h->line_len = 0;
            continue;
        }
        if (h->cr) {
            st = http__err(h, 400, "CR not followed by LF");
            break;
        }
        if (c == '\r') {
            h->cr = 1;
            continue;
        }
        if (h->line_len == 0) {
            if (c == ' ' || c == '\t') {
                st = http__err(h, 400, "line starts with whitespace (obs-fold)");
                break;
            }
            if (head && h->n_lines > h->lim.max_headers) {
                st = http__err(h, 431, "too many header fields");
                break;
            }
        }
        if (head && h->n_lines == 0 && (st = http__request_line(h, c)) != 0)
            break;
        h->line_len++;
    }
    *used = i;
    return st;
}

static void http__begin(struct fa_http *h)
{
    http_parser_init(&h->p, HTTP_REQUEST);
    h->p.data = h;
    memset(&h->req, 0, sizeof(h->req));
    h->req.path = h->req.query = h->req.host = h->req.target = "";
    h->req.headers = h->hdrs;
    h->buf_len = 0;
    h->line_len = h->n_lines = h->rl_len = h->rl_target = 0;
    h->rl = RL_METHOD;
    h->rl_connect = true;
    h->cr = 0;
    h->last_cb = CB_NONE;
    h->head_done = h->msg_done = h->trailers = false;
    h->in_message = true;
}

/* Maps a stopped http-parser to a status: ours if a callback set one. */
static int http__parser_status(struct fa_http *h)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&h->p);

    if (h->status)
        return h->status;
    h->reason = http_errno_description(e);
    return e == HPE_HEADER_OVERFLOW ? 431 : 400;
}

/* Runs http-parser over exactly s[0..n), which the scanner has passed.
 * Returns 0 or a status. */
static int http__execute(struct fa_http *h, const char *s, size_t n)
{
    size_t got;
    enum http_errno e;

    if (n == 0)
        return 0;
    got = http_parser_execute(&h->p, &http__settings, s, n);
    e = HTTP_PARSER_ERRNO(&h->p);
    if (e != HPE_OK && e != HPE_PAUSED)
        return http__parser_status(h);
    /* Paused means on_message_complete: it must be at the scanner's end. */
    if (got != n)
        return http__err(h, 400, "ambiguous message framing");
    return 0;
}

/* Head bytes (and the blank lines before a message). *used: bytes taken. */
static int http__head(struct fa_http *h, const char *s, size_t n, size_t *used)
{
    size_t i = 0, lim, got = 0;
    uint32_t room;
    int st, pst, end = 0;
    bool has_body;

    if (!h->in_message) {
        /* RFC 9112 2.2: blank lines before a request are ignored, up to
         * max_header_bytes of them. Each verdict belongs to the byte that
         * earns it, so it does not depend on how the reads were split (a
         * bad CR past the limit must not win over the limit in one read
         * and lose to it in two). */
        for (; i < n; i++) {
            if (h->cr) {
                if (s[i] != '\n') {
                    *used = i;
                    return http__err(h, 400, "CR not followed by LF");
                }
                h->cr = 0;
            } else if (s[i] == '\r') {
                h->cr = 1;
            } else if (s[i] != '\n') {
                break;
            }
            if (h->lead + i + 1 > h->lim.max_header_bytes) {
                *used = i;
                return http__err(h, 431, "too many blank lines");
            }
        }
        *used = i;
        h->lead += (uint32_t)i;
        if (i == n)
            return 0;
        http__begin(h);
    }

    room = h->lim.max_header_bytes - h->buf_len;
    lim = n - i > room ? i + room : n;
    st = http__lines(h, s + i, lim - i, &got, &end);
    if (!st && !end && lim < n)
        st = h->n_lines == 0 ? http__err(h, 414, "request line too long")
                             : http__err(h, 431, "header section too large");
    memcpy(h->buf + h->buf_len, s + i, got);
    h->buf_len += (uint32_t)got;
    *used = i + got;
    /* Run the parser first: an error earlier in the stream wins. */
    if ((pst = http__execute(h, h->buf + h->buf_len - got, got)) != 0)
        return pst;
    if (st)
        return st;
    if (!end)
        return 0;
    has_body = h->req.chunked || h->req.content_length > 0;
    if (!h->head_done || h->msg_done == has_body)
        return http__err(h, 400, "ambiguous message framing");
    if (!has_body)
        return 0;
    if (h->req.chunked) {
        h->phase = PH_BODY_CHUNKED;
        h->ck = CK_SIZE0;
        h->ck_digits = 0;
        h->left = 0;
        h->body_bytes = 0;
    } else {
        h->phase = PH_BODY_LEN;
        h->left = h->req.content_length;
    }
    return 0;
}

static int http__hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Chunked framing over s[0..n): sets *span to the bytes that may go to
 * http-parser and *end when they finish the message. Returns 0 or a status. */
static int http__chunks(struct fa_http *h, const char *s, size_t n, size_t *span, int *end)
{
    size_t i;
    int st = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int v;

        switch (h->ck) {
        case CK_SIZE0:
        case CK_SIZE:
            if ((v = http__hex(c)) >= 0) {
                if (++h->ck_digits > 16)
                    st = http__err(h, 400, "chunk size too long");
                else if ((h->left = h->left * 16 + (unsigned)v) > h->lim.max_body - h->body_bytes)
                    st = http__err(h, 413, "body too large");
                h->ck = CK_SIZE;
            } else if (h->ck == CK_SIZE0) {
                st = http__err(h, 400, "invalid chunk size");
            } else if (c == '\r') {
                h->ck = CK_LF;
            } else if (c == ';' || c == ' ' || c == '\t') {
                h->ck = c == ';' ? CK_EXT : CK_WS;
                h->ext_len = 1;
            } else {
                st = http__err(h, 400, "invalid chunk size");
            }
            break;
        case CK_WS:
            if (c == ';')
                h->ck = CK_EXT;
            else if (c != ' ' && c != '\t')
                st = http__err(h, 400, "invalid chunk extension");
            if (!st && ++h->ext_len > h->lim.max_chunk_ext)
                st = http__err(h, 400, "chunk extension too long");
            break;
        case CK_EXT:
            if (c == '\r')
                h->ck = CK_LF;
            else if (HTTP_BAD_VALUE_BYTE(c))
                st = http__err(h, 400, "control byte in a chunk extension");
            else if (++h->ext_len > h->lim.max_chunk_ext)
                st = http__err(h, 400, "chunk extension too long");
            break;
        case CK_LF:
            if (c != '\n') {
                st = http__err(h, 400, "chunk size line not ended by CRLF");
                break;
            }
            h->ck_digits = 0;
            if (h->left == 0) {
                h->ck = CK_TRAILER;
                h->line_len = h->n_lines = 0;
                h->cr = 0;
                h->trailer_bytes = 0;
            } else {
                h->body_bytes += h->left;
                h->ck = CK_DATA;
            }
            break;
        case CK_DATA: {
            size_t take = n - i < h->left ? n - i : (size_t)h->left;

            h->left -= take;
            i += take - 1;
            if (h->left == 0)
                h->ck = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (c != '\r')
                st = http__err(h, 400, "chunk data not followed by CRLF");
            h->ck = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (c != '\n')
                st = http__err(h, 400, "chunk data not followed by CRLF");
            h->ck = CK_SIZE0;
            break;
        case CK_TRAILER: {
            size_t room = h->lim.max_header_bytes - h->trailer_bytes, got = 0;
            size_t lim = n - i > room ? i + room : n;

            st = http__lines(h, s + i, lim - i, &got, end);
            h->trailer_bytes += (uint32_t)got;
            if (!st && !*end && lim < n)
                st = http__err(h, 431, "trailer section too large");
            i += got;
            *span = i;
            return st;
        }
        }
        if (st)
            break;   /* the bad byte is not given to http-parser */
    }
    *span = i;
    return st;
}

/* Body bytes: identity or chunked. *used: bytes taken. */
static int http__body(struct fa_http *h, const char *s, size_t n, size_t *used)
{
    size_t span;
    int st = 0, pst, end = 0;

    if (h->phase == PH_BODY_LEN) {
        span = n < h->left ? n : (size_t)h->left;
        h->left -= span;
        end = h->left == 0;
    } else {
        st = http__chunks(h, s, n, &span, &end);
    }
    *used = span;
    if ((pst = http__execute(h, s, span)) != 0)
        return pst;
    if (st)
        return st;
    if (end != h->msg_done)
        return http__err(h, 400, "ambiguous message framing");
    return 0;
}

/* ---- API --------------------------------------------------------------- */

struct fa_http *fa_http_create(const struct fa_http_limits *lim, const struct fa_http_cb *cb, void *ctx)
{
    struct fa_http *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    if (lim)
        h->lim = *lim;
    else
        fa_http_limits_default(&h->lim);
    if (h->lim.max_headers > FA_HTTP_MAX_HEADERS_CAP)
        h->lim.max_headers = FA_HTTP_MAX_HEADERS_CAP;
    if (cb)
        h->cb = *cb;
    h->ctx = ctx;
    /* Sized once: no allocation per request. */
    h->buf = malloc(h->lim.max_header_bytes ? h->lim.max_header_bytes : 1);
    h->hdrs = malloc((h->lim.max_headers ? h->lim.max_headers : 1) * sizeof(*h->hdrs));
    if (!h->buf || !h->hdrs) {
        fa_http_destroy(h);
        return NULL;
    }
    http__begin(h);
    h->in_message = false;
    return h;
}

void fa_http_destroy(struct fa_http *h)
{
    if (!h)
        return;
    free(h->buf);
    free(h->hdrs);
    free(h);
}

ssize_t fa_http_feed(struct fa_http *h, const char *data, size_t len)
{
    size_t pos = 0;

    if (h->done)
        return 0;
    while (pos < len) {
        size_t used = 0;
        int st = h->phase == PH_HEAD ? http__head(h, data + pos, len - pos, &used)
                                     : http__body(h, data + pos, len - pos, &used);

        pos += used;
        /* Every step takes a byte or fails; never spin on a bug. */
        if (!st && used == 0 && !h->msg_done)
            st = http__err(h, 500, "parser made no progress");
        if (st) {
            if (!h->status)
                h->status = st;
            /* in_message stays as it was: the caller can tell an error
             * inside a message (perhaps already answered) from one before. */
            h->done = true;
            return -1;
        }
        if (h->msg_done) {
            bool keep = h->req.keep_alive;
            int rc;

            /* req stays as it is until the next message begins. */
            h->msg_done = false;
            h->in_message = false;
            h->phase = PH_HEAD;
            h->lead = 0;
            h->cr = 0;
            if (!keep)
                h->done = true;
            rc = h->cb.on_complete ? h->cb.on_complete(h->ctx) : 0;
            if (!keep || rc != 0)
                return (ssize_t)pos;
        }
    }
    return (ssize_t)pos;
}

int fa_http_in_message(const struct fa_http *h)
{
    return h->in_message;
}

int fa_http_done(const struct fa_http *h)
{
    return h->done;
}

int fa_http_error(const struct fa_http *h, const char **reason)
{
    if (reason)
        *reason = h->status ? (h->reason ? h->reason : "bad request") : NULL;
    return h->status;
}
