/* worker.h - the HTTP worker process: forked from the master, runs a libevent
 * loop over the shared listening socket, parses, routes, answers native
 * routes in place and hands Python routes to Python workers through shm.
 *
 * struct fa_worker is private to worker/ (conn.c, dispatch.c, respond.c
 * share it); the master only sees struct fa_worker_config / fa_worker_env.
 */
#ifndef FA_WORKER_WORKER_H
#define FA_WORKER_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <msgpack.h>

#include "shm/chunk.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "worker/http.h"
#include "worker/router.h"
#include "worker/routes.h"

/* What the command line decides for HTTP workers (filled by the master). */
struct fa_worker_config {
    struct fa_http_limits limits;
    uint32_t max_pipeline;      /* responses queued per connection before reading pauses */
    uint32_t backlog_max;       /* requests waiting for a Python worker per HTTP worker (then 503) */
    uint32_t graceful_timeout;  /* seconds */
    uint32_t keepalive_timeout; /* seconds an idle keep-alive connection stays open; 0: no limit */
    uint32_t header_timeout;    /* seconds to receive a whole request head, else 408 and close */
    uint32_t body_timeout;      /* seconds without body progress, else 408 and close */
    uint32_t max_connections;   /* open connections per HTTP worker; accepting pauses beyond */
    uint32_t request_timeout;   /* --timeout: seconds a Python request may run; 0: no limit */
    int access_log_fd;          /* -1: no access log */
    int access_log_json;        /* 0: combined format, 1: one JSON object per line */
    int log_level;              /* enum fa_log_level */
};

enum fa_log_level { FA_LOG_ERROR = 0, FA_LOG_WARNING, FA_LOG_INFO, FA_LOG_DEBUG };

/* Everything a forked HTTP worker inherits from the master. */
struct fa_worker_env {
    const struct fa_worker_config *cfg;
    const struct fa_seg *seg;
    const struct fa_routes *routes;
    int listen_fd;
    uint32_t slot;              /* this worker's HTTP slot h */
    const int *http_efd;        /* doorbells of every HTTP slot, [n_http] */
    const int *py_efd;          /* doorbells of every Python slot, [max_py] */
};

/* Runs the worker until SIGTERM and its drain are over. Returns the exit code. */
int fa_worker_run(const struct fa_worker_env *env);

/* ---- private to worker/ ------------------------------------------------- */

struct event_base;
struct event;
struct fa_conn;

/* One request's answer, queued on its connection in request order. */
enum fa_resp_state { FA_RESP_PENDING = 0, FA_RESP_READY };
/* Where a Python request is. */
enum fa_py_state { FA_PY_NONE = 0, FA_PY_BUILDING, FA_PY_BACKLOG, FA_PY_INFLIGHT, FA_PY_DONE };

/* One part of a streamed Python response (PROTOCOL.md, "Deferred and
 * streamed responses"), queued on its response until the socket took all
 * of it; then its chunks are freed at once (the Python worker counts them
 * for backpressure). iov: the chunked framing "<hex>\r\n" (in frame), the
 * part's pieces in shm, the framing "\r\n"; or the terminator alone. */
struct fa_part {
    struct fa_part *next;
    uint32_t first;              /* chain in r->py_slot's arena; FA_CHUNK_NONE: none */
    int niov;
    size_t len, sent;            /* bytes to write (framing included), bytes written */
    char frame[24];
    struct iovec iov[];          /* [niov] */
};

/* How a streamed body goes on the wire (chosen at its start, dispatch.c). */
enum fa_stream_mode {
    FA_STREAM_CHUNKED = 0,       /* HTTP/1.1, no content-length: Transfer-Encoding: chunked */
    FA_STREAM_RAW,               /* the app's content-length: bytes as they are, counted */
    FA_STREAM_CLOSE,             /* HTTP/1.0, no content-length: the close ends the body */
    FA_STREAM_HEAD_ONLY          /* HEAD, 1xx, 204, 304: parts are freed unwritten */
};

/* A streamed response: written by conn.c (conn__write_stream) as parts
 * come, filled by dispatch.c. */
struct fa_stream {
    struct fa_part *head, *tail; /* parts queued, in order */
    uint32_t n_parts;
    uint8_t mode;                /* enum fa_stream_mode */
    bool done;                   /* no more parts will come ([0], [2], a cut, a death) */
    bool cut;                    /* close the connection once the queue is out */
    uint64_t length;             /* RAW: the declared content-length */
    uint64_t body;               /* body bytes queued so far (framing excluded) */
};

struct fa_resp {
    struct fa_resp *next;        /* connection FIFO */
    struct fa_conn *conn;        /* NULL once the connection closed (orphan) */
    enum fa_resp_state state;
    bool keep_alive;             /* connection stays open after this one */
    bool head_only;              /* HEAD: send headers, no body */
    bool python;                 /* built for a Python route */
    bool failed;                 /* already answered by C (error while building) */
    uint8_t py_state;            /* enum fa_py_state */
    uint32_t route_id;
    /* Output: hbuf (status line + headers [+ small C body]), then body
     * iovecs (pieces in shm for Python responses, the route's memory for
     * static and native ones), then a file part sent with sendfile. */
    char *hbuf;
    size_t hlen, hcap;
    struct iovec *iov;           /* body pieces in shm (Python responses) */
    int niov;
    struct iovec iov_inline[4];
    size_t total, sent;          /* bytes of the whole response (file part included), bytes written */
    size_t hbody;                /* bytes at the end of hbuf that are body (for the access log) */
    uint16_t status;             /* set by fa_respond_head() and the other builders */
    bool file;                   /* a file part follows: file_fd is ours, closed by fa_resp_free */
    int file_fd;
    uint64_t file_off, file_len;
    void *owned;                 /* memory an iovec points into, freed with the response */
    struct fa_alog_rec *alog;    /* access log record (accesslog.c), NULL when the log is off */
    /* Python bookkeeping */
    struct fa_msg_writer w;      /* the envelope while the body arrives */
    uint32_t py_slot, py_gen, token;
    uint32_t req_idx;            /* index of its descriptor in the request ring: at or
                                    past the ring's head, its Python worker never took it */
    struct fa_desc req_desc;     /* what was (or will be) pushed */
    uint32_t resp_first;         /* response chain to free after sending */
    bool resp_chunks;
    bool http10;                 /* the request line said HTTP/1.0 */
    bool py_answered;            /* a message of the answer came (latency recorded) */
    /* The answer is not wanted any more (the client is gone, or we answered
     * or cut it for a bad message) while the Python worker still owes
     * messages for it: they are freed unread, and each non-final one
     * repeats the disconnect notice. */
    bool py_unwanted;
    bool notice_owed;            /* its disconnect notice met a full ring: fa_dispatch_retry resends */
    struct fa_stream *stream;    /* a streamed answer (started), or NULL */
    struct fa_resp *backlog_next;
    uint64_t t_start;
};

/* A pending Python request, found again by the response's token. */
struct fa_pending {
    struct fa_resp *resp;        /* NULL: free entry */
    uint16_t seq;                /* 12 bits: the token's (dispatch.c) */
    uint32_t next_free;
};

struct fa_worker {
    const struct fa_worker_env *env;
    const struct fa_seg *seg;
    const struct fa_worker_config *cfg;
    uint32_t h, n_http, max_py, self;
    struct fa_slot_sh *me;
    struct event_base *base;
    struct event *ev_listen, *ev_doorbell, *ev_term, *ev_retry, *ev_drain, *ev_linger, *ev_sweep;
    struct event *ev_trim;
    struct fa_ring *req;         /* producer ends, [max_py] */
    struct fa_ring *resp;        /* consumer ends, [max_py] */
    uint64_t dirty_rings;        /* bit p: request ring p has reserved, uncommitted slots */
    uint64_t wake_rings;         /* bit p: committed requests whose doorbell is not rung yet */
    uint32_t *unrung;            /* [max_py]: requests committed since p's doorbell was rung */
    uint32_t *gen_snap;          /* [max_py]: Python generations read before a death's drain */
    struct {                     /* restarted worker: sweep of a dead predecessor's chunks */
        uint8_t *cand;           /* [max_py][bitmap]: SENT to us at phase 1 */
        uint32_t bytes;          /* bitmap bytes per Python arena */
        int phase;               /* 0 none, 1 candidates taken, 2 done */
    } sweep;
    struct fa_arena arena;
    struct fa_pending *pending;
    uint32_t n_pending_cap, free_head, n_pending;
    struct fa_resp *backlog_head, *backlog_tail;
    uint32_t backlog_len;
    uint32_t notices_owed;       /* pending requests with notice_owed set */
    uint32_t doorbell_batch;     /* requests committed before a doorbell is rung (fa_dispatch_init) */
    uint32_t rr;                 /* round-robin start for worker choice */
    uint32_t n_conns;
    struct fa_conn *conns;       /* all open connections (conn.c) */
    /* Freed responses kept for reuse with their head buffer (conn.c): a
     * batch of answers frees and allocates tens at once, more than malloc's
     * per-thread cache holds. */
    struct fa_resp *resp_pool;
    uint32_t n_resp_pool;
    msgpack_zone mp_zone;        /* response heads are decoded into it (dispatch.c) */
    uint32_t seen_death;         /* last death_seq handled */
    uint32_t incarnation;        /* this slot's generation at start, 4 bits of each token */
    uint32_t version;            /* app version this worker serves (routes) */
    bool stopping;
    bool close_idle;             /* shutdown: close connections as soon as they are idle */
    bool exit_now;
    char date[40];               /* "Date: ..., GMT\r\n" */
    size_t date_len;
    time_t date_at;
};

/* respond.c: C-built responses and the response head of Python responses. */
void fa_respond_date(struct fa_worker *w);
/* A complete response built in C (error pages, 404/405, ...). extra_headers
 * is "Name: value\r\n"... or NULL. */
void fa_respond_simple(struct fa_worker *w, struct fa_resp *r, int status,
                       const char *content_type, const char *body, size_t body_len,
                       const char *extra_headers);
/* JSON {"detail":"<reason>"} for status. */
void fa_respond_error(struct fa_worker *w, struct fa_resp *r, int status, const char *extra_headers);
const char *fa_respond_reason(int status);

/* conn.c */
void fa_conn_accept_cb(int fd, short what, void *arg);
/* A response became ready, or a stream got a part (or its end): write what
 * can be written on its connection. */
void fa_conn_resp_ready(struct fa_worker *w, struct fa_resp *r);
/* Frees r and what it holds (chunks of its whole answer or of its queued
 * parts included). */
void fa_resp_free(struct fa_worker *w, struct fa_resp *r);
/* Frees r's queued stream parts and their chunks (nobody will write them). */
void fa_resp_drop_parts(struct fa_worker *w, struct fa_resp *r);
/* Shutdown, step 1: every answer not yet started says Connection: close.
 * Requests still arriving on idle connections are answered (and close). */
void fa_conn_stop_keepalive(struct fa_worker *w);
/* Shutdown, step 2 (a moment later): close the connections that are idle,
 * and each of the others as soon as it is. */
void fa_conn_close_idle(struct fa_worker *w);
/* Sets bit i of held for every chunk of Python arena p that a queued
 * response of this worker still holds (n: chunks per arena). */
void fa_conn_mark_held(struct fa_worker *w, uint32_t p, uint8_t *held, uint32_t n);

/* dispatch.c: Python routes. */
int fa_dispatch_begin(struct fa_worker *w, struct fa_resp *r, const struct fa_http_req *req,
                      const struct fa_match *m, const char *client_host, uint16_t client_port);
int fa_dispatch_body(struct fa_worker *w, struct fa_resp *r, const char *data, size_t len);
void fa_dispatch_end(struct fa_worker *w, struct fa_resp *r);
/* Publish reserved descriptors; ring a doorbell only for a full batch. */
void fa_dispatch_flush(struct fa_worker *w);
/* End of an event-loop round: ring the doorbells still owed. */
void fa_dispatch_wake(struct fa_worker *w);
/* Drain response rings. Returns the number of responses taken. */
int fa_dispatch_poll(struct fa_worker *w);
/* 1 if any response ring has something. */
int fa_dispatch_pending_input(struct fa_worker *w);
/* Retry requests waiting for a Python worker. */
void fa_dispatch_retry(struct fa_worker *w);
/* The connection of r went away, or r was written while its Python worker
 * still owes messages for it: r stays until the last one comes back, and
 * that worker gets a disconnect notice. */
void fa_dispatch_orphan(struct fa_worker *w, struct fa_resp *r);
/* The client of r (in flight to a Python worker) sent EOF: tell the Python
 * worker (disconnect notice); r is still answered if the socket takes it. */
void fa_dispatch_client_eof(struct fa_worker *w, struct fa_resp *r);
void fa_dispatch_init(struct fa_worker *w);
/* Restarted HTTP worker: one phase of the sweep for chunks a dead
 * predecessor held (dispatch.c). Returns 1 while another phase is due
 * (call it again seconds later). */
int fa_dispatch_sweep(struct fa_worker *w);

#endif
