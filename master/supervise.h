/* supervise.h - the master's processes: spawn, reap, restart, stop. */
#ifndef FA_MASTER_SUPERVISE_H
#define FA_MASTER_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "master/cli.h"
#include "shm/segment.h"
#include "worker/routes.h"

struct fa_proc {
    pid_t pid;               /* 0: not running */
    uint64_t started_ns;
    uint64_t restart_at_ns;  /* 0: no restart scheduled */
    uint32_t quick_deaths;   /* consecutive deaths before READY (start-up failures) */
    uint32_t crash_streak;   /* consecutive deaths soon after becoming READY */
    /* Python slots (scale.c) */
    bool wanted;             /* the master wants a worker here (restart it if it dies) */
    int retiring;            /* 0; 1 DRAINING, waiting for the HTTP workers' acks; 2 SIGTERM sent */
    uint32_t drain_epoch;
    uint64_t term_at_ns;
    uint64_t max_requests;   /* --max-requests + jitter for this incarnation; 0: none */
    uint64_t last_requests;
    uint64_t active_ns;      /* last time its request count moved */
    int replaced_by;         /* recycling: the slot whose READY retires this one, or -1 */
    uint32_t version;        /* app version this slot serves (a restart keeps it) */
};

/* Reload phases (reload.c). */
enum fa_reload_phase {
    FA_RELOAD_IDLE = 0,
    FA_RELOAD_PY,            /* new Python workers starting */
    FA_RELOAD_HTTP,          /* new HTTP workers starting */
    FA_RELOAD_OLD_HTTP,      /* old HTTP workers finishing their connections */
};

struct fa_master {
    const struct fa_options *o;
    struct fa_seg seg;
    int shm_fd;
    struct fa_routes routes;         /* the routes of `version` */
    struct fa_routes routes_old;     /* during a reload: the routes of version - 1 */
    uint32_t version;                /* app version new processes serve */
    uint32_t n_http_active;          /* HTTP workers per version (--workers) */
    enum fa_reload_phase reload;
    int listen_fd;
    int *http_efd;           /* [n_http] */
    int *py_efd;             /* [max_py] */
    char *pyworker;
    struct fa_proc *http;    /* [n_http] */
    struct fa_proc *py;      /* [max_py] */
    uint32_t py_target;
    uint64_t last_scale_ns;
    uint64_t last_rss_ns;
    bool stopping;
    bool announced;
    int exit_code;
};

/* Forks the HTTP workers, starts the Python workers, supervises until a stop
 * signal; returns the exit code (0 after SIGTERM/SIGINT). Expects SIGCHLD,
 * SIGTERM, SIGINT, SIGHUP blocked. */
int fa_master_run(struct fa_master *m);

/* status.c: client subcommands; each returns the exit code. */
int fa_cmd_status(const struct fa_options *o);
int fa_cmd_scale(const struct fa_options *o);
int fa_cmd_signal(const struct fa_options *o, int sig, const char *what);

/* supervise.c */
void fa_master_spawn_py(struct fa_master *m, uint32_t p);
void fa_master_spawn_http(struct fa_master *m, uint32_t h);

/* reload.c: SIGHUP. Loads the app again; new workers start beside the old
 * ones, which finish what they have and exit. */
void fa_reload_begin(struct fa_master *m);
void fa_reload_tick(struct fa_master *m);
/* A worker of the reload's new version keeps dying: give the reload up. */
void fa_reload_abort(struct fa_master *m, const char *why);

/* scale.c: the number of Python workers at run time. */
/* Makes n slots wanted (1..max_py): starts or retires workers. */
void fa_scale_set(struct fa_master *m, uint32_t n, const char *why);
/* Periodic work: drains, recycling (--max-requests, --max-rss), autoscaling,
 * request timeouts. */
void fa_scale_tick(struct fa_master *m);
/* Drains and stops the worker in Python slot p (no restart). */
void fa_scale_retire(struct fa_master *m, uint32_t p, const char *why);
/* Number of wanted, not retiring Python slots of the current version. */
uint32_t fa_scale_active(const struct fa_master *m);

#endif
