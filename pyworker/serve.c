/* serve.c - the Python worker's serve loop (see serve.h).
 *
 * One pass of the loop, for each HTTP worker h in turn:
 *
 *   request ring (h -> P) --pop <= 32--> descs[]     copies, validated here
 *     for each desc:  gen check -> fa_msg_iov -> msgpack head -> Python args
 *                     -> dispatch(...) -> free request chunks
 *                     -> msgpack response head + body into this slot's arena
 *                     -> reserve a slot in the response ring (P -> h)
 *   commit the response rings, ring the HTTP workers' doorbells
 *
 * This process is the only consumer of its request rings and the only
 * producer of its response rings, so every ring handle below is private.
 * Memory orders live in shm/ (ring.h, chunk.h, doorbell.h).
 *
 * Steady state allocates no C memory: descriptors, iovecs, the msgpack zone,
 * the response scratch buffer and the body exporter are all reused. Python
 * objects for the call arguments come from CPython's allocators; method
 * strings are interned once and common header names are cached.
 */

/* Python.h first (through these): it sets feature macros for libc headers. */
#include "pyworker/module.h"
#include "pyworker/serve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "shm/chunk.h"
#include "shm/doorbell.h"
#include "shm/ring.h"
#include "shm/segment.h"

#define SERVE_BATCH        32          /* descriptors popped per ring per round */
#define SERVE_SPIN         2000        /* idle re-checks before the sleep protocol */
#define SERVE_WAIT_MS      1000        /* doorbell wait: notice SIGTERM, a dead master */
#define SERVE_FLUSH_NS     50000ull    /* a batch running longer publishes early */
#define SERVE_ARENA_NAP_NS 100000l     /* arena full: poll period */
#define SERVE_ARENA_MAX_NS 5000000000ull /* arena full that long: answer 503 */
#define SERVE_STOP_WAIT_NS 5000000000ull /* stopping: wait that long for an HTTP worker */
#define SERVE_HNAME_CACHE  128         /* header-name strings kept (power of two) */
#define SERVE_HNAME_MAX    64          /* longer names are not cached */
#define SERVE_ENVELOPE_MIN 9           /* request envelope array length */

static const char *const serve_methods[] = {
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
};
#define SERVE_N_METHODS (sizeof(serve_methods) / sizeof(serve_methods[0]))

struct serve_hname {
    PyObject *str;      /* strong; an ASCII lower-case name, or NULL */
    uint32_t len;
};

/* A request being served: what the response and the logs need. */
struct serve_req {
    uint32_t h;
    const struct fa_desc *d;
    uint64_t route_id;
    const char *method, *path;   /* for log lines only (not NUL-terminated) */
    uint32_t method_len, path_len;
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
    struct iovec *iov;            /* [n_chunks] */
    struct fa_desc descs[SERVE_BATCH];

    msgpack_zone zone;            /* request head objects; cleared per request */
    msgpack_sbuffer out;          /* response head scratch; size reset per request */
    char *gather;                 /* request head split across chunks */
    size_t gather_cap;
    char head500[64], head503[64];
    size_t head500_len, head503_len;

    PyObject *methods[SERVE_N_METHODS];   /* strong, interned */
    PyObject *empty_bytes;                /* strong */
    PyObject *str_release;                /* strong, interned "release" */
    PyObject *shmbuf;                     /* strong idle exporter, or NULL */
    PyObject *last_host;                  /* strong, or NULL */
    struct serve_hname hnames[SERVE_HNAME_CACHE];

    pid_t ppid;
    uint64_t last_flush_ns;
    uint64_t kept_views;
    int parent_gone;
};

static const char serve_body500[] = "Internal Server Error\n";
static const char serve_body503[] = "Service Unavailable\n";

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
    msgpack_sbuffer sb;
    msgpack_packer pk;
    static const char ct[] = "content-type", tp[] = "text/plain; charset=utf-8";
    size_t n;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, status);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, ct, sizeof(ct) - 1);
    msgpack_pack_str_with_body(&pk, tp, sizeof(tp) - 1);
    n = sb.size <= cap ? sb.size : 0;
    if (n)
        memcpy(buf, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

/* Writes one response message (head whole in the first chunk, then the
 * body) into this slot's arena and queues its descriptor for HTTP worker h.
 * Waits while the arena is full (after publishing what is queued, so the
 * HTTP workers can send and free); after SERVE_ARENA_MAX_NS answers 503
 * instead. Returns the status actually queued, or -1 if the master is gone
 * (or, while stopping, HTTP worker h takes nothing any more). */
static int serve__send(struct serve *s, const struct serve_req *rq, int status,
                       const char *head, size_t hlen, const char *body, size_t blen)
{
    struct fa_msg_writer w;
    struct fa_desc d;
    uint64_t deadline = 0, since = 0;
    void *p;

    for (;;) {
        if (fa_msg_begin(&w, &s->arena) == 0) {
            if ((p = fa_msg_reserve(&w, hlen)) != NULL) {
                memcpy(p, head, hlen);
                fa_msg_commit(&w, hlen);
                if (blen == 0 || fa_msg_write(&w, body, blen) == 0) {
                    fa_msg_end(&w, rq->h, s->gen, &d);
                    break;
                }
            }
            fa_msg_abort(&w);
        }
        serve__flush(s);
        if (deadline == 0) {
            since = serve__now_ns();
            deadline = since + SERVE_ARENA_MAX_NS;
        } else if (serve__stop_stuck(s, rq->h, since)) {
            return -1;
        } else if (status != 503 && serve__now_ns() >= deadline) {
            serve__log(s, "route %llu (%.*s %.*s): no free chunk in this worker's arena for "
                       "%llu s (the HTTP workers are not freeing responses): answering 503",
                       (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
                       (int)rq->path_len, rq->path,
                       (unsigned long long)(SERVE_ARENA_MAX_NS / 1000000000ull));
            status = 503;
            head = s->head503;
            hlen = s->head503_len;
            body = serve_body503;
            blen = sizeof(serve_body503) - 1;
        }
        if (serve__nap(s, SERVE_ARENA_NAP_NS) < 0)
            return -1;
    }
    d.token = rq->d->token;
    d.gen = s->gen;
    if (serve__push(s, rq->h, &d) < 0)
        return -1;
    serve__stat_add(&s->me->stats.bytes_out, d.len);
    return status;
}

static int serve__send_error(struct serve *s, const struct serve_req *rq, int status)
{
    if (status == 503)
        return serve__send(s, rq, 503, s->head503, s->head503_len,
                           serve_body503, sizeof(serve_body503) - 1);
    return serve__send(s, rq, 500, s->head500, s->head500_len,
                       serve_body500, sizeof(serve_body500) - 1);
}

/* A header name or value from the app: latin-1 text (1-byte kind), without
 * CR, LF or NUL; a name is a non-empty token (no ':' or whitespace).
 * Returns the bytes (borrowed from the str) or NULL. */
static const char *serve__header_text(PyObject *o, int is_name, Py_ssize_t *len)
{
    const unsigned char *p;
    Py_ssize_t n;

    if (!PyUnicode_Check(o) || PyUnicode_READY(o) < 0 || PyUnicode_KIND(o) != PyUnicode_1BYTE_KIND)
        return NULL;
    p = PyUnicode_1BYTE_DATA(o);
    n = PyUnicode_GET_LENGTH(o);
    if (is_name && n == 0)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\r' || c == '\n' || c == '\0')
            return NULL;
        if (is_name && (c == ':' || c == ' ' || c == '\t' || c < 0x20 || c == 0x7f))
            return NULL;
    }
    *len = n;
    return (const char *)p;
}

/* Encodes dispatch's result (borrowed) and sends it. Anything malformed is
 * logged and answered 500. Returns the status queued or -1 (master gone). */
static int serve__respond(struct serve *s, const struct serve_req *rq, PyObject *result)
{
    msgpack_packer pk;
    PyObject *st, *hdrs, *body;
    Py_ssize_t nh;
    long status;
    const char *why;
    size_t blen;

    if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 3) {
        why = "expected a tuple (status, headers, body)";
        goto bad;
    }
    st = PyTuple_GET_ITEM(result, 0);     /* borrowed */
    hdrs = PyTuple_GET_ITEM(result, 1);   /* borrowed */
    body = PyTuple_GET_ITEM(result, 2);   /* borrowed */
    if (!PyLong_Check(st) || (status = PyLong_AsLong(st)) < 100 || status > 599) {
        PyErr_Clear();
        why = "status is not an int between 100 and 599";
        goto bad;
    }
    if (!PyList_Check(hdrs) && !PyTuple_Check(hdrs)) {
        why = "headers is not a list of (name, value) tuples";
        goto bad;
    }
    if (!PyBytes_Check(body)) {
        why = PyUnicode_Check(body) ? "body is a str; the package must encode it to bytes"
                                    : "body is not bytes";
        goto bad;
    }
    blen = (size_t)PyBytes_GET_SIZE(body);

    s->out.size = 0;
    msgpack_packer_init(&pk, &s->out, msgpack_sbuffer_write);
    nh = PySequence_Fast_GET_SIZE(hdrs);
    if (msgpack_pack_array(&pk, 2) || msgpack_pack_int(&pk, (int)status) ||
        msgpack_pack_array(&pk, (size_t)nh * 2))
        goto nomem;
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(hdrs, i);   /* borrowed */
        PyObject *name, *value;
        const char *np, *vp;
        Py_ssize_t nl, vl;

        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
            name = PyTuple_GET_ITEM(item, 0);
            value = PyTuple_GET_ITEM(item, 1);
        } else if (PyList_Check(item) && PyList_GET_SIZE(item) == 2) {
            name = PyList_GET_ITEM(item, 0);
            value = PyList_GET_ITEM(item, 1);
        } else {
            why = "a header is not a (name, value) pair";
            goto bad;
        }
        if ((np = serve__header_text(name, 1, &nl)) == NULL) {
            why = "a header name is not a latin-1 str token (no ':', whitespace, CR, LF)";
            goto bad;
        }
        if ((vp = serve__header_text(value, 0, &vl)) == NULL) {
            why = "a header value is not a latin-1 str without CR, LF or NUL";
            goto bad;
        }
        if (msgpack_pack_str_with_body(&pk, np, (size_t)nl) ||
            msgpack_pack_str_with_body(&pk, vp, (size_t)vl))
            goto nomem;
    }
    if (s->out.size > s->chunk_size) {
        serve__log(s, "route %llu (%.*s %.*s): response headers take %zu bytes, more than one "
                   "%u-byte chunk: answering 500", (unsigned long long)rq->route_id,
                   (int)rq->method_len, rq->method, (int)rq->path_len, rq->path,
                   s->out.size, s->chunk_size);
        return serve__send_error(s, rq, 500);
    }
    if ((s->out.size + blen + s->chunk_size - 1) / s->chunk_size > s->n_chunks) {
        serve__log(s, "route %llu (%.*s %.*s): a %zu-byte response cannot fit in this worker's "
                   "arena (%u chunks of %u bytes): answering 500",
                   (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
                   (int)rq->path_len, rq->path, blen, s->n_chunks, s->chunk_size);
        return serve__send_error(s, rq, 500);
    }
    return serve__send(s, rq, (int)status, s->out.data, s->out.size,
                       PyBytes_AS_STRING(body), blen);

bad:
    serve__log(s, "route %llu (%.*s %.*s): dispatch returned a malformed response (%s): "
               "answering 500", (unsigned long long)rq->route_id, (int)rq->method_len,
               rq->method, (int)rq->path_len, rq->path, why);
    return serve__send_error(s, rq, 500);
nomem:
    serve__log(s, "out of memory encoding a response: answering 500");
    return serve__send_error(s, rq, 500);
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */
/* ------------------------------------------------------------------ */

static inline int serve__mp_str(const msgpack_object *o, const char **p, uint32_t *n)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = o->via.str.ptr;
        *n = o->via.str.size;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr;
        *n = o->via.bin.size;
        return 0;
    }
    return -1;
}

/* Parses the envelope head from the message's iovecs. On success *o holds
 * the array (its strings point into shm or into s->gather, valid until the
 * next call) and *head_len its size in bytes. -1 if malformed. */
static int serve__unpack_head(struct serve *s, int niov, msgpack_object *o, size_t *head_len)
{
    msgpack_unpack_return r;
    size_t off = 0, have = 0;

    msgpack_zone_clear(&s->zone);
    r = msgpack_unpack(s->iov[0].iov_base, s->iov[0].iov_len, &off, &s->zone, o);
    if (r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES) {
        *head_len = off;
        return 0;
    }
    if (r != MSGPACK_UNPACK_CONTINUE)
        return -1;
    /* The head spans chunks (huge headers): gather chunk by chunk into the
     * scratch buffer until it parses. Rare; bounded by the message size. */
    for (int k = 0; k < niov; k++) {
        size_t need = have + s->iov[k].iov_len;

        if (need > s->gather_cap) {
            size_t cap = s->gather_cap ? s->gather_cap : 65536;
            char *g;

            while (cap < need)
                cap *= 2;
            if ((g = realloc(s->gather, cap)) == NULL)
                return -1;
            s->gather = g;
            s->gather_cap = cap;
        }
        memcpy(s->gather + have, s->iov[k].iov_base, s->iov[k].iov_len);
        have = need;
        if (k == 0)
            continue;
        off = 0;
        msgpack_zone_clear(&s->zone);
        r = msgpack_unpack(s->gather, have, &off, &s->zone, o);
        if (r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES) {
            *head_len = off;
            return 0;
        }
        if (r != MSGPACK_UNPACK_CONTINUE)
            return -1;
    }
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
    for (size_t i = 0; i < SERVE_N_METHODS; i++) {
        PyObject *m = s->methods[i];
        if ((uint32_t)PyUnicode_GET_LENGTH(m) == n && memcmp(PyUnicode_1BYTE_DATA(m), p, n) == 0)
            return Py_NewRef(m);
    }
    return PyUnicode_DecodeLatin1(p, n, NULL);
}

static PyObject *serve__host(struct serve *s, const char *p, uint32_t n)
{
    PyObject *h = s->last_host;

    if (h != NULL && (uint32_t)PyUnicode_GET_LENGTH(h) == n &&
        memcmp(PyUnicode_1BYTE_DATA(h), p, n) == 0)
        return Py_NewRef(h);
    h = PyUnicode_DecodeLatin1(p, n, NULL);
    if (h != NULL && PyUnicode_KIND(h) == PyUnicode_1BYTE_KIND)
        Py_XSETREF(s->last_host, Py_NewRef(h));
    return h;
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

/* Ends the handler's use of a shared-memory body (view: stolen) and frees
 * the request chunks, now or, when the app kept a view, when the last view
 * goes. */
static void serve__release_body(struct serve *s, const struct serve_req *rq, PyObject *view)
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
    if (fa_shmbuf_disarm(s->shmbuf, s->seg, arena, rq->d->chunk)) {
        /* A view (a slice, or an export of the memoryview) outlives the
         * call: the exporter frees the chunks when it goes. */
        s->kept_views++;
        if ((s->kept_views & (s->kept_views - 1)) == 0)
            serve__log(s, "route %llu (%.*s %.*s): the handler kept a view of the request "
                       "body after returning (%llu times so far); its chunks stay held "
                       "until the view is released (copy with bytes(body) instead)",
                       (unsigned long long)rq->route_id, (int)rq->method_len, rq->method,
                       (int)rq->path_len, rq->path, (unsigned long long)s->kept_views);
        Py_CLEAR(s->shmbuf);
        return;
    }
    if (Py_REFCNT(s->shmbuf) > 1)   /* the app kept memoryview.obj: never reuse it */
        Py_CLEAR(s->shmbuf);
    fa_msg_free(s->seg, arena, rq->d->chunk);
}

/* Serves one validated request. Returns the response status, or -1 if the
 * master (or, while stopping, the HTTP worker) is gone. The request chunks are freed (or handed over) on every
 * path. */
static int serve__call(struct serve *s, struct serve_req *rq, int niov)
{
    msgpack_object env, *a;
    size_t head_len;
    const char *p;
    uint32_t n;
    PyObject *stack[9] = {NULL};       /* stack[0]: room for PY_VECTORCALL_ARGUMENTS_OFFSET */
    PyObject **args = stack + 1;
    PyObject *view = NULL, *result = NULL, *t;
    const char *why = NULL;
    int status;

    if (serve__unpack_head(s, niov, &env, &head_len) < 0 || env.type != MSGPACK_OBJECT_ARRAY ||
        env.via.array.size < SERVE_ENVELOPE_MIN) {
        why = "the head is not a msgpack array of 9";
        goto bad_envelope;
    }
    a = env.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        why = "route id is not an unsigned int";
        goto bad_envelope;
    }
    rq->route_id = a[0].via.u64;
    if (serve__mp_str(&a[1], &rq->method, &rq->method_len) < 0 ||
        serve__mp_str(&a[2], &rq->path, &rq->path_len) < 0) {
        why = "method or path is not a string";
        goto bad_envelope;
    }
    if (a[4].type != MSGPACK_OBJECT_ARRAY || a[5].type != MSGPACK_OBJECT_ARRAY ||
        (a[5].via.array.size & 1) != 0 || a[7].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[7].via.u64 > 65535) {
        why = "params, headers or client port has the wrong type";
        goto bad_envelope;
    }

    /* The arguments: each a new reference, released below or at `fail`. */
    if ((args[0] = PyLong_FromUnsignedLongLong(rq->route_id)) == NULL ||
        (args[1] = serve__method(s, rq->method, rq->method_len)) == NULL ||
        (args[2] = PyUnicode_DecodeLatin1(rq->path, rq->path_len, NULL)) == NULL)
        goto pyerr;
    /* From here on the log lines read method and path from the str objects
     * (1-byte kind: decoded from latin-1), kept until the response is sent:
     * the request chunks are freed before that. */
    rq->method = (const char *)PyUnicode_1BYTE_DATA(args[1]);
    rq->path = (const char *)PyUnicode_1BYTE_DATA(args[2]);
    if (serve__mp_str(&a[3], &p, &n) < 0) {
        why = "query is not a string";
        goto bad_envelope;
    }
    if ((args[3] = PyUnicode_DecodeLatin1(p, n, NULL)) == NULL)
        goto pyerr;
    if ((args[4] = PyTuple_New(a[4].via.array.size)) == NULL)
        goto pyerr;
    for (uint32_t i = 0; i < a[4].via.array.size; i++) {
        if (serve__mp_str(&a[4].via.array.ptr[i], &p, &n) < 0) {
            why = "a path parameter is not a string";
            goto bad_envelope;
        }
        if ((t = PyUnicode_DecodeLatin1(p, n, NULL)) == NULL)
            goto pyerr;
        PyTuple_SET_ITEM(args[4], i, t);   /* stolen */
    }
    if ((args[5] = PyList_New(a[5].via.array.size / 2)) == NULL)
        goto pyerr;
    for (uint32_t i = 0; i < a[5].via.array.size / 2; i++) {
        const char *vp;
        uint32_t vn;
        PyObject *name, *value;

        if (serve__mp_str(&a[5].via.array.ptr[2 * i], &p, &n) < 0 ||
            serve__mp_str(&a[5].via.array.ptr[2 * i + 1], &vp, &vn) < 0) {
            why = "a header name or value is not a string";
            goto bad_envelope;
        }
        if ((name = serve__hname(s, p, n)) == NULL)
            goto pyerr;
        if ((value = PyUnicode_DecodeLatin1(vp, vn, NULL)) == NULL) {
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
    if (serve__mp_str(&a[6], &p, &n) < 0) {
        why = "client host is not a string";
        goto bad_envelope;
    }
    if ((args[6] = PyTuple_New(2)) == NULL)
        goto pyerr;
    if ((t = serve__host(s, p, n)) == NULL)
        goto pyerr;
    PyTuple_SET_ITEM(args[6], 0, t);       /* stolen */
    if ((t = PyLong_FromUnsignedLong((unsigned long)a[7].via.u64)) == NULL)
        goto pyerr;
    PyTuple_SET_ITEM(args[6], 1, t);       /* stolen */
    if ((args[7] = serve__body(s, niov, head_len, rq->d->len, &view)) == NULL)
        goto pyerr;
    serve__stat_add(&s->me->stats.bytes_in, rq->d->len);

    result = PyObject_Vectorcall(s->cfg->dispatch, args, 8 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                 NULL);    /* new */
    if (result == NULL)
        serve__print_exception(s, "dispatch raised (answering 500):");
    Py_CLEAR(args[0]);
    for (int i = 3; i < 7; i++)
        Py_CLEAR(args[i]);
    if (view != NULL) {
        args[7] = NULL;                    /* the reference goes to release_body */
        serve__release_body(s, rq, view);
    } else {
        Py_CLEAR(args[7]);                 /* a bytes body */
        fa_msg_free(s->seg, fa_seg_http_arena(s->seg, rq->h), rq->d->chunk);
    }
    if (result == NULL) {
        status = serve__send_error(s, rq, 500);
    } else {
        status = serve__respond(s, rq, result);
        Py_DECREF(result);
    }
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
    fa_msg_free(s->seg, fa_seg_http_arena(s->seg, rq->h), rq->d->chunk);
    if (args[2] == NULL)
        rq->method_len = rq->path_len = 0;   /* they pointed into the freed chunks */
    status = serve__send_error(s, rq, 500);
    for (int i = 0; i < 8; i++)
        Py_CLEAR(args[i]);
    return status;
}

/* Handles one popped descriptor from HTTP worker h. 0, or -1 if the master
 * is gone (or, while stopping, the HTTP worker). */
static int serve__one(struct serve *s, uint32_t h, const struct fa_desc *d, uint32_t *stale)
{
    struct serve_req rq = {.h = h, .d = d};
    uint64_t t0, t1;
    int niov, status;

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
    status = serve__call(s, &rq, niov);
    if (status < 0)
        return -1;
    t1 = serve__now_ns();
    serve__stat_add(&s->me->stats.requests, 1);
    if (status >= 500)
        serve__stat_add(&s->me->stats.errors, 1);
    serve__stat_add(&s->me->stats.busy_ns, t1 - t0);
    /* A long batch publishes what it has so far instead of holding every
     * response back until its end. */
    if (t1 - s->last_flush_ns > SERVE_FLUSH_NS) {
        serve__flush(s);
        s->last_flush_ns = t1;
    }
    return 0;
}

static int serve__any_work(struct serve *s)
{
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
        uint32_t n = fa_ring_pop(&s->req[h], s->descs, SERVE_BATCH), stale = 0;

        if (n == 0)
            continue;
        got += (int)n;
        /* Slots were released by the pop: a producer waiting for space can
         * go on at once. */
        if (fa_ring_space_wanted(&s->req[h]))
            serve__ring_http(s, h);
        s->last_flush_ns = serve__now_ns();
        for (uint32_t i = 0; i < n; i++)
            if (serve__one(s, h, &s->descs[i], &stale) < 0)
                return -1;
        serve__flush(s);
        if (stale)
            serve__log(s, "dropped %u request(s) from HTTP worker %u sent to an earlier "
                       "generation of this slot", stale, h);
    }
    return got;
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
    if (s->req == NULL || s->resp == NULL || s->resp_dirty == NULL || s->iov == NULL)
        goto nomem;
    for (uint32_t h = 0; h < s->n_http; h++) {
        fa_ring_init(&s->req[h], fa_seg_req_ring(s->seg, h, cfg->slot), hdr->ring_cap);
        fa_ring_init(&s->resp[h], fa_seg_resp_ring(s->seg, h, cfg->slot), hdr->ring_cap);
    }
    fa_arena_init(&s->arena, s->seg, fa_seg_py_arena(s->seg, cfg->slot), s->self, cfg->gen);

    if (!msgpack_zone_init(&s->zone, 8192))
        goto nomem;
    msgpack_sbuffer_init(&s->out);
    if ((s->head500_len = serve__pack_error_head(s->head500, sizeof(s->head500), 500)) == 0 ||
        (s->head503_len = serve__pack_error_head(s->head503, sizeof(s->head503), 503)) == 0)
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
    for (size_t i = 0; i < SERVE_N_METHODS; i++)
        Py_CLEAR(s->methods[i]);
    for (size_t i = 0; i < SERVE_HNAME_CACHE; i++)
        Py_CLEAR(s->hnames[i].str);
    Py_CLEAR(s->empty_bytes);
    Py_CLEAR(s->str_release);
    Py_CLEAR(s->shmbuf);
    Py_CLEAR(s->last_host);
    msgpack_sbuffer_destroy(&s->out);
    if (s->zone.chunk_list.head != NULL)
        msgpack_zone_destroy(&s->zone);
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
    for (;;) {
        int got = serve__round(&s);

        if (got < 0)
            goto out;
        if (got > 0)
            continue;
        /* Every ring was empty this round. After SIGTERM that is the end:
         * everything popped was answered (the master stopped the HTTP
         * workers first, so nothing new arrives). */
        if (*cfg->stop)
            break;
        for (int i = 0; i < SERVE_SPIN && !got; i++) {
            serve__cpu_relax();
            got = serve__any_work(&s);
        }
        if (got)
            continue;
        fa_doorbell_sleep_begin(&s.me->sleeping);
        if (serve__any_work(&s) || *cfg->stop) {
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
    serve__fini(&s);
    return rc;
}
