/* conn.c - client connections: read, parse, queue answers in request order,
 * write them with writev (shm body pieces included), keep-alive, pipelining.
 *
 * Each connection owns a FIFO of struct fa_resp, one per request, in the
 * order the requests arrived. Python answers may come back in any order; a
 * response is written only once every response before it is out. When the
 * FIFO reaches cfg->max_pipeline the parser pauses and reading stops, so a
 * client cannot make us queue unbounded work.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <event2/event.h>

#include "worker/conn.h"
#include "worker/respond.h"
#include "worker/router.h"
#include "worker/util.h"

#define CONN_RBUF 16384
#define CONN_MAX_IOV 64

struct fa_conn {
    struct fa_worker *w;
    struct fa_conn *prev, *next;  /* w->conns */
    int fd;
    struct event *ev_read, *ev_write;
    struct fa_http *http;
    char *rbuf;
    size_t rlen;
    struct fa_resp *q_head, *q_tail;
    uint32_t q_len;
    struct fa_resp *cur;      /* answer of the message being parsed */
    bool reading;             /* ev_read armed */
    bool paused;              /* parser paused: pipeline full */
    bool closing;             /* no more requests will be read */
    char host[INET6_ADDRSTRLEN];
    uint16_t port;
};

static void conn__read_cb(int fd, short what, void *arg);
static void conn__write_cb(int fd, short what, void *arg);
static void conn__flush(struct fa_conn *c);
static void conn__close(struct fa_conn *c);

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

static struct fa_resp *conn__push_resp(struct fa_conn *c)
{
    struct fa_resp *r = fa_xcalloc(1, sizeof *r);
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

void fa_resp_free(struct fa_worker *w, struct fa_resp *r)
{
    if (r->resp_chunks)
        fa_msg_free(w->seg, fa_seg_py_arena(w->seg, r->py_slot), r->resp_first);
    if (r->iov != r->iov_inline)
        free(r->iov);
    free(r->hbuf);
    free(r);
}

/* ---- parser callbacks ---------------------------------------------------- */

static int conn__on_head(void *ctx, struct fa_http_req *req)
{
    struct fa_conn *c = ctx;
    struct fa_worker *w = c->w;
    struct fa_resp *r = conn__push_resp(c);
    struct fa_match m;

    c->cur = r;
    r->keep_alive = req->keep_alive && !w->stopping;
    r->head_only = req->method == HTTP_HEAD;
    int rc = fa_router_match(w->env->routes->router, req->method, req->path, req->path_len, &m);
    if (rc == FA_MATCH_NOT_FOUND) {
        fa_respond_error(w, r, 404, NULL);
        return 0;
    }
    if (rc == FA_MATCH_BAD_METHOD) {
        char allow[256], hdr[300];
        fa_router_allow_str(m.allow, allow, sizeof allow);
        snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
        fa_respond_error(w, r, 405, hdr);
        return 0;
    }
    r->route_id = m.route_id;
    r->python = true;
    if (req->expect_continue && c->q_head == r) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        /* Best effort: the socket buffer is empty at this point. */
        ssize_t n = write(c->fd, cont, sizeof cont - 1);
        (void)n;
    }
    int status = fa_dispatch_begin(w, r, req, &m, c->host, c->port);
    if (status) {
        r->failed = true;
        fa_respond_error(w, r, status, NULL);
    }
    return 0;
}

static int conn__on_body(void *ctx, const char *data, size_t len)
{
    struct fa_conn *c = ctx;
    struct fa_resp *r = c->cur;
    if (r && r->python && !r->failed) {
        int status = fa_dispatch_body(c->w, r, data, len);
        if (status) {
            r->failed = true;
            fa_respond_error(c->w, r, status, NULL);
        }
    }
    return 0;
}

static int conn__on_complete(void *ctx)
{
    struct fa_conn *c = ctx;
    struct fa_resp *r = c->cur;
    c->cur = NULL;
    if (r && r->python && !r->failed)
        fa_dispatch_end(c->w, r);
    if (!r->keep_alive)
        c->closing = true;
    return c->q_len >= c->w->cfg->max_pipeline ? 1 : 0;
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
    struct fa_worker *w = c->w;
    ssize_t n = fa_http_feed(c->http, c->rbuf, c->rlen);
    if (n < 0) {
        const char *reason;
        int status = fa_http_error(c->http, &reason);
        struct fa_resp *r = c->cur;
        if (r == NULL) {
            r = conn__push_resp(c);
        } else if (r->python && r->py_state == FA_PY_BUILDING) {
            fa_msg_abort(&r->w);
            r->py_state = FA_PY_NONE;
        }
        c->cur = NULL;
        r->python = false;
        r->keep_alive = false;
        fa_respond_error(w, r, status ? status : 400, NULL);
        c->closing = true;
        c->rlen = 0;
        conn__stop_reading(c);
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
    if (fa_http_done(c->http)) {
        c->closing = true;
        c->rlen = 0;
        conn__stop_reading(c);
    }
}

static void conn__read_cb(int fd, short what, void *arg)
{
    struct fa_conn *c = arg;
    struct fa_worker *w = c->w;

    ssize_t n = read(fd, c->rbuf + c->rlen, CONN_RBUF - c->rlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        conn__close(c);
        return;
    }
    if (n == 0) {
        /* Peer closed its side: answer what is complete, then close. */
        c->closing = true;
        conn__stop_reading(c);
        if (c->cur) {
            /* A request cut short gets nothing; drop it from the queue end. */
            conn__close(c);
            return;
        }
        if (c->q_head == NULL)
            conn__close(c);
        return;
    }
    atomic_fetch_add_explicit(&w->me->stats.bytes_in, (uint64_t)n, memory_order_relaxed);
    c->rlen += (size_t)n;
    conn__parse(c);
    fa_dispatch_flush(w);
    conn__flush(c);
}

/* ---- writing ------------------------------------------------------------- */

static void conn__write_cb(int fd, short what, void *arg)
{
    conn__flush(arg);
}

void fa_conn_resp_ready(struct fa_worker *w, struct fa_resp *r)
{
    if (r->conn && r->conn->q_head == r)
        conn__flush(r->conn);
}

/* Writes ready responses at the head of the FIFO, in order. */
static void conn__flush(struct fa_conn *c)
{
    struct fa_worker *w = c->w;
    struct iovec iov[CONN_MAX_IOV];

    while (c->q_head && c->q_head->state == FA_RESP_READY) {
        struct fa_resp *r = c->q_head;
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
        ssize_t n = cnt ? writev(c->fd, iov, cnt) : 0;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                event_add(c->ev_write, NULL);
                return;
            }
            conn__close(c);
            return;
        }
        r->sent += (size_t)n;
        atomic_fetch_add_explicit(&w->me->stats.bytes_out, (uint64_t)n, memory_order_relaxed);
        if (r->sent < r->total)
            continue;
        atomic_fetch_add_explicit(&w->me->stats.requests, 1, memory_order_relaxed);
        c->q_head = r->next;
        if (c->q_head == NULL)
            c->q_tail = NULL;
        c->q_len--;
        bool keep = r->keep_alive;
        fa_resp_free(w, r);
        if (!keep) {
            conn__close(c);
            return;
        }
    }
    if (c->q_head == NULL)
        event_del(c->ev_write);
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
        conn__close(c);
        return;
    }
    if (w->close_idle && c->q_head == NULL && !fa_http_in_message(c->http))
        conn__close(c);
}

/* ---- life ---------------------------------------------------------------- */

static void conn__close(struct fa_conn *c)
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
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    event_free(c->ev_read);
    event_free(c->ev_write);
    fa_http_destroy(c->http);
    close(c->fd);
    free(c->rbuf);
    free(c);
    w->n_conns--;
    atomic_store_explicit(&w->me->stats.connections, w->n_conns, memory_order_relaxed);
    if (w->stopping && w->n_conns == 0)
        w->exit_now = true;
}

void fa_conn_accept_cb(int lfd, short what, void *arg)
{
    struct fa_worker *w = arg;

    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                fa_log("accept: %s (raise the open file limit: ulimit -n)", strerror(errno));
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
        c->ev_write = event_new(w->base, fd, EV_WRITE, conn__write_cb, c);
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        w->n_conns++;
        atomic_store_explicit(&w->me->stats.connections, w->n_conns, memory_order_relaxed);
        conn__start_reading(c);
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
