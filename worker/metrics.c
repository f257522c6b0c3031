/* metrics.c - Prometheus exposition of the segment's counters. Read with
 * relaxed loads, like shm-stat: a scrape is a snapshot, roughly consistent. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "worker/metrics.h"
#include "worker/respond.h"
#include "worker/util.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

struct buf {
    char *p;
    size_t len, cap;
};

static void buf__printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf__printf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (n > 0 ? (size_t)n : 0);
        b->p = fa_xrealloc(b->p, b->cap);
    }
}

static const char *metrics__state(uint32_t s)
{
    static const char *const names[] = {"empty", "starting", "ready", "draining", "dead"};
    return s < sizeof names / sizeof *names ? names[s] : "corrupt";
}

static void metrics__family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf__printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void fa_metrics_render(struct fa_worker *w, struct fa_resp *r)
{
    const struct fa_seg *seg = w->seg;
    const struct fa_seg_header_sh *h = seg->hdr;
    struct buf b = {fa_xmalloc(8192), 0, 8192};

#define PER_SLOT(kind, n, getslot, metric, type, help, expr)                                  \
    do {                                                                                      \
        metrics__family(&b, metric, type, help);                                              \
        for (uint32_t i = 0; i < (n); i++) {                                                  \
            struct fa_slot_sh *s = getslot(seg, i);                                           \
            if (LOAD(s->pid) == 0 && LOAD(s->stats.requests) == 0)                            \
                continue;                                                                     \
            buf__printf(&b, "%s{%s=\"%u\"} %llu\n", metric, kind, i, (unsigned long long)(expr)); \
        }                                                                                     \
    } while (0)

    metrics__family(&b, "fasterapi_up", "gauge", "1 while the server runs");
    buf__printf(&b, "fasterapi_up 1\n");
    metrics__family(&b, "fasterapi_python_workers_wanted", "gauge", "Python workers the master wants");
    buf__printf(&b, "fasterapi_python_workers_wanted %u\n", LOAD(((struct fa_seg_header_sh *)h)->py_target));

    metrics__family(&b, "fasterapi_worker_state", "gauge", "1 for the state each worker slot is in");
    for (uint32_t i = 0; i < h->n_http; i++) {
        struct fa_slot_sh *s = fa_seg_http_slot(seg, i);
        if (LOAD(s->pid))
            buf__printf(&b, "fasterapi_worker_state{kind=\"http\",slot=\"%u\",state=\"%s\"} 1\n", i,
                        metrics__state(LOAD(s->state)));
    }
    for (uint32_t i = 0; i < h->max_py; i++) {
        struct fa_slot_sh *s = fa_seg_py_slot(seg, i);
        if (LOAD(s->pid))
            buf__printf(&b, "fasterapi_worker_state{kind=\"python\",slot=\"%u\",state=\"%s\"} 1\n", i,
                        metrics__state(LOAD(s->state)));
    }

    PER_SLOT("http_worker", h->n_http, fa_seg_http_slot, "fasterapi_http_requests_total", "counter",
             "responses written by each HTTP worker", LOAD(s->stats.requests));
    PER_SLOT("http_worker", h->n_http, fa_seg_http_slot, "fasterapi_http_connections", "gauge",
             "open client connections", LOAD(s->stats.connections));
    PER_SLOT("http_worker", h->n_http, fa_seg_http_slot, "fasterapi_http_received_bytes_total", "counter",
             "bytes read from clients", LOAD(s->stats.bytes_in));
    PER_SLOT("http_worker", h->n_http, fa_seg_http_slot, "fasterapi_http_sent_bytes_total", "counter",
             "bytes written to clients", LOAD(s->stats.bytes_out));
    PER_SLOT("http_worker", h->n_http, fa_seg_http_slot, "fasterapi_http_queued_requests", "gauge",
             "requests waiting for a Python worker", LOAD(s->stats.queued));
    PER_SLOT("python_worker", h->max_py, fa_seg_py_slot, "fasterapi_python_requests_total", "counter",
             "requests answered by each Python worker", LOAD(s->stats.requests));
    PER_SLOT("python_worker", h->max_py, fa_seg_py_slot, "fasterapi_python_errors_total", "counter",
             "answers with a status >= 500", LOAD(s->stats.errors));
    PER_SLOT("python_worker", h->max_py, fa_seg_py_slot, "fasterapi_python_in_flight", "gauge",
             "requests sent to the worker and not answered yet", fa_seg_py_in_flight(seg, i));
    PER_SLOT("python_worker", h->max_py, fa_seg_py_slot, "fasterapi_python_restarts_total", "counter",
             "times the master restarted the slot", LOAD(s->stats.restarts));
    PER_SLOT("python_worker", h->max_py, fa_seg_py_slot, "fasterapi_python_rss_bytes", "gauge",
             "resident memory of the worker process", LOAD(s->stats.rss_kb) * 1024);

    metrics__family(&b, "fasterapi_python_latency_seconds", "histogram",
                    "time from the HTTP worker's push to the Python worker's answer");
    for (uint32_t i = 0; i < h->max_py; i++) {
        struct fa_slot_sh *s = fa_seg_py_slot(seg, i);
        uint64_t count = LOAD(s->lat.count);
        if (count == 0)
            continue;
        uint64_t cum = 0;
        for (int k = 0; k < FA_LAT_BUCKETS; k++) {
            cum += LOAD(s->lat.bucket[k]);
            buf__printf(&b, "fasterapi_python_latency_seconds_bucket{python_worker=\"%u\",le=\"%g\"} %llu\n", i,
                        (double)(2ull << k) / 1e6, (unsigned long long)cum);
        }
        buf__printf(&b, "fasterapi_python_latency_seconds_bucket{python_worker=\"%u\",le=\"+Inf\"} %llu\n", i,
                    (unsigned long long)count);
        buf__printf(&b, "fasterapi_python_latency_seconds_sum{python_worker=\"%u\"} %g\n", i,
                    (double)LOAD(s->lat.sum_us) / 1e6);
        buf__printf(&b, "fasterapi_python_latency_seconds_count{python_worker=\"%u\"} %llu\n", i,
                    (unsigned long long)count);
    }
#undef PER_SLOT
    fa_respond_simple(w, r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, NULL);
    free(b.p);
}
