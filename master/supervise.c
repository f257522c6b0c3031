/* supervise.c - the master loop. No signal handlers: the signals the master
 * acts on stay blocked and are taken synchronously with sigtimedwait, so
 * nothing runs in signal context at all (stronger than "handlers only set
 * flags"). Children: prctl(PR_SET_PDEATHSIG, SIGKILL) so that a master
 * killed with SIGKILL takes them along.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include "master/supervise.h"
#include "shm/doorbell.h"
#include "worker/util.h"
#include "worker/worker.h"

#define QUICK_DEATH_NS   (2ull * 1000000000ull)   /* a crash this soon after start lengthens the pause */
#define MAX_QUICK_DEATHS 5
#define BACKOFF_MIN_NS   (100ull * 1000000ull)
#define BACKOFF_MAX_NS   (5ull * 1000000000ull)

/* In a new child: die with the master, default signal dispositions. */
static void master__child_setup(pid_t master)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != master)
        _exit(1);    /* the master died before prctl */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGINT, SIG_IGN);   /* Ctrl-C reaches the whole group; the master coordinates */
}

void fa_master_spawn_http(struct fa_master *m, uint32_t h)
{
    struct fa_slot_sh *s = fa_seg_http_slot(&m->seg, h);
    struct fa_proc *pr = &m->http[h];
    pr->wanted = true;
    atomic_store(&s->version, pr->version);
    atomic_store(&s->state, FA_SLOT_STARTING);
    /* A new incarnation of the slot: its request tokens differ from its
     * predecessor's (worker/dispatch.c), so a late answer to one of those
     * cannot land on a new request. */
    atomic_fetch_add(&s->gen, 1);
    /* During a reload the old version's workers keep the old routes. */
    const struct fa_routes *routes = pr->version == m->version ? &m->routes : &m->routes_old;
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fa_log("cannot fork HTTP worker %u: %s", h, strerror(errno));
        m->http[h].restart_at_ns = fa_now_ns() + BACKOFF_MAX_NS;
        return;
    }
    if (pid == 0) {
        master__child_setup(master);
        close(m->shm_fd);
        struct fa_worker_env env = {
            .cfg = &m->o->wcfg,
            .seg = &m->seg,
            .routes = routes,
            .listen_fd = m->listen_fd,
            .slot = h,
            .http_efd = m->http_efd,
            .py_efd = m->py_efd,
        };
        _exit(fa_worker_run(&env));
    }
    m->http[h].pid = pid;
    m->http[h].started_ns = fa_now_ns();
    m->http[h].restart_at_ns = 0;
}

/* Moves fds to 3, 4, ... in order and closes everything else. */
static int master__arrange_fds(const int *fds, int n)
{
    int tmp[128];
    for (int i = 0; i < n; i++) {
        tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + n);
        if (tmp[i] < 0)
            return -1;
    }
    for (int i = 0; i < n; i++)
        if (dup2(tmp[i], 3 + i) < 0)
            return -1;
    return close_range((unsigned)(3 + n), ~0u, 0);
}

void fa_master_spawn_py(struct fa_master *m, uint32_t p)
{
    struct fa_slot_sh *s = fa_seg_py_slot(&m->seg, p);
    uint32_t gen = atomic_load(&s->gen);
    struct fa_proc *pr = &m->py[p];
    atomic_store(&s->version, pr->version);
    atomic_store(&s->state, FA_SLOT_STARTING);
    pr->wanted = true;
    pr->retiring = 0;
    pr->replaced_by = -1;
    pr->last_requests = atomic_load(&s->stats.requests);
    pr->active_ns = fa_now_ns();
    pr->max_requests = 0;
    if (m->o->max_requests) {
        uint32_t j = m->o->max_requests_jitter ? (uint32_t)random() % (m->o->max_requests_jitter + 1) : 0;
        pr->max_requests = pr->last_requests + m->o->max_requests + j;
    }
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fa_log("cannot fork Python worker %u: %s", p, strerror(errno));
        m->py[p].restart_at_ns = fa_now_ns() + BACKOFF_MAX_NS;
        return;
    }
    if (pid == 0) {
        master__child_setup(master);
        uint32_t n_http = m->seg.hdr->n_http;
        int fds[2 + 128];
        fds[0] = m->shm_fd;
        fds[1] = m->py_efd[p];
        for (uint32_t h = 0; h < n_http; h++)
            fds[2 + h] = m->http_efd[h];
        if (master__arrange_fds(fds, 2 + (int)n_http) < 0) {
            fprintf(stderr, "fasterapi: Python worker %u: cannot pass descriptors: %s\n", p, strerror(errno));
            _exit(1);
        }
        char slot[16], genb[16], hfds[128 * 5 + 1] = "";
        snprintf(slot, sizeof slot, "%u", p);
        snprintf(genb, sizeof genb, "%u", gen);
        for (uint32_t h = 0; h < n_http; h++) {
            char one[8];
            snprintf(one, sizeof one, h ? ",%u" : "%u", 5 + h);
            strcat(hfds, one);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(m->pyworker, m->pyworker, "--serve", "--app", m->o->app, "--app-dir", m->o->app_dir,
              "--shm-fd", "3", "--slot", slot, "--gen", genb, "--doorbell-fd", "4",
              "--http-doorbell-fds", hfds, (char *)NULL);
        fprintf(stderr, "fasterapi: cannot execute %s: %s\n", m->pyworker, strerror(errno));
        _exit(127);
    }
    atomic_store(&s->pid, pid);
    m->py[p].pid = pid;
    m->py[p].started_ns = fa_now_ns();
    m->py[p].restart_at_ns = 0;
}

static void master__describe_status(int status, char *buf, size_t n)
{
    if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
}

/* Schedules a restart with backoff; gives up on workers that keep dying at start. */
static void master__schedule(struct fa_master *m, struct fa_proc *pr, const char *what, uint32_t i,
                             bool was_ready)
{
    uint64_t now = fa_now_ns();
    /* A worker that dies before it is READY failed to start: after a few in
     * a row the app cannot run and restarting forever helps nobody. One
     * that served and then died (a crash, a kill) is restarted, with a
     * growing pause only if it keeps dying soon after starting. */
    if (!was_ready)
        pr->quick_deaths++;
    else
        pr->quick_deaths = 0;
    if (was_ready && now - pr->started_ns < QUICK_DEATH_NS)
        pr->crash_streak++;
    else if (was_ready)
        pr->crash_streak = 0;
    if (pr->quick_deaths >= 3 && m->reload != FA_RELOAD_IDLE && pr->version == m->version) {
        fa_reload_abort(m, "a new worker keeps dying at start-up");
        return;
    }
    if (pr->quick_deaths >= MAX_QUICK_DEATHS) {
        fa_log("%s %u died %u times in a row before it was ready: stopping the server "
               "(fix the error above and start again)", what, i, pr->quick_deaths);
        m->exit_code = 1;
        m->stopping = true;
        return;
    }
    uint32_t k = pr->quick_deaths + pr->crash_streak;
    uint64_t backoff = k ? BACKOFF_MIN_NS << (k > 16 ? 16 : k - 1) : 0;
    if (backoff > BACKOFF_MAX_NS)
        backoff = BACKOFF_MAX_NS;
    pr->restart_at_ns = now + backoff + 1;
}

/* Death protocol (DESIGN.md): bump the slot generation, then tell every HTTP
 * worker and wake it unconditionally. */
static void master__py_died(struct fa_master *m, uint32_t p)
{
    struct fa_slot_sh *s = fa_seg_py_slot(&m->seg, p);
    atomic_store(&s->state, FA_SLOT_DEAD);
    atomic_store(&s->pid, 0);
    atomic_store(&s->current.start_ns, 0);   /* it died mid-request: not the next one's */
    atomic_fetch_add(&s->gen, 1);
    /* in_flight is left alone: each HTTP worker takes back its own share
     * when it fails the dead generation's requests. */
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++) {
        atomic_fetch_add(&fa_seg_http_slot(&m->seg, h)->death_seq, 1);
        fa_doorbell_ring_force(m->http_efd[h]);
    }
}

static void master__reap(struct fa_master *m)
{
    int status;
    pid_t pid;
    char how[96];

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        master__describe_status(status, how, sizeof how);
        for (uint32_t h = 0; h < m->seg.hdr->n_http; h++) {
            if (m->http[h].pid != pid)
                continue;
            m->http[h].pid = 0;
            /* SIGKILL comes from outside (an operator, the OOM killer), not
             * from a start-up failure of the app. */
            bool was_ready = atomic_load(&fa_seg_http_slot(&m->seg, h)->state) == FA_SLOT_READY ||
                             (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
            atomic_store(&fa_seg_http_slot(&m->seg, h)->state, FA_SLOT_EMPTY);
            /* It may have died between taking a Python worker's sleeping
             * flag and writing its eventfd: wake them all (spec:
             * NO_PY_WAKE_ON_HTTP_DEATH). */
            for (uint32_t p = 0; p < m->seg.hdr->max_py; p++)
                if (m->py[p].pid > 0)
                    fa_doorbell_ring_force(m->py_efd[p]);
            if (!m->stopping && m->http[h].wanted) {
                fa_log("HTTP worker %u (pid %d) %s; restarting it", h, (int)pid, how);
                atomic_fetch_add(&fa_seg_http_slot(&m->seg, h)->stats.restarts, 1);
                master__schedule(m, &m->http[h], "HTTP worker", h, was_ready);
            }
        }
        for (uint32_t p = 0; p < m->seg.hdr->max_py; p++) {
            if (m->py[p].pid != pid)
                continue;
            m->py[p].pid = 0;
            uint32_t st = atomic_load(&fa_seg_py_slot(&m->seg, p)->state);
            bool was_ready = st == FA_SLOT_READY || st == FA_SLOT_DRAINING ||
                             (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
            master__py_died(m, p);
            if (m->stopping || !m->py[p].wanted) {
                if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                    fa_log("Python worker %u (pid %d) %s while %s", p, (int)pid, how,
                           m->stopping ? "stopping" : "retiring");
                m->py[p].retiring = 0;
                atomic_store(&fa_seg_py_slot(&m->seg, p)->state, FA_SLOT_EMPTY);
            } else {
                fa_log("Python worker %u (pid %d) %s; restarting it", p, (int)pid, how);
                atomic_fetch_add(&fa_seg_py_slot(&m->seg, p)->stats.restarts, 1);
                master__schedule(m, &m->py[p], "Python worker", p, was_ready);
            }
        }
    }
}

static void master__restarts(struct fa_master *m)
{
    uint64_t now = fa_now_ns();
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++)
        if (m->http[h].wanted && m->http[h].pid == 0 && m->http[h].restart_at_ns &&
            now >= m->http[h].restart_at_ns)
            fa_master_spawn_http(m, h);
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++)
        if (m->py[p].wanted && m->py[p].pid == 0 && m->py[p].restart_at_ns && now >= m->py[p].restart_at_ns)
            fa_master_spawn_py(m, p);
}

static void master__announce(struct fa_master *m)
{
    if (m->announced)
        return;
    for (uint32_t p = 0; p < m->seg.hdr->max_py; p++)
        if (m->py[p].wanted && atomic_load(&fa_seg_py_slot(&m->seg, p)->state) != FA_SLOT_READY)
            return;
    for (uint32_t h = 0; h < m->seg.hdr->n_http; h++)
        if (m->http[h].wanted && atomic_load(&fa_seg_http_slot(&m->seg, h)->state) != FA_SLOT_READY)
            return;
    m->announced = true;
    m->py_target = fa_scale_active(m);
    fa_log("serving %s on http://%s (%u HTTP worker%s, %u Python worker%s, name '%s')", m->o->app,
           m->o->bind, m->n_http_active, m->n_http_active == 1 ? "" : "s", m->py_target,
           m->py_target == 1 ? "" : "s", m->o->name);
}

/* Sends sig to the running processes of a kind and waits for them, up to
 * timeout seconds, then SIGKILL. */
static void master__stop_kind(struct fa_master *m, struct fa_proc *v, uint32_t n, unsigned timeout)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (uint32_t i = 0; i < n; i++)
        if (v[i].pid > 0)
            kill(v[i].pid, SIGTERM);
    uint64_t deadline = fa_now_ns() + (uint64_t)timeout * 1000000000ull + 500000000ull;
    for (;;) {
        master__reap(m);
        uint32_t alive = 0;
        for (uint32_t i = 0; i < n; i++)
            alive += v[i].pid > 0;
        if (alive == 0)
            return;
        if (fa_now_ns() >= deadline) {
            for (uint32_t i = 0; i < n; i++)
                if (v[i].pid > 0) {
                    fa_log("pid %d did not stop within %u s: killing it", (int)v[i].pid, timeout);
                    kill(v[i].pid, SIGKILL);
                }
            deadline = UINT64_MAX;
        }
        struct timespec ts = {0, 50000000};
        sigtimedwait(&set, NULL, &ts);
    }
}

int fa_master_run(struct fa_master *m)
{
    uint32_t n_http = m->seg.hdr->n_http;
    m->http = fa_xcalloc(n_http, sizeof *m->http);
    m->py = fa_xcalloc(m->seg.hdr->max_py, sizeof *m->py);
    m->py_target = m->o->autoscale ? m->o->min_py_workers : m->o->py_workers;
    atomic_store(&m->seg.hdr->py_target, m->py_target);

    for (uint32_t p = 0; p < m->py_target; p++)
        fa_master_spawn_py(m, p);
    for (uint32_t h = 0; h < m->n_http_active; h++)
        fa_master_spawn_http(m, h);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTTIN);
    sigaddset(&set, SIGTTOU);
    sigaddset(&set, SIGUSR2);
    while (!m->stopping) {
        struct timespec ts = {0, 100000000};
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            fa_log("%s: stopping (graceful timeout %u s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                   m->o->wcfg.graceful_timeout);
            m->stopping = true;
            break;
        }
        if (sig == SIGHUP)
            fa_reload_begin(m);
        if (sig == SIGTTIN && fa_scale_active(m) < m->seg.hdr->max_py)
            fa_scale_set(m, fa_scale_active(m) + 1, "SIGTTIN");
        if (sig == SIGTTOU && fa_scale_active(m) > 1)
            fa_scale_set(m, fa_scale_active(m) - 1, "SIGTTOU");
        if (sig == SIGUSR2) {
            uint32_t n = atomic_exchange(&m->seg.hdr->scale_request, 0);
            if (n >= 1 && n <= m->seg.hdr->max_py)
                fa_scale_set(m, n, "fasterapi scale");
            else if (n)
                fa_log("fasterapi scale: %u Python workers is outside 1..%u (--max-py-workers); ignored",
                       n, m->seg.hdr->max_py);
        }
        master__reap(m);
        if (!m->stopping) {
            master__restarts(m);
            fa_scale_tick(m);
            fa_reload_tick(m);
            master__announce(m);
        }
    }
    atomic_store(&m->seg.hdr->stopping, 1);
    /* Refuse new connections from now on (the HTTP workers close their
     * copies on SIGTERM); a Unix socket's name goes first. */
    if (strncmp(m->o->bind, "unix:", 5) == 0)
        unlink(m->o->bind + 5);
    close(m->listen_fd);
    m->listen_fd = -1;
    /* HTTP workers first: they stop accepting and wait for their Python
     * answers; then the Python workers drain their rings and exit. */
    master__stop_kind(m, m->http, n_http, m->o->wcfg.graceful_timeout);
    master__stop_kind(m, m->py, m->seg.hdr->max_py, m->o->wcfg.graceful_timeout);
    return m->exit_code;
}
