/* tkinds.h - helpers for the route-kind tests (check_native, check_files,
 * check_routes, check_accesslog): a worker that is only what the response
 * builders read, a request head, and the bytes of a built response.
 */
#ifndef FA_TESTS_TKINDS_H
#define FA_TESTS_TKINDS_H

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/http.h"
#include "worker/worker.h"

struct tworker {
    struct fa_worker w;
    struct fa_worker_config cfg;
};

static inline void tworker_init(struct tworker *t)
{
    memset(t, 0, sizeof *t);
    fa_http_limits_default(&t->cfg.limits);
    t->cfg.access_log_fd = -1;
    t->w.cfg = &t->cfg;
}

/* A request head: method, target ("/p?q"), headers "name", "value", ...,
 * NULL. Names must be given in lower case, as http.c stores them. */
struct treq {
    struct fa_http_req req;
    struct fa_http_header h[16];
};

static inline void treq_init(struct treq *t, unsigned method, const char *target, const char *const *hdrs)
{
    memset(t, 0, sizeof *t);
    t->req.method = method;
    t->req.http_major = 1;
    t->req.http_minor = 1;
    t->req.keep_alive = true;
    t->req.target = target;
    t->req.target_len = (uint32_t)strlen(target);
    const char *q = strchr(target, '?');
    t->req.path = target;
    t->req.path_len = (uint32_t)(q ? (size_t)(q - target) : strlen(target));
    if (q) {
        t->req.query = q + 1;
        t->req.query_len = (uint32_t)strlen(q + 1);
    }
    t->req.headers = t->h;
    for (size_t i = 0; hdrs && hdrs[2 * i]; i++) {
        t->h[i].name = hdrs[2 * i];
        t->h[i].name_len = (uint32_t)strlen(hdrs[2 * i]);
        t->h[i].value = hdrs[2 * i + 1];
        t->h[i].value_len = (uint32_t)strlen(hdrs[2 * i + 1]);
        t->req.n_headers++;
    }
}

/* A fresh response as conn.c makes them. */
static inline struct fa_resp *tresp_new(bool head_only)
{
    struct fa_resp *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    r->keep_alive = true;
    r->head_only = head_only;
    return r;
}

static inline void tresp_free(struct fa_resp *r)
{
    if (r->iov != r->iov_inline)
        free(r->iov);
    if (r->file)
        close(r->file_fd);
    free(r->owned);
    free(r->hbuf);
    free(r);
}

/* The response as the wire would carry it (head, body pieces, file part),
 * NUL-terminated; *len gets its length. malloc'd. */
static inline char *tresp_bytes(const struct fa_resp *r, size_t *len)
{
    ck_assert_int_eq(r->state, FA_RESP_READY);
    char *out = malloc(r->total + 1);
    size_t n = 0;
    ck_assert_ptr_nonnull(out);
    memcpy(out, r->hbuf, r->hlen);
    n = r->hlen;
    for (int i = 0; i < r->niov; i++) {
        memcpy(out + n, r->iov[i].iov_base, r->iov[i].iov_len);
        n += r->iov[i].iov_len;
    }
    if (r->file) {
        ssize_t got = pread(r->file_fd, out + n, r->file_len, (off_t)r->file_off);
        ck_assert_int_eq(got, (ssize_t)r->file_len);
        n += r->file_len;
    }
    ck_assert_uint_eq(n, r->total);
    out[n] = '\0';
    if (len)
        *len = n;
    return out;
}

/* The body of a response in bytes (after the blank line). */
static inline const char *tbody(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    ck_assert_ptr_nonnull(p);
    return p + 4;
}

/* The value of header name in a response (case-sensitive name, as the
 * builders write them), copied into buf; NULL if absent. */
static inline const char *theader(const char *resp, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);
    const char *end = strstr(resp, "\r\n\r\n");
    for (const char *p = strstr(resp, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 2 + n + 2;
            const char *e = strstr(v, "\r\n");
            size_t l = (size_t)(e - v) < size - 1 ? (size_t)(e - v) : size - 1;
            memcpy(buf, v, l);
            buf[l] = '\0';
            return buf;
        }
    }
    return NULL;
}

static inline int tstatus(const char *resp)
{
    ck_assert(strncmp(resp, "HTTP/1.1 ", 9) == 0);
    return atoi(resp + 9);
}

#endif
