/* static.c - app.static routes (see static.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "worker/respond.h"
#include "worker/static.h"
#include "worker/util.h"

static void static__add(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        while (*len + n > *cap)
            *cap = *cap ? *cap * 2 : 256;
        *buf = fa_xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

struct fa_static *fa_static_create(const char *route, int status,
                                   const char *content_type, size_t content_type_len,
                                   const struct fa_static_header *h, size_t n_h,
                                   const void *body, size_t body_len, char **cause)
{
    struct fa_static *s;
    char line[128];
    size_t cap = 0;
    bool no_body = status == 204 || status == 304;

    if (status < 200 || status > 599) {
        fa_xasprintf(cause, "route %s (static): status %d is not one a static response can have "
                     "(200..599)", route, status);
        return NULL;
    }
    if (no_body && body_len) {
        fa_xasprintf(cause, "route %s (static): a %d response has no body, but %zu bytes were given",
                     route, status, body_len);
        return NULL;
    }
    if (content_type && !fa_respond_value_ok(content_type, content_type_len)) {
        fa_xasprintf(cause, "route %s (static): content_type has CR, LF or NUL in it", route);
        return NULL;
    }
    for (size_t i = 0; i < n_h; i++) {
        if (!fa_respond_token_ok(h[i].name, h[i].name_len)) {
            fa_xasprintf(cause, "route %s (static): header name '%.*s' is not a token "
                         "(letters, digits and !#$%%&'*+-.^_`|~ only)",
                         route, (int)h[i].name_len, h[i].name);
            return NULL;
        }
        if (!fa_respond_value_ok(h[i].value, h[i].value_len)) {
            fa_xasprintf(cause, "route %s (static): the value of header '%.*s' has CR, LF or NUL in it",
                         route, (int)h[i].name_len, h[i].name);
            return NULL;
        }
        if (fa_respond_managed_header(h[i].name, h[i].name_len)) {
            fa_xasprintf(cause, "route %s (static): header '%.*s' is set by the server, not by the app",
                         route, (int)h[i].name_len, h[i].name);
            return NULL;
        }
        if (content_type && h[i].name_len == 12 && strncasecmp(h[i].name, "content-type", 12) == 0) {
            fa_xasprintf(cause, "route %s (static): Content-Type given twice (content_type= and headers=)",
                         route);
            return NULL;
        }
    }

    s = fa_xcalloc(1, sizeof *s);
    s->status = status;
    s->pre_len = (size_t)fa_xasprintf(&s->pre, "HTTP/1.1 %d %s\r\nServer: fasterapi\r\n", status,
                                      fa_respond_reason(status));
    if (!no_body) {
        int n = snprintf(line, sizeof line, "Content-Length: %zu\r\n", body_len);
        static__add(&s->post, &s->post_len, &cap, line, (size_t)n);
    }
    if (content_type) {
        static__add(&s->post, &s->post_len, &cap, "Content-Type: ", 14);
        static__add(&s->post, &s->post_len, &cap, content_type, content_type_len);
        static__add(&s->post, &s->post_len, &cap, "\r\n", 2);
    }
    for (size_t i = 0; i < n_h; i++) {
        static__add(&s->post, &s->post_len, &cap, h[i].name, h[i].name_len);
        static__add(&s->post, &s->post_len, &cap, ": ", 2);
        static__add(&s->post, &s->post_len, &cap, h[i].value, h[i].value_len);
        static__add(&s->post, &s->post_len, &cap, "\r\n", 2);
    }
    s->body = fa_xmalloc(body_len);
    memcpy(s->body, body, body_len);
    s->body_len = body_len;
    return s;
}

void fa_static_destroy(struct fa_static *s)
{
    if (!s)
        return;
    free(s->pre);
    free(s->post);
    free(s->body);
    free(s);
}

void fa_static_respond(struct fa_worker *w, struct fa_resp *r, const struct fa_static *s)
{
    fa_respond_date(w);
    r->hlen = 0;
    fa_resp_append(r, s->pre, s->pre_len);
    fa_resp_append(r, w->date, w->date_len);
    fa_resp_append(r, s->post, s->post_len);
    if (!r->keep_alive)
        fa_resp_append(r, "Connection: close\r\n", 19);
    fa_resp_append(r, "\r\n", 2);
    r->status = (uint16_t)s->status;
    r->hbody = 0;
    r->niov = 0;
    r->total = r->hlen;
    if (!r->head_only && s->body_len) {
        r->iov = r->iov_inline;
        r->iov[0].iov_base = s->body;
        r->iov[0].iov_len = s->body_len;
        r->niov = 1;
        r->total += s->body_len;
    }
    r->sent = 0;
    r->state = FA_RESP_READY;
}
