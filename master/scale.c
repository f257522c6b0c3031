/* scale.c - how many Python workers run, and which: scaling on request
 * (fasterapi scale, SIGTTIN/SIGTTOU), autoscaling between MIN and MAX,
 * recycling (--max-requests, --max-rss) and request timeouts (--timeout).
 *
 * Retiring a worker never drops a request:
 *   1. its slot goes DRAINING: HTTP workers stop choosing it;
 *   2. the master bumps hdr->drain_epoch and wakes every HTTP worker; each
 *      acknowledges the epoch once every push it made is committed
 *      (worker.c), so after all acks nothing new can reach the slot;
 *   3. SIGTERM: the Python worker answers everything left in its rings and
 *      exits 0. A worker that does not exit within --graceful-timeout is
 *      killed; the death protocol then answers its requests 502.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "master/supervise.h"
#include "shm/doorbell.h"
#include "worker/util.h"

#define SCALE_UP_EVERY_NS   (500ull * 1000000ull)
#define RSS_EVERY_NS        (1000ull * 1000000ull)

uint32_t fa_scale_active(const struct fa_master *m)
{
    uint32_t n = 0;
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++)
        n += m->py[p].wanted && !m->py[p].retiring && m->py[p].replaced_by < 0 &&
             m->py[p].version == m->version;
    return n;
}

/* A slot with no process and nobody wanting it, or -1. */
static int scale__free_slot(const struct fa_master *m)
{
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++)
        if (!m->py[p].wanted && m->py[p].pid == 0 && !m->py[p].retiring)
            return (int)p;
    return -1;
}

void fa_scale_retire(struct fa_master *m, uint32_t p, const char *why)
{
    struct fa_proc *pr = &m->py[p];
    struct fa_slot_sh *s = fa_seg_py_slot(&m->seg, p);
    pr->wanted = false;
    pr->replaced_by = -1;
    pr->restart_at_ns = 0;
    if (pr->pid == 0) {
        atomic_store(&s->state, FA_SLOT_EMPTY);
        return;
    }
    fa_log("retiring Python worker %u (pid %d): %s", p, (int)pr->pid, why);
    uint32_t st = FA_SLOT_STARTING;
    if (atomic_compare_exchange_strong(&s->state, &st, FA_SLOT_DRAINING)) {
        /* Never READY: no HTTP worker can have sent it anything. */
        kill(pr->pid, SIGTERM);
        pr->retiring = 2;
        pr->term_at_ns = fa_now_ns();
        return;
    }
    atomic_store(&s->state, FA_SLOT_DRAINING);
    pr->drain_epoch = atomic_fetch_add(&m->seg.hdr->drain_epoch, 1) + 1;
    pr->retiring = 1;
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++)
        fa_doorbell_ring_force(m->http_efd[h]);
}

void fa_scale_set(struct fa_master *m, uint32_t n, const char *why)
{
    if (m->reload != FA_RELOAD_IDLE) {
        fa_log("%s: a reload is in progress; scale again once it is done", why);
        return;
    }
    uint32_t active = fa_scale_active(m);
    if (n == active)
        return;
    fa_log("%s: %u -> %u Python workers", why, active, n);
    while (active < n) {
        int p = scale__free_slot(m);
        if (p < 0) {
            fa_log("%s: no free Python worker slot (all %u in use, some still retiring)", why,
                   m->seg.hdr->max_py);
            break;
        }
        m->py[p].version = m->version;
        fa_master_spawn_py(m, (uint32_t)p);
        active++;
    }
    /* Retire from the highest slot down: not-yet-ready ones first. */
    for (int pass = 0; pass < 2 && active > n; pass++) {
        for (int p = (int)m->seg.hdr->max_py - 1; p >= 0 && active > n; p--) {
            struct fa_proc *pr = &m->py[p];
            if (!pr->wanted || pr->retiring || pr->replaced_by >= 0)
                continue;
            bool ready = atomic_load(&fa_seg_py_slot(&m->seg, (uint32_t)p)->state) == FA_SLOT_READY;
            if (pass == 0 && ready)
                continue;
            fa_scale_retire(m, (uint32_t)p, why);
            active--;
        }
    }
    m->py_target = n;
    atomic_store(&m->seg.hdr->py_target, n);
}

/* Every live HTTP worker has acknowledged epoch e. */
static bool scale__acked(const struct fa_master *m, uint32_t e)
{
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++) {
        if (m->http[h].pid == 0)
            continue;
        struct fa_slot_sh *s = fa_seg_http_slot(&m->seg, h);
        if (atomic_load(&s->state) != FA_SLOT_READY)
            continue;    /* starting: will read the states fresh */
        if ((int32_t)(atomic_load(&s->seen_epoch) - e) < 0)
            return false;
    }
    return true;
}

static void scale__drains(struct fa_master *m, uint64_t now)
{
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++) {
        struct fa_proc *pr = &m->py[p];
        if (pr->retiring == 1 && pr->pid > 0 && scale__acked(m, pr->drain_epoch)) {
            kill(pr->pid, SIGTERM);
            pr->retiring = 2;
            pr->term_at_ns = now;
        } else if (pr->retiring == 2 && pr->pid > 0 &&
                   now - pr->term_at_ns > (uint64_t)m->o->wcfg.graceful_timeout * 1000000000ull + 1000000000ull) {
            fa_log("Python worker %u (pid %d) did not finish draining within %u s: killing it", p,
                   (int)pr->pid, m->o->wcfg.graceful_timeout);
            kill(pr->pid, SIGKILL);
            pr->term_at_ns = UINT64_MAX / 2;
        }
        /* Recycling: the replacement is up, retire the old one. */
        if (pr->replaced_by >= 0 &&
            (atomic_load(&fa_seg_py_slot(&m->seg, (uint32_t)pr->replaced_by)->state) == FA_SLOT_READY ||
             !m->py[pr->replaced_by].wanted)) {
            pr->replaced_by = -1;
            fa_scale_retire(m, p, "replaced");
        }
    }
}

/* Starts a replacement for p, then retires p once it is READY. */
static void scale__recycle(struct fa_master *m, uint32_t p, const char *why)
{
    struct fa_proc *pr = &m->py[p];
    if (pr->replaced_by >= 0 || pr->retiring || !pr->wanted)
        return;
    int q = scale__free_slot(m);
    fa_log("recycling Python worker %u (pid %d): %s", p, (int)pr->pid, why);
    if (q < 0) {
        /* No spare slot: retire first, restart in place afterwards (a dip). */
        fa_scale_retire(m, p, why);
        pr->wanted = true;
        pr->restart_at_ns = 1;
        return;
    }
    m->py[q].version = pr->version;
    fa_master_spawn_py(m, (uint32_t)q);
    pr->replaced_by = q;
}

static uint64_t scale__rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    unsigned long size = 0, rss = 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (uint64_t)rss * (uint64_t)(sysconf(_SC_PAGESIZE) / 1024);
}

static void scale__recycling(struct fa_master *m, uint64_t now)
{
    bool rss_due = now - m->last_rss_ns >= RSS_EVERY_NS;
    if (rss_due)
        m->last_rss_ns = now;
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++) {
        struct fa_proc *pr = &m->py[p];
        struct fa_slot_sh *s = fa_seg_py_slot(&m->seg, p);
        if (pr->pid == 0)
            continue;
        uint64_t reqs = atomic_load(&s->stats.requests);
        if (reqs != pr->last_requests) {
            pr->last_requests = reqs;
            pr->active_ns = now;
        }
        if (atomic_load(&s->state) != FA_SLOT_READY)
            continue;
        if (pr->max_requests && reqs >= pr->max_requests)
            scale__recycle(m, p, "--max-requests reached");
        if (rss_due) {
            uint64_t kb = scale__rss_kb(pr->pid);
            atomic_store(&s->stats.rss_kb, kb);
            if (m->o->max_rss_mb && kb > (uint64_t)m->o->max_rss_mb * 1024) {
                char why[96];
                snprintf(why, sizeof why, "RSS %llu MiB is over --max-rss %u",
                         (unsigned long long)(kb / 1024), m->o->max_rss_mb);
                scale__recycle(m, p, why);
            }
        }
    }
    if (rss_due)
        for (uint32_t h = 0; h < m->seg.hdr->n_http; h++)
            if (m->http[h].pid > 0)
                atomic_store(&fa_seg_http_slot(&m->seg, h)->stats.rss_kb, scale__rss_kb(m->http[h].pid));
}

/* --py-workers MIN:MAX: one more worker when requests queue, one fewer when
 * a worker has been idle for --idle-timeout. */
static void scale__auto(struct fa_master *m, uint64_t now)
{
    if (!m->o->autoscale || m->reload != FA_RELOAD_IDLE || now - m->last_scale_ns < SCALE_UP_EVERY_NS)
        return;
    uint64_t queued = 0, in_flight = 0;
    uint32_t ready = 0;
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++)
        queued += atomic_load(&fa_seg_http_slot(&m->seg, h)->stats.queued);
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++) {
        struct fa_slot_sh *s = fa_seg_py_slot(&m->seg, p);
        if (m->py[p].wanted && atomic_load(&s->state) == FA_SLOT_READY) {
            ready++;
            in_flight += fa_seg_py_in_flight(&m->seg, p);
        }
    }
    uint32_t active = fa_scale_active(m);
    if ((queued > 0 || in_flight > 2ull * ready) && active < m->o->py_workers && ready == active) {
        m->last_scale_ns = now;
        fa_scale_set(m, active + 1, "autoscale (requests are queueing)");
        return;
    }
    if (active <= m->o->min_py_workers)
        return;
    for (int p = (int)m->seg.hdr->max_py - 1; p >= 0; p--) {
        struct fa_proc *pr = &m->py[p];
        if (pr->wanted && !pr->retiring && pr->replaced_by < 0 && pr->pid > 0 &&
            now - pr->active_ns > (uint64_t)m->o->idle_timeout * 1000000000ull &&
            fa_seg_py_in_flight(&m->seg, (uint32_t)p) == 0) {
            m->last_scale_ns = now;
            fa_scale_retire(m, (uint32_t)p, "autoscale (idle)");
            m->py_target = fa_scale_active(m);
            atomic_store(&m->seg.hdr->py_target, m->py_target);
            return;
        }
    }
}

/* --timeout: a handler running too long gets its worker killed; the HTTP
 * worker answers that request 504 (dispatch.c) and the others 502. */
static void scale__timeouts(struct fa_master *m, uint64_t now)
{
    if (m->o->wcfg.request_timeout == 0)
        return;
    uint64_t limit = (uint64_t)m->o->wcfg.request_timeout * 1000000000ull;
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++) {
        struct fa_proc *pr = &m->py[p];
        struct fa_slot_sh *s = fa_seg_py_slot(&m->seg, p);
        if (pr->pid <= 0)
            continue;
        uint64_t start = atomic_load_explicit(&s->current.start_ns, memory_order_acquire);
        if (start == 0 || now <= start || now - start < limit)
            continue;
        uint32_t route = atomic_load(&s->current.route_id);
        const struct fa_route *rt = fa_routes_get(&m->routes, route);
        fa_log("Python worker %u (pid %d): route %s %s has run %.1f s (--timeout %u): killing the worker",
               p, (int)pr->pid, rt ? http_method_str(rt->method) : "?", rt ? rt->pattern : "?",
               (double)(now - start) / 1e9, m->o->wcfg.request_timeout);
        atomic_store(&s->kill_token, atomic_load(&s->current.token));
        atomic_store(&s->kill_http, atomic_load(&s->current.http));
        atomic_store(&s->kill_start_ns, start);
        atomic_store_explicit(&s->kill_reason, FA_KILL_TIMEOUT, memory_order_release);
        kill(pr->pid, SIGKILL);
    }
}

void fa_scale_tick(struct fa_master *m)
{
    uint64_t now = fa_now_ns();
    scale__drains(m, now);
    scale__recycling(m, now);
    scale__auto(m, now);
    scale__timeouts(m, now);
}
