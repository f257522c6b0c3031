/* conn.c - client connections: read, parse, route, queue answers in request
 * order, write them (head and shm body pieces with writev, file parts with
 * sendfile), keep-alive, pipelining, timeouts, the connection limit.
 *
 * Each connection owns a FIFO of struct fa_resp, one per request, in the
 * order the requests arrived. Python answers may come back in any order; a
 * response is written only once every response before it is out. A
 * streamed Python answer is written part by part as the parts come
 * (conn__write_stream); the responses behind it wait until its end. When the
 * FIFO reaches cfg->max_pipeline the parser pauses and reading stops, so a
 * client cannot make us queue unbounded work.
 *
 * Where each route kind is answered:
 *   404, 405, static, files, metrics   on_head (any body is read and dropped)
 *   native                             on_complete, with the whole body
 *   python                             dispatch.c, envelope built from on_head on
 *
 * c->cur is the answer of the message being parsed while its body is still
 * needed (Python, native); it is never READY, so it cannot be written and
 * freed under the parser's feet. A message answered early has c->cur NULL
 * and c->answered set.
 *
 * Timeouts: one libevent timer per connection, re-armed only when what it
 * waits for changes (conn__timer_update), with libevent common timeouts
 * (a queue per duration, O(1) add/remove) so that thousands of idle
 * connections cost nothing to the others:
 *   T_HEAD  a request head is due: from accept or from its first byte,
 *           header_timeout for the whole head; then 408 and close (a new
 *           connection that sent nothing is just closed)
 *   T_BODY  body_timeout without a byte read; then 408 and close
 *   T_IDLE  keep-alive between requests, keepalive_timeout; then close
 *   T_SEND  body_timeout without a byte written to a client that does not
 *           read; then close
 * and none while the connection waits for our own answers.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>

#include "worker/accesslog.h"
#include "worker/conn.h"
#include "worker/files.h"
#include "worker/metrics.h"
#include "worker/native.h"
#include "worker/respond.h"
#include "worker/router.h"
#include "worker/static.h"
#include "worker/util.h"

#define CONN_RBUF 16384
#define CONN_MAX_IOV 64

enum { T_NONE = 0, T_HEAD, T_BODY, T_IDLE, T_SEND, T_LINGER, T_KINDS };

/* After the last response, reading goes on (and is discarded) this long at
 * most, so that the client reads our answer before a reset (see
 * conn__finish). */
#define CONN_LINGER_SECS 2

struct fa_conn {
    struct fa_worker *w;
    struct fa_conn *prev, *next;  /* w->conns */
    int fd;
    struct event *ev_read, *ev_write, *ev_timer;
    struct fa_http *http;
    char *rbuf;
    size_t rlen;
    struct fa_resp *q_head, *q_tail;
    uint32_t q_len;
    struct fa_resp *cur;      /* answer of the message being parsed, while its body is needed */
    bool answered;            /* the message being parsed is already answered */
    bool msg_keep;            /* ... and the connection stays open after it */
    bool reading;             /* ev_read armed */
    bool paused;              /* parser paused: pipeline full */
    bool closing;             /* no more requests will be read */
    bool served;              /* a request has begun: idle now means keep-alive idle */
    bool wblocked;            /* a write hit EAGAIN: ev_write armed */
    bool peer_eof;            /* the client closed its side */
    bool lingering;           /* all said: draining input until EOF (conn__finish) */
    uint8_t tmode;            /* what ev_timer is armed for (T_*) */
    uint64_t read_at, write_at;  /* last progress, CLOCK_MONOTONIC ns */
    /* native routes: the message's route, head and match, and its body */
    const struct fa_route *route;
    const struct fa_http_req *req;
    struct fa_match match;
    char *body;
    size_t body_len, body_cap;
    char host[INET6_ADDRSTRLEN];
    uint16_t port;
};

static void conn__read_cb(int fd, short what, void *arg);
static void conn__write_cb(int fd, short what, void *arg);
static void conn__timer_cb(int fd, short what, void *arg);
static void conn__flush(struct fa_conn *c);
static void conn__finish(struct fa_conn *c);
static void conn__close(struct fa_conn *c);

/* Durations of the timer kinds, as libevent common timeouts (one set per
 * process: one worker per process). */
static const struct timeval *conn__tv[T_KINDS];

static uint32_t conn__secs(const struct fa_worker *w, int mode)
{
    switch (mode) {
    case T_HEAD: return w->cfg->header_timeout;
    case T_BODY: return w->cfg->body_timeout;
    case T_IDLE: return w->cfg->keepalive_timeout;
    case T_SEND: return w->cfg->body_timeout;
    case T_LINGER: return CONN_LINGER_SECS;
    default: return 0;
    }
}

static void conn__timers_init(struct fa_worker *w)
{
    if (conn__tv[T_HEAD])
        return;
    for (int m = T_HEAD; m < T_KINDS; m++) {
        struct timeval tv = {conn__secs(w, m), 0};
        conn__tv[m] = event_base_init_common_timeout(w->base, &tv);
    }
}

static void conn__stop_reading(struct fa_conn *c)
{
    if (c->reading) {
        event_del(c->ev_read);
        c->reading = false;
    }
}

static void conn__start_reading(struct fa_conn *c)
{
    if (!c->reading && !c->closing) {
        event_add(c->ev_read, NULL);
        c->reading = true;
    }
}

/* What the connection waits for now (see the top of the file). */
static int conn__want_timer(const struct fa_conn *c)
{
    if (c->lingering)
        return T_LINGER;
    if (c->wblocked)
        return T_SEND;
    if (c->closing || c->paused)
        return T_NONE;
    if (c->cur || (c->answered && fa_http_in_message(c->http)))
        return T_BODY;
    if (fa_http_in_message(c->http) || c->rlen > 0)
        return T_HEAD;
    if (c->q_head)
        return T_NONE;
    return c->served ? T_IDLE : T_HEAD;
}

static void conn__timer_update(struct fa_conn *c)
{
    int want = conn__want_timer(c);
    if (want == c->tmode && (want != T_NONE || !evtimer_pending(c->ev_timer, NULL)))
        return;
    c->tmode = (uint8_t)want;
    if (want == T_NONE || conn__secs(c->w, want) == 0) {
        event_del(c->ev_timer);
        return;
    }
    event_add(c->ev_timer, conn__tv[want]);
}

#define RESP_POOL_MAX  256      /* responses kept for reuse (a poll takes 64 answers at most) */
#define RESP_POOL_HCAP 1024     /* ... with a head buffer up to this size */

static struct fa_resp *conn__push_resp(struct fa_conn *c)
{
    struct fa_worker *w = c->w;
    struct fa_resp *r = w->resp_pool;
    if (r != NULL) {
        w->resp_pool = r->next;
        w->n_resp_pool--;
        char *hbuf = r->hbuf;
        size_t hcap = r->hcap;
        memset(r, 0, sizeof *r);
        r->hbuf = hbuf;
        r->hcap = hcap;
    } else {
        r = fa_xcalloc(1, sizeof *r);
    }
    r->conn = c;
    r->keep_alive = true;
    r->t_start = 0;
    if (c->q_tail)
        c->q_tail->next = r;
    else
        c->q_head = r;
    c->q_tail = r;
    c->q_len++;
    return r;
}

/* Unlinks the first queued part of r's stream and frees it and its chunks. */
static void conn__part_free(struct fa_worker *w, struct fa_resp *r)
{
    struct fa_stream *s = r->stream;
    struct fa_part *p = s->head;
    s->head = p->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->n_parts--;
    if (p->first != FA_CHUNK_NONE)
        fa_msg_free(w->seg, fa_seg_py_arena(w->seg, r->py_slot), p->first);
    free(p);
}

void fa_resp_drop_parts(struct fa_worker *w, struct fa_resp *r)
{
    while (r->stream && r->stream->head)
        conn__part_free(w, r);
}

void fa_resp_free(struct fa_worker *w, struct fa_resp *r)
{
    if (r->resp_chunks)
        fa_msg_free(w->seg, fa_seg_py_arena(w->seg, r->py_slot), r->resp_first);
    fa_resp_drop_parts(w, r);
    free(r->stream);
    if (r->iov != r->iov_inline)
        free(r->iov);
    if (r->file)
        close(r->file_fd);
    if (r->alog)
        fa_accesslog_free(r->alog);
    free(r->owned);
    if (w->n_resp_pool < RESP_POOL_MAX && r->hcap <= RESP_POOL_HCAP) {
        r->next = w->resp_pool;
        w->resp_pool = r;
        w->n_resp_pool++;
        return;
    }
    free(r->hbuf);
    free(r);
}

/* Fails the message being parsed (or, between messages, the connection)
 * with status, then closes once the answers before it are out; nothing
 * more is read or parsed. A message that already has its answer gets no
 * second one: the connection just closes after it. */
static void conn__fail(struct fa_conn *c, int status)
{
    struct fa_worker *w = c->w;
    struct fa_resp *r = c->cur;

    if (r == NULL && c->answered && fa_http_in_message(c->http)) {
        r = NULL;
    } else {
        if (r == NULL) {
            r = conn__push_resp(c);
            if (w->cfg->access_log_fd >= 0)
                fa_accesslog_begin(w, r, NULL, NULL, c->host);
        } else if (r->python && r->py_state == FA_PY_BUILDING) {
            fa_msg_abort(&r->w);
            r->py_state = FA_PY_NONE;
        }
        r->python = false;
        r->keep_alive = false;
        fa_respond_error(w, r, status, NULL);
    }
    c->cur = NULL;
    c->answered = false;
    c->route = NULL;
    c->closing = true;
    c->rlen = 0;
    conn__stop_reading(c);
}

/* ---- parser callbacks ---------------------------------------------------- */

static int conn__on_head(void *ctx, struct fa_http_req *req)
{
    struct fa_conn *c = ctx;
    struct fa_worker *w = c->w;
    struct fa_resp *r = conn__push_resp(c);
    struct fa_match *m = &c->match;
    const struct fa_route *rt = NULL;

    c->served = true;
    c->answered = false;
    c->route = NULL;
    c->body_len = 0;
    r->keep_alive = req->keep_alive && !w->stopping;
    r->head_only = req->method == HTTP_HEAD;
    int rc = fa_router_match(w->env->routes->router, req->method, req->path, req->path_len, m);
    if (rc == FA_MATCH_OK && (rt = fa_routes_get(w->env->routes, m->route_id)) == NULL)
        rc = FA_MATCH_NOT_FOUND;
    if (w->cfg->access_log_fd >= 0)
        fa_accesslog_begin(w, r, req, rt, c->host);
    bool needs_body = rc == FA_MATCH_OK && (rt->kind == FA_ROUTE_PYTHON || rt->kind == FA_ROUTE_NATIVE);
    /* Answered without its body, to a client that waits for 100-continue
     * before sending one: the body may never come, so close after. */
    if (!needs_body && req->expect_continue && (req->chunked || req->content_length > 0))
        r->keep_alive = false;
    if (rc == FA_MATCH_NOT_FOUND) {
        fa_respond_error(w, r, 404, NULL);
        goto answered;
    }
    if (rc == FA_MATCH_BAD_METHOD) {
        char allow[256], hdr[300];
        fa_router_allow_str(m->allow, allow, sizeof allow);
        snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
        fa_respond_error(w, r, 405, hdr);
        goto answered;
    }
    r->route_id = m->route_id;
    switch (rt->kind) {
    case FA_ROUTE_STATIC:
        fa_static_respond(w, r, rt->stat);
        goto answered;
    case FA_ROUTE_FILES:
        fa_files_respond(w, r, rt, req, m);
        goto answered;
    case FA_ROUTE_METRICS:
        fa_metrics_render(w, r);
        goto answered;
    case FA_ROUTE_NATIVE:
    case FA_ROUTE_PYTHON:
        break;
    }
    if (req->expect_continue && c->q_head == r) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        /* Best effort: the socket buffer is empty at this point. */
        ssize_t n = write(c->fd, cont, sizeof cont - 1);
        (void)n;
    }
    c->msg_keep = r->keep_alive;
    if (rt->kind == FA_ROUTE_NATIVE) {
        c->cur = r;
        c->route = rt;
        c->req = req;
        return 0;
    }
    r->python = true;
    int status = fa_dispatch_begin(w, r, req, m, c->host, c->port);
    if (status) {
        r->failed = true;
        fa_respond_error(w, r, status, NULL);
        goto answered;
    }
    c->cur = r;
    return 0;
answered:
    /* Its body, if any, is read and dropped. */
    c->msg_keep = r->keep_alive;
    c->answered = true;
    c->cur = NULL;
    return 0;
}

static int conn__on_body(void *ctx, const char *data, size_t len)
{
    struct fa_conn *c = ctx;
    struct fa_resp *r = c->cur;

    if (r == NULL)
        return 0;                 /* answered already: dropped */
    if (c->route) {               /* native: keep it all (the parser caps it at --max-body) */
        if (c->body_len + len > c->body_cap) {
            size_t cap = c->body_cap ? c->body_cap : 4096;
            while (cap < c->body_len + len)
                cap *= 2;
            c->body = fa_xrealloc(c->body, cap);
            c->body_cap = cap;
        }
        memcpy(c->body + c->body_len, data, len);
        c->body_len += len;
        return 0;
    }
    if (r->python && !r->failed) {
        int status = fa_dispatch_body(c->w, r, data, len);
        if (status) {
            r->failed = true;
            fa_respond_error(c->w, r, status, NULL);
            c->cur = NULL;        /* READY now: it may be written before the body ends */
            c->answered = true;
        }
    }
    return 0;
}

static int conn__on_complete(void *ctx)
{
    struct fa_conn *c = ctx;
    struct fa_worker *w = c->w;
    struct fa_resp *r = c->cur;

    c->cur = NULL;
    c->answered = false;
    /* Whatever comes next (keep-alive wait, the next head) gets a full
     * timeout of its own: make conn__timer_update re-arm even if the kind
     * of wait is the same as before this message. */
    c->tmode = T_NONE;
    if (r && c->route) {
        fa_native_run(w, r, c->route, c->req, &c->match, c->host, c->port, c->body, c->body_len);
        c->route = NULL;
        if (c->body_cap > 65536) {
            free(c->body);
            c->body = NULL;
            c->body_cap = 0;
        }
        c->body_len = 0;
    } else if (r && r->python && !r->failed) {
        fa_dispatch_end(w, r);
    }
    if (!c->msg_keep)
        c->closing = true;
    return c->q_len >= w->cfg->max_pipeline ? 1 : 0;
}

static const struct fa_http_cb conn__cb = {
    .on_head = conn__on_head,
    .on_body = conn__on_body,
    .on_complete = conn__on_complete,
};

/* ---- reading ------------------------------------------------------------- */

/* Feeds what is buffered. On a parse error, answers it and stops reading. */
static void conn__parse(struct fa_conn *c)
{
    ssize_t n = fa_http_feed(c->http, c->rbuf, c->rlen);
    if (n < 0) {
        const char *reason;
        int status = fa_http_error(c->http, &reason);
        conn__fail(c, status ? status : 400);
        return;
    }
    if ((size_t)n < c->rlen && !fa_http_done(c->http)) {
        memmove(c->rbuf, c->rbuf + n, c->rlen - (size_t)n);
        c->rlen -= (size_t)n;
        c->paused = true;
        conn__stop_reading(c);
    } else {
        c->rlen = 0;
        c->paused = false;
    }
    if (fa_http_done(c->http) || c->closing) {
        c->closing = true;
        c->rlen = 0;
        conn__stop_reading(c);
    }
}

static void conn__read_cb(int fd, short what, void *arg)
{
    struct fa_conn *c = arg;
    struct fa_worker *w = c->w;

    if (c->lingering) {
        for (;;) {
            ssize_t n = read(fd, c->rbuf, CONN_RBUF);
            if (n > 0)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            conn__close(c);        /* EOF or error: the client has it all */
            return;
        }
    }
    ssize_t n = read(fd, c->rbuf + c->rlen, CONN_RBUF - c->rlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        conn__close(c);
        return;
    }
    if (n == 0) {
        c->peer_eof = true;
        /* Peer closed its side: answer what is complete, then close. */
        c->closing = true;
        conn__stop_reading(c);
        if (c->cur) {
            /* A request cut short gets nothing. */
            conn__close(c);
            return;
        }
        /* A Python answer still to come (a deferred request, a stream that
         * waits between parts) may take long, and only a write would see a
         * client that closed: its Python worker hears of the EOF now
         * (disconnect notice: an async handler may stop). The connection
         * stays open for what is answered anyway: a client that only shut
         * down its sending side still gets it (a closed one makes the
         * write fail, and the connection closes then). */
        for (struct fa_resp *r = c->q_head; r; r = r->next)
            if (r->python && (r->py_state == FA_PY_INFLIGHT || (r->stream && !r->stream->done)))
                fa_dispatch_client_eof(w, r);
        fa_dispatch_flush(w);
        if (c->q_head == NULL)
            conn__close(c);
        else
            conn__timer_update(c);
        return;
    }
    c->read_at = fa_now_ns();
    atomic_fetch_add_explicit(&w->me->stats.bytes_in, (uint64_t)n, memory_order_relaxed);
    c->rlen += (size_t)n;
    conn__parse(c);
    fa_dispatch_flush(w);
    conn__flush(c);
}

/* ---- timers ---------------------------------------------------------------- */

static void conn__timer_cb(int fd, short what, void *arg)
{
    struct fa_conn *c = arg;
    struct fa_worker *w = c->w;
    int mode = c->tmode;
    uint64_t limit = (uint64_t)conn__secs(w, mode) * 1000000000u;
    uint64_t now = fa_now_ns();

    c->tmode = T_NONE;
    switch (mode) {
    case T_BODY:
    case T_SEND: {
        /* Progress extends the deadline: re-arm for what is left. */
        uint64_t at = mode == T_BODY ? c->read_at : c->write_at;
        if (now - at < limit) {
            uint64_t left = limit - (now - at);
            struct timeval tv = {(time_t)(left / 1000000000u), (suseconds_t)(left % 1000000000u / 1000)};
            c->tmode = (uint8_t)mode;
            event_add(c->ev_timer, &tv);
            return;
        }
        if (w->cfg->log_level >= FA_LOG_DEBUG)
            fa_log("%s:%u: no %s progress for %u s (--body-timeout): %s", c->host, c->port,
                   mode == T_SEND ? "response" : "request body", w->cfg->body_timeout,
                   mode == T_SEND ? "closing" : "408");
        if (mode == T_SEND) {
            conn__close(c);
            return;
        }
        conn__fail(c, 408);
        break;
    }
    case T_HEAD:
        if (!fa_http_in_message(c->http) && c->rlen == 0 && c->q_head == NULL) {
            conn__close(c);       /* it never asked anything */
            return;
        }
        if (w->cfg->log_level >= FA_LOG_DEBUG)
            fa_log("%s:%u: no whole request head within %u s (--header-timeout): 408", c->host,
                   c->port, w->cfg->header_timeout);
        conn__fail(c, 408);
        break;
    case T_IDLE:
    case T_LINGER:
        conn__close(c);
        return;
    default:
        return;
    }
    conn__flush(c);
}

/* ---- writing ------------------------------------------------------------- */

static void conn__write_cb(int fd, short what, void *arg)
{
    conn__flush(arg);
}

void fa_conn_resp_ready(struct fa_worker *w, struct fa_resp *r)
{
    /* A socket that was full is written again by conn__write_cb. */
    if (r->conn && r->conn->q_head == r && !r->conn->wblocked)
        conn__flush(r->conn);
}

/* Writes what it can of r: head and body pieces with one sendmsg, then the
 * file part with sendfile. Returns 1 when r is out, 0 when the socket is
 * full, -1 when the connection failed. */
static int conn__write_resp(struct fa_conn *c, struct fa_resp *r)
{
    struct fa_worker *w = c->w;
    struct iovec iov[CONN_MAX_IOV];
    size_t mem = r->total - (r->file ? r->file_len : 0);

    while (r->sent < mem) {
        int cnt = 0;
        size_t skip = r->sent;
        if (skip < r->hlen) {
            iov[cnt].iov_base = r->hbuf + skip;
            iov[cnt].iov_len = r->hlen - skip;
            cnt++;
            skip = 0;
        } else {
            skip -= r->hlen;
        }
        for (int i = 0; i < r->niov && cnt < CONN_MAX_IOV; i++) {
            if (skip >= r->iov[i].iov_len) {
                skip -= r->iov[i].iov_len;
                continue;
            }
            iov[cnt].iov_base = (char *)r->iov[i].iov_base + skip;
            iov[cnt].iov_len = r->iov[i].iov_len - skip;
            skip = 0;
            cnt++;
        }
        if (cnt == 0) {
            fa_log("response of route %u: %zu bytes promised, fewer given; closing the connection",
                   r->route_id, r->total);
            return -1;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        /* MSG_MORE: the file follows, let the head share its first packet. */
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | (r->file ? MSG_MORE : 0));
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        r->sent += (size_t)n;
        c->write_at = fa_now_ns();
        atomic_fetch_add_explicit(&w->me->stats.bytes_out, (uint64_t)n, memory_order_relaxed);
    }
    while (r->sent < r->total) {
        off_t off = (off_t)(r->file_off + (r->sent - mem));
        size_t want = r->total - r->sent;
        if (want > (1u << 30))
            want = 1u << 30;
        ssize_t n = sendfile(c->fd, r->file_fd, &off, want);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (n == 0) {
            /* The file shrank under us: the promised length cannot be kept. */
            fa_log("a file being sent was truncated; closing the connection to %s", c->host);
            return -1;
        }
        r->sent += (size_t)n;
        c->write_at = fa_now_ns();
        atomic_fetch_add_explicit(&w->me->stats.bytes_out, (uint64_t)n, memory_order_relaxed);
    }
    return 1;
}

/* Writes what is queued of a streamed response: the head, then the parts
 * in order. A part's chunks are freed as soon as the socket took the whole
 * part, not before (the bytes are sent from them) and not later (the
 * Python worker's backpressure counts them). Returns 1 when r is out and
 * complete, 2 when all that came is out and more is to come, 0 when the
 * socket is full, -1 when the connection failed. */
static int conn__write_stream(struct fa_conn *c, struct fa_resp *r)
{
    struct fa_worker *w = c->w;
    struct fa_stream *s = r->stream;
    struct iovec iov[CONN_MAX_IOV];

    for (;;) {
        int cnt = 0;
        if (r->sent < r->hlen) {
            iov[cnt].iov_base = r->hbuf + r->sent;
            iov[cnt].iov_len = r->hlen - r->sent;
            cnt++;
        }
        for (struct fa_part *p = s->head; p && cnt < CONN_MAX_IOV; p = p->next) {
            size_t skip = p->sent;
            for (int i = 0; i < p->niov && cnt < CONN_MAX_IOV; i++) {
                if (skip >= p->iov[i].iov_len) {
                    skip -= p->iov[i].iov_len;
                    continue;
                }
                iov[cnt].iov_base = (char *)p->iov[i].iov_base + skip;
                iov[cnt].iov_len = p->iov[i].iov_len - skip;
                skip = 0;
                cnt++;
            }
        }
        if (cnt == 0)
            break;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->write_at = fa_now_ns();
        atomic_fetch_add_explicit(&w->me->stats.bytes_out, (uint64_t)n, memory_order_relaxed);
        size_t left = (size_t)n;
        if (r->sent < r->hlen) {
            size_t k = left < r->hlen - r->sent ? left : r->hlen - r->sent;
            r->sent += k;
            left -= k;
        }
        while (left > 0) {
            struct fa_part *p = s->head;
            size_t k = left < p->len - p->sent ? left : p->len - p->sent;
            p->sent += k;
            left -= k;
            if (p->sent == p->len)
                conn__part_free(w, r);
        }
    }
    return s->done || s->cut ? 1 : 2;
}

/* Writes ready responses at the head of the FIFO, in order. */
static void conn__flush(struct fa_conn *c)
{
    struct fa_worker *w = c->w;

    while (c->q_head && c->q_head->state == FA_RESP_READY) {
        struct fa_resp *r = c->q_head;
        int rc = r->stream ? conn__write_stream(c, r) : conn__write_resp(c, r);
        if (rc < 0) {
            conn__close(c);
            return;
        }
        if (rc == 0) {
            if (!c->wblocked) {
                c->wblocked = true;
                event_add(c->ev_write, NULL);
            }
            conn__timer_update(c);
            return;
        }
        if (rc == 2)
            break;                /* a stream waits for its next part; what follows waits behind it */
        atomic_fetch_add_explicit(&w->me->stats.requests, 1, memory_order_relaxed);
        if (r->alog)
            fa_accesslog_end(w, r);
        c->q_head = r->next;
        if (c->q_head == NULL)
            c->q_tail = NULL;
        c->q_len--;
        bool keep = r->keep_alive;
        r->next = NULL;
        /* Written (an error page, a cut stream) while its Python worker
         * still sends for it: it stays, without us, until the last message. */
        if (r->python && r->py_state == FA_PY_INFLIGHT)
            fa_dispatch_orphan(w, r);
        else
            fa_resp_free(w, r);
        if (!keep) {
            conn__finish(c);
            return;
        }
    }
    if (c->wblocked) {
        c->wblocked = false;
        event_del(c->ev_write);
    }
    if (c->paused && c->q_len < w->cfg->max_pipeline) {
        c->paused = false;
        conn__parse(c);
        fa_dispatch_flush(w);
        if (!c->paused)
            conn__start_reading(c);
        if (c->q_head && c->q_head->state == FA_RESP_READY) {
            conn__flush(c);
            return;
        }
    }
    if (c->closing && c->q_head == NULL) {
        conn__finish(c);
        return;
    }
    if (w->close_idle && c->q_head == NULL && !fa_http_in_message(c->http)) {
        conn__close(c);
        return;
    }
    conn__timer_update(c);
}

/* ---- life ---------------------------------------------------------------- */

/* Drops the answers still queued (their requests come after the last one
 * answered, or the client is gone); Python ones in flight become orphans. */
static void conn__drop_queue(struct fa_conn *c)
{
    struct fa_worker *w = c->w;
    struct fa_resp *r = c->q_head;
    while (r) {
        struct fa_resp *next = r->next;
        r->next = NULL;
        if (r->python && (r->py_state == FA_PY_BACKLOG || r->py_state == FA_PY_INFLIGHT ||
                          r->py_state == FA_PY_BUILDING)) {
            fa_dispatch_orphan(w, r);
        } else {
            fa_resp_free(w, r);
        }
        r = next;
    }
    c->q_head = c->q_tail = NULL;
    c->q_len = 0;
    c->cur = NULL;
}

/* The last response is out: close. Closing a socket with unread input
 * makes the kernel send a reset, which can destroy that response before
 * the client reads it (a client still sending a body we refused with 413,
 * or pipelined requests after an error). So unless the client already
 * closed, send FIN and read (discarding) until its EOF, at most
 * CONN_LINGER_SECS, as nginx's lingering close does. */
static void conn__finish(struct fa_conn *c)
{
    if (c->peer_eof || c->w->stopping || shutdown(c->fd, SHUT_WR) < 0) {
        conn__close(c);
        return;
    }
    conn__drop_queue(c);
    c->lingering = true;
    c->closing = true;
    c->rlen = 0;
    if (c->wblocked) {
        c->wblocked = false;
        event_del(c->ev_write);
    }
    if (!c->reading) {
        event_add(c->ev_read, NULL);
        c->reading = true;
    }
    conn__timer_update(c);
}

static void conn__close(struct fa_conn *c)
{
    struct fa_worker *w = c->w;
    conn__drop_queue(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->ev_timer);
    fa_http_destroy(c->http);
    close(c->fd);
    free(c->body);
    free(c->rbuf);
    free(c);
    w->n_conns--;
    atomic_store_explicit(&w->me->stats.connections, w->n_conns, memory_order_relaxed);
    if (w->stopping && w->n_conns == 0)
        w->exit_now = true;
    /* Below the limit again: accept again (see fa_conn_accept_cb). */
    if (!w->stopping && w->ev_listen && w->n_conns < w->cfg->max_connections &&
        !event_pending(w->ev_listen, EV_READ, NULL))
        event_add(w->ev_listen, NULL);
}

/* At most one such warning every 10 s: under sustained overload the
 * condition comes and goes many times a second. */
static bool conn__warn_now(void)
{
    static time_t last;
    time_t now = time(NULL);
    if (now - last < 10)
        return false;
    last = now;
    return true;
}

static void conn__accept_again_cb(int fd, short what, void *arg)
{
    struct fa_worker *w = arg;
    if (!w->stopping && w->n_conns < w->cfg->max_connections &&
        !event_pending(w->ev_listen, EV_READ, NULL))
        event_add(w->ev_listen, NULL);
}

void fa_conn_accept_cb(int lfd, short what, void *arg)
{
    struct fa_worker *w = arg;

    conn__timers_init(w);
    for (int i = 0; i < 64; i++) {
        if (w->n_conns >= w->cfg->max_connections) {
            /* At the limit: leave further clients in the kernel's accept
             * queue (or to the other workers) until one of ours closes. */
            event_del(w->ev_listen);
            if (w->cfg->log_level >= FA_LOG_WARNING && conn__warn_now())
                fa_log("HTTP worker %u: %u connections open (--max-connections): not accepting "
                       "more until one closes", w->h, w->n_conns);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending client stays in the queue, so the listening
                 * socket stays readable: pause a moment instead of spinning
                 * (a connection that closes resumes sooner). */
                if (conn__warn_now())
                    fa_log("HTTP worker %u: accept: %s%s", w->h, strerror(errno),
                           errno == EMFILE || errno == ENFILE
                               ? " (raise the open file limit, ulimit -n, or lower --max-connections)" : "");
                event_del(w->ev_listen);
                struct timeval tv = {0, 100000};
                event_base_once(w->base, -1, EV_TIMEOUT, conn__accept_again_cb, w, &tv);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct fa_conn *c = fa_xcalloc(1, sizeof *c);
        c->w = w;
        c->fd = fd;
        c->rbuf = fa_xmalloc(CONN_RBUF);
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, c->host, sizeof c->host);
            c->port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, c->host, sizeof c->host);
            c->port = ntohs(a->sin6_port);
        }
        c->http = fa_http_create(&w->cfg->limits, &conn__cb, c);
        c->ev_read = event_new(w->base, fd, EV_READ | EV_PERSIST, conn__read_cb, c);
        c->ev_write = event_new(w->base, fd, EV_WRITE | EV_PERSIST, conn__write_cb, c);
        c->ev_timer = evtimer_new(w->base, conn__timer_cb, c);
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        w->n_conns++;
        atomic_store_explicit(&w->me->stats.connections, w->n_conns, memory_order_relaxed);
        conn__start_reading(c);
        conn__timer_update(c);
    }
}

void fa_conn_stop_keepalive(struct fa_worker *w)
{
    for (struct fa_conn *c = w->conns; c; c = c->next)
        for (struct fa_resp *r = c->q_head; r; r = r->next)
            if (r->state != FA_RESP_READY)
                r->keep_alive = false;    /* its head is not built yet: it will say close */
}

void fa_conn_close_idle(struct fa_worker *w)
{
    w->close_idle = true;
    struct fa_conn *c = w->conns;
    while (c) {
        struct fa_conn *next = c->next;
        if (c->q_head == NULL && !fa_http_in_message(c->http))
            conn__close(c);
        else
            c->closing = true;   /* answer what was asked, then close */
        c = next;
    }
}

/* A chain we accepted (fa_msg_iov) and hold: its links are stable. */
static void conn__mark_chain(struct fa_worker *w, uint32_t p, uint32_t first, uint8_t *held, uint32_t n)
{
    uint32_t i = first;
    for (uint32_t k = 0; k < n && i < n; k++) {
        held[i / 8] |= (uint8_t)(1u << (i % 8));
        i = fa_seg_chunk_meta(w->seg, fa_seg_py_arena(w->seg, p), i)->next;
    }
}

void fa_conn_mark_held(struct fa_worker *w, uint32_t p, uint8_t *held, uint32_t n)
{
    for (struct fa_conn *c = w->conns; c; c = c->next) {
        for (struct fa_resp *r = c->q_head; r; r = r->next) {
            if (r->py_slot != p)
                continue;
            if (r->resp_chunks)
                conn__mark_chain(w, p, r->resp_first, held, n);
            for (struct fa_part *pt = r->stream ? r->stream->head : NULL; pt; pt = pt->next)
                if (pt->first != FA_CHUNK_NONE)
                    conn__mark_chain(w, p, pt->first, held, n);
        }
    }
}
