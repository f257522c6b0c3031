/* dispatch.c - Python routes: the request envelope is written into this
 * worker's arena while the request arrives, sent to a Python worker through
 * the (h, p) request ring, and its answer comes back through the (h, p)
 * response ring as shm chunks that conn.c writes to the socket with writev.
 *
 * Tokens: a response names its request by token = index | incarnation << 16
 * | seq << 20 into w->pending (16, 4 and 12 bits). seq changes every time an
 * index is reused, so a late or forged response cannot land on the wrong
 * request; incarnation is the low bits of this HTTP slot's generation (the
 * master bumps it at every start), so an answer a Python worker still sends
 * to a dead predecessor of this slot cannot match a request of ours.
 *
 * Deaths: the master bumps a dead Python slot's generation and then the
 * death_seq of every HTTP slot. When it changes, we first drain what the
 * dead worker fully published, then fail with 502 every request sent to an
 * older generation and take its chunks back (spec/ring.pml, Http proctype).
 * A streamed answer already started is cut instead: the parts received are
 * written, then the connection closes.
 *
 * Streams (PROTOCOL.md, "Deferred and streamed responses"): an answer may
 * come as a start [status, headers, 1], parts [1] and an end [0] (or an
 * abort [2]), all with the request's token. The token stays pending, and
 * the request on the load board, until the end; the latency histogram
 * counts from the push to the first message (the start: time to first
 * byte). Each part is queued on the response (struct fa_part) and its
 * chunks freed once written (conn.c). A message that breaks the sequence
 * gets the request a 500 if nothing of its answer was built yet, else cuts
 * the connection.
 *
 * Disconnect notices: a request whose answer nobody wants any more (its
 * client is gone, or we answered it ourselves) while its Python worker may
 * still send for it is py_unwanted: what comes is freed unread, and the
 * worker is told with a descriptor {FA_CHUNK_NONE, 0, gen, token} on the
 * request ring, again for every non-final message that still comes, and
 * from the retry timer when the ring was full.
 *
 * FASTERAPI_NO_BATCH=1 (read once at start, for measurements): every
 * request is committed and its Python worker's doorbell rung at once,
 * instead of committing per event-loop round and ringing per
 * DOORBELL_BATCH requests (fa_dispatch_flush).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <msgpack.h>

#include "shm/doorbell.h"
#include "worker/dispatch.h"
#include "worker/files.h"
#include "worker/respond.h"
#include "worker/router.h"
#include "worker/util.h"

#define PENDING_MAX 65536u
#define POLL_BATCH  64
/* Parts queued per stream at most; the Python worker keeps to 16 unsent. */
#define STREAM_MAX_PARTS 64
#define DOORBELL_BATCH 8      /* see fa_dispatch_flush */

/* "GET /users/{id}" for log lines. */
static const char *dispatch__route(const struct fa_worker *w, uint32_t id, char *buf, size_t size)
{
    const struct fa_route *rt = fa_routes_get(w->env->routes, id);
    if (rt == NULL)
        snprintf(buf, size, "#%u", id);
    else
        snprintf(buf, size, "%s %s", http_method_str((enum http_method)rt->method), rt->pattern);
    return buf;
}

/* The envelope head is packed into a stack buffer and written into the
 * chunk in one piece (one fa_msg_write per request instead of one per
 * msgpack token); a head larger than the buffer spills through. */
struct dispatch_pack {
    struct fa_msg_writer *w;
    size_t len;
    int failed;
    char buf[2048];
};

static int dispatch__pack_flush(struct dispatch_pack *pb)
{
    if (pb->len && fa_msg_write(pb->w, pb->buf, pb->len) < 0)
        pb->failed = 1;
    pb->len = 0;
    return pb->failed ? -1 : 0;
}

static int dispatch__pack_write(void *data, const char *buf, size_t len)
{
    struct dispatch_pack *pb = data;
    if (pb->len + len > sizeof pb->buf) {
        if (dispatch__pack_flush(pb) < 0)
            return -1;
        if (len > sizeof pb->buf)
            return fa_msg_write(pb->w, buf, len) < 0 ? (pb->failed = 1, -1) : 0;
    }
    memcpy(pb->buf + pb->len, buf, len);
    pb->len += len;
    return 0;
}

static void dispatch__pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Chunks of the Python arenas that a dead predecessor of this HTTP slot
 * had taken from its response rings and not freed yet stay SENT to this
 * slot with no descriptor naming them. They cannot be told at once from
 * answers a Python worker is publishing right now, so the sweep is in two
 * phases a few seconds apart: a chunk SENT to us at both, which we did not
 * receive in between (fa_dispatch_sweep_seen) and do not hold, was never
 * going to be published: free it. Runs only in a restarted HTTP worker. */
static void dispatch__sweep_seen(struct fa_worker *w, uint32_t p, uint32_t first)
{
    if (w->sweep.phase != 1)
        return;
    uint8_t *bm = w->sweep.cand + (size_t)p * w->sweep.bytes;
    uint32_t n = w->seg->hdr->chunks_per_arena, i = first;
    for (uint32_t k = 0; k < n && i < n; k++) {
        bm[i / 8] &= (uint8_t)~(1u << (i % 8));
        i = fa_seg_chunk_meta(w->seg, fa_seg_py_arena(w->seg, p), i)->next;
    }
}

int fa_dispatch_sweep(struct fa_worker *w)
{
    uint32_t n = w->seg->hdr->chunks_per_arena;
    if (w->sweep.phase == 0) {
        w->sweep.bytes = (n + 7) / 8;
        w->sweep.cand = fa_xcalloc((size_t)w->max_py * w->sweep.bytes, 1);
    }
    uint8_t *held = fa_xcalloc(w->sweep.bytes, 1);
    uint32_t freed = 0;
    for (uint32_t p = 0; p < w->max_py; p++) {
        uint8_t *bm = w->sweep.cand + (size_t)p * w->sweep.bytes;
        uint32_t arena = fa_seg_py_arena(w->seg, p);
        memset(held, 0, w->sweep.bytes);
        fa_conn_mark_held(w, p, held, n);
        for (uint32_t i = 0; i < n; i++) {
            struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(w->seg, arena, i);
            uint32_t word = atomic_load_explicit(&m->state, memory_order_acquire);
            bool ours = FA_CHUNK_STATE(word) == FA_CHUNK_SENT && FA_CHUNK_HOLDER(word) == w->self &&
                        !(held[i / 8] & (1u << (i % 8)));
            if (w->sweep.phase == 0) {
                if (ours)
                    bm[i / 8] |= (uint8_t)(1u << (i % 8));
            } else if (ours && (bm[i / 8] & (1u << (i % 8))) &&
                       atomic_compare_exchange_strong_explicit(&m->state, &word, FA_CHUNK_FREE,
                                                               memory_order_acq_rel, memory_order_relaxed)) {
                freed++;
            }
        }
    }
    free(held);
    if (w->sweep.phase == 1) {
        free(w->sweep.cand);
        w->sweep.cand = NULL;
        if (freed)
            fa_log("HTTP worker %u: took back %u chunk(s) a dead predecessor held", w->h, freed);
    }
    w->sweep.phase++;
    return w->sweep.phase < 2;
}

/* A new incarnation of this HTTP slot: take back the envelopes the previous
 * one was still writing, or had marked SENT without publishing them (their
 * stamp, the ring index they were reserved at, is at or past the ring's
 * tail: no Python worker can ever see them; the ones below the tail are the
 * Python workers' to free), and discard the answers addressed to it. */
static void dispatch__restart_cleanup(struct fa_worker *w)
{
    uint32_t unpublished = 0;
    for (uint32_t i = 0; i < w->arena.n; i++) {
        struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(w->seg, w->arena.id, i);
        uint32_t word = atomic_load_explicit(&m->state, memory_order_acquire);
        if (FA_CHUNK_STATE(word) == FA_CHUNK_WRITING) {
            atomic_store_explicit(&m->state, FA_CHUNK_FREE, memory_order_release);
        } else if (FA_CHUNK_STATE(word) == FA_CHUNK_SENT && FA_CHUNK_HOLDER(word) >= w->n_http &&
                   FA_CHUNK_HOLDER(word) - w->n_http < w->max_py) {
            uint32_t tail = atomic_load_explicit(&w->req[FA_CHUNK_HOLDER(word) - w->n_http].sh->tail,
                                                 memory_order_acquire);
            if ((int32_t)(m->stamp - tail) >= 0) {
                atomic_store_explicit(&m->state, FA_CHUNK_FREE, memory_order_release);
                unpublished++;
            }
        }
    }
    if (unpublished)
        fa_log("HTTP worker %u: took back %u chunk(s) of requests a dead predecessor never "
               "published", w->h, unpublished);
    struct fa_desc d[POLL_BATCH];
    struct iovec iov[72];
    for (uint32_t p = 0; p < w->max_py; p++)
        atomic_store_explicit(&w->req[p].sh->in_flight, 0, memory_order_relaxed);  /* the dead's share */
    for (uint32_t p = 0; p < w->max_py; p++) {
        uint32_t n;
        while ((n = fa_ring_pop(&w->resp[p], d, POLL_BATCH)) > 0)
            for (uint32_t k = 0; k < n; k++)
                if (fa_msg_iov(w->seg, fa_seg_py_arena(w->seg, p), w->self, &d[k], iov, 72) >= 0)
                    fa_msg_free(w->seg, fa_seg_py_arena(w->seg, p), d[k].chunk);
    }
}

void fa_dispatch_init(struct fa_worker *w)
{
    const struct fa_seg *seg = w->seg;
    w->req = fa_xcalloc(w->max_py, sizeof *w->req);
    /* Response heads are decoded into this zone, cleared after each: a
     * zone per head (msgpack_unpack_next) is a malloc of 8 KiB per response. */
    if (!msgpack_zone_init(&w->mp_zone, 2048)) {
        fa_log("HTTP worker: out of memory (msgpack zone)");
        abort();
    }
    w->resp = fa_xcalloc(w->max_py, sizeof *w->resp);
    w->unrung = fa_xcalloc(w->max_py, sizeof *w->unrung);
    w->gen_snap = fa_xcalloc(w->max_py, sizeof *w->gen_snap);
    for (uint32_t p = 0; p < w->max_py; p++) {
        fa_ring_init(&w->req[p], fa_seg_req_ring(seg, w->h, p), seg->hdr->ring_cap);
        fa_ring_init(&w->resp[p], fa_seg_resp_ring(seg, w->h, p), seg->hdr->ring_cap);
    }
    fa_arena_init(&w->arena, seg, fa_seg_http_arena(seg, w->h), w->self, 0);
    dispatch__restart_cleanup(w);
    const char *nb = getenv("FASTERAPI_NO_BATCH");
    w->doorbell_batch = nb && strcmp(nb, "1") == 0 ? 1 : DOORBELL_BATCH;
    w->n_pending_cap = 1024;
    w->pending = fa_xcalloc(w->n_pending_cap, sizeof *w->pending);
    w->incarnation = atomic_load_explicit(&w->me->gen, memory_order_relaxed) & 0xfu;
    uint16_t salt = (uint16_t)((uint32_t)getpid() * 2654435761u >> 20);
    for (uint32_t i = 0; i < w->n_pending_cap; i++) {
        w->pending[i].next_free = i + 1 < w->n_pending_cap ? i + 1 : UINT32_MAX;
        w->pending[i].seq = salt;
    }
    w->free_head = 0;
}

/* Our share of the load board (layout.h, fa_ring_sh.in_flight): one writer. */
static void dispatch__in_flight(struct fa_worker *w, uint32_t p, int delta)
{
    _Atomic uint32_t *c = &w->req[p].sh->in_flight;
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint32_t)delta,
                          memory_order_relaxed);
}

/* ---- pending table --------------------------------------------------------- */

static int dispatch__pending_alloc(struct fa_worker *w, struct fa_resp *r, uint32_t *token)
{
    if (w->free_head == UINT32_MAX) {
        if (w->n_pending_cap >= PENDING_MAX)
            return -1;
        uint32_t old = w->n_pending_cap, cap = old * 2;
        w->pending = fa_xrealloc(w->pending, cap * sizeof *w->pending);
        memset(w->pending + old, 0, (cap - old) * sizeof *w->pending);
        for (uint32_t i = old; i < cap; i++)
            w->pending[i].next_free = i + 1 < cap ? i + 1 : UINT32_MAX;
        w->free_head = old;
        w->n_pending_cap = cap;
    }
    uint32_t i = w->free_head;
    struct fa_pending *e = &w->pending[i];
    w->free_head = e->next_free;
    e->resp = r;
    e->seq = (e->seq + 1) & 0xfff;
    w->n_pending++;
    *token = i | w->incarnation << 16 | (uint32_t)e->seq << 20;
    return 0;
}

static void dispatch__pending_release(struct fa_worker *w, uint32_t i)
{
    w->pending[i].resp = NULL;
    w->pending[i].next_free = w->free_head;
    w->free_head = i;
    w->n_pending--;
}

/* ---- requests --------------------------------------------------------------- */

int fa_dispatch_begin(struct fa_worker *w, struct fa_resp *r, const struct fa_http_req *req,
                      const struct fa_match *m, const char *client_host, uint16_t client_port)
{
    msgpack_packer pk;
    struct dispatch_pack pb;

    if (fa_msg_begin(&r->w, &w->arena) < 0)
        return 503;
    r->py_state = FA_PY_BUILDING;
    r->t_start = fa_now_ns();
    pb.w = &r->w;
    pb.len = 0;
    pb.failed = 0;
    msgpack_packer_init(&pk, &pb, dispatch__pack_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint32(&pk, m->route_id);
    const char *method = http_method_str((enum http_method)req->method);
    dispatch__pack_str(&pk, method, strlen(method));
    dispatch__pack_str(&pk, req->path, req->path_len);
    dispatch__pack_str(&pk, req->query ? req->query : "", req->query_len);
    msgpack_pack_array(&pk, m->n_params);
    for (uint32_t i = 0; i < m->n_params; i++)
        dispatch__pack_str(&pk, m->params[i].p, m->params[i].len);
    msgpack_pack_array(&pk, req->n_headers * 2);
    for (uint32_t i = 0; i < req->n_headers; i++) {
        dispatch__pack_str(&pk, req->headers[i].name, req->headers[i].name_len);
        dispatch__pack_str(&pk, req->headers[i].value, req->headers[i].value_len);
    }
    dispatch__pack_str(&pk, client_host, strlen(client_host));
    msgpack_pack_uint16(&pk, client_port);
    r->http10 = req->http_minor == 0;   /* the parser takes only 1.0 and 1.1 */
    msgpack_pack_uint8(&pk, (uint8_t)((req->keep_alive ? 1 : 0) | (req->method == HTTP_HEAD ? 2 : 0) |
                                      (r->http10 ? 4 : 0)));
    if (dispatch__pack_flush(&pb) < 0 || r->w.failed) {
        fa_msg_abort(&r->w);
        r->py_state = FA_PY_NONE;
        return 503;
    }
    return 0;
}

int fa_dispatch_body(struct fa_worker *w, struct fa_resp *r, const char *data, size_t len)
{
    if (fa_msg_write(&r->w, data, len) < 0) {
        fa_msg_abort(&r->w);
        r->py_state = FA_PY_NONE;
        return 503;
    }
    return 0;
}

/* The READY Python slot with the fewest requests in flight, or -1. */
static int dispatch__choose(struct fa_worker *w)
{
    int best = -1;
    uint32_t best_load = UINT32_MAX;
    for (uint32_t k = 0; k < w->max_py; k++) {
        uint32_t p = (w->rr + k) % w->max_py;
        struct fa_slot_sh *s = fa_seg_py_slot(w->seg, p);
        if (atomic_load_explicit(&s->state, memory_order_acquire) != FA_SLOT_READY ||
            atomic_load_explicit(&s->version, memory_order_relaxed) != w->version)
            continue;
        uint32_t load = fa_seg_py_in_flight(w->seg, p);
        if (load <= best_load && (best < 0 || load < best_load)) {
            best_load = load;
            best = (int)p;
            if (load == 0)
                break;
        }
    }
    w->rr++;
    return best;
}

/* Sends a finished envelope to a Python worker. 0, or -1 if none can take it now. */
static int dispatch__push(struct fa_worker *w, struct fa_resp *r)
{
    int p = dispatch__choose(w);
    if (p < 0)
        return -1;
    struct fa_desc *slot = fa_ring_reserve(&w->req[p]);
    if (slot == NULL)
        return -1;
    r->req_idx = w->req[p].local - 1;
    r->w.stamp = r->req_idx;   /* for a successor's restart cleanup */
    uint32_t token;
    if (dispatch__pending_alloc(w, r, &token) < 0)
        return -1;   /* the reserved slot is simply not committed */
    struct fa_slot_sh *s = fa_seg_py_slot(w->seg, (uint32_t)p);
    uint32_t gen = atomic_load_explicit(&s->gen, memory_order_acquire);
    fa_msg_end(&r->w, w->n_http + (uint32_t)p, gen, &r->req_desc);
    r->req_desc.gen = gen;
    r->req_desc.token = token;
    *slot = r->req_desc;
    r->py_slot = (uint32_t)p;
    r->py_gen = gen;
    r->token = token;
    r->py_state = FA_PY_INFLIGHT;
    dispatch__in_flight(w, (uint32_t)p, +1);
    w->dirty_rings |= 1ull << p;
    if (w->doorbell_batch == 1)
        fa_dispatch_flush(w);   /* FASTERAPI_NO_BATCH */
    return 0;
}

/* A disconnect notice for request `token` to Python slot p's generation
 * gen (see the top of the file), published like a request. 0, or -1 when
 * the ring is full. */
static int dispatch__notice_push(struct fa_worker *w, uint32_t p, uint32_t gen, uint32_t token)
{
    struct fa_desc *slot = fa_ring_reserve(&w->req[p]);
    if (slot == NULL)
        return -1;
    slot->chunk = FA_CHUNK_NONE;
    slot->len = 0;
    slot->gen = gen;
    slot->token = token;
    w->dirty_rings |= 1ull << p;
    if (w->doorbell_batch == 1)
        fa_dispatch_flush(w);
    return 0;
}

/* Tells r's Python worker that nobody wants r's answer any more. On a full
 * ring it is owed, and fa_dispatch_retry tries again. */
static void dispatch__notice(struct fa_worker *w, struct fa_resp *r)
{
    if (dispatch__notice_push(w, r->py_slot, r->py_gen, r->token) < 0) {
        if (!r->notice_owed) {
            r->notice_owed = true;
            w->notices_owed++;
        }
        if (!evtimer_pending(w->ev_retry, NULL)) {
            struct timeval tv = {0, 2000};
            evtimer_add(w->ev_retry, &tv);
        }
        return;
    }
    if (r->notice_owed) {
        r->notice_owed = false;
        w->notices_owed--;
    }
}

void fa_dispatch_client_eof(struct fa_worker *w, struct fa_resp *r)
{
    dispatch__notice(w, r);
}

/* r's answer is not wanted any more, but its Python worker may still send
 * for it: tell it. */
static void dispatch__unwant(struct fa_worker *w, struct fa_resp *r)
{
    r->py_unwanted = true;
    dispatch__notice(w, r);
}

void fa_dispatch_end(struct fa_worker *w, struct fa_resp *r)
{
    if (w->backlog_head == NULL && dispatch__push(w, r) == 0)
        return;
    if (w->backlog_len >= w->cfg->backlog_max) {
        fa_msg_abort(&r->w);
        r->py_state = FA_PY_NONE;
        r->failed = true;
        fa_respond_error(w, r, 503, "Retry-After: 1\r\n");
        return;
    }
    r->py_state = FA_PY_BACKLOG;
    r->backlog_next = NULL;
    if (w->backlog_tail)
        w->backlog_tail->backlog_next = r;
    else
        w->backlog_head = r;
    w->backlog_tail = r;
    w->backlog_len++;
    atomic_store_explicit(&w->me->stats.queued, w->backlog_len, memory_order_relaxed);
    if (!evtimer_pending(w->ev_retry, NULL)) {
        struct timeval tv = {0, 2000};
        evtimer_add(w->ev_retry, &tv);
    }
}

void fa_dispatch_retry(struct fa_worker *w)
{
    while (w->backlog_head) {
        struct fa_resp *r = w->backlog_head;
        if (dispatch__push(w, r) < 0)
            break;
        w->backlog_head = r->backlog_next;
        if (w->backlog_head == NULL)
            w->backlog_tail = NULL;
        w->backlog_len--;
    }
    atomic_store_explicit(&w->me->stats.queued, w->backlog_len, memory_order_relaxed);
    for (uint32_t i = 0; w->notices_owed && i < w->n_pending_cap; i++) {
        struct fa_resp *r = w->pending[i].resp;
        if (r && r->notice_owed)
            dispatch__notice(w, r);
    }
    fa_dispatch_flush(w);
    if ((w->backlog_head || w->notices_owed) && !evtimer_pending(w->ev_retry, NULL)) {
        struct timeval tv = {0, 2000};
        evtimer_add(w->ev_retry, &tv);
    }
}

/* Publishing and waking are split: what is reserved is committed at once
 * (a Python worker that is awake takes it right away), but a sleeping one
 * is woken once per event-loop round (fa_dispatch_wake, from worker.c), or
 * as soon as w->doorbell_batch (DOORBELL_BATCH, or 1 with
 * FASTERAPI_NO_BATCH) requests wait for it, so that one eventfd write
 * serves many requests under load. */

void fa_dispatch_flush(struct fa_worker *w)
{
    uint64_t dirty = w->dirty_rings;
    w->dirty_rings = 0;
    while (dirty) {
        uint32_t p = (uint32_t)__builtin_ctzll(dirty);
        dirty &= dirty - 1;
        w->unrung[p] += fa_ring_commit(&w->req[p]);
        w->wake_rings |= 1ull << p;
        if (w->unrung[p] >= w->doorbell_batch) {
            w->unrung[p] = 0;
            w->wake_rings &= ~(1ull << p);
            fa_doorbell_ring(&fa_seg_py_slot(w->seg, p)->sleeping, w->env->py_efd[p]);
        }
    }
}

void fa_dispatch_wake(struct fa_worker *w)
{
    fa_dispatch_flush(w);
    uint64_t wake = w->wake_rings;
    w->wake_rings = 0;
    while (wake) {
        uint32_t p = (uint32_t)__builtin_ctzll(wake);
        wake &= wake - 1;
        w->unrung[p] = 0;
        fa_doorbell_ring(&fa_seg_py_slot(w->seg, p)->sleeping, w->env->py_efd[p]);
    }
}

void fa_dispatch_orphan(struct fa_worker *w, struct fa_resp *r)
{
    r->conn = NULL;
    switch (r->py_state) {
    case FA_PY_BUILDING:
        fa_msg_abort(&r->w);
        fa_resp_free(w, r);
        break;
    case FA_PY_BACKLOG: {
        struct fa_resp **pp = &w->backlog_head, *prev = NULL;
        while (*pp && *pp != r) {
            prev = *pp;
            pp = &(*pp)->backlog_next;
        }
        if (*pp) {
            *pp = r->backlog_next;
            if (w->backlog_tail == r)
                w->backlog_tail = prev;
            w->backlog_len--;
        }
        fa_msg_abort(&r->w);
        fa_resp_free(w, r);
        break;
    }
    default:
        /* In flight: freed when its last message (or its worker's death)
         * comes; what comes until then is freed unread. Told once here
         * (unless it was already, when it was cut or refused). */
        fa_resp_drop_parts(w, r);
        if (!r->py_unwanted)
            dispatch__unwant(w, r);
        break;
    }
}

/* ---- responses -------------------------------------------------------------- */

static bool dispatch__tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Header names must be tokens, values must not carry CR, LF or NUL. */
static bool dispatch__header_ok(const msgpack_object *n, const msgpack_object *v)
{
    if (n->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR || n->via.str.size == 0)
        return false;
    for (uint32_t i = 0; i < n->via.str.size; i++)
        if (!dispatch__tchar((unsigned char)n->via.str.ptr[i]))
            return false;
    for (uint32_t i = 0; i < v->via.str.size; i++) {
        unsigned char ch = (unsigned char)v->via.str.ptr[i];
        if (ch == '\r' || ch == '\n' || ch == '\0')
            return false;
    }
    return true;
}

static bool dispatch__hop_header(const msgpack_object *n)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection",
                                        "date", "server", "keep-alive"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == n->via.str.size && strncasecmp(names[i], n->via.str.ptr, n->via.str.size) == 0)
            return true;
    return false;
}

static bool dispatch__is_sendfile(const msgpack_object *n)
{
    static const char name[] = "x-fasterapi-sendfile";
    return n->via.str.size == sizeof name - 1 && strncasecmp(n->via.str.ptr, name, sizeof name - 1) == 0;
}

/* Reads a msgpack array header at *pos; returns its count or -1. */
static int64_t dispatch__array_len(const unsigned char *b, size_t len, size_t *pos)
{
    size_t i = *pos;
    if (i >= len)
        return -1;
    unsigned char c = b[i];
    if (c >= 0x90 && c <= 0x9f) {
        *pos = i + 1;
        return c & 0x0f;
    }
    if (c == 0xdc && i + 3 <= len) {
        *pos = i + 3;
        return (int64_t)b[i + 1] << 8 | b[i + 2];
    }
    if (c == 0xdd && i + 5 <= len) {
        *pos = i + 5;
        return (int64_t)b[i + 1] << 24 | (int64_t)b[i + 2] << 16 | (int64_t)b[i + 3] << 8 | b[i + 4];
    }
    return -1;
}

/* msgpack-c allocates for an array's declared count before reading its
 * elements: a hostile head declaring 2^32 elements would make us try a
 * huge allocation. Check that the head's two array headers declare no
 * more elements than there are bytes (spec/fuzz finding; fuzz/README.md). */
static bool dispatch__head_bounded(const unsigned char *b, size_t len)
{
    size_t pos = 0;
    int64_t n = dispatch__array_len(b, len, &pos);
    if (n < 2 || n > 8 || pos >= len)
        return false;
    unsigned char c = b[pos];                   /* the status: a positive integer */
    if (c <= 0x7f)
        pos += 1;
    else if (c == 0xcc)
        pos += 2;
    else if (c == 0xcd)
        pos += 3;
    else if (c == 0xce)
        pos += 5;
    else if (c == 0xcf)
        pos += 9;
    else
        return false;
    int64_t h = dispatch__array_len(b, len, &pos);
    return h >= 0 && (uint64_t)h <= len - (pos <= len ? pos : len);
}

/* The value of the app's content-length header(s) into *n: 1, 0 when there
 * is none, -1 when one is not a decimal number (below 2^63) or two
 * disagree. */
static int dispatch__content_length(const msgpack_object_array *hs, uint64_t *n)
{
    static const char name[] = "content-length";
    int found = 0;
    for (uint32_t i = 0; i < hs->size; i += 2) {
        const msgpack_object_str *k = &hs->ptr[i].via.str, *v = &hs->ptr[i + 1].via.str;
        if (k->size != sizeof name - 1 || strncasecmp(k->ptr, name, sizeof name - 1) != 0)
            continue;
        uint64_t x = 0;
        if (v->size == 0)
            return -1;
        for (uint32_t j = 0; j < v->size; j++) {
            unsigned d = (unsigned char)v->ptr[j] - '0';
            if (d > 9 || __builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, d, &x) ||
                x > INT64_MAX)
                return -1;
        }
        if (found && x != *n)
            return -1;
        *n = x;
        found = 1;
    }
    return found;
}

/* Builds r's head from the response head in iov (whole response, or a
 * stream's start when start is set); for a whole one r->iov gets the body,
 * for a start r->stream is made and *body_off says where its first part
 * begins. Returns 0, or an HTTP status to answer instead: 502 for a
 * malformed head (nothing in it can be trusted), 500 for a head that is
 * well formed but refused (the chunks of a whole response are then freed
 * by the caller through r->resp_chunks). */
/* One msgpack object from buf into w->mp_zone (cleared by the caller);
 * bytes may follow it (the body). */
static bool dispatch__unpack(struct fa_worker *w, const char *buf, size_t len, size_t *off,
                             msgpack_object *out)
{
    msgpack_unpack_return rc = msgpack_unpack(buf, len, off, &w->mp_zone, out);
    return rc == MSGPACK_UNPACK_SUCCESS || rc == MSGPACK_UNPACK_EXTRA_BYTES;
}

static int dispatch__build(struct fa_worker *w, struct fa_resp *r, struct iovec *iov, int niov, uint32_t len,
                           bool start, size_t *body_off)
{
    msgpack_object head;
    size_t off = 0;
    int rc = 502;
    char rn[160];

    if (niov < 1 || !dispatch__head_bounded(iov[0].iov_base, iov[0].iov_len) ||
        !dispatch__unpack(w, iov[0].iov_base, iov[0].iov_len, &off, &head) ||
        head.type != MSGPACK_OBJECT_ARRAY || head.via.array.size < 2 ||
        head.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        head.via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY ||
        head.via.array.ptr[1].via.array.size % 2 != 0 ||
        (start && (head.via.array.size < 3 || head.via.array.ptr[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                   head.via.array.ptr[2].via.u64 != 1))) {
        fa_log("route %s: malformed response envelope from Python worker %u",
               dispatch__route(w, r->route_id, rn, sizeof rn), r->py_slot);
        goto bail;
    }
    uint64_t status = head.via.array.ptr[0].via.u64;
    const msgpack_object_array *hs = &head.via.array.ptr[1].via.array;
    if (status < 100 || status > 999) {
        fa_log("route %s: handler returned status %llu (expected 100..999)",
               dispatch__route(w, r->route_id, rn, sizeof rn), (unsigned long long)status);
        rc = 500;
        goto bail;
    }
    for (uint32_t i = 0; i < hs->size; i += 2) {
        if (!dispatch__header_ok(&hs->ptr[i], &hs->ptr[i + 1])) {
            fa_log("route %s: response header refused (name not a token, or CR/LF/NUL in it)",
                   dispatch__route(w, r->route_id, rn, sizeof rn));
            rc = 500;
            goto bail;
        }
    }
    size_t body_len = len - off;
    bool no_body = status == 204 || status == 304 || status < 200;
    /* FileResponse: the package names the file in an internal header; the
     * file is sent from here with sendfile, never read by Python. */
    const msgpack_object *sendfile = NULL;
    for (uint32_t i = 0; i < hs->size; i += 2)
        if (dispatch__is_sendfile(&hs->ptr[i]))
            sendfile = &hs->ptr[i + 1];
    uint64_t file_size = 0;
    struct fa_stream *st = NULL;
    if (start) {
        /* Streams: the framing is ours (see struct fa_stream). */
        uint64_t cl = 0;
        int has_cl = dispatch__content_length(hs, &cl);
        if (sendfile || has_cl < 0) {
            fa_log("route %s: streamed response refused (%s)", dispatch__route(w, r->route_id, rn, sizeof rn),
                   sendfile ? "a file cannot be streamed" : "content-length is not one decimal number");
            rc = 500;
            goto bail;
        }
        st = fa_xcalloc(1, sizeof *st);
        if (r->head_only || no_body) {
            st->mode = FA_STREAM_HEAD_ONLY;
        } else if (has_cl) {
            st->mode = FA_STREAM_RAW;
            st->length = cl;
        } else if (r->http10) {
            st->mode = FA_STREAM_CLOSE;
            r->keep_alive = false;
        } else {
            st->mode = FA_STREAM_CHUNKED;
        }
        r->hlen = 0;
        fa_respond_head(w, r, (int)status, has_cl ? (size_t)cl : FA_RESPOND_NO_LENGTH);
        /* A HEAD gets the header a GET would. */
        if (!has_cl && !no_body && !r->http10)
            fa_resp_append(r, "Transfer-Encoding: chunked\r\n", 28);
    } else {
        if (sendfile) {
            int st_file = fa_files_attach(w, r, sendfile->via.str.ptr, sendfile->via.str.size, &file_size);
            if (st_file) {
                rc = st_file;
                goto bail;
            }
            body_len = (size_t)file_size;
            if (r->head_only || no_body)
                fa_files_detach(r);
        }
        r->hlen = 0;
        fa_respond_head(w, r, (int)status, body_len);
    }
    for (uint32_t i = 0; i < hs->size; i += 2) {
        if (dispatch__hop_header(&hs->ptr[i]) || dispatch__is_sendfile(&hs->ptr[i]))
            continue;
        fa_resp_append(r, hs->ptr[i].via.str.ptr, hs->ptr[i].via.str.size);
        fa_resp_append(r, ": ", 2);
        fa_resp_append(r, hs->ptr[i + 1].via.str.ptr, hs->ptr[i + 1].via.str.size);
        fa_resp_append(r, "\r\n", 2);
    }
    fa_resp_append(r, "\r\n", 2);
    r->niov = 0;
    r->total = r->hlen;
    r->sent = 0;
    if (start) {
        r->stream = st;
        *body_off = off;
    } else if (sendfile) {
        if (r->file)
            r->total += file_size;
    } else if (!r->head_only && !no_body && body_len) {
        if (niov > (int)(sizeof r->iov_inline / sizeof *r->iov_inline))
            r->iov = fa_xmalloc((size_t)niov * sizeof *r->iov);
        else
            r->iov = r->iov_inline;
        for (int i = 0; i < niov; i++) {
            size_t skip = i == 0 ? off : 0;
            if (iov[i].iov_len <= skip)
                continue;
            r->iov[r->niov].iov_base = (char *)iov[i].iov_base + skip;
            r->iov[r->niov].iov_len = iov[i].iov_len - skip;
            r->niov++;
        }
        r->total += body_len;
    }
    rc = 0;
bail:
    msgpack_zone_clear(&w->mp_zone);
    return rc;
}

/* ---- streams ---------------------------------------------------------------- */

/* Response messages (PROTOCOL.md, "Messages (C side only)"). */
enum { MSG_END = 0, MSG_PART = 1, MSG_ABORT = 2, MSG_WHOLE, MSG_START };

/* What a message is, from its array header (bounds-checked): [0], [1], [2]
 * (a one-element array of that fixint; *off is then where its part's bytes
 * begin), a stream's start (three elements or more), or else a whole
 * response, which dispatch__build refuses if it is not one. */
static int dispatch__kind(const struct iovec *iov, int niov, size_t *off)
{
    const unsigned char *b = niov > 0 ? iov[0].iov_base : NULL;
    size_t len = niov > 0 ? iov[0].iov_len : 0, pos = 0;
    int64_t n = dispatch__array_len(b, len, &pos);
    if (n == 1 && pos < len && b[pos] <= MSG_ABORT) {
        *off = pos + 1;
        return b[pos];
    }
    return n >= 3 ? MSG_START : MSG_WHOLE;
}

static void dispatch__queue_part(struct fa_stream *s, struct fa_part *p)
{
    p->next = NULL;
    p->sent = 0;
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    s->n_parts++;
}

/* Ends r's stream early: what is queued is written, then the connection
 * closes without the end of the body (the client sees it incomplete). */
static void dispatch__cut(struct fa_resp *r)
{
    r->stream->cut = true;
    r->keep_alive = false;
}

/* Queues the bytes of a stream message after its head (iov from offset
 * off) as r's next part, which takes the message's chain `first`: freed at
 * once when nothing of it is to be written. */
static void dispatch__part(struct fa_worker *w, struct fa_resp *r, uint32_t first,
                           const struct iovec *iov, int niov, size_t off)
{
    struct fa_stream *s = r->stream;
    uint32_t arena = fa_seg_py_arena(w->seg, r->py_slot);
    char rn[160];
    size_t n = 0;

    for (int i = 0; i < niov; i++)
        n += iov[i].iov_len;
    n = n > off ? n - off : 0;
    if (s->mode == FA_STREAM_RAW && n > s->length - s->body) {
        /* More would be read as the next response: stop at the length. */
        fa_log("route %s: streamed body longer than its content-length (%llu): closing the connection there",
               dispatch__route(w, r->route_id, rn, sizeof rn), (unsigned long long)s->length);
        n = (size_t)(s->length - s->body);
        dispatch__cut(r);
        dispatch__unwant(w, r);
    }
    if (n == 0 || s->mode == FA_STREAM_HEAD_ONLY) {
        fa_msg_free(w->seg, arena, first);
        return;
    }
    if (s->n_parts >= STREAM_MAX_PARTS) {
        fa_log("route %s: more than %d parts of a streamed response queued: closing the connection",
               dispatch__route(w, r->route_id, rn, sizeof rn), STREAM_MAX_PARTS);
        fa_msg_free(w->seg, arena, first);
        dispatch__cut(r);
        dispatch__unwant(w, r);
        return;
    }
    int pieces = 0;
    size_t skip = off, want = n;
    for (int i = 0; i < niov && want; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t k = iov[i].iov_len - skip < want ? iov[i].iov_len - skip : want;
        want -= k;
        skip = 0;
        pieces++;
    }
    struct fa_part *p = fa_xmalloc(sizeof *p + (size_t)(pieces + 2) * sizeof *p->iov);
    p->first = first;
    p->niov = 0;
    p->len = n;
    size_t fl = 0;
    if (s->mode == FA_STREAM_CHUNKED) {
        /* "<hex>\r\n" before the data, "\r\n" after it. */
        char hex[16];
        size_t v = n;
        do {
            hex[sizeof hex - ++fl] = "0123456789abcdef"[v & 15];
            v >>= 4;
        } while (v);
        memcpy(p->frame, hex + sizeof hex - fl, fl);
        memcpy(p->frame + fl, "\r\n\r\n", 4);
        p->iov[p->niov++] = (struct iovec){p->frame, fl + 2};
        p->len += fl + 4;
    }
    skip = off;
    want = n;
    for (int i = 0; i < niov && want; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t k = iov[i].iov_len - skip < want ? iov[i].iov_len - skip : want;
        p->iov[p->niov++] = (struct iovec){(char *)iov[i].iov_base + skip, k};
        want -= k;
        skip = 0;
    }
    if (s->mode == FA_STREAM_CHUNKED)
        p->iov[p->niov++] = (struct iovec){p->frame + fl + 2, 2};
    dispatch__queue_part(s, p);
    s->body += n;
    r->total += n;   /* body bytes, for the access log */
}

/* [0]: no more parts. A chunked body ends with its terminator; a raw one
 * that missed its length ends the connection. */
static void dispatch__stream_end(struct fa_worker *w, struct fa_resp *r)
{
    struct fa_stream *s = r->stream;
    char rn[160];

    s->done = true;
    if (s->cut)
        return;
    if (s->mode == FA_STREAM_CHUNKED) {
        struct fa_part *p = fa_xmalloc(sizeof *p + sizeof *p->iov);
        memcpy(p->frame, "0\r\n\r\n", 5);
        p->first = FA_CHUNK_NONE;
        p->iov[0] = (struct iovec){p->frame, 5};
        p->niov = 1;
        p->len = 5;
        dispatch__queue_part(s, p);
    } else if (s->mode == FA_STREAM_RAW && s->body != s->length) {
        fa_log("route %s: streamed body of %llu bytes, content-length said %llu: closing the connection after it",
               dispatch__route(w, r->route_id, rn, sizeof rn), (unsigned long long)s->body,
               (unsigned long long)s->length);
        r->keep_alive = false;
    }
}

/* ---- responses (continued) -------------------------------------------------- */

/* r's Python worker sent its last message for r (or died): the token is
 * free again, and r leaves the load board. */
static void dispatch__finish(struct fa_worker *w, struct fa_resp *r)
{
    dispatch__pending_release(w, r->token & 0xffff);
    dispatch__in_flight(w, r->py_slot, -1);
    r->py_state = FA_PY_DONE;
    if (r->stream)
        r->stream->done = true;
    if (r->notice_owed) {
        r->notice_owed = false;
        w->notices_owed--;
    }
}

/* Push to first answer (a whole response, or a stream's start). */
static void dispatch__latency(struct fa_worker *w, struct fa_resp *r)
{
    if (r->py_answered)
        return;
    r->py_answered = true;
    struct fa_slot_sh *ps = fa_seg_py_slot(w->seg, r->py_slot);
    uint64_t us = (fa_now_ns() - r->t_start) / 1000;
    unsigned b = us ? 63u - (unsigned)__builtin_clzll(us) : 0;
    if (b >= FA_LAT_BUCKETS)
        b = FA_LAT_BUCKETS - 1;
    atomic_fetch_add_explicit(&ps->lat.count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->lat.sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->lat.bucket[b], 1, memory_order_relaxed);
}

/* r has (more of) its answer: write it, or free r if its client is gone
 * and its Python worker is done with it. The last thing done with r. */
static void dispatch__answer(struct fa_worker *w, struct fa_resp *r)
{
    r->state = FA_RESP_READY;
    if (r->conn)
        fa_conn_resp_ready(w, r);
    else if (r->py_state != FA_PY_INFLIGHT)
        fa_resp_free(w, r);
}

/* A message for a stream already started (and still wanted). */
static void dispatch__stream_msg(struct fa_worker *w, struct fa_resp *r, int kind, const struct fa_desc *d,
                                 const struct iovec *iov, int niov, size_t off)
{
    char rn[160];
    switch (kind) {
    case MSG_PART:
        dispatch__part(w, r, d->chunk, iov, niov, off);
        break;
    case MSG_END:
        dispatch__part(w, r, d->chunk, iov, niov, off);
        dispatch__stream_end(w, r);
        dispatch__finish(w, r);
        break;
    case MSG_ABORT:
        fa_msg_free(w->seg, fa_seg_py_arena(w->seg, r->py_slot), d->chunk);
        dispatch__cut(r);
        dispatch__finish(w, r);
        break;
    default:
        fa_log("route %s: a second head for a streamed response from Python worker %u: closing the connection",
               dispatch__route(w, r->route_id, rn, sizeof rn), r->py_slot);
        fa_msg_free(w->seg, fa_seg_py_arena(w->seg, r->py_slot), d->chunk);
        dispatch__cut(r);
        dispatch__finish(w, r);
        break;
    }
    dispatch__answer(w, r);
}

/* The first message for r. */
static void dispatch__first_msg(struct fa_worker *w, struct fa_resp *r, int kind, const struct fa_desc *d,
                                struct iovec *iov, int niov, size_t off)
{
    uint32_t arena = fa_seg_py_arena(w->seg, r->py_slot);
    char rn[160];

    if (kind == MSG_WHOLE || kind == MSG_START) {
        int status = dispatch__build(w, r, iov, niov, d->len, kind == MSG_START, &off);
        if (kind == MSG_START && status == 0) {
            dispatch__part(w, r, d->chunk, iov, niov, off);
        } else if (kind == MSG_START && status != 502) {
            /* A start refused: the 500 is its answer; the parts that
             * follow it are not wanted. */
            fa_msg_free(w->seg, arena, d->chunk);
            fa_respond_error(w, r, status, NULL);
            dispatch__unwant(w, r);
        } else {
            r->resp_first = d->chunk;
            r->resp_chunks = true;
            if (status)
                fa_respond_error(w, r, status, NULL);
            dispatch__finish(w, r);
        }
        dispatch__answer(w, r);
        return;
    }
    /* A continuation with no start: abort() before starting is a 500 by
     * the protocol; [0] or [1] is a confused Python worker. */
    if (kind != MSG_ABORT)
        fa_log("route %s: a part of a streamed response that was never started, from Python worker %u: 500",
               dispatch__route(w, r->route_id, rn, sizeof rn), r->py_slot);
    fa_msg_free(w->seg, arena, d->chunk);
    fa_respond_error(w, r, 500, NULL);
    if (kind == MSG_PART)
        dispatch__unwant(w, r);
    else
        dispatch__finish(w, r);
    dispatch__answer(w, r);
}

static void dispatch__response(struct fa_worker *w, uint32_t p, const struct fa_desc *d)
{
    uint32_t idx = d->token & 0xffff;
    struct iovec iov_stack[72];
    struct iovec *iov = iov_stack;
    char rn[160];

    struct fa_resp *r = idx < w->n_pending_cap ? w->pending[idx].resp : NULL;
    if (r == NULL || d->token != (idx | w->incarnation << 16 | (uint32_t)w->pending[idx].seq << 20) ||
        r->py_slot != p ||
        r->py_gen != d->gen) {
        fa_log("dropping a response from Python worker %u for no pending request (token %#x)", p, d->token);
        int n = fa_msg_iov(w->seg, fa_seg_py_arena(w->seg, p), w->self, d, iov, 72);
        if (n >= 0) {
            /* A stream going on for a request we do not know (one of a
             * dead predecessor of this HTTP slot, say): ask it to stop. */
            size_t off;
            int kind = dispatch__kind(iov, n, &off);
            if (kind == MSG_START || kind == MSG_PART)
                dispatch__notice_push(w, p, d->gen, d->token);
            dispatch__sweep_seen(w, p, d->chunk);
            fa_msg_free(w->seg, fa_seg_py_arena(w->seg, p), d->chunk);
        }
        return;
    }
    dispatch__latency(w, r);

    uint32_t max_iov = d->len / w->seg->hdr->chunk_size + 2;
    if (max_iov > sizeof iov_stack / sizeof *iov_stack)
        iov = fa_xmalloc(max_iov * sizeof *iov);
    int niov = fa_msg_iov(w->seg, fa_seg_py_arena(w->seg, p), w->self, d, iov, (int)max_iov);
    if (niov < 0) {
        /* Its chunks cannot be trusted, not even to free them; and
         * whatever it was, it ends r. */
        fa_log("route %s: invalid response descriptor from Python worker %u",
               dispatch__route(w, r->route_id, rn, sizeof rn), p);
        if (r->stream && !r->py_unwanted)
            dispatch__cut(r);
        else if (!r->py_unwanted)
            fa_respond_error(w, r, 502, NULL);
        dispatch__finish(w, r);
        dispatch__answer(w, r);
        goto out;
    }
    dispatch__sweep_seen(w, p, d->chunk);
    size_t off = 0;
    int kind = dispatch__kind(iov, niov, &off);
    if (r->py_unwanted) {
        fa_msg_free(w->seg, fa_seg_py_arena(w->seg, p), d->chunk);
        if (kind == MSG_START || kind == MSG_PART) {
            dispatch__notice(w, r);
        } else {
            dispatch__finish(w, r);
            dispatch__answer(w, r);
        }
    } else if (r->stream) {
        dispatch__stream_msg(w, r, kind, d, iov, niov, off);
    } else {
        dispatch__first_msg(w, r, kind, d, iov, niov, off);
    }
out:
    if (iov != iov_stack)
        free(iov);
}

/* Takes back every chunk of our arena that is SENT to a Python slot's dead
 * incarnation (generation older than the slot's current one). Scanning the
 * arena does not depend on chain links, which the dead worker may have been
 * freeing when it died (and which we may have reused since). */
static void dispatch__reclaim(struct fa_worker *w)
{
    for (uint32_t i = 0; i < w->arena.n; i++) {
        struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(w->seg, w->arena.id, i);
        uint32_t word = atomic_load_explicit(&m->state, memory_order_acquire);
        if (FA_CHUNK_STATE(word) != FA_CHUNK_SENT || FA_CHUNK_HOLDER(word) < w->n_http)
            continue;
        uint32_t p = FA_CHUNK_HOLDER(word) - w->n_http;
        if (p >= w->max_py)
            continue;
        uint32_t gen = atomic_load_explicit(&fa_seg_py_slot(w->seg, p)->gen, memory_order_acquire);
        if (FA_CHUNK_GEN(word) == (gen & 0xffffu))
            continue;
        atomic_compare_exchange_strong_explicit(&m->state, &word, FA_CHUNK_FREE,
                                                memory_order_acq_rel, memory_order_relaxed);
    }
}

/* A Python worker that dies between marking a response SENT to us and
 * publishing it (or while marking a long chain) leaves chunks SENT to us
 * that no descriptor names. Once the ring is drained, every chunk of its
 * arena SENT to us by a dead generation is either held by one of our
 * queued responses or lost: take back the lost ones. */
static void dispatch__reclaim_py(struct fa_worker *w)
{
    uint32_t n = w->seg->hdr->chunks_per_arena;
    uint8_t *held = fa_xcalloc((n + 7) / 8, 1);
    for (uint32_t p = 0; p < w->max_py; p++) {
        uint16_t snap = (uint16_t)w->gen_snap[p];
        uint32_t arena = fa_seg_py_arena(w->seg, p);
        memset(held, 0, (n + 7) / 8);
        fa_conn_mark_held(w, p, held, n);
        for (uint32_t i = 0; i < n; i++) {
            struct fa_chunk_meta_sh *m = fa_seg_chunk_meta(w->seg, arena, i);
            uint32_t word = atomic_load_explicit(&m->state, memory_order_acquire);
            if (FA_CHUNK_STATE(word) != FA_CHUNK_SENT || FA_CHUNK_HOLDER(word) != w->self ||
                (int16_t)((uint16_t)FA_CHUNK_GEN(word) - snap) >= 0 || (held[i / 8] & (1u << (i % 8))))
                continue;   /* not ours, not from a generation dead before the drain, or held */
            atomic_compare_exchange_strong_explicit(&m->state, &word, FA_CHUNK_FREE,
                                                    memory_order_acq_rel, memory_order_relaxed);
        }
    }
    free(held);
}

/* r was sent to a Python worker that died without taking it (its
 * descriptor is at or past the ring's head, where the dead consumer left
 * it): send it to another one. Its chunks are ours and nobody reads them
 * (the slot's next incarnation drops the old descriptor unread: its
 * generation is stale), so fa_dispatch_end marks them again for the new
 * receiver. 1 if r was sent again (or queued for that), 0 if it was taken. */
static int dispatch__requeue(struct fa_worker *w, struct fa_resp *r)
{
    uint32_t head = atomic_load_explicit(&w->req[r->py_slot].sh->head, memory_order_acquire);
    if ((int32_t)(r->req_idx - head) < 0)
        return 0;
    dispatch__finish(w, r);
    fa_msg_unsend(&r->w);   /* kept from dispatch__reclaim while it waits for a worker */
    r->py_state = FA_PY_BUILDING;
    fa_dispatch_end(w, r);
    return 1;
}

/* A Python worker died: fail what was sent to a dead generation and taken
 * by it, send elsewhere what it never took. */
static void dispatch__deaths(struct fa_worker *w)
{
    /* 0. Every generation older than this snapshot is dead and published
     * nothing after it. Read before the drain: a worker that publishes and
     * dies after the drain has answers still in the ring, and its
     * requests must wait for the next round (spec: FAIL_BY_CURRENT_GEN). */
    for (uint32_t p = 0; p < w->max_py; p++)
        w->gen_snap[p] = atomic_load_explicit(&fa_seg_py_slot(w->seg, p)->gen, memory_order_acquire);
    fa_dispatch_poll(w);    /* 1. what the dead fully published is still good */
    uint32_t requeued = 0;
    /* fa_dispatch_end may grow the table: index it afresh each time. A
     * request sent again has a live generation and is skipped. */
    for (uint32_t i = 0; i < w->n_pending_cap; i++) {
        struct fa_resp *r = w->pending[i].resp;
        if (r == NULL)
            continue;
        if ((int32_t)(r->py_gen - w->gen_snap[r->py_slot]) >= 0)
            continue;
        if (!r->py_unwanted && !r->stream && !r->py_answered && dispatch__requeue(w, r)) {
            requeued++;
            continue;
        }
        struct fa_slot_sh *ps = fa_seg_py_slot(w->seg, r->py_slot);
        uint32_t token = r->token;
        dispatch__finish(w, r);
        char rn[160];
        dispatch__route(w, r->route_id, rn, sizeof rn);
        uint64_t waited_ms = (fa_now_ns() - r->t_start) / 1000000;
        if (r->py_unwanted || r->stream) {
            /* Its answer began (or is not wanted): what came is written,
             * then a started stream's connection closes. */
            if (!r->py_unwanted) {
                fa_log("route %s: Python worker %u died during a streamed response (after %llu ms): "
                       "closing the connection", rn, r->py_slot, (unsigned long long)waited_ms);
                dispatch__cut(r);
            }
        } else if (atomic_load_explicit(&ps->kill_reason, memory_order_acquire) == FA_KILL_TIMEOUT &&
                   atomic_load_explicit(&ps->kill_token, memory_order_relaxed) == token &&
                   atomic_load_explicit(&ps->kill_http, memory_order_relaxed) == w->h) {
            uint64_t started = atomic_load_explicit(&ps->kill_start_ns, memory_order_relaxed);
            uint64_t queued_ms = started > r->t_start ? (started - r->t_start) / 1000000 : 0;
            fa_log("route %s: timed out after %llu ms queued and %llu ms running: 504", rn,
                   (unsigned long long)queued_ms, (unsigned long long)(waited_ms - queued_ms));
            fa_respond_error(w, r, 504, NULL);
        } else {
            fa_log("route %s: Python worker %u died with this request (after %llu ms): 502", rn, r->py_slot,
                   (unsigned long long)waited_ms);
            fa_respond_error(w, r, 502, NULL);
        }
        dispatch__answer(w, r);
    }
    if (requeued)
        fa_log("%u request(s) that a dead Python worker had not taken yet were sent to another one",
               requeued);
    fa_dispatch_flush(w);
    dispatch__reclaim(w);
    dispatch__reclaim_py(w);
}

int fa_dispatch_poll(struct fa_worker *w)
{
    struct fa_desc d[POLL_BATCH];
    int total = 0;

    uint32_t ds = atomic_load_explicit(&w->me->death_seq, memory_order_acquire);
    if (ds != w->seen_death) {
        w->seen_death = ds;
        dispatch__deaths(w);
    }
    for (uint32_t p = 0; p < w->max_py; p++) {
        uint32_t n;
        while ((n = fa_ring_pop(&w->resp[p], d, POLL_BATCH)) > 0) {
            for (uint32_t i = 0; i < n; i++)
                dispatch__response(w, p, &d[i]);
            total += (int)n;
        }
        /* A producer that asked for space may not have declared itself
         * asleep yet: wake it unconditionally (spec: SPACE_WAKE_BY_FLAG). */
        if (fa_ring_space_wanted(&w->resp[p]))
            fa_doorbell_ring_force(w->env->py_efd[p]);
    }
    if (total)
        fa_dispatch_flush(w);
    return total;
}

int fa_dispatch_pending_input(struct fa_worker *w)
{
    for (uint32_t p = 0; p < w->max_py; p++)
        if (!fa_ring_empty(&w->resp[p]))
            return 1;
    return atomic_load_explicit(&w->me->death_seq, memory_order_acquire) != w->seen_death;
}
