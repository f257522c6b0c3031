/* worker.c - the HTTP worker's life: set-up after fork, the loop, shutdown.
 *
 * The loop alternates libevent (sockets, doorbell, timers) with draining the
 * response rings. The doorbell flag `sleeping` is 1 only around the blocking
 * epoll_wait: a Python worker that publishes while we are busy pays no
 * syscall; one that publishes while we sleep writes our eventfd once.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>

#include "shm/doorbell.h"
#include "worker/dispatch.h"
#include "worker/util.h"
#include "worker/worker.h"

static void worker__doorbell_cb(int fd, short what, void *arg)
{
    fa_doorbell_drain(fd);
}

static void worker__retry_cb(int fd, short what, void *arg)
{
    fa_dispatch_retry(arg);
}

static void worker__sweep_cb(int fd, short what, void *arg)
{
    struct fa_worker *w = arg;
    if (fa_dispatch_sweep(w)) {
        struct timeval tv = {3, 0};
        evtimer_add(w->ev_sweep, &tv);
    }
}

/* Once a second: after a burst, the pages of the request chunks it used
 * go back to the kernel (shm/chunk.c, fa_arena_idle_trim). */
static void worker__trim_cb(int fd, short what, void *arg)
{
    struct fa_worker *w = arg;
    fa_arena_idle_trim(&w->arena);
}

static void worker__drain_timeout_cb(int fd, short what, void *arg)
{
    struct fa_worker *w = arg;
    fa_log("HTTP worker %u: graceful timeout, closing %u connection(s)", w->h, w->n_conns);
    w->exit_now = true;
}

static void worker__linger_cb(int fd, short what, void *arg);

static void worker__term_cb(int sig, short what, void *arg)
{
    struct fa_worker *w = arg;
    if (w->stopping)
        return;
    w->stopping = true;
    if (w->ev_listen) {
        /* Our copy of the listening socket goes: once the master and every
         * stopping worker closed theirs, new connections are refused
         * instead of waiting in a queue nobody will accept from. */
        event_del(w->ev_listen);
        close(w->env->listen_fd);
    }
    if (w->n_conns == 0) {
        w->exit_now = true;
        return;
    }
    /* A client may be sending on a keep-alive connection right now: closing
     * it would reset that request. Answer what arrives in the next moment
     * with Connection: close, then close what is idle. */
    fa_conn_stop_keepalive(w);
    struct timeval linger = {0, 300000};
    evtimer_add(w->ev_linger, &linger);
    struct timeval tv = {w->cfg->graceful_timeout, 0};
    evtimer_add(w->ev_drain, &tv);
}

static void worker__linger_cb(int fd, short what, void *arg)
{
    fa_conn_close_idle(arg);
}

int fa_worker_run(const struct fa_worker_env *env)
{
    struct fa_worker wk, *w = &wk;

    memset(w, 0, sizeof *w);
    w->env = env;
    w->seg = env->seg;
    w->cfg = env->cfg;
    w->h = env->slot;
    w->n_http = env->seg->hdr->n_http;
    w->max_py = env->seg->hdr->max_py;
    w->self = env->slot;
    w->me = fa_seg_http_slot(env->seg, env->slot);

    signal(SIGINT, SIG_IGN);      /* the master coordinates shutdown */
    signal(SIGPIPE, SIG_IGN);
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL) {
        fa_log("HTTP worker %u: cannot create the event loop", w->h);
        return 1;
    }
    fa_dispatch_init(w);
    w->ev_listen = event_new(w->base, env->listen_fd, EV_READ | EV_PERSIST, fa_conn_accept_cb, w);
    w->ev_doorbell = event_new(w->base, env->http_efd[w->h], EV_READ | EV_PERSIST, worker__doorbell_cb, w);
    w->ev_term = evsignal_new(w->base, SIGTERM, worker__term_cb, w);
    w->ev_retry = evtimer_new(w->base, worker__retry_cb, w);
    w->ev_sweep = evtimer_new(w->base, worker__sweep_cb, w);
    if (atomic_load_explicit(&w->me->stats.restarts, memory_order_relaxed) > 0) {
        struct timeval tv = {1, 0};   /* a predecessor died: sweep its chunks */
        evtimer_add(w->ev_sweep, &tv);
    }
    w->ev_drain = evtimer_new(w->base, worker__drain_timeout_cb, w);
    w->ev_linger = evtimer_new(w->base, worker__linger_cb, w);
    w->ev_trim = event_new(w->base, -1, EV_PERSIST, worker__trim_cb, w);
    struct timeval second = {1, 0};
    event_add(w->ev_trim, &second);
    event_add(w->ev_listen, NULL);
    event_add(w->ev_doorbell, NULL);
    event_add(w->ev_term, NULL);

    /* Signals were blocked across fork by the master. */
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL);

    w->version = atomic_load_explicit(&w->me->version, memory_order_relaxed);
    atomic_store_explicit(&w->me->pid, (int32_t)getpid(), memory_order_relaxed);
    atomic_store_explicit(&w->me->state, FA_SLOT_READY, memory_order_release);

    while (!w->exit_now) {
        /* Every push of the last round is committed: acknowledge the drain
         * epoch, so the master knows we have seen the DRAINING states
         * published before it (layout.h, fa_slot_sh.seen_epoch). */
        uint32_t epoch = atomic_load_explicit(&env->seg->hdr->drain_epoch, memory_order_acquire);
        if (epoch != atomic_load_explicit(&w->me->seen_epoch, memory_order_relaxed))
            atomic_store_explicit(&w->me->seen_epoch, epoch, memory_order_release);
        fa_dispatch_poll(w);
        fa_dispatch_wake(w);
        if (w->exit_now)
            break;
        fa_doorbell_sleep_begin(&w->me->sleeping);
        if (fa_dispatch_pending_input(w)) {
            fa_doorbell_sleep_cancel(&w->me->sleeping);
            event_base_loop(w->base, EVLOOP_NONBLOCK);
            continue;
        }
        event_base_loop(w->base, EVLOOP_ONCE);
        fa_doorbell_sleep_cancel(&w->me->sleeping);
    }
    atomic_store_explicit(&w->me->state, FA_SLOT_DRAINING, memory_order_release);
    return 0;
}
