/* reload.c - SIGHUP / `fasterapi reload`: load the app again and replace
 * every worker without refusing or dropping a request.
 *
 *   1. describe the app again; if it does not import, say why and keep
 *      serving the current version (nothing else changes);
 *   2. version + 1: new Python workers start in free slots (FA_RELOAD_PY);
 *   3. once they are READY, new HTTP workers are forked with the new route
 *      table in the spare HTTP slots; they accept on the same listening
 *      socket and send only to Python workers of their version
 *      (FA_RELOAD_HTTP);
 *   4. once they are READY, the old HTTP workers get SIGTERM: they stop
 *      accepting, answer what they have and exit (FA_RELOAD_OLD_HTTP);
 *   5. then the old Python workers are retired (drained, SIGTERM).
 * A new worker that keeps dying at start-up aborts the reload in steps 2-3:
 * the new workers go, the old ones never stopped serving.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "master/describe.h"
#include "master/supervise.h"
#include "worker/router.h"
#include "worker/util.h"

static uint32_t reload__count_py(const struct fa_master *m, uint32_t version, bool ready_only)
{
    uint32_t n = 0;
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++) {
        const struct fa_proc *pr = &m->py[p];
        if (!pr->wanted || pr->retiring || pr->version != version)
            continue;
        if (ready_only && atomic_load(&fa_seg_py_slot(&m->seg, p)->state) != FA_SLOT_READY)
            continue;
        n++;
    }
    return n;
}

static uint32_t reload__count_http(const struct fa_master *m, uint32_t version, bool ready_only, bool alive)
{
    uint32_t n = 0;
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++) {
        const struct fa_proc *pr = &m->http[h];
        if (pr->version != version || (alive ? pr->pid == 0 : !pr->wanted))
            continue;
        if (ready_only && atomic_load(&fa_seg_http_slot(&m->seg, h)->state) != FA_SLOT_READY)
            continue;
        n++;
    }
    return n;
}

void fa_reload_begin(struct fa_master *m)
{
    char *cause = NULL, *table = NULL;
    size_t len = 0;
    struct fa_routes next = {0};

    if (m->reload != FA_RELOAD_IDLE) {
        fa_log("reload: a reload is already in progress; ignoring this one");
        return;
    }
    uint32_t want_py = fa_scale_active(m);
    uint32_t free_py = 0, free_http = 0;
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++)
        free_py += !m->py[p].wanted && m->py[p].pid == 0;
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++)
        free_http += !m->http[h].wanted && m->http[h].pid == 0;
    if (free_py < want_py || free_http < m->n_http_active) {
        fa_log("reload refused: %u Python workers need %u free slots beside the running ones, %u are "
               "free (raise --max-py-workers to at least %u), or old HTTP workers are still exiting",
               want_py, want_py, free_py, 2 * want_py);
        return;
    }
    fa_log("reload: loading %s again", m->o->app);
    if (fa_describe(m->pyworker, m->o->app, m->o->app_dir, &table, &len, &cause) < 0 ||
        fa_routes_load(&next, table, len, &cause) < 0 ||
        (m->o->metrics_path && fa_routes_add_metrics(&next, m->o->metrics_path, &cause) < 0)) {
        fa_routes_free(&next);
        fa_log("reload failed: %s; still serving version %u", cause, m->version);
        free(cause);
        free(table);
        return;
    }
    free(table);
    m->routes_old = m->routes;
    m->routes = next;
    m->version++;
    atomic_store(&m->seg.hdr->app_version, m->version);
    for (uint32_t i = 0, p = 0; i < want_py && p < m->seg.hdr->max_py; p++) {
        if (m->py[p].wanted || m->py[p].pid != 0)
            continue;
        m->py[p].version = m->version;
        m->py[p].quick_deaths = 0;
        fa_master_spawn_py(m, p);
        i++;
    }
    m->reload = FA_RELOAD_PY;
    fa_log("reload: version %u: %zu routes, starting %u Python workers", m->version, m->routes.n, want_py);
}

void fa_reload_abort(struct fa_master *m, const char *why)
{
    if (m->reload != FA_RELOAD_PY && m->reload != FA_RELOAD_HTTP)
        return;
    fa_log("reload failed: %s; still serving version %u", why, m->version - 1);
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++) {
        struct fa_proc *pr = &m->py[p];
        if (pr->version == m->version && pr->wanted) {
            fa_scale_retire(m, p, "reload aborted");
            if (pr->pid > 0)
                kill(pr->pid, SIGTERM);
        }
    }
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++) {
        struct fa_proc *pr = &m->http[h];
        if (pr->version == m->version && pr->wanted) {
            pr->wanted = false;
            pr->restart_at_ns = 0;
            if (pr->pid > 0)
                kill(pr->pid, SIGTERM);
        }
    }
    fa_routes_free(&m->routes);
    m->routes = m->routes_old;
    memset(&m->routes_old, 0, sizeof m->routes_old);
    m->version--;
    atomic_store(&m->seg.hdr->app_version, m->version);
    m->reload = FA_RELOAD_IDLE;
}

void fa_reload_tick(struct fa_master *m)
{
    uint32_t v = m->version;
    switch (m->reload) {
    case FA_RELOAD_IDLE:
        return;
    case FA_RELOAD_PY:
        if (reload__count_py(m, v, true) < reload__count_py(m, v, false))
            return;
        for (uint32_t i = 0, h = 0; i < m->n_http_active && h < m->seg.hdr->n_http; h++) {
            if (m->http[h].wanted || m->http[h].pid != 0)
                continue;
            m->http[h].version = v;
            m->http[h].quick_deaths = 0;
            fa_master_spawn_http(m, h);
            i++;
        }
        m->reload = FA_RELOAD_HTTP;
        return;
    case FA_RELOAD_HTTP:
        if (reload__count_http(m, v, true, false) < m->n_http_active)
            return;
        for (uint32_t h = 0; h < m->seg.hdr->n_http; h++) {
            struct fa_proc *pr = &m->http[h];
            if (pr->version == v || !pr->wanted)
                continue;
            pr->wanted = false;
            pr->restart_at_ns = 0;
            if (pr->pid > 0)
                kill(pr->pid, SIGTERM);
        }
        m->reload = FA_RELOAD_OLD_HTTP;
        return;
    case FA_RELOAD_OLD_HTTP:
        for (uint32_t h = 0; h < m->seg.hdr->n_http; h++)
            if (m->http[h].version != v && m->http[h].pid != 0)
                return;
        for (uint32_t p = 0; p < m->seg.hdr->max_py; p++)
            if (m->py[p].version != v && m->py[p].wanted)
                fa_scale_retire(m, p, "reloaded");
        fa_routes_free(&m->routes_old);
        m->reload = FA_RELOAD_IDLE;
        fa_log("reload: version %u is serving", v);
        return;
    }
}
