/* serve.c - the Python worker's serve loop (see serve.h).
 *
 * One pass of the loop, for each HTTP worker h in turn:
 *
 *   request ring (h -> P) --pop <= 32--> descs[]     copies, validated here
 *     for each desc:  gen check -> fa_msg_iov -> envelope head (envelope.c)
 *                     -> Python args -> dispatch(...)
 *                     -> response head + body into this slot's arena (a JSON
 *                        body encoded in place by json.c, chunk by chunk)
 *                     -> reserve a slot in the response ring (P -> h)
 *                     -> free the request chunks -> after-response hook, if
 *                        any (its response published and rung first)
 *   commit the response rings, ring the HTTP workers' doorbells
 *
 * This process is the only consumer of its request rings and the only
 * producer of its response rings, so every ring handle below is private.
 * Memory orders live in shm/ (ring.h, chunk.h, doorbell.h).
 *
 * Steady state allocates no C memory: descriptors, iovecs, the head buffer,
 * the body exporter and the lazy headers object are all reused. Python
 * objects for the call arguments come from CPython's allocators, with
 * caches where requests repeat themselves: method strings interned once,
 * header names, path/query/value strings and the client tuple kept from
 * request to request (str and tuple are immutable), response header tuples
 * checked once.
 */

/* Python.h first (through these): it sets feature macros for libc headers. */
#include "pyworker/envelope.h"
#include "pyworker/headers.h"
#include "pyworker/json.h"
#include "pyworker/module.h"
#include "pyworker/serve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/chunk.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/segment.h"

#define SERVE_BATCH        32          /* descriptors popped per ring per round */
/* Idle re-checks of the rings before the sleep protocol. A spin pays only
 * while it is shorter than what sleeping costs (an eventfd write by the HTTP
 * worker, a wake-up here: a few µs); spinning longer is a loss whatever
 * happens next, and on a machine with few cores it takes the core the HTTP
 * worker needs to produce the next request. 50 checks are ~1 µs (a `pause`
 * and a look at the rings: shm/README.md measured 1,000 polls at ~13 µs),
 * about one wake-up; 2000 (~30 µs) cost ~0.5 µs CPU per /json request and
 * a higher p99 on 2 cores (perf/README.md, "Spinning"). -DSERVE_SPIN=N
 * overrides it. */
#ifndef SERVE_SPIN
#define SERVE_SPIN         50
#endif
#define SERVE_WAIT_MS      1000        /* doorbell wait: notice SIGTERM, a dead master */
#define SERVE_FLUSH_NS     50000ull    /* a batch running longer publishes early */
#define SERVE_ARENA_NAP_NS 100000l     /* arena full: poll period */
#define SERVE_ARENA_MAX_NS 5000000000ull /* arena full that long: answer 503 */
#define SERVE_STOP_WAIT_NS 5000000000ull /* stopping: wait that long for an HTTP worker */
#define SERVE_HNAME_CACHE  128         /* header-name strings kept (power of two) */
#define SERVE_HNAME_MAX    64          /* longer names are not cached */
#define SERVE_STR_CACHE    256         /* decoded path/value strings kept (power of two) */
#define SERVE_STR_MAX      96          /* longer ones are decoded each time */
#define SERVE_PAIR_CACHE   16          /* response header tuples known good (power of two) */
#define SERVE_STREAM_PARTS 16          /* a stream's parts written, not yet sent by the HTTP worker */
#define SERVE_STREAM_CHUNKS 16         /* ... and their chunks (a bigger single part may go alone) */
#define SERVE_STREAM_NAP_NS 50000l     /* send(block=True) without room: poll period */
#define SERVE_SCAN_NS      100000000ull /* deferred deadlines are checked this often */

static const char *const serve_methods[] = {
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
};
#define SERVE_N_METHODS (sizeof(serve_methods) / sizeof(serve_methods[0]))

struct serve_hname {
    PyObject *str;      /* strong; an ASCII lower-case name, or NULL */
    uint32_t len;
};

/* A request string decoded before (path, query, header value): str objects
 * are immutable, so the next request with the same bytes gets the same one
 * instead of a decode, an allocation and a deallocation. */
struct serve_str {
    PyObject *str;      /* strong; latin-1 decoded (1-byte kind), or NULL */
    uint32_t len;
};

/* A request being served: what the response and the logs need. */
struct serve_req {
    uint32_t h;
    const struct fa_desc *d;
    uint64_t route_id;
    const char *method, *path;   /* for log lines only (not NUL-terminated) */
    uint32_t method_len, path_len;
    uint32_t flags;              /* the envelope's: bit 1 HEAD */
};

/* A deferred request (PROTOCOL.md, "Deferred and streamed responses"),
 * open from _fasterapi.defer() until respond/abort/send(more=False), a
 * deadline or the end. Its id for Python: rid = index | seq << 16, seq
 * bumped at every finish, so a late call with an old rid is ignored.
 *
 * While dispatch runs, the request's resources (body view, chunks, the
 * method and path strings) belong to serve__call; when dispatch returns
 * with the request still open they move here, and serve__finish gives them
 * back. Stream backpressure: the first chunk of each part written and not
 * yet seen freed by the HTTP worker, oldest first (the HTTP worker frees a
 * part's chunks once the socket took it). */
enum { DEF_FREE = 0, DEF_OPEN, DEF_STREAM };

struct serve_defer {
    struct serve_req rq;          /* rq.d points to d */
    struct fa_desc d;
    uint16_t seq;
    uint8_t state;                /* DEF_* */
    uint8_t gone;                 /* client gone (or deadline): on_disconnect called */
    uint8_t in_call;              /* dispatch has not returned yet */
    int last_status;              /* a stream's status, counted when it ends */
    uint32_t next_free;
    uint64_t t0;                  /* when dispatch began */
    PyObject *method, *path;      /* strong once moved here: rq.method/path point into them */
    PyObject *view;               /* strong: the body memoryview, or NULL */
    PyObject *shmbuf;             /* strong: its exporter, or NULL */
    int chunks_held;              /* the request chunks are still ours to free */
    PyObject *on_disconnect;      /* strong or NULL */
    uint32_t part_chunk[SERVE_STREAM_PARTS], part_n[SERVE_STREAM_PARTS];
    uint32_t part_head, parts, part_chunks;
};

struct serve {
    const struct fa_serve_config *cfg;
    const struct fa_seg *seg;
    uint32_t n_http, slot, gen, self, chunk_size, n_chunks;
    struct fa_slot_sh *me;
    struct fa_ring *req;          /* [n_http], consumer ends */
    struct fa_ring *resp;         /* [n_http], producer ends */
    uint8_t *resp_dirty;          /* [n_http]: reserved, not committed */
    struct fa_arena arena;        /* this slot's arena (responses) */
    uint64_t trim_at;             /* next fa_arena_idle_trim, monotonic ns */
    struct iovec *iov;            /* [n_chunks] */
    struct fa_desc descs[SERVE_BATCH];

    char *head;                   /* response head scratch: chunk_size bytes */
    char *gather;                 /* request head split across chunks */
    size_t gather_cap;
    char head500[64], head503[64];
    size_t head500_len, head503_len;

    struct fa_json_cache *json;           /* the module's (module.h) */
    PyObject *methods[SERVE_N_METHODS];   /* strong, interned */
    PyObject *empty_bytes;                /* strong */
    PyObject *str_release;                /* strong, interned "release" */
    PyObject *shmbuf;                     /* strong idle exporter, or NULL */
    PyObject *last_client;                /* strong (host, port) tuple, or NULL */
    PyObject *hdrs;                       /* strong idle RequestHeaders, or NULL */
    PyObject *pairs[SERVE_PAIR_CACHE];    /* strong: (name, value) tuples that passed the
                                             checks (immutable: they still do) */
    struct serve_str strs[SERVE_STR_CACHE];
    struct serve_hname hnames[SERVE_HNAME_CACHE];

    pid_t ppid;
    uint64_t last_flush_ns;
    uint64_t kept_views;
    int parent_gone;

    /* Deferred requests. */
    struct serve_defer *defers;   /* [conc] */
    uint32_t conc, n_open, free_head;
    struct serve_req *calling;    /* the request dispatch is running for, or NULL */
    int32_t calling_defer;        /* its defers[] index once deferred, else -1 */
    uint32_t *peeked;             /* [n_http]: request ring index scanned for notices */
    uint64_t next_scan_ns;
    int loop_busy;                /* loop_step said it has work, or wake_loop() */
    int fatal;                    /* the master is gone (seen inside a module call) */
    uint32_t batch;               /* descriptors popped per ring per round */
    char head504[64];
    size_t head504_len;
};

/* The serve loop of this process, for _fasterapi's functions (one per
 * process; NULL outside fa_serve_run). */
static struct serve *serve__active;

static const char serve_body500[] = "Internal Server Error\n";
static const char serve_body503[] = "Service Unavailable\n";
static const char serve_body504[] = "Gateway Timeout\n";
/* Heads of the stream messages after the first: msgpack [1], [0], [2]. */
static const char serve_head_more[] = {(char)0x91, 0x01};
static const char serve_head_last[] = {(char)0x91, 0x00};
static const char serve_head_abort[] = {(char)0x91, 0x02};

static void serve__log(const struct serve *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void serve__log(const struct serve *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    n = snprintf(line, sizeof(line), "fasterapi-pyworker[%d] slot %u gen %u: ",
                 (int)getpid(), s->slot, s->gen);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

static inline uint64_t serve__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* At most once a second, when every ring was empty: after a burst, the
 * pages of the response chunks it used go back to the kernel
 * (fa_arena_idle_trim). The doorbell wait's timeout brings an idle worker
 * here at least every SERVE_WAIT_MS. */
static void serve__idle_trim(struct serve *s)
{
    uint64_t now = serve__now_ns();

    if (now < s->trim_at)
        return;
    s->trim_at = now + 1000000000ull;
    fa_arena_idle_trim(&s->arena);
}

static inline void serve__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void serve__stat_add(_Atomic uint64_t *c, uint64_t v)
{
    /* One writer per counter (this process): load + store, no locked op. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* Prints the pending exception without setting sys.last_* (they would keep
 * the handler's frames, and with them the request body, alive) and without
 * letting a SystemExit end the process. */
static void serve__print_exception(const struct serve *s, const char *what)
{
    serve__log(s, "%s", what);
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);   /* new refs */
        serve__log(s, "SystemExit raised inside a request; ignored (stop the server with SIGTERM)");
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return;
    }
    PyErr_PrintEx(0);
}

/* ------------------------------------------------------------------ */
/* Doorbells and waiting                                                */
/* ------------------------------------------------------------------ */

static inline void serve__ring_http(struct serve *s, uint32_t h)
{
    fa_doorbell_ring(&fa_seg_http_slot(s->seg, h)->sleeping, s->cfg->http_efds[h]);
}

/* Publishes every reserved response and wakes the HTTP workers concerned. */
static void serve__flush(struct serve *s)
{
    for (uint32_t h = 0; h < s->n_http; h++) {
        if (!s->resp_dirty[h])
            continue;
        s->resp_dirty[h] = 0;
        fa_ring_commit(&s->resp[h]);
        serve__ring_http(s, h);
    }
}

static int serve__check_parent(struct serve *s)
{
    if (getppid() != s->ppid) {
        if (!s->parent_gone)
            serve__log(s, "the master (pid %d) is gone: exiting", (int)s->ppid);
        s->parent_gone = 1;
        return -1;
    }
    return 0;
}

/* Sleeps on this slot's doorbell (GIL released). Call after
 * fa_doorbell_sleep_begin and an empty re-check. 0, or -1 if the master is
 * gone. */
static int serve__doorbell_wait(struct serve *s)
{
    int r;

    Py_BEGIN_ALLOW_THREADS
    r = fa_doorbell_wait(s->cfg->efd, SERVE_WAIT_MS);
    Py_END_ALLOW_THREADS
    /* A timeout or EINTR leaves the flag at 1: clear it so producers do
     * not pay for a syscall while we are awake. */
    fa_doorbell_sleep_cancel(&s->me->sleeping);
    if (r <= 0)
        return serve__check_parent(s);
    return 0;
}

static int serve__nap(struct serve *s, long ns)
{
    struct timespec ts = {0, ns};

    Py_BEGIN_ALLOW_THREADS
    nanosleep(&ts, NULL);
    Py_END_ALLOW_THREADS
    return serve__check_parent(s);
}

/* While stopping, a wait for an HTTP worker (ring space, free chunks) that
 * began at `since` and lasted SERVE_STOP_WAIT_NS: the master stops the HTTP
 * workers first, so nobody will make room any more. Logs once; 1 = give up. */
static int serve__stop_stuck(struct serve *s, uint32_t h, uint64_t since)
{
    if (!*s->cfg->stop || serve__now_ns() - since < SERVE_STOP_WAIT_NS)
        return 0;
    serve__log(s, "stopping, and HTTP worker %u has taken no response for %llu s: exiting "
               "without answering the rest", h,
               (unsigned long long)(SERVE_STOP_WAIT_NS / 1000000000ull));
    return 1;
}

/* Copies d into the response ring P -> h, waiting for space if it is full
 * (the HTTP worker rings our doorbell when it pops after want_space).
 * 0, or -1 if the master is gone (or, while stopping, HTTP worker h). */
static int serve__push(struct serve *s, uint32_t h, const struct fa_desc *d)
{
    struct fa_ring *r = &s->resp[h];
    struct fa_desc *slot;
    uint64_t since = 0;

    while ((slot = fa_ring_reserve(r)) == NULL) {
        serve__flush(s);
        if (fa_ring_want_space(r))
            continue;
        if (since == 0)
            since = serve__now_ns();
        else if (serve__stop_stuck(s, h, since))
            return -1;
        fa_doorbell_sleep_begin(&s->me->sleeping);
        if ((slot = fa_ring_reserve(r)) != NULL) {
            fa_doorbell_sleep_cancel(&s->me->sleeping);
            break;
        }
        if (serve__doorbell_wait(s) < 0)
            return -1;
    }
    *slot = *d;
    s->resp_dirty[h] = 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Responses                                                            */
/* ------------------------------------------------------------------ */

static size_t serve__pack_error_head(char *buf, size_t cap, int status)
{
    static const char ct[] = "content-type", tp[] = "text/plain; charset=utf-8";
    struct fa_env_out o = {buf, buf + cap, 0};

    fa_env_put_array(&o, 2);
    fa_env_put_uint(&o, (uint64_t)status);
    fa_env_put_array(&o, 2);
    fa_env_put_str(&o, ct, sizeof(ct) - 1);
    fa_env_put_str(&o, tp, sizeof(tp) - 1);
    return o.overflow ? 0 : (size_t)(o.p - buf);
}

/* A chunk of this slot's arena is FREE, so that the next allocation will
 * succeed: only this process takes FREE chunks. Usually the chunk at the
 * cursor, where the allocation looks first. */
static int serve__chunk_free(const struct serve *s)
{
    const struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(s->seg, s->arena.id, s->arena.cursor);

    if (atomic_load_explicit(&m->state, memory_order_relaxed) == FA_CHUNK_FREE)
        return 1;
    return fa_arena_count_free(s->seg, s->arena.id) > 0;
}

/* Waits until this slot's arena has a free chunk, publishing what is
 * queued first (so the HTTP workers can send it and free its chunks).
 * *since is 0 at the start of a wait. Returns 0 when a chunk is free, 1 when
 * may_timeout and the wait has lasted SERVE_ARENA_MAX_NS (the caller answers
 * 503), -1 if the master is gone (or, while stopping, HTTP worker h). */
static int serve__wait_chunk(struct serve *s, uint32_t h, uint64_t *since, int may_timeout)
{
    while (!serve__chunk_free(s)) {
        serve__flush(s);
        if (*since == 0)
            *since = serve__now_ns();
        else if (serve__stop_stuck(s, h, *since))
            return -1;
        else if (may_timeout && serve__now_ns() - *since >= SERVE_ARENA_MAX_NS)
            return 1;
        if (serve__nap(s, SERVE_ARENA_NAP_NS) < 0)
            return -1;
    }
    return 0;
}

/* One response message being written: the head whole in the first chunk,
 * then the body, spread over as many chunks as it takes. The body goes in
 * through `out`, the JSON encoder's sink (json.h), whose runs are the rest
 * of the current chunk; raw bodies use the same runs. */
enum { OUT_OK, OUT_GONE, OUT_TIMEOUT, OUT_TOO_BIG };

struct serve_out {
    struct fa_json_out out;      /* first: out__more gets the serve_out back */
    struct serve *s;
    const struct serve_req *rq;
    struct fa_msg_writer w;
    char *base;                  /* start of the current run (reserved, not committed) */
    uint32_t chunks;             /* chunks in the message */
    uint64_t since;              /* start of the current wait for a chunk */
    int why;                     /* OUT_*: why a run could not be had */
};

/* Reserves the rest of the current chunk as the run. */
static void out__run(struct serve_out *k)
{
    size_t avail = k->w.a->size - k->w.used;

    k->base = fa_msg_reserve(&k->w, avail);   /* cannot fail: it fits */
    k->out.p = k->base;
    k->out.end = k->base + avail;
}

/* The sink's more(): commits the run, and if fewer than `need` bytes are
 * left in the chunk, chains a fresh one, waiting for one to be free.
 * Fails (a Python exception set, k->why saying why) when the message would
 * outgrow the arena, after SERVE_ARENA_MAX_NS of waiting, or when the
 * master is gone. */
static int out__more(struct fa_json_out *o, size_t need)
{
    struct serve_out *k = (struct serve_out *)o;
    struct serve *s = k->s;
    int r;

    fa_msg_commit(&k->w, (size_t)(o->p - k->base));
    if (k->w.a->size - k->w.used < need) {
        if (k->chunks >= s->n_chunks) {
            k->why = OUT_TOO_BIG;
            PyErr_Format(PyExc_MemoryError, "the response is larger than this worker's "
                         "arena (%u chunks of %u bytes)", s->n_chunks, s->chunk_size);
            return -1;
        }
        if ((r = serve__wait_chunk(s, k->rq->h, &k->since, 1)) != 0) {
            k->why = r < 0 ? OUT_GONE : OUT_TIMEOUT;
            PyErr_SetString(PyExc_MemoryError, "no free chunk for the response");
            return -1;
        }
        k->since = 0;
        k->chunks++;
        /* A fresh chunk (the allocation cannot fail now). */
        if ((k->base = fa_msg_reserve(&k->w, k->w.a->size)) == NULL) {
            k->why = OUT_TOO_BIG;
            PyErr_SetString(PyExc_MemoryError, "chunk allocation failed");
            return -1;
        }
        k->out.p = k->base;
        k->out.end = k->base + k->w.a->size;
        return 0;
    }
    out__run(k);
    return 0;
}

static int out__write(struct serve_out *k, const char *p, size_t n)
{
    struct fa_json_out *o = &k->out;

    while (n > 0) {
        size_t room = (size_t)(o->end - o->p);

        if (room == 0) {
            if (out__more(o, 1) < 0)
                return -1;
            room = (size_t)(o->end - o->p);
        }
        if (room > n)
            room = n;
        memcpy(o->p, p, room);
        o->p += room;
        p += room;
        n -= room;
    }
    return 0;
}

/* What a response body is made of: raw bytes, or a value to encode. */
struct serve_body {
    const char *raw;             /* when json == NULL */
    size_t len;
    PyObject *json;              /* borrowed, or NULL */
};

static int serve__send_error(struct serve *s, const struct serve_req *rq, int status);

/* Logs why a JSON body could not be encoded (the pending exception: one
 * line, plus the traceback when the app's code raised it) and clears it. */
static void serve__log_encode_error(struct serve *s, const struct serve_req *rq)
{
    PyObject *type, *value, *tb, *text = NULL, *notes = NULL;

    PyErr_Fetch(&type, &value, &tb);   /* new refs */
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL) {
        text = PyObject_Str(value);                             /* new */
        notes = PyObject_GetAttrString(value, "__notes__");     /* new */
    }
    PyErr_Clear();
    serve__log(s, "route %llu (%.*s %.*s): the response body cannot be encoded as JSON: "
               "%s: %s%s%s: answering 500", (unsigned long long)rq->route_id,
               (int)rq->method_len, rq->method, (int)rq->path_len, rq->path,
               type != NULL ? ((PyTypeObject *)type)->tp_name : "?",
               text != NULL ? PyUnicode_AsUTF8(text) : "?",
               notes != NULL && PyList_Check(notes) && PyList_GET_SIZE(notes) > 0 ? " - " : "",
               notes != NULL && PyList_Check(notes) && PyList_GET_SIZE(notes) > 0 &&
               PyUnicode_Check(PyList_GET_ITEM(notes, 0))
                   ? PyUnicode_AsUTF8(PyList_GET_ITEM(notes, 0)) : "");
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(notes);
    if (tb != NULL) {
        /* Raised by the app's own code (a __json__ method, the default
         * function): its traceback helps. */
        PyErr_Restore(type, value, tb);   /* stolen */
        PyErr_PrintEx(0);
        return;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
}

/* Writes one response message into this slot's arena and queues its
 * descriptor for HTTP worker h. Waits while the arena is full; a wait of
 * SERVE_ARENA_MAX_NS answers 503 instead. A JSON body that cannot be
 * encoded (logged) or outgrows the arena answers 500. Returns the status
 * actually queued, or -1 if the master is gone (or, while stopping, HTTP
 * worker h takes nothing any more). */
static int serve__send(struct serve *s, const struct serve_req *rq, int status,
                       const char *head, size_t hlen, const struct serve_body *body,
                       struct fa_desc *sent)
{
    struct serve_out k;
    struct fa_desc d;
    void *p;
    int r;

    k.out.more = out__more;
    k.s = s;
    k.rq = rq;
    k.since = 0;
    k.chunks = 1;
    k.why = OUT_OK;
    if ((r = serve__wait_chunk(s, rq->h, &k.since, status != 503)) != 0) {
        k.why = r < 0 ? OUT_GONE : OUT_TIMEOUT;
        goto timeout;
    }
    fa_msg_begin(&k.w, &s->arena);   /* cannot fail now */
    if ((p = fa_msg_reserve(&k.w, hlen)) == NULL) {   /* hlen <= chunk_size: checked */
        fa_msg_abort(&k.w);
        return serve__send_error(s, rq, 500);
    }
    memcpy(p, head, hlen);
    fa_msg_commit(&k.w, hlen);
    out__run(&k);
    if (body->json != NULL)
        r = fa_json_encode(s->json, body->json, NULL, &k.out);
    else
        r = out__write(&k, body->raw, body->len);
    if (r < 0) {
        fa_msg_abort(&k.w);
        if (k.why == OUT_OK) {
            serve__log_encode_error(s, rq);
            return serve__send_error(s, rq, 500);
        }
        PyErr_Clear();
        if (k.why == OUT_TOO_BIG) {
            serve__log(s, "route %llu (%.*s %.*s): the response body is larger than this "
                       "worker's arena (%u chunks of %u bytes): answering 500",
                       (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
                       (int)rq->path_len, rq->path, s->n_chunks, s->chunk_size);
            return serve__send_error(s, rq, 500);
        }
        goto timeout;
    }
    fa_msg_commit(&k.w, (size_t)(k.out.p - k.base));
    fa_msg_end(&k.w, rq->h, s->gen, &d);
    d.token = rq->d->token;
    d.gen = s->gen;
    if (serve__push(s, rq->h, &d) < 0)
        return -1;
    serve__stat_add(&s->me->stats.bytes_out, d.len);
    if (sent != NULL)
        *sent = d;
    if (s->cfg->no_batch)
        serve__flush(s);
    return status;

timeout:
    if (k.why == OUT_GONE)
        return -1;
    serve__log(s, "route %llu (%.*s %.*s): no free chunk in this worker's arena for %llu s "
               "(the HTTP workers are not freeing responses): answering 503",
               (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
               (int)rq->path_len, rq->path,
               (unsigned long long)(SERVE_ARENA_MAX_NS / 1000000000ull));
    return serve__send_error(s, rq, 503);
}

static int serve__send_error(struct serve *s, const struct serve_req *rq, int status)
{
    struct serve_body b;

    b.json = NULL;
    if (status == 503) {
        b.raw = serve_body503;
        b.len = sizeof(serve_body503) - 1;
        return serve__send(s, rq, 503, s->head503, s->head503_len, &b, NULL);
    }
    if (status == 504) {
        b.raw = serve_body504;
        b.len = sizeof(serve_body504) - 1;
        return serve__send(s, rq, 504, s->head504, s->head504_len, &b, NULL);
    }
    b.raw = serve_body500;
    b.len = sizeof(serve_body500) - 1;
    return serve__send(s, rq, 500, s->head500, s->head500_len, &b, NULL);
}

/* A header name or value from the app: latin-1 text (1-byte kind), without
 * CR, LF or NUL; a name is a non-empty token (no ':' or whitespace).
 * Returns the bytes (borrowed from the str) or NULL. */
static const char *serve__header_text(PyObject *o, int is_name, Py_ssize_t *len)
{
    /* Bit 1: refused in a name (controls, space, ':', DEL); bit 2: refused
     * in a value (CR, LF, NUL). */
    static const unsigned char bad[256] = {
        [0x00] = 3, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
        [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 3, [0x0b] = 1, [0x0c] = 1, [0x0d] = 3,
        [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
        [0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
        [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, [' '] = 1, [':'] = 1, [0x7f] = 1,
    };
    const unsigned char *p;
    unsigned char mask = is_name ? 1 : 2, acc = 0;
    Py_ssize_t n;

    if (!PyUnicode_Check(o) || PyUnicode_READY(o) < 0 || PyUnicode_KIND(o) != PyUnicode_1BYTE_KIND)
        return NULL;
    p = PyUnicode_1BYTE_DATA(o);
    n = PyUnicode_GET_LENGTH(o);
    if (is_name && n == 0)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        acc |= bad[p[i]];
    if (acc & mask)
        return NULL;
    *len = n;
    return (const char *)p;
}

/* Packs a response head into s->head: [status, [name, value, ...]], or for
 * the start of a stream [status, [...], 1]. Returns its length; 0 when st or
 * hdrs is malformed (*why says how); SIZE_MAX when the headers outgrow a
 * chunk (logged). */
static size_t serve__pack_head(struct serve *s, const struct serve_req *rq, PyObject *st,
                               PyObject *hdrs, int stream, long *status, const char **why)
{
    struct fa_env_out o;
    Py_ssize_t nh;

    if (!PyLong_Check(st) || (*status = PyLong_AsLong(st)) < 100 || *status > 599) {
        PyErr_Clear();
        *why = "status is not an int between 100 and 599";
        return 0;
    }
    if (!PyList_Check(hdrs) && !PyTuple_Check(hdrs)) {
        *why = "headers is not a list of (name, value) tuples";
        return 0;
    }
    o.p = s->head;
    o.end = s->head + s->chunk_size;
    o.overflow = 0;
    nh = PySequence_Fast_GET_SIZE(hdrs);
    fa_env_put_array(&o, stream ? 3 : 2);
    fa_env_put_uint(&o, (uint64_t)*status);
    fa_env_put_array(&o, (uint32_t)(nh * 2));
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(hdrs, i);   /* borrowed */
        PyObject *name, *value, **pair;
        const char *np, *vp;
        Py_ssize_t nl, vl;

        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
            name = PyTuple_GET_ITEM(item, 0);
            value = PyTuple_GET_ITEM(item, 1);
        } else if (PyList_Check(item) && PyList_GET_SIZE(item) == 2) {
            name = PyList_GET_ITEM(item, 0);
            value = PyList_GET_ITEM(item, 1);
        } else {
            *why = "a header is not a (name, value) pair";
            return 0;
        }
        /* The package answers most requests with the same few header
         * tuples: one seen good before is good still. */
        pair = &s->pairs[((uintptr_t)item >> 4) & (SERVE_PAIR_CACHE - 1)];
        if (*pair == item) {
            np = (const char *)PyUnicode_1BYTE_DATA(name);
            nl = PyUnicode_GET_LENGTH(name);
            vp = (const char *)PyUnicode_1BYTE_DATA(value);
            vl = PyUnicode_GET_LENGTH(value);
        } else {
            if ((np = serve__header_text(name, 1, &nl)) == NULL) {
                *why = "a header name is not a latin-1 str token (no ':', whitespace, CR, LF)";
                return 0;
            }
            if ((vp = serve__header_text(value, 0, &vl)) == NULL) {
                *why = "a header value is not a latin-1 str without CR, LF or NUL";
                return 0;
            }
            if (!s->cfg->no_pool && PyTuple_CheckExact(item) && PyUnicode_CheckExact(name) &&
                PyUnicode_CheckExact(value))
                Py_XSETREF(*pair, Py_NewRef(item));
        }
        fa_env_put_str(&o, np, (size_t)nl);
        fa_env_put_str(&o, vp, (size_t)vl);
    }
    if (stream)
        fa_env_put_uint(&o, 1);
    if (o.overflow || nh > UINT32_MAX / 2) {
        serve__log(s, "route %llu (%.*s %.*s): response headers take more than one %u-byte "
                   "chunk: answering 500", (unsigned long long)rq->route_id,
                   (int)rq->method_len, rq->method, (int)rq->path_len, rq->path,
                   s->chunk_size);
        return SIZE_MAX;
    }
    return (size_t)(o.p - s->head);
}

static void serve__log_malformed(struct serve *s, const struct serve_req *rq, const char *what,
                                 const char *why)
{
    serve__log(s, "route %llu (%.*s %.*s): %s (%s): answering 500",
               (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
               (int)rq->path_len, rq->path, what, why);
}

/* Encodes dispatch's result (borrowed) and sends it. Anything malformed is
 * logged and answered 500. *after (borrowed from result) is the 4th item
 * when there is one and it is not None. Returns the status queued or -1
 * (master gone). */
static int serve__respond(struct serve *s, const struct serve_req *rq, PyObject *result,
                          PyObject **after)
{
    PyObject *body;
    struct serve_body b;
    Py_buffer view;
    Py_ssize_t n;
    long status;
    const char *why;
    size_t hlen;
    int rc;

    *after = NULL;
    if (!PyTuple_Check(result) || ((n = PyTuple_GET_SIZE(result)) != 3 && n != 4)) {
        why = "expected a tuple (status, headers, body) or (status, headers, body, after)";
        goto bad;
    }
    hlen = serve__pack_head(s, rq, PyTuple_GET_ITEM(result, 0), PyTuple_GET_ITEM(result, 1), 0,
                            &status, &why);
    if (hlen == 0)
        goto bad;
    if (hlen == SIZE_MAX)
        return serve__send_error(s, rq, 500);
    body = PyTuple_GET_ITEM(result, 2);   /* borrowed */

    /* bytes, bytearray, memoryview: copied as they are. Anything else is
     * a value the encoder writes as JSON straight into the chunks. */
    b.json = NULL;
    view.obj = NULL;
    if (PyBytes_CheckExact(body)) {
        b.raw = PyBytes_AS_STRING(body);
        b.len = (size_t)PyBytes_GET_SIZE(body);
    } else if (PyBytes_Check(body) || PyByteArray_Check(body) || PyMemoryView_Check(body)) {
        if (PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            why = "body is a memoryview that is released or not contiguous";
            goto bad;
        }
        b.raw = view.buf;
        b.len = (size_t)view.len;
    } else {
        b.json = body;
        b.raw = NULL;
        b.len = 0;
    }
    if (b.json == NULL && (hlen + b.len + s->chunk_size - 1) / s->chunk_size > s->n_chunks) {
        serve__log(s, "route %llu (%.*s %.*s): a %zu-byte response cannot fit in this worker's "
                   "arena (%u chunks of %u bytes): answering 500",
                   (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
                   (int)rq->path_len, rq->path, b.len, s->n_chunks, s->chunk_size);
        rc = serve__send_error(s, rq, 500);
    } else {
        rc = serve__send(s, rq, (int)status, s->head, hlen, &b, NULL);
    }
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    if (n == 4 && PyTuple_GET_ITEM(result, 3) != Py_None)
        *after = PyTuple_GET_ITEM(result, 3);
    return rc;

bad:
    serve__log_malformed(s, rq, "dispatch returned a malformed response", why);
    return serve__send_error(s, rq, 500);
}

/* Runs an after-response hook (borrowed), once its response is published
 * and the HTTP worker woken. Its exceptions are logged, never fatal. */
static void serve__after(struct serve *s, const struct serve_req *rq, PyObject *after)
{
    PyObject *r;

    serve__flush(s);
    if ((r = PyObject_CallNoArgs(after)) == NULL) {   /* new */
        char what[256];

        snprintf(what, sizeof(what), "route %llu (%.*s %.*s): the after-response hook raised "
                 "(the response was already sent):", (unsigned long long)rq->route_id,
                 (int)rq->method_len, rq->method, (int)rq->path_len, rq->path);
        serve__print_exception(s, what);
        return;
    }
    Py_DECREF(r);
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */
/* ------------------------------------------------------------------ */

/* Parses the envelope head from the message's iovecs into *e (its strings
 * point into shm or into s->gather, valid until the next call). 0, or -1 if
 * malformed (*why says how). */
static int serve__parse_head(struct serve *s, int niov, struct fa_env *e, const char **why)
{
    size_t have = 0;
    int r;

    r = fa_env_parse(s->iov[0].iov_base, s->iov[0].iov_len, e, why);
    if (r != -2)
        return r;
    /* The head spans chunks (huge headers): gather chunk by chunk into the
     * scratch buffer until it parses. Rare; bounded by the message size. */
    for (int k = 0; k < niov; k++) {
        size_t need = have + s->iov[k].iov_len;

        if (need > s->gather_cap) {
            size_t cap = s->gather_cap ? s->gather_cap : 65536;
            char *g;

            while (cap < need)
                cap *= 2;
            if ((g = realloc(s->gather, cap)) == NULL) {
                *why = "out of memory gathering a head that spans chunks";
                return -1;
            }
            s->gather = g;
            s->gather_cap = cap;
        }
        memcpy(s->gather + have, s->iov[k].iov_base, s->iov[k].iov_len);
        have = need;
        if (k == 0)
            continue;
        r = fa_env_parse(s->gather, have, e, why);
        if (r != -2)
            return r;
    }
    *why = "the head is cut short by the end of the message";
    return -1;
}

/* New reference to the str for a header name, lower-cased, from the cache
 * when it is a common ASCII name; NULL with an exception set. */
static PyObject *serve__hname(struct serve *s, const char *p, uint32_t n)
{
    char low[SERVE_HNAME_MAX];
    uint32_t hash = 2166136261u;
    unsigned hi = 0;
    struct serve_hname *e;
    PyObject *str;

    if (n > SERVE_HNAME_MAX) {
        /* Long names: not cached, lower-cased straight into a new str whose
         * kind matches its content (ASCII or latin-1). */
        Py_UCS1 *dst;

        for (uint32_t i = 0; i < n; i++)
            hi |= (unsigned char)p[i] & 0x80;
        if ((str = PyUnicode_New(n, hi ? 255 : 127)) == NULL)
            return NULL;
        dst = PyUnicode_1BYTE_DATA(str);
        for (uint32_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            dst[i] = (c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + 32) : c;
        }
        return str;
    }
    for (uint32_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        low[i] = (char)c;
        hi |= c & 0x80;
        hash = (hash ^ c) * 16777619u;
    }
    e = &s->hnames[(hash ^ n) & (SERVE_HNAME_CACHE - 1)];
    if (s->cfg->no_pool)
        return PyUnicode_DecodeLatin1(low, n, NULL);
    if (e->str != NULL && e->len == n && memcmp(PyUnicode_1BYTE_DATA(e->str), low, n) == 0)
        return Py_NewRef(e->str);
    str = PyUnicode_DecodeLatin1(low, n, NULL);   /* new */
    if (str != NULL && !hi) {
        Py_XSETREF(e->str, Py_NewRef(str));
        e->len = n;
    }
    return str;
}

static PyObject *serve__method(struct serve *s, const char *p, uint32_t n)
{
    for (size_t i = 0; i < SERVE_N_METHODS && !s->cfg->no_pool; i++) {
        PyObject *m = s->methods[i];
        if ((uint32_t)PyUnicode_GET_LENGTH(m) == n && memcmp(PyUnicode_1BYTE_DATA(m), p, n) == 0)
            return Py_NewRef(m);
    }
    return PyUnicode_DecodeLatin1(p, n, NULL);
}

/* A cheap hash for serve__str: the length and the first and last eight
 * bytes. Collisions only cost a miss (the bytes are compared). */
static inline uint32_t serve__str_hash(const char *p, uint32_t n)
{
    uint64_t a = 0, b = 0, h;

    if (n >= 8) {
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
    } else {
        for (uint32_t i = 0; i < n; i++)
            a = a << 8 | (unsigned char)p[i];
    }
    h = (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full) ^ n;
    return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

/* New reference to the str of latin-1 bytes p[0..n), from the cache when
 * the same bytes came before; NULL with an exception set. */
static PyObject *serve__str(struct serve *s, const char *p, uint32_t n)
{
    struct serve_str *e;
    PyObject *str;

    if (n == 0 || n > SERVE_STR_MAX || s->cfg->no_pool)
        return PyUnicode_DecodeLatin1(p, n, NULL);
    e = &s->strs[serve__str_hash(p, n) & (SERVE_STR_CACHE - 1)];
    if (e->str != NULL && e->len == n && memcmp(PyUnicode_1BYTE_DATA(e->str), p, n) == 0)
        return Py_NewRef(e->str);
    str = PyUnicode_DecodeLatin1(p, n, NULL);   /* new */
    if (str != NULL) {
        Py_XSETREF(e->str, Py_NewRef(str));
        e->len = n;
    }
    return str;
}

/* New reference to the (host, port) tuple, the previous request's when it
 * is the same client (a keep-alive connection); NULL with an exception set. */
static PyObject *serve__client(struct serve *s, const char *p, uint32_t n, uint32_t port)
{
    PyObject *c = s->last_client, *host, *pt;

    if (c != NULL && !s->cfg->no_pool) {
        host = PyTuple_GET_ITEM(c, 0);
        if ((uint32_t)PyUnicode_GET_LENGTH(host) == n &&
            memcmp(PyUnicode_1BYTE_DATA(host), p, n) == 0 &&
            PyLong_AsUnsignedLong(PyTuple_GET_ITEM(c, 1)) == port)
            return Py_NewRef(c);
    }
    if ((host = serve__str(s, p, n)) == NULL)                    /* new */
        return NULL;
    if ((pt = PyLong_FromUnsignedLong(port)) == NULL) {          /* new */
        Py_DECREF(host);
        return NULL;
    }
    if ((c = PyTuple_New(2)) == NULL) {                         /* new */
        Py_DECREF(host);
        Py_DECREF(pt);
        return NULL;
    }
    PyTuple_SET_ITEM(c, 0, host);   /* stolen */
    PyTuple_SET_ITEM(c, 1, pt);     /* stolen */
    Py_XSETREF(s->last_client, Py_NewRef(c));
    return c;
}

/* The body as the handler sees it. Sets *view to the memoryview when it is
 * one (over s->shmbuf). New reference, or NULL with an exception set. */
static PyObject *serve__body(struct serve *s, int niov, size_t head_len, uint32_t total,
                             PyObject **view)
{
    size_t blen = total - head_len, skip = head_len;
    int k = 0;
    PyObject *b;
    char *dst;

    *view = NULL;
    if (blen == 0)
        return Py_NewRef(s->empty_bytes);
    while (k < niov && skip >= s->iov[k].iov_len) {
        skip -= s->iov[k].iov_len;
        k++;
    }
    if (k >= niov) {
        PyErr_SetString(PyExc_ValueError, "body offset beyond the message");
        return NULL;
    }
    if (s->iov[k].iov_len - skip >= blen) {
        if (s->shmbuf == NULL && (s->shmbuf = fa_shmbuf_new(s->cfg->module)) == NULL)
            return NULL;
        fa_shmbuf_arm(s->shmbuf, (const char *)s->iov[k].iov_base + skip, (Py_ssize_t)blen);
        b = PyMemoryView_FromObject(s->shmbuf);   /* new */
        if (b == NULL)
            fa_shmbuf_disarm(s->shmbuf, NULL, 0, 0);
        *view = b;
        return b;
    }
    /* Spread over chunks: one bytes object, gathered. */
    if ((b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)blen)) == NULL)
        return NULL;
    dst = PyBytes_AS_STRING(b);
    for (; k < niov && blen > 0; k++, skip = 0) {
        size_t n = s->iov[k].iov_len - skip;
        if (n > blen)
            n = blen;
        memcpy(dst, (const char *)s->iov[k].iov_base + skip, n);
        dst += n;
        blen -= n;
    }
    return b;
}

/* Ends the handler's use of a shared-memory body (view: stolen; *shmbuf:
 * its exporter, s->shmbuf or a deferred request's) and frees the request
 * chunks, now or, when the app kept a view, when the last view goes. */
static void serve__release_body(struct serve *s, const struct serve_req *rq, PyObject *view,
                                PyObject **shmbuf)
{
    uint32_t arena = fa_seg_http_arena(s->seg, rq->h);

    if (Py_REFCNT(view) > 1) {
        /* The app holds the memoryview: invalidate it for the app. A
         * BufferError means it exported it further: handled below. */
        PyObject *r = PyObject_CallMethodNoArgs(view, s->str_release);   /* new */
        if (r == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_BufferError))
                serve__print_exception(s, "memoryview.release() failed:");
            else
                PyErr_Clear();
        }
        Py_XDECREF(r);
    }
    Py_DECREF(view);
    if (fa_shmbuf_disarm(*shmbuf, s->seg, arena, rq->d->chunk)) {
        /* A view (a slice, or an export of the memoryview) outlives the
         * call: the exporter frees the chunks when it goes. */
        s->kept_views++;
        if ((s->kept_views & (s->kept_views - 1)) == 0)
            serve__log(s, "route %llu (%.*s %.*s): the handler kept a view of the request "
                       "body after returning (%llu times so far); its chunks stay held "
                       "until the view is released (copy with bytes(body) instead)",
                       (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
                       (int)rq->path_len, rq->path, (unsigned long long)s->kept_views);
        Py_CLEAR(*shmbuf);
        return;
    }
    /* The idle exporter is reused for the next request, unless the app
     * kept memoryview.obj (or pooling is off). A deferred request's goes
     * back to s->shmbuf if that slot is empty. */
    if (Py_REFCNT(*shmbuf) > 1 || s->cfg->no_pool) {
        Py_CLEAR(*shmbuf);
    } else if (shmbuf != &s->shmbuf) {
        if (s->shmbuf == NULL)
            s->shmbuf = *shmbuf;
        else
            Py_DECREF(*shmbuf);
        *shmbuf = NULL;
    }
    fa_msg_free(s->seg, arena, rq->d->chunk);
}

/* Ends the request's use of the lazy headers, before its chunks are freed:
 * built now if the app kept them (then the object is the app's: a new one
 * serves the next request). */
static void serve__hdrs_end(struct serve *s)
{
    int r;

    if (s->hdrs == NULL)
        return;
    if ((r = fa_hdrs_disarm(s->hdrs)) < 0)
        serve__print_exception(s, "building the request headers that the handler kept failed "
                               "(they read as empty):");
    if (r != 0 || s->cfg->no_pool)
        Py_CLEAR(s->hdrs);
}

/* ------------------------------------------------------------------ */
/* Deferred requests and streams                                        */
/* ------------------------------------------------------------------ */

static inline uint32_t serve__rid(const struct serve *s, const struct serve_defer *e)
{
    return (uint32_t)(e - s->defers) | (uint32_t)e->seq << 16;
}

/* The open deferred request `rid` names: 1 and *e, 0 if it is not open
 * (finished, timed out, never was), -1 with TypeError if rid is no int. */
static int serve__find(struct serve *s, PyObject *rid, struct serve_defer **e)
{
    unsigned long v;
    struct serve_defer *d;

    if (!PyLong_Check(rid)) {
        PyErr_Format(PyExc_TypeError, "rid must be an int (from defer()), not %.80s",
                     Py_TYPE(rid)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLong(rid);
    if (v == (unsigned long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if ((v & 0xffff) >= s->conc)
        return 0;
    d = &s->defers[v & 0xffff];
    if (d->state == DEF_FREE || d->seq != (uint16_t)(v >> 16))
        return 0;
    *e = d;
    return 1;
}

/* Writes our own doorbell: the loop is sleeping (in loop_wait) and should
 * look at its rings again. */
static void serve__wake_self(struct serve *s)
{
    fa_doorbell_ring(&s->me->sleeping, s->cfg->efd);
}

/* Closes a deferred request whose last message was queued (status: what it
 * answered, for the counters; -1 if nothing could be). Its resources go back
 * unless dispatch still runs for it (serve__deferred then does it). */
static void serve__finish(struct serve *s, struct serve_defer *e, int status)
{
    uint32_t idx = (uint32_t)(e - s->defers);

    if (status > 0) {
        serve__stat_add(&s->me->stats.requests, 1);
        if (status >= 500)
            serve__stat_add(&s->me->stats.errors, 1);
    }
    if (!e->in_call) {
        if (e->view != NULL) {
            PyObject *view = e->view;

            e->view = NULL;
            serve__release_body(s, &e->rq, view, &e->shmbuf);
        } else if (e->chunks_held) {
            fa_msg_free(s->seg, fa_seg_http_arena(s->seg, e->rq.h), e->d.chunk);
        }
        e->chunks_held = 0;
        Py_CLEAR(e->method);
        Py_CLEAR(e->path);
    }
    Py_CLEAR(e->on_disconnect);
    e->state = DEF_FREE;
    e->seq++;
    e->next_free = s->free_head;
    s->free_head = idx;
    if (s->n_open-- == s->conc)
        serve__wake_self(s);   /* the loop may take requests again */
}

/* The client of e is gone (a notice from its HTTP worker) or its deadline
 * passed: on_disconnect, once. It may finish e itself. */
static void serve__gone(struct serve *s, struct serve_defer *e)
{
    PyObject *cb, *r;

    if (e->gone)
        return;
    e->gone = 1;
    if ((cb = e->on_disconnect) == NULL)
        return;
    e->on_disconnect = NULL;
    if ((r = PyObject_CallNoArgs(cb)) == NULL)
        serve__print_exception(s, "on_disconnect raised:");
    Py_XDECREF(r);
    Py_DECREF(cb);
}

/* A disconnect notice from HTTP worker h (PROTOCOL.md): a request we do not
 * have open (answered already, or sent to a predecessor) is ignored. */
static void serve__notice(struct serve *s, uint32_t h, const struct fa_desc *d)
{
    if (d->gen != s->gen || s->n_open == 0)
        return;
    for (uint32_t i = 0; i < s->conc; i++) {
        struct serve_defer *e = &s->defers[i];

        if (e->state != DEF_FREE && e->rq.h == h && e->d.token == d->token) {
            serve__gone(s, e);
            return;
        }
    }
}

/* Reads the notices queued in the request rings without popping anything
 * (the requests before them must stay in order): a stream sent from inside
 * dispatch, or a worker at its concurrency limit, learns that its client is
 * gone. Between head and tail the slots are the consumer's (ring.h). The
 * notice is popped later and then ignored. */
static void serve__peek_notices(struct serve *s)
{
    for (uint32_t h = 0; h < s->n_http; h++) {
        struct fa_ring *r = &s->req[h];
        uint32_t head = atomic_load_explicit(&r->sh->head, memory_order_relaxed);
        uint32_t tail = atomic_load_explicit(&r->sh->tail, memory_order_acquire);
        uint32_t i = s->peeked[h];

        if ((int32_t)(i - head) < 0 || (int32_t)(tail - i) < 0)
            i = head;
        for (; i != tail; i++) {
            struct fa_desc d = r->sh->slots[i & r->mask];

            if (d.chunk == FA_CHUNK_NONE && d.len == 0)
                serve__notice(s, h, &d);
        }
        s->peeked[h] = tail;
    }
}

/* Forgets the parts of e's stream that the HTTP worker has freed, oldest
 * first. A part counts as unsent while its first chunk is SENT to e's HTTP
 * worker by this generation; a chunk freed and already reused for another
 * message to the same worker looks unsent a little longer (conservative). */
static void serve__stream_prune(struct serve *s, struct serve_defer *e)
{
    const uint32_t unsent = FA_CHUNK_WORD(FA_CHUNK_SENT, e->rq.h, s->gen);

    while (e->parts > 0) {
        uint32_t i = e->part_head % SERVE_STREAM_PARTS;
        const struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(s->seg, s->arena.id,
                                                             e->part_chunk[i]);

        if (atomic_load_explicit(&m->state, memory_order_acquire) == unsent)
            break;
        e->part_chunks -= e->part_n[i];
        e->part_head++;
        e->parts--;
    }
}

static int serve__stream_room(struct serve *s, struct serve_defer *e, uint32_t need)
{
    serve__stream_prune(s, e);
    return e->parts == 0 ||
           (e->parts < SERVE_STREAM_PARTS && e->part_chunks + need <= SERVE_STREAM_CHUNKS);
}

/* Writes one message of e's stream (the start: head packed in s->head; a
 * part: a 2-byte head and data) and remembers it for backpressure. Returns
 * 200 when it was queued, another status when the worker had to answer an
 * error instead (logged: the stream is over), -1 if the master is gone. */
static int serve__stream_msg(struct serve *s, struct serve_defer *e, const char *head,
                             size_t hlen, const char *data, size_t len)
{
    struct serve_body b = {data, len, NULL};
    struct fa_desc d;
    int r = serve__send(s, &e->rq, 200, head, hlen, &b, &d);

    if (r == 200) {
        uint32_t i = (e->part_head + e->parts) % SERVE_STREAM_PARTS, n;

        if (e->parts == SERVE_STREAM_PARTS) {   /* a forced send (abort, last part) */
            e->part_chunks -= e->part_n[e->part_head % SERVE_STREAM_PARTS];
            e->part_head++;
            e->parts--;
            i = (e->part_head + e->parts) % SERVE_STREAM_PARTS;
        }
        n = (d.len + s->chunk_size - 1) / s->chunk_size;
        e->part_chunk[i] = d.chunk;
        e->part_n[i] = n;
        e->part_chunks += n;
        e->parts++;
    }
    if (r < 0)
        s->fatal = 1;
    return r;
}

/* Ends e with an error: 500 (or 504) if nothing was sent, else the stream
 * is cut. */
static void serve__fail(struct serve *s, struct serve_defer *e, int status)
{
    int r;

    if (e->state == DEF_STREAM)
        r = serve__stream_msg(s, e, serve_head_abort, sizeof(serve_head_abort), NULL, 0) < 0
                ? -1 : status;
    else
        r = serve__send_error(s, &e->rq, status);
    if (r < 0)
        s->fatal = 1;
    serve__finish(s, e, r);
}

/* Deferred requests open longer than the deadline (FASTERAPI_TIMEOUT) are
 * answered 504 (a stream is cut), and their on_disconnect called so the app
 * stops working on them. Checked every SERVE_SCAN_NS at most. */
static void serve__deadlines(struct serve *s)
{
    uint64_t now;

    if (s->cfg->timeout_ns == 0 || s->n_open == 0)
        return;
    now = serve__now_ns();
    if (now < s->next_scan_ns)
        return;
    s->next_scan_ns = now + SERVE_SCAN_NS;
    for (uint32_t i = 0; i < s->conc; i++) {
        struct serve_defer *e = &s->defers[i];
        PyObject *cb, *r;

        if (e->state == DEF_FREE || e->in_call || now - e->t0 <= s->cfg->timeout_ns)
            continue;
        serve__log(s, "route %llu (%.*s %.*s): open for %.1f s, past --timeout: %s",
                   (unsigned long long)e->rq.route_id, (int)e->rq.method_len, e->rq.method,
                   (int)e->rq.path_len, e->rq.path, (double)(now - e->t0) / 1e9,
                   e->state == DEF_STREAM ? "cutting its stream" : "answering 504");
        cb = e->on_disconnect;
        e->on_disconnect = NULL;
        e->gone = 1;
        serve__fail(s, e, 504);
        if (cb != NULL) {
            if ((r = PyObject_CallNoArgs(cb)) == NULL)
                serve__print_exception(s, "on_disconnect raised:");
            Py_XDECREF(r);
            Py_DECREF(cb);
        }
    }
    serve__flush(s);
}

/* dispatch returned for a request it deferred (s->calling_defer). If the
 * request is still open, its resources move to the deferred entry: the
 * body view and the request chunks, the method and path strings; the lazy
 * headers are built if the app holds them. If it was already answered
 * during the call, they are released as for any request. Returns 0 (the
 * counters are kept by serve__finish) or -1 if the master is gone. */
static int serve__deferred(struct serve *s, struct serve_req *rq, PyObject **args,
                           PyObject *view, PyObject *result)
{
    struct serve_defer *e = &s->defers[s->calling_defer];

    if (e->state != DEF_FREE && (result == NULL || result != Py_None)) {
        if (result == NULL)
            serve__print_exception(s, "dispatch raised after defer() (answering 500):");
        else
            serve__log(s, "route %llu (%.*s %.*s): dispatch deferred the request and returned "
                       "a result anyway (it must return None): answering 500",
                       (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
                       (int)rq->path_len, rq->path);
        serve__fail(s, e, 500);
    }
    PyErr_Clear();
    Py_XDECREF(result);
    Py_CLEAR(args[0]);
    for (int i = 3; i < 7; i++)
        Py_CLEAR(args[i]);
    Py_CLEAR(args[8]);
    serve__hdrs_end(s);
    if (e->state == DEF_FREE) {
        /* Answered during the call: the request ends here. */
        if (view != NULL) {
            args[7] = NULL;
            serve__release_body(s, rq, view, &s->shmbuf);
        } else {
            Py_CLEAR(args[7]);
            fa_msg_free(s->seg, fa_seg_http_arena(s->seg, rq->h), rq->d->chunk);
        }
        Py_DECREF(args[1]);
        Py_DECREF(args[2]);
        return s->fatal ? -1 : 0;
    }
    e->in_call = 0;
    e->method = args[1];   /* the references move: rq->method/path point into them */
    e->path = args[2];
    if (view != NULL) {
        e->view = view;    /* args[7] */
        e->shmbuf = s->shmbuf;
        s->shmbuf = NULL;
        e->chunks_held = 1;
    } else {
        /* A bytes body (or none): nothing points into the chunks any more. */
        Py_CLEAR(args[7]);
        fa_msg_free(s->seg, fa_seg_http_arena(s->seg, rq->h), rq->d->chunk);
        e->chunks_held = 0;
    }
    return s->fatal ? -1 : 0;
}

/* Serves one validated request. Returns the response status, or -1 if the
 * master (or, while stopping, the HTTP worker) is gone. The request chunks are freed (or handed over) on every
 * path. */
static int serve__call(struct serve *s, struct serve_req *rq, int niov)
{
    struct fa_env env;
    const unsigned char *it;
    const char *p;
    uint32_t n;
    PyObject *stack[10] = {NULL};      /* stack[0]: room for PY_VECTORCALL_ARGUMENTS_OFFSET */
    PyObject **args = stack + 1;
    PyObject *view = NULL, *result = NULL, *after = NULL, *t;
    const char *why = NULL;
    int status;

    if (serve__parse_head(s, niov, &env, &why) < 0)
        goto bad_envelope;
    rq->route_id = env.route_id;
    rq->flags = env.flags;
    /* For --timeout: the master reads which route runs (layout.h, fa_current_sh). */
    atomic_store_explicit(&s->me->current.route_id, (uint32_t)env.route_id, memory_order_relaxed);
    rq->method = env.method;
    rq->method_len = env.method_len;
    rq->path = env.path;
    rq->path_len = env.path_len;

    /* The arguments: each a new reference, released below or at `fail`. */
    if ((args[0] = PyLong_FromUnsignedLongLong(rq->route_id)) == NULL ||
        (args[1] = serve__method(s, rq->method, rq->method_len)) == NULL ||
        (args[2] = serve__str(s, rq->path, rq->path_len)) == NULL)
        goto pyerr;
    /* From here on the log lines read method and path from the str objects
     * (1-byte kind: decoded from latin-1), kept until the response is sent:
     * the request chunks are freed before that. */
    rq->method = (const char *)PyUnicode_1BYTE_DATA(args[1]);
    rq->path = (const char *)PyUnicode_1BYTE_DATA(args[2]);
    if ((args[3] = serve__str(s, env.query, env.query_len)) == NULL ||
        (args[4] = PyTuple_New(env.n_params)) == NULL)
        goto pyerr;
    it = env.params;
    for (uint32_t i = 0; i < env.n_params; i++) {
        it = fa_env_str(&env, it, &p, &n);
        if ((t = PyUnicode_DecodeLatin1(p, n, NULL)) == NULL)
            goto pyerr;
        PyTuple_SET_ITEM(args[4], i, t);   /* stolen */
    }
    if (s->cfg->lazy_headers) {
        if (s->hdrs == NULL && (s->hdrs = fa_hdrs_new(fa_pymod_hdrs_type(s->cfg->module))) == NULL)
            goto pyerr;
        fa_hdrs_arm(s->hdrs, &env);
        args[5] = Py_NewRef(s->hdrs);
    } else if ((args[5] = PyList_New(env.n_headers)) == NULL) {
        goto pyerr;
    }
    it = env.headers;
    for (uint32_t i = 0; i < env.n_headers && !s->cfg->lazy_headers; i++) {
        const char *vp;
        uint32_t vn;
        PyObject *name, *value;

        it = fa_env_str(&env, it, &p, &n);
        it = fa_env_str(&env, it, &vp, &vn);
        if ((name = serve__hname(s, p, n)) == NULL)
            goto pyerr;
        if ((value = serve__str(s, vp, vn)) == NULL) {
            Py_DECREF(name);
            goto pyerr;
        }
        if ((t = PyTuple_New(2)) == NULL) {
            Py_DECREF(name);
            Py_DECREF(value);
            goto pyerr;
        }
        PyTuple_SET_ITEM(t, 0, name);      /* stolen */
        PyTuple_SET_ITEM(t, 1, value);     /* stolen */
        PyList_SET_ITEM(args[5], i, t);    /* stolen */
    }
    if ((args[6] = serve__client(s, env.host, env.host_len, env.port)) == NULL)
        goto pyerr;
    if ((args[7] = serve__body(s, niov, env.head_len, rq->d->len, &view)) == NULL)
        goto pyerr;
    serve__stat_add(&s->me->stats.bytes_in, rq->d->len);

    if ((args[8] = PyLong_FromUnsignedLong(env.flags)) == NULL)   /* small ints: cached */
        goto pyerr;

    s->calling = rq;
    s->calling_defer = -1;
    result = PyObject_Vectorcall(s->cfg->dispatch, args, 9 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                 NULL);    /* new */
    s->calling = NULL;
    if (s->calling_defer >= 0)
        return serve__deferred(s, rq, args, view, result);
    if (result == NULL)
        serve__print_exception(s, "dispatch raised (answering 500):");
    Py_CLEAR(args[0]);
    for (int i = 3; i < 7; i++)
        Py_CLEAR(args[i]);
    Py_CLEAR(args[8]);
    /* The response is written while the request body is still valid: a
     * body that is a view of it is copied from where it lies. */
    if (result == NULL) {
        status = serve__send_error(s, rq, 500);
    } else {
        status = serve__respond(s, rq, result, &after);
        /* The result goes first: a body that was a slice of the request
         * body must not count as a view the handler kept. */
        Py_XINCREF(after);
        Py_CLEAR(result);
    }
    serve__hdrs_end(s);
    if (view != NULL) {
        args[7] = NULL;                    /* the reference goes to release_body */
        serve__release_body(s, rq, view, &s->shmbuf);
    } else {
        Py_CLEAR(args[7]);                 /* a bytes body */
        fa_msg_free(s->seg, fa_seg_http_arena(s->seg, rq->h), rq->d->chunk);
    }
    if (status >= 0 && after != NULL)
        serve__after(s, rq, after);
    Py_XDECREF(after);
    Py_DECREF(args[1]);
    Py_DECREF(args[2]);
    return status;

pyerr:
    serve__print_exception(s, "building the handler's arguments failed (answering 500):");
    goto fail;
bad_envelope:
    serve__log(s, "malformed request envelope from HTTP worker %u (%u bytes): %s: answering 500",
               rq->h, rq->d->len, why);
fail:
    /* The body (args[7]) is built last and nothing fails after it, so no
     * view exists here. */
    Py_CLEAR(args[5]);
    serve__hdrs_end(s);
    fa_msg_free(s->seg, fa_seg_http_arena(s->seg, rq->h), rq->d->chunk);
    if (args[2] == NULL)
        rq->method_len = rq->path_len = 0;   /* they pointed into the freed chunks */
    status = serve__send_error(s, rq, 500);
    for (int i = 0; i < 9; i++)
        Py_CLEAR(args[i]);
    return status;
}

/* Handles one popped descriptor from HTTP worker h. 0, or -1 if the master
 * is gone (or, while stopping, the HTTP worker). Never inlined: one symbol
 * per request for profilers (valgrind --tool=callgrind
 * --toggle-collect=serve__one counts a request's instructions exactly). */
static __attribute__((noinline)) int serve__one(struct serve *s, uint32_t h, const struct fa_desc *d, uint32_t *stale)
{
    struct serve_req rq = {.h = h, .d = d};
    uint64_t t0, t1;
    int niov, status;

    if (d->chunk == FA_CHUNK_NONE && d->len == 0) {
        serve__notice(s, h, d);
        return 0;
    }
    if (d->gen != s->gen) {
        /* Sent to an earlier incarnation of this slot: the HTTP worker fails
         * it and reclaims its chunks (spec/ring.pml, Python proctype). */
        (*stale)++;
        return 0;
    }
    niov = fa_msg_iov(s->seg, fa_seg_http_arena(s->seg, h), s->self, d, s->iov, (int)s->n_chunks);
    if (niov <= 0) {
        serve__log(s, "invalid request descriptor from HTTP worker %u (chunk %u, %u bytes, "
                   "token %u): dropped", h, d->chunk, d->len, d->token);
        return 0;
    }
    t0 = serve__now_ns();
    /* The request running now, for the master's --timeout: start_ns last
     * (release), 0 again when the handler is done. */
    atomic_store_explicit(&s->me->current.http, h, memory_order_relaxed);
    atomic_store_explicit(&s->me->current.token, d->token, memory_order_relaxed);
    atomic_store_explicit(&s->me->current.start_ns, t0, memory_order_release);
    status = serve__call(s, &rq, niov);
    atomic_store_explicit(&s->me->current.start_ns, 0, memory_order_relaxed);
    if (status < 0)
        return -1;
    t1 = serve__now_ns();
    if (status > 0) {   /* 0: deferred (serve__finish counts it) */
        serve__stat_add(&s->me->stats.requests, 1);
        if (status >= 500)
            serve__stat_add(&s->me->stats.errors, 1);
    }
    serve__stat_add(&s->me->stats.busy_ns, t1 - t0);
    /* A long batch publishes what it has so far instead of holding every
     * response back until its end. */
    if (t1 - s->last_flush_ns > SERVE_FLUSH_NS) {
        serve__flush(s);
        s->last_flush_ns = t1;
    }
    return 0;
}

/* Requests this loop would take now: none while --py-concurrency requests
 * are open (they wait in the rings). */
static int serve__any_work(struct serve *s)
{
    if (s->n_open >= s->conc)
        return 0;
    for (uint32_t h = 0; h < s->n_http; h++)
        if (!fa_ring_empty(&s->req[h]))
            return 1;
    return 0;
}

/* One round over every request ring. Returns descriptors popped, or -1 if
 * the master is gone. */
static int serve__round(struct serve *s)
{
    int got = 0;

    for (uint32_t h = 0; h < s->n_http; h++) {
        /* Each descriptor may become a deferred request: take no more than
         * may still be opened. */
        uint32_t max = s->conc - s->n_open < s->batch ? s->conc - s->n_open : s->batch;
        uint32_t n, stale = 0;

        if (max == 0) {
            serve__peek_notices(s);
            break;
        }
        if ((n = fa_ring_peek(&s->req[h], s->descs, max)) == 0)
            continue;
        got += (int)n;
        s->last_flush_ns = serve__now_ns();
        /* Each descriptor is released as it is taken: the ones not started
         * yet stay past head, so that if this process dies the HTTP worker
         * sends them to another Python worker instead of failing them. */
        for (uint32_t i = 0; i < n; i++) {
            fa_ring_release(&s->req[h], 1);
            if (serve__one(s, h, &s->descs[i], &stale) < 0)
                return -1;
        }
        /* A producer waiting for space can go on. */
        if (fa_ring_space_wanted(&s->req[h]))
            serve__ring_http(s, h);
        serve__flush(s);
        if (stale)
            serve__log(s, "dropped %u request(s) from HTTP worker %u sent to an earlier "
                       "generation of this slot", stale, h);
    }
    return got;
}

/* ------------------------------------------------------------------ */
/* _fasterapi's functions for deferred requests (PROTOCOL.md)           */
/* ------------------------------------------------------------------ */

static struct serve *serve__need(void)
{
    if (serve__active == NULL)
        PyErr_SetString(PyExc_RuntimeError, "no request is being served in this process "
                        "(deferred responses exist in the worker's serve loop only)");
    return serve__active;
}

/* After a call that may have seen the master go: raise so the package
 * unwinds; the loop then ends. */
static PyObject *serve__fatal_error(void)
{
    PyErr_SetString(PyExc_RuntimeError, "the master process is gone: the worker is exiting");
    return NULL;
}

PyDoc_STRVAR(defer_doc,
"defer(on_disconnect=None) -> int\n\n"
"Inside dispatch: the request will be answered later (respond, start/send,\n"
"abort) from the serve loop's thread. Returns its id (rid).");

static PyObject *serve_py_defer(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"on_disconnect", NULL};
    PyObject *cb = Py_None;
    struct serve *s;
    struct serve_defer *e;
    uint32_t idx;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:defer", kwlist, &cb))
        return NULL;
    if ((s = serve__need()) == NULL)
        return NULL;
    if (cb != Py_None && !PyCallable_Check(cb))
        return PyErr_Format(PyExc_TypeError, "on_disconnect must be callable or None");
    if (s->calling == NULL)
        return PyErr_Format(PyExc_RuntimeError, "defer() is possible only while dispatch runs "
                            "for a request");
    if (s->calling_defer >= 0)
        return PyErr_Format(PyExc_RuntimeError, "defer() was already called for this request");
    if ((idx = s->free_head) == UINT32_MAX)   /* the round takes no more than fit */
        return PyErr_Format(PyExc_RuntimeError, "%u requests are deferred already "
                            "(--py-concurrency)", s->conc);
    e = &s->defers[idx];
    s->free_head = e->next_free;
    s->n_open++;
    e->rq = *s->calling;
    e->d = *s->calling->d;
    e->rq.d = &e->d;
    e->state = DEF_OPEN;
    e->gone = 0;
    e->in_call = 1;
    e->last_status = 0;
    e->t0 = serve__now_ns();
    e->method = e->path = e->view = e->shmbuf = NULL;
    e->chunks_held = 0;
    e->on_disconnect = cb == Py_None ? NULL : Py_NewRef(cb);
    e->part_head = e->parts = e->part_chunks = 0;
    s->calling_defer = (int32_t)idx;
    return PyLong_FromUnsignedLong(serve__rid(s, e));
}

PyDoc_STRVAR(respond_doc,
"respond(rid, result) -> None\n\n"
"Answers a deferred request with a result as dispatch returns one; ignored\n"
"if the request is no longer open.");

static PyObject *serve_py_respond(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    struct serve *s;
    struct serve_defer *e;
    struct serve_req rq;
    PyObject *after, *method, *path;
    int r;

    (void)mod;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "respond() takes rid and result");
    if ((s = serve__need()) == NULL || (r = serve__find(s, args[0], &e)) < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_NONE;
    if (e->state == DEF_STREAM)
        return PyErr_Format(PyExc_ValueError, "request %lu started a stream: end it with "
                            "send(rid, data, more=False) or abort(rid)",
                            (unsigned long)serve__rid(s, e));
    r = serve__respond(s, &e->rq, args[1], &after);
    /* after() runs once the response is published, with the request closed
     * (so that it cannot answer twice); its log lines need the strings. */
    Py_XINCREF(after);
    rq = e->rq;
    method = Py_XNewRef(e->method);
    path = Py_XNewRef(e->path);
    serve__finish(s, e, r);
    serve__flush(s);
    if (r >= 0 && after != NULL)
        serve__after(s, &rq, after);
    Py_XDECREF(after);
    Py_XDECREF(method);
    Py_XDECREF(path);
    if (r < 0 || s->fatal)
        return serve__fatal_error();
    Py_RETURN_NONE;
}

PyDoc_STRVAR(start_doc,
"start(rid, status, headers) -> None\n\n"
"Starts a streamed response to a deferred request; its body follows with send().");

static PyObject *serve_py_start(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    struct serve *s;
    struct serve_defer *e;
    const char *why = NULL;
    long status;
    size_t hlen;
    int r;

    (void)mod;
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "start() takes rid, status and headers");
    if ((s = serve__need()) == NULL || (r = serve__find(s, args[0], &e)) < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_NONE;
    if (e->state == DEF_STREAM)
        return PyErr_Format(PyExc_ValueError, "request %lu: the stream was started already",
                            (unsigned long)serve__rid(s, e));
    hlen = serve__pack_head(s, &e->rq, args[1], args[2], 1, &status, &why);
    if (hlen == 0)
        return PyErr_Format(PyExc_ValueError, "start(): %s", why);
    if (hlen == SIZE_MAX)
        return PyErr_Format(PyExc_ValueError, "start(): the headers take more than one "
                            "%u-byte chunk", s->chunk_size);
    r = serve__stream_msg(s, e, s->head, hlen, NULL, 0);
    if (r < 0)
        return serve__fatal_error();
    if (r != 200) {   /* the arena stayed full: an error response went instead */
        serve__finish(s, e, r);
    } else if (e->rq.flags & 2) {
        /* HEAD: the head is the whole answer. The request ends now, so the
         * app's next send() returns False, as for a client gone. */
        r = serve__stream_msg(s, e, serve_head_last, sizeof(serve_head_last), NULL, 0);
        serve__finish(s, e, r < 0 ? -1 : (int)status);
        if (r < 0)
            return serve__fatal_error();
    } else {
        e->state = DEF_STREAM;
        e->last_status = (int)status;
    }
    serve__flush(s);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(send_doc,
"send(rid, data, more=True, block=True) -> bool\n\n"
"Sends a part of a streamed response (more=False: the last one). False when\n"
"nothing was sent: the client is gone (see disconnected()), or block=False\n"
"and the stream has too many parts the HTTP worker has not sent yet.");

static PyObject *serve_py_send(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"rid", "data", "more", "block", NULL};
    PyObject *rid, *data;
    int more = 1, block = 1, r;
    struct serve *s;
    struct serve_defer *e;
    Py_buffer buf;
    uint32_t need;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|pp:send", kwlist, &rid, &data, &more, &block))
        return NULL;
    if ((s = serve__need()) == NULL || (r = serve__find(s, rid, &e)) < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_FALSE;
    if (e->state != DEF_STREAM)
        return PyErr_Format(PyExc_ValueError, "send(): request %lu has no stream: call "
                            "start(rid, status, headers) first", (unsigned long)serve__rid(s, e));
    if (PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    if ((size_t)buf.len + sizeof(serve_head_more) > (size_t)s->n_chunks * s->chunk_size / 2) {
        PyBuffer_Release(&buf);
        return PyErr_Format(PyExc_ValueError, "send(): a %zd-byte part is more than half of "
                            "this worker's arena: send smaller parts", buf.len);
    }
    need = (uint32_t)((buf.len + sizeof(serve_head_more) + s->chunk_size - 1) / s->chunk_size);
    for (;;) {
        serve__peek_notices(s);
        if (serve__find(s, rid, &e) != 1 || e->gone)
            break;
        if (serve__stream_room(s, e, need))
            break;
        if (!block) {
            PyBuffer_Release(&buf);
            Py_RETURN_FALSE;
        }
        serve__flush(s);
        if (serve__nap(s, SERVE_STREAM_NAP_NS) < 0) {
            PyBuffer_Release(&buf);
            s->fatal = 1;
            return serve__fatal_error();
        }
    }
    if (serve__find(s, rid, &e) != 1) {   /* on_disconnect ended it */
        PyBuffer_Release(&buf);
        Py_RETURN_FALSE;
    }
    if (e->gone) {
        /* The client is gone: nothing is sent, but the last part still
         * ends the request (the HTTP worker keeps its token until then). */
        PyBuffer_Release(&buf);
        if (!more) {
            r = serve__stream_msg(s, e, serve_head_last, sizeof(serve_head_last), NULL, 0);
            serve__finish(s, e, r < 0 ? -1 : e->last_status);
            serve__flush(s);
        }
        if (s->fatal)
            return serve__fatal_error();
        Py_RETURN_FALSE;
    }
    r = serve__stream_msg(s, e, more ? serve_head_more : serve_head_last, sizeof(serve_head_more),
                          buf.buf, (size_t)buf.len);
    PyBuffer_Release(&buf);
    if (r < 0)
        return serve__fatal_error();
    if (r != 200)
        serve__finish(s, e, r);    /* an error went instead: the stream is over */
    else if (!more)
        serve__finish(s, e, e->last_status);
    serve__flush(s);
    if (r != 200)
        Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(abort_doc,
"abort(rid) -> None\n\n"
"Ends a deferred request that failed: 500 if nothing was sent, else the\n"
"stream is cut (the connection closes).");

static PyObject *serve_py_abort(PyObject *mod, PyObject *rid)
{
    struct serve *s;
    struct serve_defer *e;
    int r;

    (void)mod;
    if ((s = serve__need()) == NULL || (r = serve__find(s, rid, &e)) < 0)
        return NULL;
    if (r == 1) {
        serve__fail(s, e, 500);
        serve__flush(s);
        if (s->fatal)
            return serve__fatal_error();
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(writable_doc,
"writable(rid) -> bool\n\nWhether send(rid, ...) would go through now.");

static PyObject *serve_py_writable(PyObject *mod, PyObject *rid)
{
    struct serve *s;
    struct serve_defer *e;
    int r;

    (void)mod;
    if ((s = serve__need()) == NULL || (r = serve__find(s, rid, &e)) < 0)
        return NULL;
    serve__peek_notices(s);
    if (r == 1 && serve__find(s, rid, &e) == 1 && !e->gone &&
        (e->state != DEF_STREAM || serve__stream_room(s, e, 1)))
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

PyDoc_STRVAR(disconnected_doc,
"disconnected(rid) -> bool\n\n"
"Whether the client of the request is gone (or it timed out, or it is over).");

static PyObject *serve_py_disconnected(PyObject *mod, PyObject *rid)
{
    struct serve *s;
    struct serve_defer *e;
    int r;

    (void)mod;
    if ((s = serve__need()) == NULL || (r = serve__find(s, rid, &e)) < 0)
        return NULL;
    return PyBool_FromLong(r == 0 || e->gone);
}

static PyObject *serve_py_pending(PyObject *mod, PyObject *unused)
{
    struct serve *s;

    (void)mod;
    (void)unused;
    if ((s = serve__need()) == NULL)
        return NULL;
    return PyLong_FromUnsignedLong(s->n_open);
}

static PyObject *serve_py_concurrency(PyObject *mod, PyObject *unused)
{
    struct serve *s;

    (void)mod;
    (void)unused;
    if ((s = serve__need()) == NULL)
        return NULL;
    return PyLong_FromUnsignedLong(s->conc);
}

static PyObject *serve_py_wake_loop(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    if (serve__active != NULL)
        serve__active->loop_busy = 1;
    Py_RETURN_NONE;
}

PyMethodDef fa_serve_methods[] = {
    {"defer", (PyCFunction)(void (*)(void))serve_py_defer, METH_VARARGS | METH_KEYWORDS, defer_doc},
    {"respond", (PyCFunction)(void (*)(void))serve_py_respond, METH_FASTCALL, respond_doc},
    {"start", (PyCFunction)(void (*)(void))serve_py_start, METH_FASTCALL, start_doc},
    {"send", (PyCFunction)(void (*)(void))serve_py_send, METH_VARARGS | METH_KEYWORDS, send_doc},
    {"abort", serve_py_abort, METH_O, abort_doc},
    {"writable", serve_py_writable, METH_O, writable_doc},
    {"disconnected", serve_py_disconnected, METH_O, disconnected_doc},
    {"pending", serve_py_pending, METH_NOARGS, "pending() -> int: deferred requests open now"},
    {"concurrency", serve_py_concurrency, METH_NOARGS,
     "concurrency() -> int: how many may be open at once (--py-concurrency)"},
    {"wake_loop", serve_py_wake_loop, METH_NOARGS,
     "wake_loop() -> None: the event loop has work: run it before sleeping"},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* The event loop hooks                                                 */
/* ------------------------------------------------------------------ */

static inline int serve__loop_active(const struct serve *s)
{
    return s->cfg->loop_step != NULL && (s->n_open > 0 || s->loop_busy);
}

/* One non-blocking pass of the package's event loop (deferred requests
 * progress, their answers are published). Counted as busy time, and
 * visible to the master's --timeout as a running request of unknown token. */
static void serve__loop_step(struct serve *s)
{
    uint64_t t0 = serve__now_ns();
    PyObject *r;

    atomic_store_explicit(&s->me->current.token, UINT32_MAX, memory_order_relaxed);
    atomic_store_explicit(&s->me->current.start_ns, t0, memory_order_release);
    r = PyObject_CallNoArgs(s->cfg->loop_step);   /* new */
    atomic_store_explicit(&s->me->current.start_ns, 0, memory_order_relaxed);
    if (r == NULL) {
        serve__print_exception(s, "fasterapi._boot.loop_step() raised:");
        s->loop_busy = 0;
    } else {
        s->loop_busy = PyObject_IsTrue(r) == 1;
        Py_DECREF(r);
    }
    PyErr_Clear();
    serve__flush(s);
    serve__stat_add(&s->me->stats.busy_ns, serve__now_ns() - t0);
}

/* Sleeps in the package's event loop until the doorbell rings (after
 * fa_doorbell_sleep_begin and an empty re-check), or a timeout: its tasks
 * and timers run meanwhile. 0, or -1 if the master is gone. */
static int serve__loop_wait(struct serve *s)
{
    double timeout = s->cfg->timeout_ns && s->n_open ? SERVE_SCAN_NS / 1e9 : SERVE_WAIT_MS / 1e3;
    PyObject *r = PyObject_CallFunction(s->cfg->loop_wait, "id", s->cfg->efd, timeout);   /* new */

    if (r == NULL) {
        serve__print_exception(s, "fasterapi._boot.loop_wait() raised:");
        PyErr_Clear();
        s->loop_busy = 0;
    }
    Py_XDECREF(r);
    fa_doorbell_sleep_cancel(&s->me->sleeping);
    serve__flush(s);
    return serve__check_parent(s);
}

/* ------------------------------------------------------------------ */
/* Set-up and the loop                                                  */
/* ------------------------------------------------------------------ */

static int serve__init(struct serve *s, const struct fa_serve_config *cfg)
{
    const struct fa_seg_header_sh *hdr = cfg->seg->hdr;

    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->seg = cfg->seg;
    s->n_http = hdr->n_http;
    s->slot = cfg->slot;
    s->gen = cfg->gen;
    s->self = hdr->n_http + cfg->slot;
    s->chunk_size = hdr->chunk_size;
    s->n_chunks = hdr->chunks_per_arena;
    s->me = fa_seg_py_slot(s->seg, cfg->slot);
    s->ppid = getppid();

    s->req = calloc(s->n_http, sizeof(*s->req));
    s->resp = calloc(s->n_http, sizeof(*s->resp));
    s->resp_dirty = calloc(s->n_http, 1);
    s->iov = calloc(s->n_chunks, sizeof(*s->iov));
    s->conc = cfg->concurrency ? cfg->concurrency : 100;
    if (s->conc > 0xffff)
        s->conc = 0xffff;
    s->defers = calloc(s->conc, sizeof(*s->defers));
    s->peeked = calloc(s->n_http, sizeof(*s->peeked));
    if (s->req == NULL || s->resp == NULL || s->resp_dirty == NULL || s->iov == NULL ||
        s->defers == NULL || s->peeked == NULL)
        goto nomem;
    for (uint32_t i = 0; i < s->conc; i++)
        s->defers[i].next_free = i + 1 < s->conc ? i + 1 : UINT32_MAX;
    s->free_head = 0;
    s->calling_defer = -1;
    s->batch = cfg->no_batch ? 1 : SERVE_BATCH;
    /* What load() left on the loop (lifespan tasks) runs from the start. */
    s->loop_busy = cfg->loop_step != NULL;
    for (uint32_t h = 0; h < s->n_http; h++) {
        fa_ring_init(&s->req[h], fa_seg_req_ring(s->seg, h, cfg->slot), hdr->ring_cap);
        fa_ring_init(&s->resp[h], fa_seg_resp_ring(s->seg, h, cfg->slot), hdr->ring_cap);
    }
    fa_arena_init(&s->arena, s->seg, fa_seg_py_arena(s->seg, cfg->slot), s->self, cfg->gen);
    /* A predecessor in this slot that died while writing a response left
     * its chunks WRITING; nobody else will free them. (What it had SENT is
     * freed by the HTTP workers that receive it.) */
    for (uint32_t i = 0; i < s->arena.n; i++) {
        struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(s->seg, s->arena.id, i);
        if (FA_CHUNK_STATE(atomic_load_explicit(&m->state, memory_order_acquire)) == FA_CHUNK_WRITING)
            atomic_store_explicit(&m->state, FA_CHUNK_FREE, memory_order_release);
    }
    s->json = fa_pymod_json(cfg->module);

    if ((s->head = malloc(s->chunk_size)) == NULL)
        goto nomem;
    if ((s->head500_len = serve__pack_error_head(s->head500, sizeof(s->head500), 500)) == 0 ||
        (s->head503_len = serve__pack_error_head(s->head503, sizeof(s->head503), 503)) == 0 ||
        (s->head504_len = serve__pack_error_head(s->head504, sizeof(s->head504), 504)) == 0)
        goto nomem;

    for (size_t i = 0; i < SERVE_N_METHODS; i++)
        if ((s->methods[i] = PyUnicode_InternFromString(serve_methods[i])) == NULL)   /* new */
            goto pyerr;
    if ((s->empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL ||             /* new */
        (s->str_release = PyUnicode_InternFromString("release")) == NULL)            /* new */
        goto pyerr;
    return 0;

pyerr:
    PyErr_Print();
    return -1;
nomem:
    fprintf(stderr, "fasterapi-pyworker: out of memory setting up the serve loop\n");
    return -1;
}

static void serve__fini(struct serve *s)
{
    /* Deferred requests still open (the master is gone, or a stop timed
     * out): their HTTP workers fail them when this process is gone. */
    for (uint32_t i = 0; s->defers != NULL && i < s->conc; i++) {
        struct serve_defer *e = &s->defers[i];

        if (e->state == DEF_FREE)
            continue;
        Py_CLEAR(e->view);
        Py_CLEAR(e->shmbuf);
        Py_CLEAR(e->method);
        Py_CLEAR(e->path);
        Py_CLEAR(e->on_disconnect);
    }
    free(s->defers);
    free(s->peeked);
    for (size_t i = 0; i < SERVE_N_METHODS; i++)
        Py_CLEAR(s->methods[i]);
    for (size_t i = 0; i < SERVE_HNAME_CACHE; i++)
        Py_CLEAR(s->hnames[i].str);
    Py_CLEAR(s->empty_bytes);
    Py_CLEAR(s->str_release);
    Py_CLEAR(s->shmbuf);
    Py_CLEAR(s->last_client);
    Py_CLEAR(s->hdrs);
    for (size_t i = 0; i < SERVE_PAIR_CACHE; i++)
        Py_CLEAR(s->pairs[i]);
    for (size_t i = 0; i < SERVE_STR_CACHE; i++)
        Py_CLEAR(s->strs[i].str);
    free(s->head);
    free(s->gather);
    free(s->iov);
    free(s->resp_dirty);
    free(s->resp);
    free(s->req);
}

int fa_serve_run(const struct fa_serve_config *cfg)
{
    struct serve s;
    int rc = -1;

    if (serve__init(&s, cfg) < 0)
        goto out;
    serve__active = &s;
    for (;;) {
        int got = serve__round(&s);

        if (got < 0 || s.fatal)
            goto out;
        if (serve__loop_active(&s))
            serve__loop_step(&s);
        serve__deadlines(&s);
        if (s.fatal)
            goto out;
        if (got > 0)
            continue;
        /* Every ring was empty this round. After SIGTERM that is the end
         * once the deferred requests are answered too: everything popped
         * was (the master stopped the HTTP workers first, so nothing new
         * arrives). */
        if (*cfg->stop && s.n_open == 0)
            break;
        serve__idle_trim(&s);
        if (serve__loop_active(&s)) {
            /* The event loop has work: sleep in it, woken by the doorbell. */
            fa_doorbell_sleep_begin(&s.me->sleeping);
            if (serve__any_work(&s)) {
                fa_doorbell_sleep_cancel(&s.me->sleeping);
                continue;
            }
            if (serve__loop_wait(&s) < 0)
                goto out;
            continue;
        }
        for (int i = 0; i < SERVE_SPIN && !got; i++) {
            serve__cpu_relax();
            got = serve__any_work(&s);
        }
        if (got)
            continue;
        fa_doorbell_sleep_begin(&s.me->sleeping);
        if (serve__any_work(&s) || (*cfg->stop && s.n_open == 0)) {
            fa_doorbell_sleep_cancel(&s.me->sleeping);
            continue;
        }
        if (serve__doorbell_wait(&s) < 0)
            goto out;
    }
    rc = 0;
out:
    if (s.resp_dirty != NULL)
        serve__flush(&s);   /* whatever was reserved is complete: publish it */
    serve__active = NULL;
    serve__fini(&s);
    return rc;
}
