/* accesslog.c - see accesslog.h. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <http_parser.h>

#include "worker/accesslog.h"
#include "worker/util.h"

struct fa_alog_rec {
    uint64_t t0_ns;               /* CLOCK_MONOTONIC when the head arrived */
    time_t t0;                    /* wall clock, the same moment */
    const struct fa_route *route; /* the route table lives as long as the worker */
    bool have_req;
    uint8_t http_major, http_minor;
    const char *method;           /* static (http_method_str) */
    uint32_t target_len, referer_len, ua_len;
    bool have_referer, have_ua;
    char host[INET6_ADDRSTRLEN];
    char data[];                  /* target, referer, user-agent */
};

struct alog_buf {
    char *p;
    size_t len, cap;
};

static struct alog_buf alog__line;

static void alog__add(struct alog_buf *b, const void *p, size_t n)
{
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

static void alog__str(struct alog_buf *b, const char *s)
{
    alog__add(b, s, strlen(s));
}

static const struct fa_http_header *alog__header(const struct fa_http_req *req, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name_len == n && memcmp(req->headers[i].name, name, n) == 0)
            return &req->headers[i];
    return NULL;
}

void fa_accesslog_begin(struct fa_worker *w, struct fa_resp *r, const struct fa_http_req *req,
                        const struct fa_route *rt, const char *client_host)
{
    const struct fa_http_header *ref = req ? alog__header(req, "referer") : NULL;
    const struct fa_http_header *ua = req ? alog__header(req, "user-agent") : NULL;
    size_t tl = req ? req->target_len : 0;
    size_t rl = ref ? ref->value_len : 0;
    size_t ul = ua ? ua->value_len : 0;
    struct fa_alog_rec *a;

    if (r->alog) {
        fa_accesslog_free(r->alog);
        r->alog = NULL;
    }
    a = fa_xmalloc(sizeof *a + tl + rl + ul);
    memset(a, 0, sizeof *a);
    a->t0_ns = fa_now_ns();
    a->t0 = time(NULL);
    a->route = rt;
    snprintf(a->host, sizeof a->host, "%s", client_host ? client_host : "-");
    if (req) {
        a->have_req = true;
        a->http_major = req->http_major;
        a->http_minor = req->http_minor;
        a->method = http_method_str((enum http_method)req->method);
        a->target_len = (uint32_t)tl;
        memcpy(a->data, req->target, tl);
        if (ref) {
            a->have_referer = true;
            a->referer_len = (uint32_t)rl;
            memcpy(a->data + tl, ref->value, rl);
        }
        if (ua) {
            a->have_ua = true;
            a->ua_len = (uint32_t)ul;
            memcpy(a->data + tl + rl, ua->value, ul);
        }
    }
    r->alog = a;
}

void fa_accesslog_free(struct fa_alog_rec *a)
{
    free(a);
}

/* Combined format: \" \\ and \xHH outside printable ASCII (as Apache). */
static void alog__quoted(struct alog_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            run++;
            continue;
        }
        alog__add(b, s + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            alog__add(b, e, 2);
        } else {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            alog__add(b, e, 4);
        }
    }
    alog__add(b, s + n - run, run);
}

/* A JSON string; bytes >= 0x80 are taken as Latin-1 (as the Python side
 * decodes headers), so the line is always valid JSON. */
static void alog__json_str(struct alog_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    alog__add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            run++;
            continue;
        }
        alog__add(b, s + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            alog__add(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            alog__add(b, e, 6);
        }
    }
    alog__add(b, s + n - run, run);
    alog__add(b, "\"", 1);
}

/* "[26/Nov/2026:21:49:15 +0000]" or "2026-11-26T21:49:15+00:00". */
static void alog__time(struct alog_buf *b, time_t t, bool iso)
{
    struct tm tm;
    char buf[64];
    localtime_r(&t, &tm);
    if (iso) {
        size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", &tm);
        if (n >= 5) {
            /* +hhmm -> +hh:mm (RFC 3339) */
            memmove(buf + n - 1, buf + n - 2, 3);
            buf[n - 2] = ':';
            n++;
        }
        alog__add(b, buf, n);
    } else {
        alog__add(b, buf, strftime(buf, sizeof buf, "[%d/%b/%Y:%H:%M:%S %z]", &tm));
    }
}

void fa_accesslog_end(struct fa_worker *w, const struct fa_resp *r)
{
    const struct fa_alog_rec *a = r->alog;
    struct alog_buf *b = &alog__line;
    char num[64];
    int fd = w->cfg->access_log_fd;

    if (a == NULL || fd < 0)
        return;
    unsigned long long bytes = (unsigned long long)(r->total - r->hlen + r->hbody);
    const char *target = a->data;
    const char *referer = a->data + a->target_len;
    const char *ua = referer + a->referer_len;
    b->len = 0;
    if (!w->cfg->access_log_json) {
        alog__str(b, a->host);
        alog__add(b, " - - ", 5);
        alog__time(b, a->t0, false);
        alog__add(b, " \"", 2);
        if (a->have_req) {
            alog__str(b, a->method);
            alog__add(b, " ", 1);
            alog__quoted(b, target, a->target_len);
            snprintf(num, sizeof num, " HTTP/%u.%u", a->http_major, a->http_minor);
            alog__str(b, num);
        } else {
            alog__add(b, "-", 1);
        }
        snprintf(num, sizeof num, "\" %u %llu \"", r->status, bytes);
        alog__str(b, num);
        if (a->have_referer)
            alog__quoted(b, referer, a->referer_len);
        else
            alog__add(b, "-", 1);
        alog__add(b, "\" \"", 3);
        if (a->have_ua)
            alog__quoted(b, ua, a->ua_len);
        else
            alog__add(b, "-", 1);
        alog__add(b, "\"\n", 2);
    } else {
        uint64_t dur = fa_now_ns() - a->t0_ns;
        alog__add(b, "{\"time\":\"", 9);
        alog__time(b, a->t0, true);
        alog__add(b, "\",\"host\":", 9);
        alog__json_str(b, a->host, strlen(a->host));
        alog__add(b, ",\"method\":", 10);
        if (a->have_req)
            alog__json_str(b, a->method, strlen(a->method));
        else
            alog__add(b, "null", 4);
        alog__add(b, ",\"target\":", 10);
        if (a->have_req)
            alog__json_str(b, target, a->target_len);
        else
            alog__add(b, "null", 4);
        alog__add(b, ",\"protocol\":", 12);
        if (a->have_req) {
            snprintf(num, sizeof num, "\"HTTP/%u.%u\"", a->http_major, a->http_minor);
            alog__str(b, num);
        } else {
            alog__add(b, "null", 4);
        }
        snprintf(num, sizeof num, ",\"status\":%u,\"bytes\":%llu,\"referer\":", r->status, bytes);
        alog__str(b, num);
        if (a->have_referer)
            alog__json_str(b, referer, a->referer_len);
        else
            alog__add(b, "null", 4);
        alog__add(b, ",\"user_agent\":", 14);
        if (a->have_ua)
            alog__json_str(b, ua, a->ua_len);
        else
            alog__add(b, "null", 4);
        snprintf(num, sizeof num, ",\"duration_ms\":%.3f,\"route\":", (double)dur / 1e6);
        alog__str(b, num);
        if (a->route)
            alog__json_str(b, a->route->pattern, strlen(a->route->pattern));
        else
            alog__add(b, "null", 4);
        alog__add(b, "}\n", 2);
    }
    /* One write per line (O_APPEND): a short write or an error loses the
     * line, never corrupts another worker's. */
    ssize_t n = write(fd, b->p, b->len);
    (void)n;
    if (b->cap > 65536) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}
