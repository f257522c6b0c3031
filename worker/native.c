/* native.c - app.native routes: loading handlers, the functions that
 * include/fasterapi.h reaches through struct fa_api, and turning what a
 * handler built into a response.
 *
 * A worker runs one handler at a time, so the request, the response under
 * construction and the scratch memory for decoded strings are one set per
 * process (native__*), reset for every call; what the handler sees lives
 * until it returns, as the header promises.
 */
#include "config.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <http_parser.h>

#include "worker/native.h"
#include "worker/respond.h"
#include "worker/router.h"
#include "worker/util.h"

#define NATIVE_JSON_DEPTH 64
/* A copied body up to this size goes into the head's buffer (one buffer,
 * one copy); a larger one is handed to the response as it is. */
#define NATIVE_INLINE_BODY 16384

/* ---- loading --------------------------------------------------------------- */

struct fa_native *fa_native_open(const char *route, const char *library, size_t library_len,
                                 const char *symbol, size_t symbol_len, char **cause)
{
    char *lib = fa_xstrndup(library, library_len);
    char *sym = fa_xstrndup(symbol, symbol_len);
    void *dl = NULL;
    void *fn;

    if (lib[0] != '/' || strlen(lib) != library_len || strlen(sym) != symbol_len) {
        fa_xasprintf(cause, "route %s (native): library '%s' must be an absolute path (and no NUL)",
                     route, lib);
        goto bail;
    }
    dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *e = dlerror();
        fa_xasprintf(cause, "route %s (native): cannot load library '%s' for symbol '%s': %s",
                     route, lib, sym, e ? e : "unknown error");
        goto bail;
    }
    dlerror();
    fn = dlsym(dl, sym);
    if (fn == NULL) {
        fa_xasprintf(cause, "route %s (native): symbol '%s' not found in library '%s' "
                     "(is it spelt so, not static, and declared extern \"C\" in C++?)",
                     route, sym, lib);
        goto bail;
    }
    struct fa_native *n = fa_xcalloc(1, sizeof *n);
    n->library = lib;
    n->symbol = sym;
    n->dl = dl;
    n->fn = (fa_handler *)fn;
    return n;
bail:
    if (dl)
        dlclose(dl);
    free(lib);
    free(sym);
    return NULL;
}

void fa_native_close(struct fa_native *n)
{
    if (!n)
        return;
    dlclose(n->dl);
    free(n->library);
    free(n->symbol);
    free(n);
}

/* ---- per-call state -------------------------------------------------------- */

struct native_buf {
    char *p;
    size_t len, cap;
};

/* Scratch memory for decoded strings: blocks that never move, so every
 * fa_str handed out stays valid until the call ends. */
struct native_block {
    struct native_block *next;
    size_t used, cap;
    char data[];
};

enum { BODY_NONE, BODY_COPY, BODY_REF, BODY_JSON };

struct native_req {
    fa_request pub;
    const struct fa_route *rt;
    const struct fa_http_req *http;
    const struct fa_match *m;
};

struct native_res {
    fa_response pub;
    int status;
    struct native_buf hdrs;         /* "Name: value\r\n"... */
    bool has_ctype;
    int body_mode;
    struct native_buf body;         /* BODY_COPY, BODY_JSON */
    const void *ref;                /* BODY_REF */
    size_t ref_len;
    /* JSON: one frame per open container */
    struct { char type; bool has_items, want_value; } stack[NATIVE_JSON_DEPTH];
    int depth;
    bool json_done;                 /* the top-level value is complete */
    const char *error;              /* first failure: the response becomes a 500 */
    char error_buf[160];
};

static struct native_res native__res;
static struct native_block *native__blocks;

static void native__buf_add(struct native_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        b->p = fa_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static char *native__scratch(size_t n)
{
    struct native_block *b = native__blocks;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        struct native_block *nb = fa_xmalloc(sizeof *nb + cap);
        nb->used = 0;
        nb->cap = cap;
        nb->next = b;
        native__blocks = b = nb;
    }
    char *p = b->data + b->used;
    b->used += n;
    return p;
}

/* Frees every block but one, ready for the next call. */
static void native__scratch_reset(void)
{
    struct native_block *b = native__blocks;
    if (b == NULL)
        return;
    while (b->next) {
        struct native_block *next = b->next;
        free(b);
        b = next;
    }
    /* the last one is the oldest: keep it if it is the usual size */
    if (b->cap > 4096) {
        free(b);
        b = NULL;
    } else {
        b->used = 0;
    }
    native__blocks = b;
}

/* Marks the response failed (the first reason wins). Returns -1. */
static int native__fail(struct native_res *s, const char *why)
{
    if (!s->error)
        s->error = why;
    return -1;
}

/* ---- the request ------------------------------------------------------------- */

static int native__hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes [s, s + n) ("%xx", and '+' as a space if plus) into out, which
 * has room for n bytes; returns the decoded length. A '%' not followed by
 * two hex digits stays as it is. */
static size_t native__decode(const char *s, size_t n, char *out, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = native__hex((unsigned char)s[i + 1])) >= 0 &&
            (lo = native__hex((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    return o;
}

static void native__decoded(const char *s, size_t n, bool plus, fa_str *out)
{
    char *p = native__scratch(n ? n : 1);
    out->len = native__decode(s, n, p, plus);
    out->ptr = p;
}

static int native__request_param(const fa_request *pub, const char *name, size_t n, fa_str *out)
{
    const struct native_req *q = (const struct native_req *)pub;
    for (uint32_t i = 0; i < q->rt->n_params && i < q->m->n_params; i++) {
        if (strlen(q->rt->param_names[i]) == n && memcmp(q->rt->param_names[i], name, n) == 0) {
            native__decoded(q->m->params[i].p, q->m->params[i].len, false, out);
            return 0;
        }
    }
    return -1;
}

static int native__request_query(const fa_request *pub, const char *name, size_t n, fa_str *out)
{
    const char *s = pub->query.ptr, *end = s + pub->query.len;
    char small[256];

    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(pair_end - s));
        const char *key_end = eq ? eq : pair_end;
        size_t klen = (size_t)(key_end - s);
        /* A decoded key is never longer than its encoding; "a&&b" has no
         * third parameter (as urllib.parse.parse_qsl). */
        if (klen >= n && pair_end > s) {
            char *k = klen <= sizeof small ? small : native__scratch(klen);
            size_t dl = native__decode(s, klen, k, true);
            if (dl == n && memcmp(k, name, n) == 0) {
                if (eq)
                    native__decoded(eq + 1, (size_t)(pair_end - eq - 1), true, out);
                else
                    *out = (fa_str){"", 0};
                return 0;
            }
        }
        s = pair_end + 1;
    }
    return -1;
}

static int native__request_header(const fa_request *pub, const char *name, size_t n, fa_str *out)
{
    const struct native_req *q = (const struct native_req *)pub;
    for (uint32_t i = 0; i < q->http->n_headers; i++) {
        const struct fa_http_header *h = &q->http->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0) {
            out->ptr = h->value;
            out->len = h->value_len;
            return 0;
        }
    }
    return -1;
}

static int native__request_header_at(const fa_request *pub, size_t i, fa_str *name, fa_str *value)
{
    const struct native_req *q = (const struct native_req *)pub;
    if (i >= q->http->n_headers)
        return -1;
    const struct fa_http_header *h = &q->http->headers[i];
    name->ptr = h->name;
    name->len = h->name_len;
    value->ptr = h->value;
    value->len = h->value_len;
    return 0;
}

/* ---- the response ------------------------------------------------------------ */

static int native__response_status(fa_response *pub, int status)
{
    struct native_res *s = (struct native_res *)pub;
    if (status < 200 || status > 599) {
        snprintf(s->error_buf, sizeof s->error_buf, "status %d is out of range (200..599)", status);
        return native__fail(s, s->error_buf);
    }
    s->status = status;
    return 0;
}

static int native__response_header(fa_response *pub, const char *name, size_t nl,
                                   const char *value, size_t vl)
{
    struct native_res *s = (struct native_res *)pub;
    if (!fa_respond_token_ok(name, nl))
        return native__fail(s, "a response header name is not a token");
    if (!fa_respond_value_ok(value, vl))
        return native__fail(s, "a response header value has CR, LF or NUL in it");
    if (fa_respond_managed_header(name, nl))
        return -1;
    if (nl == 12 && strncasecmp(name, "content-type", 12) == 0)
        s->has_ctype = true;
    native__buf_add(&s->hdrs, name, nl);
    native__buf_add(&s->hdrs, ": ", 2);
    native__buf_add(&s->hdrs, value, vl);
    native__buf_add(&s->hdrs, "\r\n", 2);
    return 0;
}

/* mode 0: set (copy), 1: append (copy), 2: set (reference) */
static int native__response_body(fa_response *pub, const void *data, size_t len, int mode)
{
    struct native_res *s = (struct native_res *)pub;
    if (s->body_mode == BODY_JSON)
        return native__fail(s, "fa_response_body/write/body_ref after JSON in the same response");
    if (len && data == NULL)
        return native__fail(s, "a body pointer is NULL");
    if (mode == 2) {
        s->body_mode = BODY_REF;
        s->ref = data;
        s->ref_len = len;
        return 0;
    }
    if (mode == 1 && s->body_mode == BODY_REF) {
        s->body.len = 0;
        native__buf_add(&s->body, s->ref, s->ref_len);
    } else if (mode == 0) {
        s->body.len = 0;
    }
    s->body_mode = BODY_COPY;
    if (len)
        native__buf_add(&s->body, data, len);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Checks that a value may come now and writes the comma before it. */
static int native__json_value(struct native_res *s)
{
    if (s->body_mode != BODY_JSON) {
        if (s->body_mode != BODY_NONE)
            return native__fail(s, "JSON after fa_response_body/write/body_ref in the same response");
        s->body_mode = BODY_JSON;
        s->body.len = 0;
    }
    if (s->depth == 0) {
        if (s->json_done)
            return native__fail(s, "JSON: a second value after the top-level one");
        return 0;
    }
    if (s->stack[s->depth - 1].type == 'o') {
        if (!s->stack[s->depth - 1].want_value)
            return native__fail(s, "JSON: a value in an object where a key is expected");
        s->stack[s->depth - 1].want_value = false;
        return 0;
    }
    if (s->stack[s->depth - 1].has_items)
        native__buf_add(&s->body, ",", 1);
    s->stack[s->depth - 1].has_items = true;
    return 0;
}

/* A scalar was written: at the top level, that is the whole value. */
static void native__json_scalar_done(struct native_res *s)
{
    if (s->depth == 0)
        s->json_done = true;
}

static void native__json_string(struct native_buf *b, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, run = 0;

    native__buf_add(b, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        size_t seq = 0;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            run++;
            continue;
        }
        if (c >= 0x80) {
            /* A well-formed UTF-8 sequence passes through (RFC 3629). */
            uint32_t cp = 0;
            if (c >= 0xc2 && c <= 0xdf) seq = 2, cp = c & 0x1f;
            else if (c >= 0xe0 && c <= 0xef) seq = 3, cp = c & 0x0f;
            else if (c >= 0xf0 && c <= 0xf4) seq = 4, cp = c & 0x07;
            if (seq && i + seq <= n) {
                size_t k;
                for (k = 1; k < seq && (p[i + k] & 0xc0) == 0x80; k++)
                    cp = cp << 6 | (p[i + k] & 0x3f);
                if (k == seq && !(seq == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) &&
                    !(seq == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
                    i += seq;
                    run += seq;
                    continue;
                }
            }
        }
        native__buf_add(b, p + i - run, run);
        run = 0;
        if (c >= 0x80) {
            native__buf_add(b, "\\ufffd", 6);
        } else {
            char e[6] = {'\\', 0};
            size_t el = 2;
            switch (c) {
            case '"': e[1] = '"'; break;
            case '\\': e[1] = '\\'; break;
            case '\n': e[1] = 'n'; break;
            case '\r': e[1] = 'r'; break;
            case '\t': e[1] = 't'; break;
            case '\b': e[1] = 'b'; break;
            case '\f': e[1] = 'f'; break;
            default:
                e[1] = 'u'; e[2] = '0'; e[3] = '0'; e[4] = hex[c >> 4]; e[5] = hex[c & 15];
                el = 6;
            }
            native__buf_add(b, e, el);
        }
        i++;
    }
    native__buf_add(b, p + i - run, run);
    native__buf_add(b, "\"", 1);
}

static int native__json(fa_response *pub, int op, const void *data, size_t len)
{
    struct native_res *s = (struct native_res *)pub;
    if (s->error)
        return -1;
    if (len && data == NULL)
        return native__fail(s, "JSON: a string pointer is NULL");
    switch (op) {
    case FA_JSON_OBJECT_:
    case FA_JSON_ARRAY_:
        if (native__json_value(s) < 0)
            return -1;
        if (s->depth == NATIVE_JSON_DEPTH)
            return native__fail(s, "JSON: more than 64 levels of nesting");
        s->stack[s->depth].type = op == FA_JSON_OBJECT_ ? 'o' : 'a';
        s->stack[s->depth].has_items = false;
        s->stack[s->depth].want_value = false;
        s->depth++;
        native__buf_add(&s->body, op == FA_JSON_OBJECT_ ? "{" : "[", 1);
        return 0;
    case FA_JSON_OBJECT_END_:
    case FA_JSON_ARRAY_END_: {
        char want = op == FA_JSON_OBJECT_END_ ? 'o' : 'a';
        if (s->body_mode != BODY_JSON || s->depth == 0 || s->stack[s->depth - 1].type != want)
            return native__fail(s, want == 'o' ? "JSON: fa_json_object_end without an open object"
                                               : "JSON: fa_json_array_end without an open array");
        if (s->stack[s->depth - 1].want_value)
            return native__fail(s, "JSON: an object closed after a key with no value");
        s->depth--;
        native__buf_add(&s->body, want == 'o' ? "}" : "]", 1);
        native__json_scalar_done(s);
        return 0;
    }
    case FA_JSON_KEY_: {
        if (s->body_mode != BODY_JSON || s->depth == 0 || s->stack[s->depth - 1].type != 'o')
            return native__fail(s, "JSON: a key outside an object");
        if (s->stack[s->depth - 1].want_value)
            return native__fail(s, "JSON: two keys in a row");
        if (s->stack[s->depth - 1].has_items)
            native__buf_add(&s->body, ",", 1);
        s->stack[s->depth - 1].has_items = true;
        s->stack[s->depth - 1].want_value = true;
        native__json_string(&s->body, data, len);
        native__buf_add(&s->body, ":", 1);
        return 0;
    }
    case FA_JSON_STRING_:
    case FA_JSON_TRUE_:
    case FA_JSON_FALSE_:
    case FA_JSON_NULL_:
        if (native__json_value(s) < 0)
            return -1;
        if (op == FA_JSON_STRING_)
            native__json_string(&s->body, data, len);
        else if (op == FA_JSON_TRUE_)
            native__buf_add(&s->body, "true", 4);
        else if (op == FA_JSON_FALSE_)
            native__buf_add(&s->body, "false", 5);
        else
            native__buf_add(&s->body, "null", 4);
        native__json_scalar_done(s);
        return 0;
    default:
        return native__fail(s, "JSON: unknown operation (a fasterapi.h newer than the server?)");
    }
}

static int native__json_number(struct native_res *s, const char *text, int n)
{
    if (s->error)
        return -1;
    if (native__json_value(s) < 0)
        return -1;
    native__buf_add(&s->body, text, (size_t)n);
    native__json_scalar_done(s);
    return 0;
}

static int native__json_int(fa_response *pub, long long v)
{
    char t[32];
    return native__json_number((struct native_res *)pub, t, snprintf(t, sizeof t, "%lld", v));
}

static int native__json_uint(fa_response *pub, unsigned long long v)
{
    char t[32];
    return native__json_number((struct native_res *)pub, t, snprintf(t, sizeof t, "%llu", v));
}

static int native__json_double(fa_response *pub, double v)
{
    struct native_res *s = (struct native_res *)pub;
    char t[40];
    int n = 0;

    if (!isfinite(v))
        return native__fail(s, "JSON: NaN or an infinity is not a JSON number");
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v)
            break;
    }
    return native__json_number(s, t, n);
}

static const struct fa_api native__api = {
    .version = FASTERAPI_API_VERSION,
    .size = sizeof(struct fa_api),
    .request_param = native__request_param,
    .request_query = native__request_query,
    .request_header = native__request_header,
    .request_header_at = native__request_header_at,
    .response_status = native__response_status,
    .response_header = native__response_header,
    .response_body = native__response_body,
    .json = native__json,
    .json_int = native__json_int,
    .json_uint = native__json_uint,
    .json_double = native__json_double,
};

/* ---- the call -------------------------------------------------------------- */

void fa_native_run(struct fa_worker *w, struct fa_resp *r, const struct fa_route *rt,
                   const struct fa_http_req *req, const struct fa_match *m,
                   const char *client_addr, uint16_t client_port,
                   const char *body, size_t body_len)
{
    struct native_req q;
    struct native_res *s = &native__res;

    memset(&q, 0, sizeof q);
    q.pub.api = &native__api;
    q.pub.method = http_method_str((enum http_method)req->method);
    q.pub.route = rt->pattern;
    q.pub.target = (fa_str){req->target, req->target_len};
    q.pub.path = (fa_str){req->path, req->path_len};
    q.pub.query = (fa_str){req->query ? req->query : "", req->query ? req->query_len : 0};
    q.pub.body = (fa_str){body ? body : "", body ? body_len : 0};
    q.pub.n_headers = req->n_headers;
    q.pub.client_addr = client_addr;
    q.pub.client_port = client_port;
    q.pub.http_minor = req->http_minor;
    q.rt = rt;
    q.http = req;
    q.m = m;

    s->pub.api = &native__api;
    s->status = 200;
    s->hdrs.len = 0;
    s->body.len = 0;
    s->has_ctype = false;
    s->body_mode = BODY_NONE;
    s->ref = NULL;
    s->ref_len = 0;
    s->depth = 0;
    s->json_done = false;
    s->error = NULL;

    int rc = rt->native->fn(&q.pub, &s->pub);

    if (rc != 0) {
        fa_log("route %s: native handler %s returned %d: answering 500", rt->name,
               rt->native->symbol, rc);
        fa_respond_error(w, r, 500, NULL);
        goto out;
    }
    if (!s->error && s->body_mode == BODY_JSON && (s->depth > 0 || !s->json_done))
        native__fail(s, s->depth > 0 ? "JSON: an object or array left open" : "JSON: no value");
    if (s->error) {
        fa_log("route %s: native handler %s: %s: answering 500", rt->name, rt->native->symbol,
               s->error);
        fa_respond_error(w, r, 500, NULL);
        goto out;
    }

    const char *bp = s->body_mode == BODY_REF ? s->ref : s->body.p;
    size_t bl = s->body_mode == BODY_REF ? s->ref_len : s->body_mode == BODY_NONE ? 0 : s->body.len;
    bool no_body = s->status == 204 || s->status == 304;
    r->hlen = 0;
    fa_respond_head(w, r, s->status, no_body ? 0 : bl);
    if (s->hdrs.len)
        fa_resp_append(r, s->hdrs.p, s->hdrs.len);
    if (s->body_mode == BODY_JSON && !s->has_ctype)
        fa_resp_append(r, "Content-Type: application/json\r\n", 32);
    fa_resp_append(r, "\r\n", 2);
    r->niov = 0;
    r->total = r->hlen;
    if (!r->head_only && !no_body && bl) {
        if (s->body_mode == BODY_REF) {
            r->iov = r->iov_inline;
            r->iov[0] = (struct iovec){(void *)bp, bl};
            r->niov = 1;
        } else if (bl <= NATIVE_INLINE_BODY) {
            fa_resp_append(r, bp, bl);
            r->hbody = bl;
            bl = 0;               /* counted in hlen now */
        } else {
            /* Hand the buffer over; the next call starts a new one. */
            r->owned = s->body.p;
            r->iov = r->iov_inline;
            r->iov[0] = (struct iovec){s->body.p, bl};
            r->niov = 1;
            s->body.p = NULL;
            s->body.len = s->body.cap = 0;
        }
        r->total = r->hlen + bl;
    }
    r->sent = 0;
    r->state = FA_RESP_READY;
out:
    native__scratch_reset();
    if (s->body.cap > (1u << 20)) {
        free(s->body.p);
        s->body.p = NULL;
        s->body.cap = 0;
    }
    s->body.len = 0;
}
